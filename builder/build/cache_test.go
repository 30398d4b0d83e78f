package build

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodebake/nodebake/layers/cache"
	"github.com/nodebake/nodebake/layers/failure"
	"github.com/nodebake/nodebake/layers/gosource"
	"github.com/nodebake/nodebake/layers/oci"
	"github.com/nodebake/nodebake/layers/spec"
)

// These tests damage what a real build left in the cache, every kind of
// entry in every way, and build again: the damage is reported by name, the
// entry is made again once, and the image is the clean one.

// fakeGoCommand writes a go command that builds every binary as a short
// script naming itself, and counts its builds in the file it returns.
func fakeGoCommand(t *testing.T) (goCmd, builds string) {
	t.Helper()
	dir := t.TempDir()
	gomod := filepath.Join(dir, "upstream.go.mod")
	builds = filepath.Join(dir, "builds")
	os.WriteFile(gomod, []byte("module k8s.io/kubernetes\n\ngo 1.24\n"), 0o644)
	script := `#!/bin/sh
case "$1" in
env) echo go1.99.0-fake ;;
mod) printf '{"GoMod": "%s"}\n' "` + gomod + `" ;;
list) echo fmt; echo k8s.io/kubernetes/cmd/kubelet ;;
build)
	out=
	for a; do [ "$prev" = -o ] && out=$a; prev=$a; done
	echo k8s.io/kubernetes/cmd/kubelet >&2
	printf '#!fake %s built from source\n' "$(basename "$out")" > "$out"
	echo "$out" >> "` + builds + `" ;;
*) echo "fake go: unexpected $*" >&2; exit 2 ;;
esac
`
	goCmd = filepath.Join(dir, "go")
	if err := os.WriteFile(goCmd, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return goCmd, builds
}

// cacheFixture is a build of every kind of cache entry: release downloads
// (a single binary read when the image is composed, and tarballs read when
// components are resolved), a component built from source, the normalized
// base and a preloaded image archive.
type cacheFixture struct {
	*fixture
	spec   *spec.Spec
	goCmd  string
	builds string
	mu     sync.Mutex
	events []string
	// onCompose, when set, runs as the root filesystem is about to be
	// composed.
	onCompose func()
}

func newCacheFixture(t *testing.T) *cacheFixture {
	f := &cacheFixture{fixture: newFixture(t)}
	s := withPreload(t, f.fixture)
	kc := s.Components["kubelet"]
	kc.From, kc.SHA256, kc.URL = spec.FromGo, nil, ""
	s.SetComponent("kubelet", kc)
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	f.spec = s
	f.goCmd, f.builds = fakeGoCommand(t)
	return f
}

func (f *cacheFixture) build(t *testing.T, out string) (*Result, error) {
	t.Helper()
	f.mu.Lock()
	f.events = nil
	f.mu.Unlock()
	return Build(context.Background(), f.spec, Options{
		OutputDir: out, Cache: f.cache, FirstbootBinary: f.firstboot, Workers: 2,
		Go: gosource.Builder{Go: f.goCmd},
		Progress: func(ev Event) {
			f.mu.Lock()
			f.events = append(f.events, ev.Message)
			f.mu.Unlock()
			if ev.Stage == StageCompose && f.onCompose != nil {
				f.onCompose()
			}
		},
	})
}

// goBuilds counts the builds from source the fake go command has run.
func (f *cacheFixture) goBuilds() int {
	b, _ := os.ReadFile(f.builds)
	return strings.Count(string(b), "\n")
}

// said returns the progress messages that contain s.
func (f *cacheFixture) said(s string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, m := range f.events {
		if strings.Contains(m, s) {
			out = append(out, m)
		}
	}
	return out
}

// withPreload adds a preloaded image, from an OCI layout, to the fixture's
// spec.
func withPreload(t *testing.T, f *fixture) *spec.Spec {
	t.Helper()
	dir := t.TempDir()
	tarPath := filepath.Join(dir, "pause.tar")
	if err := os.WriteFile(tarPath, tarBytes(t, map[string][]byte{"pause": []byte("#!fake pause")}), 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := oci.ImageFromRootfsTar(tarPath, time.Unix(0, 0).UTC(), "amd64")
	if err != nil {
		t.Fatal(err)
	}
	layout := filepath.Join(dir, "pause")
	if err := oci.WriteLayout(layout, img, nil); err != nil {
		t.Fatal(err)
	}
	s := f.spec.Clone()
	s.Images = append(s.Images, spec.Image{Ref: "registry.k8s.io/pause:3.10", Image: "oci:" + layout})
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return s
}

// entryKey returns the key of the cache's one entry whose key starts with
// prefix.
func entryKey(t *testing.T, c *cache.Cache, prefix string) string {
	t.Helper()
	var keys []string
	_, err := c.VerifyAll(context.Background(), cache.VerifyOptions{Progress: func(ev cache.VerifyEvent) {
		if ev.Kind == cache.KindEntry && strings.HasPrefix(ev.Name, prefix) {
			keys = append(keys, ev.Name)
		}
	}})
	if err != nil || len(keys) != 1 {
		t.Fatalf("entries %s*: %v, %v", prefix, keys, err)
	}
	return keys[0]
}

// damages are what happens to a cached file.
var damages = []struct {
	name    string
	problem cache.Problem
	apply   func(t *testing.T, p string)
}{
	{"one byte flipped", cache.ProblemContent, func(t *testing.T, p string) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0x01
		writeInPlace(t, p, b)
	}},
	{"truncated", cache.ProblemSize, func(t *testing.T, p string) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, fi.Size()-fi.Size()/3); err != nil {
			t.Fatal(err)
		}
	}},
	{"file missing", cache.ProblemMissing, func(t *testing.T, p string) {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}},
}

