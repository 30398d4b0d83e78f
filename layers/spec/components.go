package spec

import (
	"strings"
)

// ComponentName is a component's key in the spec (components.NAME).
type ComponentName string

// The components, by spec key.
const (
	ComponentContainerd ComponentName = "containerd"
	ComponentRunc       ComponentName = "runc"
	ComponentCNIPlugins ComponentName = "cniPlugins"
	ComponentKubelet    ComponentName = "kubelet"
	ComponentKubeProxy  ComponentName = "kubeProxy"
	ComponentKubectl    ComponentName = "kubectl"
)

// ComponentNames returns every component in the stable build order.
func ComponentNames() []ComponentName {
	return []ComponentName{
		ComponentContainerd, ComponentRunc, ComponentCNIPlugins,
		ComponentKubelet, ComponentKubeProxy, ComponentKubectl,
	}
}

// Upstream returns the component's upstream name (cni-plugins, kube-proxy,
// ...), or "" for an unknown component.
func (n ComponentName) Upstream() string {
	switch n {
	case ComponentContainerd, ComponentRunc, ComponentKubelet, ComponentKubectl:
		return string(n)
	case ComponentCNIPlugins:
		return "cni-plugins"
	case ComponentKubeProxy:
		return "kube-proxy"
	}
	return ""
}

// lookupComponent accepts a spec key or an upstream name.
func lookupComponent(name string) (ComponentName, bool) {
	for _, n := range ComponentNames() {
		if string(n) == name || n.Upstream() == name {
			return n, true
		}
	}
	return "", false
}

// NamedComponent is a component with its names.
type NamedComponent struct {
	// Key is the spec key (kubeProxy).
	Key ComponentName
	// Name is the upstream name (kube-proxy).
	Name string
	Component
}

// NamedComponents returns the components in the stable order containerd,
// runc, cniPlugins, kubelet, kubeProxy, kubectl. Call it on a defaulted spec
// to see defaulted versions.
func (s *Spec) NamedComponents() []NamedComponent {
	out := make([]NamedComponent, 0, 6)
	for _, n := range ComponentNames() {
		out = append(out, NamedComponent{Key: n, Name: n.Upstream(), Component: *s.component(n)})
	}
	return out
}

// Component returns the component with a spec key or upstream name.
func (s *Spec) Component(name string) (NamedComponent, bool) {
	n, ok := lookupComponent(name)
	if !ok {
		return NamedComponent{}, false
	}
	return NamedComponent{Key: n, Name: n.Upstream(), Component: *s.component(n)}, true
}

// ComponentField returns a pointer to the component field of n, to change
// it in place (nil for an unknown name).
func (s *Spec) ComponentField(n ComponentName) *Component { return s.component(n) }

// component returns a pointer to the named component's field.
func (s *Spec) component(n ComponentName) *Component {
	c := &s.Components
	switch n {
	case ComponentContainerd:
		return &c.Containerd
	case ComponentRunc:
		return &c.Runc
	case ComponentCNIPlugins:
		return &c.CNIPlugins
	case ComponentKubelet:
		return &c.Kubelet
	case ComponentKubeProxy:
		return &c.KubeProxy
	case ComponentKubectl:
		return &c.Kubectl
	}
	return nil
}

// ReleaseURL returns the upstream release artifact URL of a component (by
// spec key or upstream name), or "" for an unknown component. The
// Kubernetes binaries and runc are plain binaries; containerd
// and the CNI plugins are gzipped tarballs.
func ReleaseURL(component ComponentName, version string, arch Arch) string {
	n, ok := lookupComponent(string(component))
	if !ok {
		return ""
	}
	a := string(arch)
	switch n {
	case ComponentKubelet, ComponentKubeProxy, ComponentKubectl:
		return "https://dl.k8s.io/release/" + version + "/bin/linux/" + a + "/" + n.Upstream()
	case ComponentContainerd:
		return "https://github.com/containerd/containerd/releases/download/" + version +
			"/containerd-" + strings.TrimPrefix(version, "v") + "-linux-" + a + ".tar.gz"
	case ComponentRunc:
		return "https://github.com/opencontainers/runc/releases/download/" + version + "/runc." + a
	case ComponentCNIPlugins:
		return "https://github.com/containernetworking/plugins/releases/download/" + version +
			"/cni-plugins-linux-" + a + "-" + version + ".tgz"
	}
	return ""
}

// MirrorURL maps an upstream URL https://HOST/PATH to MIRROR/HOST/PATH. It
// returns upstream unchanged when mirror is empty or upstream is not https.
func MirrorURL(mirror, upstream string) string {
	rest, ok := strings.CutPrefix(upstream, "https://")
	if mirror == "" || !ok {
		return upstream
	}
	return strings.TrimSuffix(mirror, "/") + "/" + rest
}

// ArtifactURL returns where the release artifact of component name is
// fetched from: the url override with {version} and {arch} substituted,
// taken as given; otherwise ReleaseURL mapped through the mirror (see
// MirrorURL). It returns "" unless c comes from a release.
func (c Component) ArtifactURL(name ComponentName, arch Arch, mirror string) string {
	if c.From != "" && c.From != FromRelease {
		return ""
	}
	if c.URL != "" {
		return strings.NewReplacer("{version}", c.Version, "{arch}", string(arch)).Replace(c.URL)
	}
	return MirrorURL(mirror, ReleaseURL(name, c.Version, arch))
}

// Checksum returns the pinned checksum of the release artifact for arch:
// algorithm ("sha512" when set, else "sha256") and lower-case hex. ok is
// false when neither is set.
func (c Component) Checksum(arch Arch) (algorithm, hex string, ok bool) {
	if h := c.SHA512[arch]; h != "" {
		return "sha512", strings.ToLower(h), true
	}
	if h := c.SHA256[arch]; h != "" {
		return "sha256", strings.ToLower(h), true
	}
	return "", "", false
}

// ArtifactURL returns the release artifact URL of component n for this
// spec's architecture and mirror (see Component.ArtifactURL). Call it on a
// defaulted spec.
func (s *Spec) ArtifactURL(n ComponentName) string {
	c := s.component(n)
	if c == nil {
		return ""
	}
	return c.ArtifactURL(n, s.Arch, s.Sources.Mirror)
}
