package gosource

import (
	"strings"
	"testing"
)

// staging maps Kubernetes' release versions to its staging modules' (the
// catalogue's recipe does the same; here it only drives the mechanism).
func staging(v string) string { return "v0." + strings.TrimPrefix(v, "v1.") }

func TestPublishedReplace(t *testing.T) {
	k8s := Recipe{Module: "k8s.io/kubernetes", ReplaceVersion: staging}
	etcd := Recipe{Module: "go.etcd.io/etcd/server/v3"}
	for _, tc := range []struct {
		recipe    Recipe
		version   string
		mod, want string
		ok        bool
	}{
		{k8s, "v1.35.4", "k8s.io/apiserver", "v0.35.4", true},
		{k8s, "v1.35.4", "k8s.io/client-go", "v0.35.4", true},
		{etcd, "v3.6.6", "go.etcd.io/etcd/api/v3", "v3.6.6", true},
		{etcd, "v3.6.6", "go.etcd.io/etcd", "", false},
	} {
		p, v, ok := publishedReplace(tc.recipe, tc.version, tc.mod)
		if ok != tc.ok || v != tc.want || (ok && p != tc.mod) {
			t.Errorf("publishedReplace(%s, %s, %s) = %s %s %v, want %s %v", tc.recipe.Module, tc.version, tc.mod, p, v, ok, tc.want, tc.ok)
		}
	}
}

func TestBuildRefusesBadVersion(t *testing.T) {
	r := Recipe{Component: "runc", Module: "github.com/opencontainers/runc", Binaries: []Binary{{Name: "runc", Package: "github.com/opencontainers/runc"}}}
	if err := (Builder{}).Build(t.Context(), r, "1.3.4", "amd64", t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a semantic version") {
		t.Errorf("bad version error = %v", err)
	}
}

// TestWrapperModule builds the wrapper go.mod of two real modules (it
// downloads their go.mod files through the module proxy).
func TestWrapperModule(t *testing.T) {
	for _, tc := range []struct {
		recipe   Recipe
		version  string
		replaces int
		want     string
	}{
		{Recipe{Component: "kubelet", Module: "k8s.io/kubernetes", ReplaceVersion: staging}, "v1.35.4", 31, "k8s.io/apiserver => k8s.io/apiserver v0.35.4"},
		{Recipe{Component: "etcd", Module: "go.etcd.io/etcd/server/v3", ExtraModules: []string{"go.etcd.io/etcd/etcdctl/v3"}}, "v3.6.6", 5, "go.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 v3.6.6"},
	} {
		b, err := Builder{}.wrapperModule(t.Context(), t.TempDir(), tc.recipe, tc.version)
		if err != nil {
			t.Fatalf("%s: %v", tc.recipe.Component, err)
		}
		if n := strings.Count(string(b), "=>"); n != tc.replaces || !strings.Contains(string(b), tc.want) {
			t.Errorf("%s wrapper has %d replaces (want %d) or lacks %q:\n%s", tc.recipe.Component, n, tc.replaces, tc.want, b)
		}
	}
}
