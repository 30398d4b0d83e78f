package cache

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// randomBytes returns n reproducible pseudo-random bytes.
func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// tarOf returns a tar holding the given files.
func tarOf(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range sortedNames(files) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(files[name]))}); err != nil {
			t.Fatal(err)
		}
		tw.Write(files[name])
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sortedNames(m map[string][]byte) []string {
	var names []string
	for n := range m {
		names = append(names, n)
	}
	for i := range names {
		for j := i + 1; j < len(names); j++ {
			if names[j] < names[i] {
				names[i], names[j] = names[j], names[i]
			}
		}
	}
	return names
}

func hexSHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// entryKind is one kind of keyed entry the build makes, shaped as the
// build makes it: its key, its files, and the file a test corrupts.
type entryKind struct {
	name   string
	key    string
	files  map[string][]byte
	target string
}

func entryKinds(t *testing.T) []entryKind {
	return []entryKind{{
		name: "from-source binaries",
		key:  "gosource/v1/kubelet/v1.35.4/go1.26.8/amd64",
		files: map[string][]byte{
			"kubelet":    randomBytes(1, 300<<10),
			"kube-proxy": randomBytes(2, 200<<10),
			"kubectl":    randomBytes(3, 100<<10),
		},
		target: "kubelet",
	}, {
		name:   "normalized base",
		key:    "normalized-base/v1/sha256:" + strings.Repeat("ab", 32) + "/0",
		files:  map[string][]byte{"base.tar": tarOf(t, map[string][]byte{"etc/os-release": []byte("ID=debian\n"), "usr/bin/su": randomBytes(4, 70<<10)})},
		target: "base.tar",
	}, {
		name:   "preloaded image archive",
		key:    "preload/v1/sha256:" + strings.Repeat("cd", 32) + "/registry.k8s.io/pause:3.10",
		files:  map[string][]byte{"image.tar": tarOf(t, map[string][]byte{"manifest.json": []byte("[]"), "blobs/sha256/x": randomBytes(5, 40<<10)})},
		target: "image.tar",
	}, {
		name: "nested files",
		key:  "test/nested",
		files: map[string][]byte{
			"bin/a":       randomBytes(6, 10<<10),
			"share/doc/b": []byte("doc"),
			"empty":       nil,
		},
		target: "share/doc/b",
	}}
}

// put stores kind's files and returns the entry and a counter of fills.
func put(t *testing.T, c *Cache, k entryKind) (*Entry, *int) {
	t.Helper()
	calls := 0
	e, err := c.PutEntry(k.key, fillFunc(k, &calls))
	if err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("fill called %d times", calls)
	}
	return e, &calls
}

