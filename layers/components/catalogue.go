// Package components is the catalogue of the components nodebake bakes into
// an image: for each one its spec key, its upstream name, where its release
// artifact is and what is inside it, how to build it from source, where its
// files go in the image, how the SBOM names it, how its default version is
// chosen and whether it is baked unless the spec says otherwise.
//
// Everything else derives from the catalogue: the spec's components
// (keys, validation, defaults, managed paths), the layer resolver, the
// SBOM, the release mirror and the Packer plugin's component blocks.
// Adding a component is adding an entry here.
package components

import (
	"fmt"
	"sort"
	"strings"

	"github.com/nodebake/nodebake/layers/gosource"
)

// Key is a component's key in the spec (components.KEY): kubeProxy.
type Key string

// VersionDefault says how a component's version is chosen when the spec
// names none.
type VersionDefault int

const (
	// VersionRequired: the spec must name the version.
	VersionRequired VersionDefault = iota
	// VersionKubernetes: the version follows kubernetes.version, and may
	// lag behind it by at most MaxKubernetesSkew minor versions.
	VersionKubernetes
)

// MaxKubernetesSkew is how many minor versions a component whose version
// follows kubernetes.version may lag behind it.
const MaxKubernetesSkew = 3

// Component is everything nodebake knows about one component.
type Component struct {
	// Key is the spec key: kubeProxy.
	Key Key
	// Name is the upstream name: kube-proxy. The manifest, the SBOM, the
	// release mirror and the build cache name the component by it.
	Name string
	// Description says what the component is, in a few words.
	Description string
	// URLPattern is the upstream release artifact's URL; see Expand for
	// its placeholders.
	URLPattern string
	// Artifact is the release artifact's shape.
	Artifact ArtifactKind
	// Files are the binaries the component installs: from the release
	// artifact, from a build from source, or from an OCI image.
	Files []Install
	// Dirs are directories of the image the component owns entirely: a
	// spec's files may not add to them.
	Dirs []string
	// Recipe builds the component from source.
	Recipe gosource.Recipe
	// Version says how the version is chosen when the spec names none.
	Version VersionDefault
	// Major, when set, is the only major version the image's configuration
	// works with; MajorReason says why.
	Major, MajorReason string
	// Optional components are baked only when the spec lists them; the
	// others are always baked.
	Optional bool
}

// Install maps one binary to its place in the image.
type Install struct {
	// Name is the binary's name: its file name in a source build, and its
	// member's base name in a tarball.
	Name string
	// Member is the path inside a release tarball ("bin/containerd").
	Member string
	// To is the absolute path in the image.
	To string
}

// ArtifactKind is the shape of an upstream release artifact.
type ArtifactKind int

const (
	// Binary is a single executable (kubelet, runc.amd64).
	Binary ArtifactKind = iota
	// TarGz is a gzip'd tar of binaries (containerd, the CNI plugins).
	TarGz
)

// BinDir and friends are where binaries go; the seed's locations.
const (
	BinDir    = "/usr/local/bin"
	SbinDir   = "/usr/local/sbin"
	CNIBinDir = "/opt/cni/bin"
)

// Catalogue returns every component, in the stable order the spec, the
// manifest and the SBOM list them.
func Catalogue() []Component {
	return []Component{
		{
			Key: "containerd", Name: "containerd",
			Description: "containerd, the container runtime, with its runc shim and ctr",
			URLPattern:  "https://github.com/containerd/containerd/releases/download/{version}/containerd-{bareVersion}-linux-{arch}.tar.gz",
			Artifact:    TarGz,
			Files: []Install{
				{Name: "containerd", Member: "bin/containerd", To: BinDir + "/containerd"},
				{Name: "containerd-shim-runc-v2", Member: "bin/containerd-shim-runc-v2", To: BinDir + "/containerd-shim-runc-v2"},
				{Name: "ctr", Member: "bin/ctr", To: BinDir + "/ctr"},
			},
			Recipe: containerdRecipe(),
			Major:  "v2", MajorReason: "the containerd config (version 3) needs containerd 2.x",
		},
		{
			Key: "runc", Name: "runc",
			Description: "runc, the OCI runtime containerd runs containers with",
			URLPattern:  "https://github.com/opencontainers/runc/releases/download/{version}/runc.{arch}",
			Artifact:    Binary,
			Files:       []Install{{Name: "runc", To: SbinDir + "/runc"}},
			Recipe:      runcRecipe(),
		},
		{
			Key: "cniPlugins", Name: "cni-plugins",
			Description: "the CNI reference plugins (bridge, host-local, portmap, ...)",
			URLPattern:  "https://github.com/containernetworking/plugins/releases/download/{version}/cni-plugins-linux-{arch}-{version}.tgz",
			Artifact:    TarGz,
			Files:       cniPluginFiles(),
			Dirs:        []string{CNIBinDir},
			Recipe:      cniPluginsRecipe(),
		},
		kubernetesComponent("kubelet", "kubelet", "the kubelet, the node agent"),
		kubernetesComponent("kubeProxy", "kube-proxy", "kube-proxy, the service proxy"),
		kubernetesComponent("kubectl", "kubectl", "kubectl, the Kubernetes command-line client"),
		{
			Key: "crictl", Name: "crictl",
			Description: "crictl, the CRI command-line client (cri-tools); the image's /etc/crictl.yaml points it at containerd",
			URLPattern:  "https://github.com/kubernetes-sigs/cri-tools/releases/download/{version}/crictl-{version}-linux-{arch}.tar.gz",
			Artifact:    TarGz,
			Files:       []Install{{Name: "crictl", Member: "crictl", To: BinDir + "/crictl"}},
			Recipe:      crictlRecipe(),
			Optional:    true,
		},
	}
}

