package components

import (
	"path"
	"sort"
	"strings"

	"github.com/nodebake/nodebake/layers/gosource"
)

// The from-source recipes: which module, which main packages, which tags
// and which version stamps give the upstream release's binaries.

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

// kubernetesStagingVersion is the version at which Kubernetes publishes the
// staging modules its go.mod replaces with its own directories: those of
// release v1.35.4 as v0.35.4.
func kubernetesStagingVersion(version string) string {
	if rest, ok := strings.CutPrefix(version, "v1."); ok {
		return "v0." + rest
	}
	return version
}

func kubernetesRecipe(name string) gosource.Recipe {
	return gosource.Recipe{
		Component:      name,
		Module:         "k8s.io/kubernetes",
		Binaries:       []gosource.Binary{{Name: name, Package: "k8s.io/kubernetes/cmd/" + name}},
		Tags:           []string{"selinux", "notest", "grpcnotrace"},
		LDFlags:        kubernetesLDFlags,
		ReplaceVersion: kubernetesStagingVersion,
	}
}

func containerdRecipe() gosource.Recipe {
	const mod = "github.com/containerd/containerd/v2"
	return gosource.Recipe{
		Component: "containerd",
		Module:    mod,
		Binaries: []gosource.Binary{
			{Name: "containerd", Package: mod + "/cmd/containerd"},
			{Name: "containerd-shim-runc-v2", Package: mod + "/cmd/containerd-shim-runc-v2", ExtraTags: []string{"no_grpc"}},
			{Name: "ctr", Package: mod + "/cmd/ctr"},
		},
		Tags: []string{"urfave_cli_no_docs"},
		LDFlags: func(v string) []string {
			return []string{"-X " + mod + "/version.Version=" + v, "-X " + mod + "/version.Package=" + mod}
		},
	}
}

func runcRecipe() gosource.Recipe {
	return gosource.Recipe{
		Component: "runc",
		Module:    "github.com/opencontainers/runc",
		Binaries:  []gosource.Binary{{Name: "runc", Package: "github.com/opencontainers/runc"}},
		Tags:      []string{"seccomp", "urfave_cli_no_docs", "netgo", "osusergo"},
		CGO:       true,
		LDFlags:   func(string) []string { return nil }, // version comes from the embedded VERSION file
	}
}

// cniPluginPackages are the plugins of the CNI plugins release, by package
// under plugins/; each binary is named after its package's last element.
func cniPluginPackages() []string {
	return []string{
		"ipam/dhcp", "ipam/host-local", "ipam/static",
		"main/bridge", "main/dummy", "main/host-device", "main/ipvlan", "main/loopback",
		"main/macvlan", "main/ptp", "main/tap", "main/vlan",
		"meta/bandwidth", "meta/firewall", "meta/portmap", "meta/sbr", "meta/tuning", "meta/vrf",
	}
}

func cniPluginsRecipe() gosource.Recipe {
	const mod = "github.com/containernetworking/plugins"
	r := gosource.Recipe{
		Component: "cni-plugins",
		Module:    mod,
		LDFlags: func(v string) []string {
			return []string{"-X " + mod + "/pkg/utils/buildversion.BuildVersion=" + v}
		},
	}
	for _, p := range cniPluginPackages() {
		r.Binaries = append(r.Binaries, gosource.Binary{Name: path.Base(p), Package: mod + "/plugins/" + p})
	}
	return r
}

// cniPluginFiles are the plugins in the release tarball ("./bridge"), in
// its order (by name), installed into CNIBinDir.
func cniPluginFiles() []Install {
	var names []string
	for _, p := range cniPluginPackages() {
		names = append(names, path.Base(p))
	}
	sort.Strings(names)
	var out []Install
	for _, n := range names {
		out = append(out, Install{Name: n, Member: "./" + n, To: CNIBinDir + "/" + n})
	}
	return out
}

func crictlRecipe() gosource.Recipe {
	const mod = "sigs.k8s.io/cri-tools"
	return gosource.Recipe{
		Component: "crictl",
		Module:    mod,
		Binaries:  []gosource.Binary{{Name: "crictl", Package: mod + "/cmd/crictl"}},
		// Upstream's Makefile stamps the version without its v.
		LDFlags: func(v string) []string {
			return []string{"-X " + mod + "/pkg/version.Version=" + strings.TrimPrefix(v, "v")}
		},
	}
}

// controlPlaneRecipes are programs built from the components' sources that
// no image bakes: the test cluster's control plane.
func controlPlaneRecipes() []gosource.Recipe {
	out := []gosource.Recipe{
		kubernetesRecipe("kube-apiserver"),
		kubernetesRecipe("kube-controller-manager"),
		kubernetesRecipe("kube-scheduler"),
	}
	return append(out, gosource.Recipe{
		Component: "etcd",
		Module:    "go.etcd.io/etcd/server/v3",
		Binaries: []gosource.Binary{
			{Name: "etcd", Package: "go.etcd.io/etcd/server/v3"},
			{Name: "etcdctl", Package: "go.etcd.io/etcd/etcdctl/v3"},
		},
		ExtraModules: []string{"go.etcd.io/etcd/etcdctl/v3"},
		LDFlags:      func(string) []string { return nil },
	})
}