func fillFunc(k entryKind, calls *int) func(string) error {
	return func(dir string) error {
		*calls++
		for name, data := range k.files {
			p := filepath.Join(dir, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(p, data, 0o755); err != nil {
				return err
			}
		}
		return nil
	}
}

// readAll looks up key and reads every file through Entry.Open, as a build
// does, returning the contents or the first error.
func readAll(c *Cache, key string) (map[string][]byte, error) {
	e, err := c.Entry(key)
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, f := range e.Files {
		rc, err := e.Open(f.Path)
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(rc)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
		out[f.Path] = b
	}
	return out, nil
}

func TestPutEntryRecordsDigests(t *testing.T) {
	for _, k := range entryKinds(t) {
		t.Run(k.name, func(t *testing.T) {
			c := openTemp(t)
			e, calls := put(t, c, k)
			if e.Key != k.key || len(e.Files) != len(k.files) {
				t.Fatalf("entry = %+v", e)
			}
			// The record on disk: format, key, every file's size and sha256.
			raw, err := os.ReadFile(filepath.Join(filepath.Dir(e.Dir), "entry.json"))
			if err != nil {
				t.Fatal(err)
			}
			var rec struct {
				Format string `json:"format"`
				Key    string `json:"key"`
				Files  []struct {
					Path   string `json:"path"`
					Size   int64  `json:"size"`
					SHA256 string `json:"sha256"`
				} `json:"files"`
			}
			if err := json.Unmarshal(raw, &rec); err != nil {
				t.Fatal(err)
			}
			if rec.Format != "nodebake.cache.entry.v1" || rec.Key != k.key || len(rec.Files) != len(k.files) {
				t.Fatalf("record = %s", raw)
			}
			for i, f := range rec.Files {
				data, ok := k.files[f.Path]
				if !ok || f.Size != int64(len(data)) || f.SHA256 != hexSHA256(data) {
					t.Errorf("record of %s = %+v, want size %d sha256 %s", f.Path, f, len(data), hexSHA256(data))
				}
				if i > 0 && rec.Files[i-1].Path >= f.Path {
					t.Errorf("record not sorted: %s after %s", f.Path, rec.Files[i-1].Path)
				}
			}
			if filepath.Base(filepath.Dir(e.Dir)) != hexSHA256([]byte(k.key)) {
				t.Errorf("entry directory %s is not sha256(key)", e.Dir)
			}
			got, err := readAll(c, k.key)
			if err != nil {
				t.Fatal(err)
			}
			for name, data := range k.files {
				if !bytes.Equal(got[name], data) {
					t.Errorf("%s read back differs", name)
				}
			}
			if err := c.VerifyEntry(k.key); err != nil {
				t.Error(err)
			}
			if _, err := c.PutEntry(k.key, fillFunc(k, calls)); err != nil || *calls != 1 {
				t.Errorf("PutEntry of a good entry: %v, fill called %d times, want 1", err, *calls)
			}
		})
	}
}

// corruption damages the file target of the entry in dir (or, for extra,
// adds one).
type corruption struct {
	name    string
	apply   func(t *testing.T, dir, target string)
	problem Problem
}

var corruptions = []corruption{
	{"one byte flipped", func(t *testing.T, dir, target string) {
		p := filepath.Join(dir, filepath.FromSlash(target))
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0x01
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}, ProblemContent},
	{"truncated", func(t *testing.T, dir, target string) {
		p := filepath.Join(dir, filepath.FromSlash(target))
		fi, _ := os.Stat(p)
		if err := os.Truncate(p, fi.Size()/2); err != nil {
			t.Fatal(err)
		}
	}, ProblemSize},
	{"file missing", func(t *testing.T, dir, target string) {
		if err := os.Remove(filepath.Join(dir, filepath.FromSlash(target))); err != nil {
			t.Fatal(err)
		}
	}, ProblemMissing},
	{"extra file", func(t *testing.T, dir, target string) {
		if err := os.WriteFile(filepath.Join(dir, "stray"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}, ProblemExtra},
}

func TestEntryCorruption(t *testing.T) {
	for _, k := range entryKinds(t) {
		for _, cr := range corruptions {
			t.Run(k.name+"/"+cr.name, func(t *testing.T) {
				c := openTemp(t)
				e, calls := put(t, c, k)
				cr.apply(t, e.Dir, k.target)

				check := func(how string, err error) {
					t.Helper()
					var ce *CorruptError
					if !errors.As(err, &ce) {
						t.Fatalf("%s: error = %v, want a *CorruptError", how, err)
					}
					if ce.Key != k.key || ce.Problem != cr.problem || !errors.Is(err, ErrCorrupt) {
						t.Errorf("%s: %+v, want key %q and problem %v", how, ce, k.key, cr.problem)
					}
					if !strings.Contains(err.Error(), fmt.Sprintf("%q", k.key)) {
						t.Errorf("%s: message %q does not name the key", how, err)
					}
					wantFile := k.target
					if cr.problem == ProblemExtra {
						wantFile = "stray"
					}
					if ce.File != wantFile {
						t.Errorf("%s: file %q, want %q", how, ce.File, wantFile)
					}
					if cr.problem == ProblemContent {
						want := Digest{Algorithm: "sha256", Hex: hexSHA256(k.files[k.target])}
						damaged, _ := os.ReadFile(e.Path(k.target))
						actual := Digest{Algorithm: "sha256", Hex: hexSHA256(damaged)}
						if ce.Recorded != want || ce.Actual != actual {
							t.Errorf("%s: digests %s / %s, want recorded %s and actual %s", how, ce.Recorded, ce.Actual, want, actual)
						}
						if !strings.Contains(err.Error(), want.String()) || !strings.Contains(err.Error(), actual.String()) {
							t.Errorf("%s: message %q does not name both digests", how, err)
						}
						var cs *ChecksumError
						if !errors.As(err, &cs) || cs.Expected != want {
							t.Errorf("%s: no *ChecksumError with the recorded digest in %v", how, err)
						}
					}
				}
				_, err := readAll(c, k.key)
				check("reading through Entry.Open", err)
				check("VerifyEntry", c.VerifyEntry(k.key))
				fsErr := func() error {
					f, err := e.FS().Open(k.target)
					if err != nil {
						return err
					}
					_, err = io.ReadAll(f)
					if cerr := f.Close(); err == nil {
						err = cerr
					}
					return err
				}
				if ent, err := c.Entry(k.key); err == nil {
					e = ent
					check("reading through Entry.FS", fsErr())
				}
				rep, err := c.VerifyAll(context.Background(), VerifyOptions{})
				if err != nil || len(rep.Problems) != 1 {
					t.Fatalf("VerifyAll = %+v, %v; want one problem", rep, err)
				}
				check("VerifyAll", rep.Problems[0])

				// Evict, then make it again: the same content, verified.
				if err := c.Evict(k.key); err != nil {
					t.Fatal(err)
				}
				if _, err := c.Entry(k.key); !errors.Is(err, ErrNotCached) {
					t.Fatalf("Entry after Evict = %v, want ErrNotCached", err)
				}
				if _, err := c.PutEntry(k.key, fillFunc(k, calls)); err != nil || *calls != 2 {
					t.Fatalf("PutEntry after Evict = %v, fill called %d times; want 2", err, *calls)
				}
				got, err := readAll(c, k.key)
				if err != nil {
					t.Fatal(err)
				}
				for name, data := range k.files {
					if !bytes.Equal(got[name], data) {
						t.Errorf("%s differs after the rebuild", name)
					}
				}
				if names := entries(t, filepath.Join(c.Dir(), "entries")); len(names) != 1 {
					t.Errorf("entries/ holds %v after the rebuild, want the one entry", names)
				}
			})
		}
	}
}

// TestPutEntryReportsCorrupt: PutEntry does not use, nor silently replace,
// a damaged entry: it reports it, and makes it again once it is evicted.
func TestPutEntryReportsCorrupt(t *testing.T) {
	k := entryKinds(t)[0]
	c := openTemp(t)
	e, calls := put(t, c, k)
	corruptions[1].apply(t, e.Dir, k.target)
	var ce *CorruptError
	if _, err := c.PutEntry(k.key, fillFunc(k, calls)); !errors.As(err, &ce) || ce.Key != k.key || *calls != 1 {
		t.Fatalf("PutEntry over a damaged entry = %v, fill called %d times; want its *CorruptError", err, *calls)
	}
	if err := c.EvictCorrupt(ce); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutEntry(k.key, fillFunc(k, calls)); err != nil || *calls != 2 {
		t.Fatalf("PutEntry after eviction = %v, fill called %d times", err, *calls)
	}
	if err := c.VerifyEntry(k.key); err != nil {
		t.Fatal(err)
	}
}

// TestOpenVerifiesWhileStreaming: the verdict comes with the last byte,
// repeats on Close, and covers a file that changes after it was opened.
func TestOpenVerifiesWhileStreaming(t *testing.T) {
	data := randomBytes(7, 3<<20+17)
	k := entryKind{key: "stream", files: map[string][]byte{"f": data}}
	setup := func(t *testing.T) (*Cache, *Entry) {
		c := openTemp(t)
		e, _ := put(t, c, k)
		return c, e
	}

	t.Run("intact", func(t *testing.T) {
		_, e := setup(t)
		rc, err := e.Open("f")
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		buf := make([]byte, 4096)
		for {
			n, err := rc.Read(buf)
			got.Write(buf[:n])
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(got.Bytes(), data) {
			t.Fatal("content differs")
		}
		if n, err := rc.Read(buf); n != 0 || err != io.EOF {
			t.Errorf("Read after EOF = %d, %v", n, err)
		}
		if err := rc.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
	})
	t.Run("last byte flipped", func(t *testing.T) {
		_, e := setup(t)
		p := e.Path("f")
		b := bytes.Clone(data)
		b[len(b)-1] ^= 0x80
		os.WriteFile(p, b, 0o644)
		rc, err := e.Open("f")
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, rc)
		var ce *CorruptError
		if !errors.As(err, &ce) || ce.Problem != ProblemContent || n != int64(len(data)) {
			t.Fatalf("copy = %d, %v; want the whole file and a content mismatch", n, err)
		}
		if cerr := rc.Close(); !errors.As(cerr, &ce) {
			t.Errorf("Close = %v, want the verdict again", cerr)
		}
	})
	t.Run("closed early", func(t *testing.T) {
		_, e := setup(t)
		rc, _ := e.Open("f")
		io.CopyN(io.Discard, rc, 100)
		if err := rc.Close(); err != nil {
			t.Errorf("Close of a partly read file = %v", err)
		}
	})
	t.Run("truncated up front", func(t *testing.T) {
		_, e := setup(t)
		os.Truncate(e.Path("f"), 10)
		_, err := e.Open("f")
		var ce *CorruptError
		if !errors.As(err, &ce) || ce.Problem != ProblemSize || ce.ActualSize != 10 || ce.RecordedSize != int64(len(data)) {
			t.Fatalf("Open = %v, want a size mismatch", err)
		}
	})
	t.Run("grew while open", func(t *testing.T) {
		_, e := setup(t)
		rc, err := e.Open("f")
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		f, _ := os.OpenFile(e.Path("f"), os.O_APPEND|os.O_WRONLY, 0)
		f.Write([]byte("more"))
		f.Close()
		n, err := io.Copy(io.Discard, rc)
		var ce *CorruptError
		if !errors.As(err, &ce) || ce.Problem != ProblemSize || ce.ActualSize != int64(len(data))+4 {
			t.Fatalf("copy = %d, %v; want a size mismatch", n, err)
		}
		if n != int64(len(data)) {
			t.Errorf("read %d bytes, want no more than the recorded %d", n, len(data))
		}
	})
	t.Run("shrank while open", func(t *testing.T) {
		_, e := setup(t)
		rc, err := e.Open("f")
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		os.Truncate(e.Path("f"), 1000)
		_, err = io.Copy(io.Discard, rc)
		var ce *CorruptError
		if !errors.As(err, &ce) || ce.Problem != ProblemSize || ce.ActualSize != 1000 {
			t.Fatalf("copy = %v; want a size mismatch", err)
		}
	})
	t.Run("not recorded", func(t *testing.T) {
		_, e := setup(t)
		if _, err := e.Open("other"); err == nil || !strings.Contains(err.Error(), `no file "other"`) {
			t.Fatalf("Open of an unrecorded name = %v", err)
		}
	})
}

func TestOpenBlobVerifiesWhileStreaming(t *testing.T) {
	c := openTemp(t)
	data := randomBytes(8, 1<<20)
	d, p, err := c.PutFile(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := c.OpenBlob(d)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, data) || rc.Close() != nil {
		t.Fatalf("reading an intact blob: %v", err)
	}
	for _, cr := range corruptions[:2] {
		t.Run(cr.name, func(t *testing.T) {
			os.WriteFile(p, data, 0o644)
			cr.apply(t, filepath.Dir(p), filepath.Base(p))
			rc, err := c.OpenBlob(d)
			if err != nil {
				t.Fatal(err)
			}
			_, err = io.ReadAll(rc)
			rc.Close()
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.Key != d.String() || ce.Problem != ProblemContent || ce.Recorded != d {
				t.Fatalf("reading a damaged blob = %v, want a content mismatch naming %s", err, d)
			}
			if err := c.Verify(d); !errors.As(err, &ce) || ce.Key != d.String() {
				t.Fatalf("Verify = %v", err)
			}
			// Remove and store again: good as new.
			if err := c.Remove(d); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Put(d, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			if err := c.Verify(d); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run(corruptions[2].name, func(t *testing.T) {
		os.Remove(p)
		if _, err := c.OpenBlob(d); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("OpenBlob of a missing blob = %v", err)
		}
	})
	t.Run(corruptions[3].name, func(t *testing.T) {
		c := openTemp(t)
		os.WriteFile(filepath.Join(c.Dir(), "blobs", "sha256", "not-a-digest"), []byte("x"), 0o644)
		rep, err := c.VerifyAll(context.Background(), VerifyOptions{Evict: true})
		var ce *CorruptError
		if err != nil || len(rep.Problems) != 1 || !errors.As(rep.Problems[0], &ce) || ce.Problem != ProblemExtra ||
			ce.Key != "blobs/sha256/not-a-digest" || rep.Evicted != 1 {
			t.Fatalf("VerifyAll = %+v, %v", rep, err)
		}
		if names := entries(t, filepath.Join(c.Dir(), "blobs", "sha256")); len(names) != 0 {
			t.Errorf("stray file not evicted: %v", names)
		}
	})
}

// writeLegacy writes an entry the way nodebake did before entries had
// records: files directly in keyed/<sha256(key)>, the key in a .key file.
func writeLegacy(t *testing.T, c *Cache, key string, files map[string][]byte) string {
	t.Helper()
	root := c.legacyRoot(key)
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		os.WriteFile(filepath.Join(root, name), data, 0o755)
	}
	os.WriteFile(root+".key", []byte(key+"\n"), 0o644)
	return root
}

func TestLegacyEntryIsAdopted(t *testing.T) {
	c := openTemp(t)
	key := "gosource/v1/kubelet/v1.35.4/go1.26.8/amd64"
	legacy := writeLegacy(t, c, key, map[string][]byte{"kubelet": []byte("built by an older nodebake")})

	// A legacy entry is not an entry...
	if _, err := c.Entry(key); !errors.Is(err, ErrNotCached) {
		t.Fatalf("Entry of a legacy entry = %v, want ErrNotCached", err)
	}
	// ...and VerifyAll says it cannot be verified.
	rep, err := c.VerifyAll(context.Background(), VerifyOptions{})
	var ce *CorruptError
	if err != nil || len(rep.Problems) != 1 || !errors.As(rep.Problems[0], &ce) || ce.Problem != ProblemUnrecorded || ce.Key != key {
		t.Fatalf("VerifyAll = %+v, %v; want the legacy entry as unrecorded", rep, err)
	}
	if !strings.Contains(ce.Error(), "no recorded digests") {
		t.Errorf("message %q", ce)
	}
	// PutEntry adopts it instead of making it again.
	e, err := c.PutEntry(key, func(string) error {
		t.Error("fill called for an adoptable legacy entry")
		return nil
	})
	if err != nil || !e.Adopted {
		t.Fatalf("PutEntry = %+v, %v; want the adopted entry", e, err)
	}
	got, err := readAll(c, key)
	if err != nil || string(got["kubelet"]) != "built by an older nodebake" {
		t.Fatalf("the adopted entry reads %q, %v", got["kubelet"], err)
	}
	// The legacy entry stays for older nodebake versions sharing the cache.
	if b, err := os.ReadFile(filepath.Join(legacy, "kubelet")); err != nil || string(b) != "built by an older nodebake" {
		t.Errorf("the legacy entry after adoption: %q, %v", b, err)
	}
	// Evict takes both: an adopted entry may share the legacy one's files.
	if err := c.Evict(key); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{legacy, legacy + ".key", filepath.Dir(e.Dir)} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s is still there after Evict", p)
		}
	}
	e, err = c.PutEntry(key, func(d string) error { return os.WriteFile(filepath.Join(d, "kubelet"), []byte("new"), 0o755) })
	if err != nil || e.Adopted {
		t.Fatalf("PutEntry after Evict = %+v, %v; want a new entry", e, err)
	}
}

func TestLegacyEntryNotAdopted(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, root string)
	}{
		{"other key", func(t *testing.T, root string) { os.WriteFile(root+".key", []byte("another/key\n"), 0o644) }},
		{"no key file", func(t *testing.T, root string) { os.Remove(root + ".key") }},
		{"symlink", func(t *testing.T, root string) { os.Symlink("/etc/passwd", filepath.Join(root, "passwd")) }},
		{"fifo", func(t *testing.T, root string) { syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := openTemp(t)
			key := "preload/v1/x"
			root := writeLegacy(t, c, key, map[string][]byte{"image.tar": []byte("old")})
			tc.setup(t, root)
			e, err := c.PutEntry(key, func(d string) error { return os.WriteFile(filepath.Join(d, "image.tar"), []byte("new"), 0o644) })
			if err != nil || e.Adopted {
				t.Fatalf("PutEntry = %+v, %v; want a new entry", e, err)
			}
			if got, err := readAll(c, key); err != nil || string(got["image.tar"]) != "new" {
				t.Errorf("entry = %q, %v", got, err)
			}
			if names := entries(t, filepath.Join(c.Dir(), "entries")); len(names) != 1 {
				t.Errorf("entries/ = %v after a refused adoption", names)
			}
		})
	}
}

// TestHostileRecords: a record that is malformed, names another key, or
// points outside the entry is refused as a bad record, never followed.
func TestHostileRecords(t *testing.T) {
	sum := hexSHA256([]byte("x"))
	tests := []struct {
		name, record string
		want         string
	}{
		{"not json", "{", "decoding entry.json"},
		{"unknown field", `{"format":"nodebake.cache.entry.v1","key":"k","files":[],"extra":1}`, "unknown field"},
		{"other format", `{"format":"v0","key":"k","files":[]}`, `format "v0"`},
		{"other key", `{"format":"nodebake.cache.entry.v1","key":"j","files":[]}`, `names key "j"`},
		{"parent path", `{"format":"nodebake.cache.entry.v1","key":"k","files":[{"path":"../../../etc/passwd","size":1,"sha256":"` + sum + `"}]}`, "not a clean relative path"},
		{"absolute path", `{"format":"nodebake.cache.entry.v1","key":"k","files":[{"path":"/etc/passwd","size":1,"sha256":"` + sum + `"}]}`, "not a clean relative path"},
		{"unsorted", `{"format":"nodebake.cache.entry.v1","key":"k","files":[{"path":"b","size":1,"sha256":"` + sum + `"},{"path":"a","size":1,"sha256":"` + sum + `"}]}`, "not sorted"},
		{"duplicate", `{"format":"nodebake.cache.entry.v1","key":"k","files":[{"path":"a","size":1,"sha256":"` + sum + `"},{"path":"a","size":1,"sha256":"` + sum + `"}]}`, "not sorted"},
		{"bad digest", `{"format":"nodebake.cache.entry.v1","key":"k","files":[{"path":"a","size":1,"sha256":"XYZ"}]}`, "hex sum"},
		{"negative size", `{"format":"nodebake.cache.entry.v1","key":"k","files":[{"path":"a","size":-1,"sha256":"` + sum + `"}]}`, "negative size"},
		{"trailing data", `{"format":"nodebake.cache.entry.v1","key":"k","files":[]} {}`, "data after the record"},
		{"too large", `{"format":"nodebake.cache.entry.v1","key":"k","files":[]}` + strings.Repeat(" ", 1<<20), "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := openTemp(t)
			if _, err := c.PutEntry("k", func(d string) error { return os.WriteFile(filepath.Join(d, "a"), []byte("x"), 0o644) }); err != nil {
				t.Fatal(err)
			}
			root := c.entryRoot("k")
			if err := os.WriteFile(filepath.Join(root, "entry.json"), []byte(tt.record), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := c.Entry("k")
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.Problem != ProblemRecord || ce.Key != "k" || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Entry = %v, want a bad record mentioning %q", err, tt.want)
			}
		})
	}
}

