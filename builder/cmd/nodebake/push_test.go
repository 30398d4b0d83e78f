package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
)

// testImage writes out/worker.raw (sparse) and out/worker.manifest.json.
func testImage(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	raw := filepath.Join(dir, "worker.raw")
	f, err := os.Create(raw)
	if err != nil {
		t.Fatal(err)
	}
	const size = 16 << 20
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(strings.Repeat("nodebake ", 1000)), size/2); err != nil {
		t.Fatal(err)
	}
	f.Close()
	b, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	m := fmt.Sprintf(`{"name":"worker","image":{"file":"worker.raw","sha256":%q,"size":%d},"components":[{"name":"kubelet","version":"v1.35.4"}]}`,
		hex.EncodeToString(sum[:]), size)
	if err := os.WriteFile(filepath.Join(dir, "worker.manifest.json"), []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestPushPull(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	var corrupt atomic.Bool
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if corrupt.Load() && r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			rec := httptest.NewRecorder()
			reg.ServeHTTP(rec, r)
			b := rec.Body.Bytes()
			b[0] ^= 1
			w.WriteHeader(rec.Code)
			w.Write(b)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	defer s.Close()
	host := strings.TrimPrefix(s.URL, "http://")
	img := testImage(t)

	code, out, stderr := runCLI(t, "push", "--insecure", filepath.Join(img, "worker.raw"), host+"/nodebake/worker:v1")
	if code != exitOK {
		t.Fatalf("push: exit %d: %s", code, stderr)
	}
	pushed := strings.TrimSpace(out)
	if !strings.HasPrefix(pushed, host+"/nodebake/worker@sha256:") {
		t.Fatalf("push printed %q", out)
	}
	digest := pushed[strings.Index(pushed, "@")+1:]

	dst := filepath.Join(t.TempDir(), "pulled")
	code, out, stderr = runCLI(t, "pull", "--insecure", "--decompress", "--digest", digest, "-o", dst, host+"/nodebake/worker:v1")
	if code != exitOK {
		t.Fatalf("pull: exit %d: %s", code, stderr)
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); lines[0] != pushed || len(lines) != 3 {
		t.Errorf("pull printed %q", out)
	}
	a, _ := os.ReadFile(filepath.Join(img, "worker.raw"))
	b, err := os.ReadFile(filepath.Join(dst, "worker.raw"))
	if err != nil || string(a) != string(b) {
		t.Errorf("pulled raw differs from the pushed one (%v)", err)
	}

	missing := filepath.Join(t.TempDir(), "worker.raw")
	for _, tc := range []struct {
		name    string
		args    []string
		corrupt bool
		code    int
		want    string
	}{
		{"missing image", []string{"push", "--insecure", missing, host + "/x:1"}, false, exitInvalid, "IMAGE " + missing},
		{"bad reference", []string{"push", "--insecure", filepath.Join(img, "worker.raw"), "Bad Ref"}, false, exitInvalid, `reference "Bad Ref"`},
		{"bad format", []string{"push", "--format", "zip", img + "/worker", host + "/x:1"}, false, exitInvalid, `format "zip"`},
		{"one argument", []string{"push", img}, false, exitInvalid, "want IMAGE and REGISTRY/REPO:TAG"},
		{"bad annotation", []string{"push", "--annotation", "x", img, host + "/x:1"}, false, exitInvalid, "KEY=VALUE"},
		{"registry down", []string{"push", "--insecure", img + "/worker.raw", "127.0.0.1:1/x:1"}, false, exitSource, "uploading"},
		{"wrong digest", []string{"pull", "--insecure", "--digest", "sha256:" + strings.Repeat("1", 64), "-o", t.TempDir(), host + "/nodebake/worker:v1"}, false, exitSource, "digest mismatch"},
		{"missing tag", []string{"pull", "--insecure", "-o", t.TempDir(), host + "/nodebake/worker:nope"}, false, exitSource, "MANIFEST_UNKNOWN"},
		{"pull bad reference", []string{"pull", "Bad Ref"}, false, exitInvalid, `reference "Bad Ref"`},
		{"corrupted blob", []string{"pull", "--insecure", "-o", t.TempDir(), host + "/nodebake/worker:v1"}, true, exitSource, "nodebake pull: blob worker.raw.zst: digest mismatch: got sha256:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			corrupt.Store(tc.corrupt)
			defer corrupt.Store(false)
			code, _, stderr := runCLI(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr, tc.code, tc.want)
			}
		})
	}
}

func TestPushPullHelp(t *testing.T) {
	for _, args := range [][]string{{"push", "--help"}, {"pull", "--help"}} {
		code, out, _ := runCLI(t, args...)
		if code != exitOK || !strings.Contains(out, "Usage:\n  nodebake "+args[0]) {
			t.Errorf("%v: exit %d, stdout %q", args, code, out)
		}
	}
}

func TestImageName(t *testing.T) {
	for _, tc := range []struct{ path, dir, name string }{
		{"out/worker.raw", "out/", "worker"},
		{"out/worker.raw.zst", "out/", "worker"},
		{"out/worker.tar.gz", "out/", "worker"},
		{"out/worker.qcow2", "out/", "worker"},
		{"out/worker.manifest.json", "out/", "worker"},
		{"out/worker.spdx.json", "out/", "worker"},
		{"out/worker.SHA256SUMS", "out/", "worker"},
		{"out/worker", "out/", "worker"},
		{"worker.vhd", ".", "worker"},
		{"out/my.image.vmdk", "out/", "my.image"},
	} {
		if dir, name := imageName(tc.path); dir != tc.dir || name != tc.name {
			t.Errorf("imageName(%s) = %s, %s; want %s, %s", tc.path, dir, name, tc.dir, tc.name)
		}
	}
}