func kubernetesComponent(key Key, name, description string) Component {
	return Component{
		Key: key, Name: name, Description: description,
		URLPattern: "https://dl.k8s.io/release/{version}/bin/linux/{arch}/" + name,
		Artifact:   Binary,
		Files:      []Install{{Name: name, To: BinDir + "/" + name}},
		Recipe:     kubernetesRecipe(name),
		Version:    VersionKubernetes,
	}
}

// Keys returns every component's spec key, in catalogue order.
func Keys() []Key {
	var out []Key
	for _, c := range Catalogue() {
		out = append(out, c.Key)
	}
	return out
}

// Lookup returns the component with spec key k.
func Lookup(k Key) (Component, bool) {
	for _, c := range Catalogue() {
		if c.Key == k {
			return c, true
		}
	}
	return Component{}, false
}

// Find returns the component with a spec key or an upstream name.
func Find(name string) (Component, bool) {
	for _, c := range Catalogue() {
		if string(c.Key) == name || c.Name == name {
			return c, true
		}
	}
	return Component{}, false
}

// KnownKeys lists the spec keys for messages: "containerd, runc, ...".
func KnownKeys() string {
	var s []string
	for _, k := range Keys() {
		s = append(s, string(k))
	}
	return strings.Join(s, ", ")
}

// Expand substitutes a URL pattern's placeholders: {version} is the
// version as the spec writes it (v2.2.0), {bareVersion} the version
// without its leading v (2.2.0), {arch} the architecture (amd64).
func Expand(pattern, version, arch string) string {
	return strings.NewReplacer(
		"{version}", version,
		"{bareVersion}", strings.TrimPrefix(version, "v"),
		"{arch}", arch,
	).Replace(pattern)
}

// ReleaseURL returns the upstream release artifact URL of version for arch.
func (c Component) ReleaseURL(version, arch string) string {
	return Expand(c.URLPattern, version, arch)
}

// InstalledPaths returns the paths of the image the component provides:
// its files and the directories it owns.
func (c Component) InstalledPaths() []string {
	var out []string
	for _, f := range c.Files {
		out = append(out, f.To)
	}
	return append(out, c.Dirs...)
}

// Package returns the SBOM package URL type and name of the component
// taken from source from ("release", "go"): a release artifact is
// pkg:generic/NAME, a build from source pkg:golang/MODULE. For "oci" it
// returns empty strings: the image reference names the package.
func (c Component) Package(from string) (purlType, purlName string) {
	switch from {
	case "release":
		return "generic", c.Name
	case "go":
		return "golang", c.Recipe.Module
	}
	return "", ""
}

// Recipe returns the recipe of a program built from source, by upstream
// name: a component's, or one of the control plane programs the test
// cluster builds from the same sources (kube-apiserver,
// kube-controller-manager, kube-scheduler, etcd), which are not baked.
func Recipe(name string) (gosource.Recipe, error) {
	if c, ok := Find(name); ok {
		return c.Recipe, nil
	}
	for _, r := range controlPlaneRecipes() {
		if r.Component == name {
			return r, nil
		}
	}
	var known []string
	for _, c := range Catalogue() {
		known = append(known, c.Name)
	}
	for _, r := range controlPlaneRecipes() {
		known = append(known, r.Component)
	}
	sort.Strings(known)
	return gosource.Recipe{}, fmt.Errorf("no source recipe for %q (known: %s)", name, strings.Join(known, ", "))
}