func TestBadKeys(t *testing.T) {
	c := openTemp(t)
	for _, key := range []string{"", "a\nb", "a\x00b", strings.Repeat("k", 1025), "\xff"} {
		if _, err := c.Entry(key); err == nil || errors.Is(err, ErrNotCached) {
			t.Errorf("Entry(%q) = %v, want a key error", key, err)
		}
		if _, err := c.PutEntry(key, func(string) error { return nil }); err == nil {
			t.Errorf("PutEntry(%q) succeeded", key)
		}
		if err := c.Evict(key); err == nil {
			t.Errorf("Evict(%q) succeeded", key)
		}
	}
}

func TestPutEntryRefusesSpecialFiles(t *testing.T) {
	c := openTemp(t)
	_, err := c.PutEntry("k", func(d string) error {
		os.WriteFile(filepath.Join(d, "a"), []byte("x"), 0o644)
		return os.Symlink("/etc/passwd", filepath.Join(d, "link"))
	})
	if err == nil || !strings.Contains(err.Error(), "link is a symlink") {
		t.Fatalf("PutEntry with a symlink = %v", err)
	}
	if names := entries(t, filepath.Join(c.Dir(), "entries")); len(names) != 0 {
		t.Errorf("entries/ = %v after a refused entry", names)
	}
}

