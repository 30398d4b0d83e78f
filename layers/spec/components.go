package spec

import (
	"maps"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/nodebake/nodebake/layers/components"
)

// ComponentName is a component's key in the spec (components.NAME); the
// component catalogue (package components) lists them.
type ComponentName = components.Key

// ComponentSet holds the components baked into the image, by spec key.
// Which keys exist, and which components are baked when the spec does not
// list them, is the component catalogue's: Default adds every component
// that is not optional.
type ComponentSet map[ComponentName]Component

// MarshalYAML writes the components in catalogue order (keys the catalogue
// does not know last, sorted), so that a dump, and the spec hash, do not
// depend on map order.
func (cs ComponentSet) MarshalYAML() (any, error) {
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for _, k := range cs.keys() {
		var v yaml.Node
		if err := v.Encode(cs[k]); err != nil {
			return nil, err
		}
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: string(k)}, &v)
	}
	return n, nil
}

// keys returns the set's keys in catalogue order, unknown keys last.
func (cs ComponentSet) keys() []ComponentName {
	var out, unknown []ComponentName
	for _, k := range components.Keys() {
		if _, ok := cs[k]; ok {
			out = append(out, k)
		}
	}
	for k := range cs {
		if _, ok := components.Lookup(k); !ok {
			unknown = append(unknown, k)
		}
	}
	sort.Slice(unknown, func(i, j int) bool { return unknown[i] < unknown[j] })
	return append(out, unknown...)
}

// clone returns a deep copy.
func (cs ComponentSet) clone() ComponentSet {
	if cs == nil {
		return nil
	}
	out := make(ComponentSet, len(cs))
	for k, c := range cs {
		c.SHA256 = maps.Clone(c.SHA256)
		c.SHA512 = maps.Clone(c.SHA512)
		out[k] = c
	}
	return out
}

// NamedComponent is a component of a spec with its catalogue entry.
type NamedComponent struct {
	// Key is the spec key (kubeProxy).
	Key ComponentName
	// Name is the upstream name (kube-proxy).
	Name string
	Component
	// Catalogue is what the catalogue knows about the component.
	Catalogue components.Component
}

// NamedComponents returns the spec's components in catalogue order. Call
// it on a defaulted spec to see every component baked, with its defaulted
// version; keys the catalogue does not know are left out (Validate
// reports them).
func (s *Spec) NamedComponents() []NamedComponent {
	var out []NamedComponent
	for _, cat := range components.Catalogue() {
		if c, ok := s.Components[cat.Key]; ok {
			out = append(out, NamedComponent{Key: cat.Key, Name: cat.Name, Component: c, Catalogue: cat})
		}
	}
	return out
}

// Component returns the spec's component with a spec key or upstream name.
func (s *Spec) Component(name string) (NamedComponent, bool) {
	cat, ok := components.Find(name)
	if !ok {
		return NamedComponent{}, false
	}
	c, ok := s.Components[cat.Key]
	if !ok {
		return NamedComponent{}, false
	}
	return NamedComponent{Key: cat.Key, Name: cat.Name, Component: c, Catalogue: cat}, true
}

// SetComponent sets the component with spec key k.
func (s *Spec) SetComponent(k ComponentName, c Component) {
	if s.Components == nil {
		s.Components = ComponentSet{}
	}
	s.Components[k] = c
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

// ArtifactURL returns where the release artifact of component key is
// fetched from: the url override with its placeholders substituted (see
// components.Expand), taken as given; otherwise the catalogue's release
// URL mapped through the mirror (see MirrorURL). It returns "" unless c
// comes from a release, and for a key the catalogue does not know.
func (c Component) ArtifactURL(key ComponentName, arch Arch, mirror string) string {
	if c.From != "" && c.From != FromRelease {
		return ""
	}
	if c.URL != "" {
		return components.Expand(c.URL, c.Version, string(arch))
	}
	cat, ok := components.Lookup(key)
	if !ok {
		return ""
	}
	return MirrorURL(mirror, cat.ReleaseURL(c.Version, string(arch)))
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

// ArtifactURL returns the release artifact URL of component key for this
// spec's architecture and mirror (see Component.ArtifactURL). Call it on a
// defaulted spec.
func (s *Spec) ArtifactURL(key ComponentName) string {
	c, ok := s.Components[key]
	if !ok {
		return ""
	}
	return c.ArtifactURL(key, s.Arch, s.Sources.Mirror)
}

// componentKeys lists the catalogue's keys for suggestions.
func componentKeys() []string {
	var out []string
	for _, k := range components.Keys() {
		out = append(out, string(k))
	}
	return slices.Clip(out)
}
