package components_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/layers/components"
	"github.com/nodebake/nodebake/layers/spec"
)

// specWith returns a defaulted spec that lists the components given (key
// -> YAML flow mapping) and nothing else.
func specWith(t *testing.T, listed map[components.Key]string) *spec.Spec {
	t.Helper()
	var b strings.Builder
	b.WriteString("apiVersion: nodebake.io/v1alpha1\nkind: WorkerImage\nbase: {image: \"oci:base\"}\nkubernetes: {version: v1.35.4}\ncomponents:\n")
	for _, c := range components.Catalogue() {
		if v, ok := listed[c.Key]; ok {
			fmt.Fprintf(&b, "  %s: %s\n", c.Key, v)
		}
	}
	s, err := spec.Parse([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	s.Default()
	return s
}

// version returns a version a component accepts.
func version(c components.Component) string {
	if c.Major != "" {
		return c.Major + ".0.0"
	}
	return "v1.0.0"
}

// TestSpecFollowsTheCatalogue checks that the spec derives its components
// from the catalogue: keys, which are baked by default, default versions,
// validation and the managed paths.
func TestSpecFollowsTheCatalogue(t *testing.T) {
	all := map[components.Key]string{}
	required := map[components.Key]string{}
	for _, c := range components.Catalogue() {
		v := "{from: go}"
		if c.Version != components.VersionKubernetes {
			v = "{from: go, version: " + version(c) + "}"
		}
		all[c.Key] = v
		if !c.Optional {
			required[c.Key] = v
		}
	}
	full := specWith(t, all)
	if err := full.Validate(); err != nil {
		t.Fatalf("a spec listing every component: %v", err)
	}
	var got []components.Key
	for _, nc := range full.NamedComponents() {
		got = append(got, nc.Key)
	}
	if !slices.Equal(got, components.Keys()) {
		t.Errorf("NamedComponents = %v, want the catalogue order %v", got, components.Keys())
	}

	minimal := specWith(t, required)
	if err := minimal.Validate(); err != nil {
		t.Fatalf("a spec listing only the components that are not optional: %v", err)
	}
	managed := minimal.ManagedPaths()
	for _, c := range components.Catalogue() {
		nc, baked := minimal.Component(string(c.Key))
		if baked == c.Optional {
			t.Errorf("%s: baked %v, but optional %v and not listed", c.Key, baked, c.Optional)
		}
		for _, p := range c.InstalledPaths() {
			if slices.Contains(managed, p) != baked {
				t.Errorf("%s: %s managed %v, baked %v", c.Key, p, !baked, baked)
			}
		}
		if !baked {
			continue
		}
		if c.Version == components.VersionKubernetes && nc.Version != "v1.35.4" {
			t.Errorf("%s: version %s does not follow kubernetes.version", c.Key, nc.Version)
		}
	}

	// A component whose version does not follow Kubernetes needs one.
	for _, c := range components.Catalogue() {
		if c.Version == components.VersionKubernetes {
			continue
		}
		s := specWith(t, map[components.Key]string{c.Key: "{from: go}"})
		var ve *spec.ValidationError
		if err := s.Validate(); !errors.As(err, &ve) || !ve.Has("components."+string(c.Key)+".version") {
			t.Errorf("%s without a version: %v", c.Key, err)
		}
	}
	// A component with a major version refuses another.
	for _, c := range components.Catalogue() {
		if c.Major == "" {
			continue
		}
		s := specWith(t, map[components.Key]string{c.Key: "{from: go, version: v99.0.0}"})
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), c.MajorReason) {
			t.Errorf("%s v99: %v", c.Key, err)
		}
	}
}

// TestArtifactURLFromCatalogue checks that the spec fetches a release
// from the catalogue's URL, through the mirror.
func TestArtifactURLFromCatalogue(t *testing.T) {
	for _, c := range components.Catalogue() {
		s := &spec.Spec{Arch: spec.ArchARM64, Sources: spec.Sources{Mirror: "http://mirror.test/up"}}
		s.SetComponent(c.Key, spec.Component{Version: "v1.2.3", From: spec.FromRelease})
		want := "http://mirror.test/up/" + strings.TrimPrefix(c.ReleaseURL("v1.2.3", "arm64"), "https://")
		if got := s.ArtifactURL(c.Key); got != want {
			t.Errorf("%s: ArtifactURL = %q, want %q", c.Key, got, want)
		}
	}
}

// TestCrictlInTheSpec checks that crictl is baked only when the spec lists
// it, and then with the version it names.
func TestCrictlInTheSpec(t *testing.T) {
	base := map[components.Key]string{"containerd": "{version: v2.2.0, from: go}", "runc": "{version: v1.3.4, from: go}", "cniPlugins": "{version: v1.8.0, from: go}",
		"kubelet": "{from: go}", "kubeProxy": "{from: go}", "kubectl": "{from: go}"}
	without := specWith(t, base)
	if _, ok := without.Component("crictl"); ok || slices.Contains(without.ManagedPaths(), "/usr/local/bin/crictl") {
		t.Error("crictl is baked though the spec does not list it")
	}
	base["crictl"] = "{version: v1.34.0, from: go}"
	with := specWith(t, base)
	if err := with.Validate(); err != nil {
		t.Fatal(err)
	}
	c, ok := with.Component("crictl")
	if !ok || c.Version != "v1.34.0" || !slices.Contains(with.ManagedPaths(), "/usr/local/bin/crictl") {
		t.Errorf("crictl listed: %+v, %v", c, ok)
	}
	base["crictl"] = "{sha256: {amd64: " + strings.Repeat("a", 64) + "}}"
	var ve *spec.ValidationError
	if err := specWith(t, base).Validate(); !errors.As(err, &ve) || !ve.Has("components.crictl.version") {
		t.Errorf("crictl without a version: %v", err)
	}
}
