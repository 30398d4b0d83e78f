package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNetroot runs "nodebake-firstboot netroot" against a local server: a
// good download, then a checksum mismatch that must leave no file and
// print one line.
func TestNetroot(t *testing.T) {
	body := []byte("squashfs bytes")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer srv.Close()
	h := sha256.Sum256(body)
	good := hex.EncodeToString(h[:])
	out := filepath.Join(t.TempDir(), "root.squashfs")
	run := func(args ...string) (string, string, int) {
		cmd := exec.Command(os.Args[0], append([]string{"netroot"}, args...)...)
		cmd.Env = append(os.Environ(), asMain+"=1")
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return o.String(), e.String(), exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return o.String(), e.String(), 0
	}
	stdout, stderr, code := run("--url", srv.URL+"/root.squashfs", "--sha256", good, "--out", out)
	if code != 0 || !strings.Contains(stdout, "verified") {
		t.Fatalf("good download: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if b, err := os.ReadFile(out); err != nil || !bytes.Equal(b, body) {
		t.Fatalf("good download: file %q, %v", b, err)
	}
	os.Remove(out)
	_, stderr, code = run("--url", srv.URL+"/root.squashfs", "--sha256", strings.Repeat("0", 64), "--out", out)
	if code != 1 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "sha256") {
		t.Errorf("checksum mismatch: exit %d, stderr %q; want exit 1 and one line", code, stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("checksum mismatch left %s behind", out)
	}
	if _, _, code = run("--url", srv.URL, "extra"); code != 2 {
		t.Errorf("usage error: exit %d, want 2", code)
	}
}
