package gosource

import (
	"strings"
	"testing"
)

func TestPublishedVersion(t *testing.T) {
	for _, tc := range []struct{ module, version, want string }{
		{"k8s.io/kubernetes", "v1.35.4", "v0.35.4"},
		{"go.etcd.io/etcd/server/v3", "v3.6.6", "v3.6.6"},
	} {
		if got := publishedVersion(tc.module, tc.version); got != tc.want {
			t.Errorf("publishedVersion(%s, %s) = %s, want %s", tc.module, tc.version, got, tc.want)
		}
	}
}

func TestPublishedReplace(t *testing.T) {
	for _, tc := range []struct {
		recipe, version, mod string
		want                 string
		ok                   bool
	}{
		{"k8s.io/kubernetes", "v1.35.4", "k8s.io/apiserver", "v0.35.4", true},
		{"k8s.io/kubernetes", "v1.35.4", "k8s.io/client-go", "v0.35.4", true},
		{"go.etcd.io/etcd/server/v3", "v3.6.6", "go.etcd.io/etcd/api/v3", "v3.6.6", true},
		{"go.etcd.io/etcd/server/v3", "v3.6.6", "go.etcd.io/etcd", "", false},
	} {
		p, v, ok := publishedReplace(tc.recipe, tc.version, tc.mod)
		if ok != tc.ok || v != tc.want || (ok && p != tc.mod) {
			t.Errorf("publishedReplace(%s, %s, %s) = %s %s %v, want %s %v", tc.recipe, tc.version, tc.mod, p, v, ok, tc.want, tc.ok)
		}
	}
}

func TestKubernetesLDFlags(t *testing.T) {
	f := strings.Join(kubernetesLDFlags("v1.35.4"), " ")
	for _, want := range []string{
		"-X k8s.io/component-base/version.gitVersion=v1.35.4",
		"-X k8s.io/client-go/pkg/version.gitMinor=35",
		"-X k8s.io/component-base/version.gitTreeState=clean",
	} {
		if !strings.Contains(f, want) {
			t.Errorf("ldflags lack %q: %s", want, f)
		}
	}
}

func TestLookup(t *testing.T) {
	for _, c := range []string{"kubelet", "kube-proxy", "kubectl", "kube-apiserver", "containerd", "runc", "cni-plugins", "etcd"} {
		r, err := Lookup(c)
		if err != nil || len(r.Binaries) == 0 {
			t.Errorf("Lookup(%s) = %+v, %v", c, r, err)
		}
	}
	if _, err := Lookup("nope"); err == nil || !strings.Contains(err.Error(), "known:") {
		t.Errorf("Lookup(nope) error = %v", err)
	}
	if err := (Builder{}).Build(t.Context(), Recipes()["runc"], "1.3.4", "amd64", t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a semantic version") {
		t.Errorf("bad version error = %v", err)
	}
}

// TestWrapperModule builds the wrapper go.mod of real recipes (it downloads
// the modules' go.mod files through the module proxy).
func TestWrapperModule(t *testing.T) {
	for _, tc := range []struct {
		component, version string
		replaces           int
		want               string
	}{
		{"kubelet", "v1.35.4", 31, "k8s.io/apiserver => k8s.io/apiserver v0.35.4"},
		{"etcd", "v3.6.6", 5, "go.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 v3.6.6"},
	} {
		r, _ := Lookup(tc.component)
		b, err := Builder{}.wrapperModule(t.Context(), t.TempDir(), r, tc.version)
		if err != nil {
			t.Fatalf("%s: %v", tc.component, err)
		}
		if n := strings.Count(string(b), "=>"); n != tc.replaces || !strings.Contains(string(b), tc.want) {
			t.Errorf("%s wrapper has %d replaces (want %d) or lacks %q:\n%s", tc.component, n, tc.replaces, tc.want, b)
		}
	}
}
