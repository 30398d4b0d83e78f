// Package gosource builds pinned component binaries from source through the
// Go module proxy. Sources are verified by the Go checksum database; builds
// are reproducible (-trimpath, fixed version strings, no build ids), so the
// same version and Go toolchain give the same bytes.
package gosource

import (
	"fmt"
	"sort"
	"strings"
)

// Binary is one program a recipe builds.
type Binary struct {
	// Name is the output file name.
	Name string
	// Package is the import path of the main package.
	Package string
	// ExtraTags are build tags added for this binary only.
	ExtraTags []string
}

// Recipe describes how to build the binaries of one component.
type Recipe struct {
	// Component is the component name (kubelet, containerd, runc, ...).
	Component string
	// Module is the Go module that holds the sources.
	Module string
	// Binaries lists the programs built.
	Binaries []Binary
	// Tags are build tags for every binary.
	Tags []string
	// CGO builds with cgo, statically linked.
	CGO bool
	// LDFlags returns the -X flags that stamp the version.
	LDFlags func(version string) []string
	// ExtraModules are further modules required at the same version
	// (etcdctl next to etcd).
	ExtraModules []string
}

func kubernetesLDFlags(version string) []string {
	major, minor := "", ""
	parts := strings.SplitN(strings.TrimPrefix(version, "v"), ".", 3)
	if len(parts) >= 2 {
		major, minor = parts[0], parts[1]
	}
	var flags []string
	for _, p := range []string{"k8s.io/client-go/pkg/version", "k8s.io/component-base/version"} {
		flags = append(flags,
			"-X "+p+".gitVersion="+version,
			"-X "+p+".gitMajor="+major,
			"-X "+p+".gitMinor="+minor,
			"-X "+p+".gitTreeState=clean",
			"-X "+p+".buildDate=1970-01-01T00:00:00Z",
		)
	}
	return flags
}

func kubernetesRecipe(name string) Recipe {
	return Recipe{
		Component: name,
		Module:    "k8s.io/kubernetes",
		Binaries:  []Binary{{Name: name, Package: "k8s.io/kubernetes/cmd/" + name}},
		Tags:      []string{"selinux", "notest", "grpcnotrace"},
		LDFlags:   kubernetesLDFlags,
	}
}

// cniPlugins are the plugins of the upstream release tarball, in its order.
var cniPluginPackages = []string{
	"ipam/dhcp", "ipam/host-local", "ipam/static",
	"main/bridge", "main/dummy", "main/host-device", "main/ipvlan", "main/loopback",
	"main/macvlan", "main/ptp", "main/tap", "main/vlan",
	"meta/bandwidth", "meta/firewall", "meta/portmap", "meta/sbr", "meta/tuning", "meta/vrf",
}

// Recipes returns the recipe for every component that can be built from
// source, keyed by component name.
func Recipes() map[string]Recipe {
	r := map[string]Recipe{}
	for _, n := range []string{"kubelet", "kube-proxy", "kubectl", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		r[n] = kubernetesRecipe(n)
	}
	r["containerd"] = Recipe{
		Component: "containerd",
		Module:    "github.com/containerd/containerd/v2",
		Binaries: []Binary{
			{Name: "containerd", Package: "github.com/containerd/containerd/v2/cmd/containerd"},
			{Name: "containerd-shim-runc-v2", Package: "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2", ExtraTags: []string{"no_grpc"}},
			{Name: "ctr", Package: "github.com/containerd/containerd/v2/cmd/ctr"},
		},
		Tags: []string{"urfave_cli_no_docs"},
		LDFlags: func(v string) []string {
			return []string{
				"-X github.com/containerd/containerd/v2/version.Version=" + v,
				"-X github.com/containerd/containerd/v2/version.Package=github.com/containerd/containerd/v2",
			}
		},
	}
	r["runc"] = Recipe{
		Component: "runc",
		Module:    "github.com/opencontainers/runc",
		Binaries:  []Binary{{Name: "runc", Package: "github.com/opencontainers/runc"}},
		Tags:      []string{"seccomp", "urfave_cli_no_docs", "netgo", "osusergo"},
		CGO:       true,
		LDFlags:   func(string) []string { return nil }, // version comes from the embedded VERSION file
	}
	cni := Recipe{
		Component: "cni-plugins",
		Module:    "github.com/containernetworking/plugins",
		LDFlags: func(v string) []string {
			return []string{"-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=" + v}
		},
	}
	for _, p := range cniPluginPackages {
		cni.Binaries = append(cni.Binaries, Binary{
			Name:    p[strings.LastIndex(p, "/")+1:],
			Package: "github.com/containernetworking/plugins/plugins/" + p,
		})
	}
	r["cni-plugins"] = cni
	r["etcd"] = Recipe{
		Component: "etcd",
		Module:    "go.etcd.io/etcd/server/v3",
		Binaries: []Binary{
			{Name: "etcd", Package: "go.etcd.io/etcd/server/v3"},
			{Name: "etcdctl", Package: "go.etcd.io/etcd/etcdctl/v3"},
		},
		ExtraModules: []string{"go.etcd.io/etcd/etcdctl/v3"},
		LDFlags:      func(string) []string { return nil },
	}
	return r
}

// Lookup returns the recipe for a component.
func Lookup(component string) (Recipe, error) {
	r, ok := Recipes()[component]
	if !ok {
		names := make([]string, 0, len(Recipes()))
		for n := range Recipes() {
			names = append(names, n)
		}
		sort.Strings(names)
		return Recipe{}, fmt.Errorf("no source recipe for component %q (known: %s)", component, strings.Join(names, ", "))
	}
	return r, nil
}