func TestEvictMissingIsFine(t *testing.T) {
	c := openTemp(t)
	if err := c.Evict("never stored"); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyAll(t *testing.T) {
	c := openTemp(t)
	kinds := entryKinds(t)
	var total int64
	for _, k := range kinds {
		e, _ := put(t, c, k)
		for _, b := range k.files {
			total += int64(len(b))
		}
		// Sizes count what is on disk: the record too.
		fi, err := os.Stat(filepath.Join(filepath.Dir(e.Dir), "entry.json"))
		if err != nil {
			t.Fatal(err)
		}
		total += fi.Size()
	}
	blob := randomBytes(9, 5000)
	d, _, err := c.PutFile(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	total += int64(len(blob))
	writeLegacy(t, c, "legacy/key", map[string][]byte{"f": []byte("old")})
	total += 3
	// A writer's temporary is not checked.
	os.Mkdir(filepath.Join(c.Dir(), "keyed", ".tmp-123"), 0o755)
	// Damage one entry.
	e, _ := c.Entry(kinds[0].key)
	corruptions[0].apply(t, e.Dir, kinds[0].target)
	old := time.Now().Add(-48 * time.Hour)
	os.Chtimes(filepath.Dir(e.Dir), old, old)

	var events []VerifyEvent
	rep, err := c.VerifyAll(context.Background(), VerifyOptions{Progress: func(ev VerifyEvent) { events = append(events, ev) }})
	if err != nil {
		t.Fatal(err)
	}
	n := len(kinds) + 2
	if rep.Checked != n || rep.Bytes != total || len(events) != n || len(rep.Problems) != 2 || rep.Evicted != 0 {
		t.Fatalf("report %+v with %d events; want %d items, %d bytes, 2 problems", rep, len(events), n, total)
	}
	names := map[string]Problem{}
	for _, p := range rep.Problems {
		var ce *CorruptError
		if !errors.As(p, &ce) {
			t.Fatalf("problem %v is not a *CorruptError", p)
		}
		names[ce.Key] = ce.Problem
	}
	if names[kinds[0].key] != ProblemContent || names["legacy/key"] != ProblemUnrecorded {
		t.Errorf("problems = %v", names)
	}
	for i, ev := range events {
		if ev.Index != i+1 || ev.Count != n || ev.TotalBytes != total || (i > 0 && ev.Bytes < events[i-1].Bytes) {
			t.Errorf("event %d = %+v", i, ev)
		}
		if ev.Kind == KindBlob && (ev.Name != d.String() || ev.Err != nil) {
			t.Errorf("blob event %+v", ev)
		}
	}
	if events[n-1].Bytes != total {
		t.Errorf("last event at %d bytes, want %d", events[n-1].Bytes, total)
	}
	// Verifying is not a use.
	if fi, _ := os.Stat(filepath.Dir(e.Dir)); !fi.ModTime().Equal(old) {
		t.Errorf("VerifyAll changed the entry's last use to %v", fi.ModTime())
	}
	// With Evict the damaged ones go; the rest stay good.
	rep, err = c.VerifyAll(context.Background(), VerifyOptions{Evict: true})
	if err != nil || rep.Evicted != 2 {
		t.Fatalf("VerifyAll with Evict = %+v, %v", rep, err)
	}
	rep, err = c.VerifyAll(context.Background(), VerifyOptions{})
	if err != nil || len(rep.Problems) != 0 || rep.Checked != n-2 {
		t.Fatalf("after eviction: %+v, %v", rep, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.VerifyAll(ctx, VerifyOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled VerifyAll = %v", err)
	}
}

func TestPrune(t *testing.T) {
	old := time.Now().Add(-72 * time.Hour)
	setup := func(t *testing.T) (*Cache, []entryKind, Digest) {
		c := openTemp(t)
		kinds := entryKinds(t)[:3]
		for _, k := range kinds {
			put(t, c, k)
		}
		d, p, err := c.PutFile(strings.NewReader("a download"))
		if err != nil {
			t.Fatal(err)
		}
		// Everything last used three days ago...
		for _, k := range kinds {
			os.Chtimes(c.entryRoot(k.key), old, old)
		}
		os.Chtimes(p, old, old)
		// ...then the first entry and the blob used again.
		if _, err := c.Entry(kinds[0].key); err != nil {
			t.Fatal(err)
		}
		if err := c.Verify(d); err != nil {
			t.Fatal(err)
		}
		// An abandoned writer's temporary and a live one.
		stale := filepath.Join(c.Dir(), "entries", ".tmp-1")
		os.Mkdir(stale, 0o755)
		os.Chtimes(stale, old, old)
		os.Mkdir(filepath.Join(c.Dir(), "entries", ".tmp-2"), 0o755)
		return c, kinds, d
	}
	present := func(c *Cache, key string) bool {
		_, err := c.Entry(key)
		return err == nil
	}

	t.Run("unused since", func(t *testing.T) {
		c, kinds, d := setup(t)
		var events []PruneEvent
		rep, err := c.Prune(context.Background(), PruneOptions{UnusedSince: time.Now().Add(-24 * time.Hour), Progress: func(e PruneEvent) { events = append(events, e) }})
		if err != nil {
			t.Fatal(err)
		}
		if !present(c, kinds[0].key) || present(c, kinds[1].key) || present(c, kinds[2].key) {
			t.Error("want only the recently used entry kept")
		}
		if ok, _ := c.Has(d); !ok {
			t.Error("the recently used blob was removed")
		}
		// Two entries and the stale temporary; the live temporary stays.
		if rep.Removed != 3 || len(events) != 3 {
			t.Errorf("report %+v, events %+v", rep, events)
		}
		names := entries(t, filepath.Join(c.Dir(), "entries"))
		if strings.Join(names, ",") != ".tmp-2,"+hexSHA256([]byte(kinds[0].key)) {
			t.Errorf("entries/ = %v", names)
		}
	})
	t.Run("keep", func(t *testing.T) {
		c, kinds, d := setup(t)
		rep, err := c.Prune(context.Background(), PruneOptions{Keep: []string{kinds[1].key, d.String()}})
		if err != nil {
			t.Fatal(err)
		}
		if present(c, kinds[0].key) || !present(c, kinds[1].key) || present(c, kinds[2].key) {
			t.Error("want only the kept entry left")
		}
		if ok, _ := c.Has(d); !ok {
			t.Error("the kept blob was removed")
		}
		if rep.Removed != 3 || rep.Kept != 3 { // kept: an entry, the blob, the live temporary
			t.Errorf("report %+v", rep)
		}
	})
	t.Run("both", func(t *testing.T) {
		c, kinds, _ := setup(t)
		_, err := c.Prune(context.Background(), PruneOptions{UnusedSince: time.Now().Add(-time.Hour), Keep: []string{kinds[1].key}})
		if err != nil {
			t.Fatal(err)
		}
		// Removed: unused and not kept.
		if !present(c, kinds[0].key) || !present(c, kinds[1].key) || present(c, kinds[2].key) {
			t.Error("want the used and the kept entries left")
		}
	})
	t.Run("dry run", func(t *testing.T) {
		c, kinds, d := setup(t)
		var events []PruneEvent
		rep, err := c.Prune(context.Background(), PruneOptions{Keep: []string{}, DryRun: true, Progress: func(e PruneEvent) { events = append(events, e) }})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Removed != 5 || len(events) != 5 || !events[0].DryRun {
			t.Errorf("dry run report %+v, events %+v", rep, events)
		}
		for _, k := range kinds {
			if !present(c, k.key) {
				t.Errorf("dry run removed %s", k.key)
			}
		}
		if ok, _ := c.Has(d); !ok {
			t.Error("dry run removed the blob")
		}
	})
	t.Run("nothing selected", func(t *testing.T) {
		c, _, _ := setup(t)
		if _, err := c.Prune(context.Background(), PruneOptions{}); err == nil || !strings.Contains(err.Error(), "nothing selected") {
			t.Fatalf("Prune without a selection = %v", err)
		}
	})
	t.Run("legacy entries by their key", func(t *testing.T) {
		c := openTemp(t)
		writeLegacy(t, c, "legacy/a", map[string][]byte{"f": []byte("a")})
		writeLegacy(t, c, "legacy/b", map[string][]byte{"f": []byte("b")})
		var names []string
		if _, err := c.Prune(context.Background(), PruneOptions{Keep: []string{"legacy/a"}, Progress: func(e PruneEvent) { names = append(names, e.Name) }}); err != nil {
			t.Fatal(err)
		}
		if strings.Join(names, ",") != "legacy/b" {
			t.Errorf("pruned %v, want legacy/b", names)
		}
		if _, err := os.Stat(c.legacyRoot("legacy/b") + ".key"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the pruned entry's .key file is left: %v", err)
		}
	})
}
