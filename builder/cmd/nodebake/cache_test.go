package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/layers/cache"
)

func TestCacheVerifyAndPrune(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	c, err := cache.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	const good, bad = "gosource/v1/kubelet/v1.35.4/go1.26.8/amd64", "normalized-base/v1/sha256:00/0"
	for _, key := range []string{good, bad} {
		if _, err := c.PutEntry(key, func(d string) error {
			return os.WriteFile(filepath.Join(d, "f"), []byte(key), 0o644)
		}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := c.PutFile(strings.NewReader("a download")); err != nil {
		t.Fatal(err)
	}
	e, _ := c.Entry(bad)
	os.WriteFile(e.Path("f"), []byte(strings.ToUpper(bad)), 0o644)

	code, out, errs := runCLI(t, "cache", "verify", "--cache", dir)
	if code != exitSource {
		t.Errorf("verify of a corrupt cache: exit %d, want %d", code, exitSource)
	}
	if !strings.Contains(out, "verified 3 items") || !strings.Contains(out, "1 did not verify") {
		t.Errorf("stdout %q", out)
	}
	for _, want := range []string{"[1/3", "[3/3 100%]", "FAILED  entry " + bad, "ok      entry " + good, "content is sha256:"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	if code, _, _ := runCLI(t, "cache", "verify", "--cache", dir, "--evict"); code != exitSource {
		t.Errorf("verify --evict: exit %d", code)
	}
	if code, out, errs := runCLI(t, "cache", "verify", "--cache", dir, "-q"); code != exitOK || errs != "" || !strings.Contains(out, "verified 2 items") {
		t.Errorf("verify after eviction: exit %d, %q, %q", code, out, errs)
	}

	// Prune: nothing unused for a day; a dry run of keeping one key; then for real.
	if code, out, _ := runCLI(t, "cache", "prune", "--cache", dir, "--unused-for", "1d"); code != exitOK || !strings.Contains(out, "removed 0 items") {
		t.Errorf("prune --unused-for 1d: exit %d, %q", code, out)
	}
	code, out, errs = runCLI(t, "cache", "prune", "--cache", dir, "--keep", good, "--dry-run")
	if code != exitOK || !strings.Contains(out, "would remove 1 items") || !strings.Contains(errs, "would remove blob sha256:") {
		t.Errorf("prune --dry-run: exit %d, %q, %q", code, out, errs)
	}
	if _, err := c.Entry(good); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := runCLI(t, "cache", "prune", "--cache", dir, "--all"); code != exitOK || !strings.Contains(out, "removed 2 items") {
		t.Errorf("prune --all: exit %d, %q", code, out)
	}
	if _, err := c.Entry(good); err == nil {
		t.Error("prune --all kept an entry")
	}
	for _, args := range [][]string{
		{"cache", "prune", "--cache", dir},
		{"cache", "prune", "--cache", dir, "--all", "--keep", good},
		{"cache", "prune", "--cache", dir, "--unused-for", "soon"},
		{"cache", "frobnicate"},
		{"cache"},
		{"cache", "verify", "--cache", dir, "extra"},
		{"cache", "prune", "--cache", dir, "--all", "extra"},
	} {
		if code, _, _ := runCLI(t, args...); code != exitInvalid {
			t.Errorf("%v: exit %d, want %d", args, code, exitInvalid)
		}
	}
}

// TestCacheFlags: the cache commands take their flags anywhere, long ones
// with one dash as before, --quiet as -q, and --keep repeated.
func TestCacheFlags(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	c, err := cache.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"gosource/v1/kubelet/v1.35.4/go1.26.8/amd64", "gosource/v1/kube-proxy/v1.35.4/go1.26.8/amd64", "normalized-base/v1/sha256:00/0"}
	for _, key := range keys {
		if _, err := c.PutEntry(key, func(d string) error {
			return os.WriteFile(filepath.Join(d, "f"), []byte(key), 0o644)
		}); err != nil {
			t.Fatal(err)
		}
	}
	if code, out, errs := runCLI(t, "cache", "verify", "--quiet", "-cache", dir); code != exitOK || errs != "" || !strings.Contains(out, "verified 3 items") {
		t.Errorf("verify --quiet -cache DIR: exit %d, %q, %q", code, out, errs)
	}
	code, out, errs := runCLI(t, "cache", "prune", "-dry-run", "--keep", keys[0], "-keep="+keys[1], "-cache", dir)
	if code != exitOK || !strings.Contains(out, "would remove 1 items") || !strings.Contains(errs, "would remove entry "+keys[2]) {
		t.Errorf("prune with one-dash flags and --keep twice: exit %d, %q, %q", code, out, errs)
	}
	code, out, errs = runCLI(t, "cache", "prune", "-q", "-unused-for=0d", "--cache", dir)
	if code != exitOK || errs != "" || !strings.Contains(out, "removed 3 items") {
		t.Errorf("prune -q -unused-for=0d: exit %d, %q, %q", code, out, errs)
	}
	for _, args := range [][]string{{"cache", "--help"}, {"cache", "verify", "--help"}, {"help", "cache", "prune"}} {
		code, out, _ := runCLI(t, args...)
		if code != exitOK || !strings.Contains(out, "Usage:\n  nodebake cache") {
			t.Errorf("%v: exit %d, %q", args, code, out)
		}
	}
}

func TestParseAge(t *testing.T) {
	for in, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "90m": 90 * time.Minute, "0d": 0} {
		if got, err := parseAge(in); err != nil || got != want {
			t.Errorf("parseAge(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "-1h", "1w", "99999999d"} {
		if _, err := parseAge(in); err == nil {
			t.Errorf("parseAge(%q) succeeded", in)
		}
	}
}

// TestCacheVerifyLegacy: an entry an older nodebake wrote, without
// digests, is shown as such, and counts as not verified.
func TestCacheVerifyLegacy(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	if _, err := cache.Open(dir); err != nil {
		t.Fatal(err)
	}
	const key = "gosource/v1/kubelet/v1.35.4/go1.26.8/amd64"
	root := filepath.Join(dir, "keyed", fmt.Sprintf("%x", sha256.Sum256([]byte(key))))
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "kubelet"), []byte("old"), 0o755)
	os.WriteFile(root+".key", []byte(key+"\n"), 0o644)
	code, out, errs := runCLI(t, "cache", "verify", "--cache", dir)
	if code != exitSource || !strings.Contains(out, "1 did not verify") {
		t.Errorf("exit %d, stdout %q", code, out)
	}
	for _, want := range []string{"LEGACY  entry " + key, "cannot be verified: it has no recorded digests"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
}
