package harness

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/layers/mirror"
	"github.com/nodebake/nodebake/layers/spec"
)

func TestModulePath(t *testing.T) {
	tests := []struct {
		gomod, want string
	}{
		{"module github.com/nodebake/nodebake\n\ngo 1.26\n", Module},
		{"// comment\nmodule \"example.com/x\"\n", "example.com/x"},
		{"go 1.26\n", ""},
	}
	for _, tt := range tests {
		if got := modulePath([]byte(tt.gomod)); got != tt.want {
			t.Errorf("modulePath(%q) = %q, want %q", tt.gomod, got, tt.want)
		}
	}
}

func TestRepoRoot(t *testing.T) {
	root := RepoRoot(t)
	if _, err := os.Stat(filepath.Join(root, "images", "worker.yaml")); err != nil {
		t.Errorf("RepoRoot = %s, which has no images/worker.yaml: %v", root, err)
	}
}

type recorder struct {
	testing.TB
	lines []string
}

func (r *recorder) Log(args ...any) {
	for _, a := range args {
		r.lines = append(r.lines, a.(string))
	}
}

func TestLogWriter(t *testing.T) {
	r := &recorder{TB: t}
	w := LogWriter(r, "go: ")
	io.WriteString(w, "one\r\ntw")
	io.WriteString(w, "o\nthree")
	if got, want := strings.Join(r.lines, "|"), "go: one|go: two"; got != want {
		t.Errorf("logged %q, want %q", got, want)
	}
}

// TestMirror builds the release mirror of images/worker.yaml (components
// from source, cached) and downloads every artifact from the served mirror
// at the URL the pinned spec names, checking its checksum.
func TestMirror(t *testing.T) {
	RequireSlow(t)
	s, err := spec.LoadAndValidate(filepath.Join(RepoRoot(t), "images", "worker.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	url, arts := Mirror(t, s)
	if len(arts) != len(s.NamedComponents()) {
		t.Errorf("mirror has %d artifacts, want one per component (%d)", len(arts), len(s.NamedComponents()))
	}
	p, err := mirror.Pin(s, url, arts)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err != nil {
		t.Fatalf("pinned spec: %v", err)
	}
	for _, a := range arts {
		u := p.ArtifactURL(a.Component)
		if !strings.HasPrefix(u, url+"/") {
			t.Errorf("%s: artifact URL %s is not on the mirror %s", a.Component, u, url)
			continue
		}
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s, %v", u, resp.Status, err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != a.SHA256 {
			t.Errorf("%s: served sha256 %s, pinned %s", u, got, a.SHA256)
		}
		t.Logf("%s %s: %s, %d MiB", a.Component, a.Version, a.Path, n>>20)
	}
}

func TestAbsImage(t *testing.T) {
	s := &spec.Spec{Dir: "/repo/images"}
	digest := "sha256:" + strings.Repeat("ab", 32)
	tests := []struct{ in, want string }{
		{"oci:../build/base/trixie-amd64", "oci:/repo/build/base/trixie-amd64"},
		{"oci:../build/images/pause@" + digest, "oci:/repo/build/images/pause@" + digest},
		{"oci:/abs/layout", "oci:/abs/layout"},
		{"tarball:img.tar", "tarball:/repo/images/img.tar"},
		{"registry.k8s.io/pause:3.10.1", "registry.k8s.io/pause:3.10.1"},
	}
	for _, tt := range tests {
		if got := absImage(s, tt.in); got != tt.want {
			t.Errorf("absImage(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
