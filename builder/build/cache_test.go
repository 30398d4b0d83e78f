package build

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/layers/cache"
	"github.com/nodebake/nodebake/layers/oci"
	"github.com/nodebake/nodebake/layers/spec"
)

// These tests damage what a real build left in the cache and build again:
// a damaged entry is never baked into an image.

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

// cachedEntries returns the keys of the cache's keyed entries.
func cachedEntries(t *testing.T, c *cache.Cache) []string {
	t.Helper()
	var keys []string
	_, err := c.VerifyAll(context.Background(), cache.VerifyOptions{Progress: func(ev cache.VerifyEvent) {
		if ev.Kind == cache.KindEntry {
			keys = append(keys, ev.Name)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestCorruptCacheEntryIsNotBaked(t *testing.T) {
	f := newFixture(t)
	s := withPreload(t, f)
	clean, err := f.build(t, t.TempDir(), s)
	if err != nil {
		t.Fatal(err)
	}
	keys := cachedEntries(t, f.cache)
	for _, tc := range []struct {
		prefix, file string
		damage       func(p string)
		problem      cache.Problem
	}{
		// Four zeroed bytes in the normalized base.
		{"normalized-base/", "base.tar", func(p string) {
			b, _ := os.ReadFile(p)
			copy(b[len(b)/2:], []byte{0, 0, 0, 0})
			os.WriteFile(p, b, 0o644)
		}, cache.ProblemContent},
		// A truncated preloaded image archive.
		{"preload/", "image.tar", func(p string) {
			fi, _ := os.Stat(p)
			os.Truncate(p, fi.Size()-512)
		}, cache.ProblemSize},
	} {
		t.Run(tc.prefix, func(t *testing.T) {
			var key string
			for _, k := range keys {
				if strings.HasPrefix(k, tc.prefix) {
					key = k
				}
			}
			if key == "" {
				t.Fatalf("no %s entry in the cache: %v", tc.prefix, keys)
			}
			e, err := f.cache.Entry(key)
			if err != nil {
				t.Fatal(err)
			}
			tc.damage(e.Path(tc.file))

			out := t.TempDir()
			_, err = f.build(t, out, s)
			var ce *cache.CorruptError
			if !errors.As(err, &ce) || ce.Key != key || ce.Problem != tc.problem || !strings.Contains(err.Error(), key) {
				t.Fatalf("build with a damaged %s = %v; want a *CorruptError naming %q", tc.file, err, key)
			}
			if entries, _ := os.ReadDir(out); len(entries) != 0 {
				t.Errorf("the failed build left %d files", len(entries))
			}
			// What the caller does next: evict, and build again.
			if err := f.cache.Evict(key); err != nil {
				t.Fatal(err)
			}
			res, err := f.build(t, t.TempDir(), s)
			if err != nil {
				t.Fatal(err)
			}
			if res.Manifest.Image.SHA256 != clean.Manifest.Image.SHA256 {
				t.Errorf("the rebuilt image is %s, the clean one %s", res.Manifest.Image.SHA256, clean.Manifest.Image.SHA256)
			}
			if err := f.cache.VerifyEntry(key); err != nil {
				t.Errorf("the remade entry: %v", err)
			}
		})
	}

	// A damaged download is fetched again (fetch verifies its blobs).
	t.Run("download", func(t *testing.T) {
		var blob string
		f.cache.VerifyAll(context.Background(), cache.VerifyOptions{Progress: func(ev cache.VerifyEvent) {
			if ev.Kind == cache.KindBlob && blob == "" {
				blob = ev.Name
			}
		}})
		d, err := cache.ParseDigest(blob)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(f.cache.Path(d))
		b[len(b)/2] ^= 1
		os.WriteFile(f.cache.Path(d), b, 0o644)
		before := *f.requests
		res, err := f.build(t, t.TempDir(), s)
		if err != nil {
			t.Fatal(err)
		}
		if *f.requests != before+1 {
			t.Errorf("%d downloads, want the damaged one again", *f.requests-before)
		}
		if res.Manifest.Image.SHA256 != clean.Manifest.Image.SHA256 {
			t.Errorf("the image is %s, the clean one %s", res.Manifest.Image.SHA256, clean.Manifest.Image.SHA256)
		}
	})
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