// writeInPlace changes a file's bytes as a failing disk does: same inode,
// same size.
func writeInPlace(t *testing.T, p string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, 0); err != nil {
		t.Fatal(err)
	}
}

func TestDamagedCacheIsRebuiltNotBaked(t *testing.T) {
	f := newCacheFixture(t)
	clean, err := f.build(t, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	blob := func(key spec.ComponentName) func(t *testing.T) (string, string, string) {
		return func(t *testing.T) (string, string, string) {
			algo, sum, _ := f.spec.Components[key].Checksum(f.spec.Arch)
			d := cache.Digest{Algorithm: algo, Hex: sum}
			return d.String(), "", f.cache.Path(d)
		}
	}
	entry := func(prefix, file string) func(t *testing.T) (string, string, string) {
		return func(t *testing.T) (string, string, string) {
			key := entryKey(t, f.cache, prefix)
			e, err := f.cache.Entry(key)
			if err != nil {
				t.Fatal(err)
			}
			return key, file, e.Path(file)
		}
	}
	for _, kind := range []struct {
		name string
		// find returns the key, the file within an entry and its path.
		find func(t *testing.T) (key, file, path string)
		// fromSource is set for a build from source, made again by
		// the go command rather than downloaded.
		fromSource bool
	}{
		{"download read while composing (runc)", blob("runc"), false},
		{"download read while resolving (containerd)", blob("containerd"), false},
		{"build from source (kubelet)", entry("gosource/", "kubelet"), true},
		{"normalized base", entry("normalized-base/", "base.tar"), false},
		{"preloaded image archive", entry("preload/", "image.tar"), false},
	} {
		for _, dmg := range damages {
			t.Run(kind.name+"/"+dmg.name, func(t *testing.T) {
				key, file, p := kind.find(t)
				dmg.apply(t, p)
				requests, builds := *f.requests, f.goBuilds()

				out := t.TempDir()
				res, err := f.build(t, out)
				if err != nil {
					t.Fatalf("build over the damaged %s: %v", kind.name, err)
				}
				if res.Manifest.Image.SHA256 != clean.Manifest.Image.SHA256 {
					t.Errorf("the image is %s, the clean build's %s", res.Manifest.Image.SHA256, clean.Manifest.Image.SHA256)
				}
				missingBlob := file == "" && dmg.problem == cache.ProblemMissing
				if said := f.said("; evicting it and building again"); missingBlob {
					// A blob that is gone is just not cached.
					if len(said) != 0 {
						t.Errorf("said %q for a missing download", said)
					}
				} else if len(said) != 1 || !strings.Contains(said[0], key) || !strings.Contains(said[0], "is corrupt") {
					t.Errorf("said %q, want one line naming %s as corrupt", said, key)
				}
				switch {
				case kind.fromSource:
					if f.goBuilds() != builds+1 || *f.requests != requests {
						t.Errorf("%d builds from source and %d downloads, want one build", f.goBuilds()-builds, *f.requests-requests)
					}
				case file == "":
					if *f.requests != requests+1 {
						t.Errorf("%d downloads, want the damaged one again", *f.requests-requests)
					}
				}
				// The cache is whole again.
				rep, err := f.cache.VerifyAll(context.Background(), cache.VerifyOptions{})
				if err != nil || len(rep.Problems) != 0 {
					t.Errorf("the cache after the build: %v %v", rep.Problems, err)
				}
			})
		}
	}
}

// TestBuildReportsGoProgress: a build from source reports through the
// build's progress events, once at the end here (the fake build is quick).
func TestBuildReportsGoProgress(t *testing.T) {
	f := newCacheFixture(t)
	if _, err := f.build(t, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	said := f.said("built kubelet v1.35.4 in ")
	if len(said) != 1 || !strings.Contains(said[0], " (1 of 2 packages compiled)") {
		t.Errorf("said %q, want the build from source's last report", said)
	}
}

// TestDamagedTwiceFails: an entry that is damaged again after it was made
// again fails the build, as a source failure naming it, and leaves
// nothing.
func TestDamagedTwiceFails(t *testing.T) {
	f := newCacheFixture(t)
	if _, err := f.build(t, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	key := entryKey(t, f.cache, "gosource/")
	// Every time the root filesystem is about to be composed, the built
	// kubelet rots.
	f.onCompose = func() {
		e, err := f.cache.Entry(key)
		if err != nil {
			t.Error(err)
			return
		}
		b, _ := os.ReadFile(e.Path("kubelet"))
		b[0] ^= 0x20
		writeInPlace(t, e.Path("kubelet"), b)
	}
	builds := f.goBuilds()
	out := t.TempDir()
	_, err := f.build(t, out)
	var ce *cache.CorruptError
	if !errors.As(err, &ce) || ce.Key != key || ce.Problem != cache.ProblemContent {
		t.Fatalf("build = %v, want a *cache.CorruptError for %q", err, key)
	}
	if failure.KindOf(err) != failure.Source {
		t.Errorf("kind %v, want a source failure (exit 3)", failure.KindOf(err))
	}
	for _, want := range []string{key, "evicted and made again once already", ce.Recorded.String(), ce.Actual.String()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error %q does not say %q", err, want)
		}
	}
	if got := f.goBuilds() - builds; got != 1 {
		t.Errorf("%d builds from source, want the one after the first damage", got)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("the failed build left %d files", len(entries))
	}
}

// TestCorruptBaseIsTheCause: a normalized base damaged where it makes the
// base unreadable fails the build with the damage, not the tar error it
// leads to, and the build makes the base again.
func TestCorruptBaseIsTheCause(t *testing.T) {
	f := newCacheFixture(t)
	clean, err := f.build(t, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key := entryKey(t, f.cache, "normalized-base/")
	e, err := f.cache.Entry(key)
	if err != nil {
		t.Fatal(err)
	}
	// Zero the first header's checksum field: the tar no longer parses.
	b, _ := os.ReadFile(e.Path(baseTar))
	copy(b[148:156], bytes.Repeat([]byte{0}, 8))
	writeInPlace(t, e.Path(baseTar), b)
	res, err := f.build(t, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if said := f.said("; evicting it and building again"); len(said) != 1 || !strings.Contains(said[0], key) {
		t.Errorf("said %q, want the damaged base named", said)
	}
	if res.Manifest.Image.SHA256 != clean.Manifest.Image.SHA256 {
		t.Errorf("the image is %s, the clean build's %s", res.Manifest.Image.SHA256, clean.Manifest.Image.SHA256)
	}
}

// tarBytes returns a tar of regular files.
func tarBytes(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(data)), ModTime: time.Unix(12345, 0)}); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
