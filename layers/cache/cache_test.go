package cache

import (
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
)

func sha256Of(s string) Digest {
	return Digest{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256([]byte(s)))}
}

func sha512Of(s string) Digest {
	return Digest{Algorithm: "sha512", Hex: fmt.Sprintf("%x", sha512.Sum512([]byte(s)))}
}

func openTemp(t *testing.T) *Cache {
	t.Helper()
	c, err := Open(filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// entries lists the names in dir, temporary files included.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestParseDigest(t *testing.T) {
	good := sha256Of("x")
	tests := []struct {
		in      string
		want    Digest
		wantErr string
	}{
		{in: good.String(), want: good},
		{in: sha512Of("x").String(), want: sha512Of("x")},
		{in: good.Hex, wantErr: "missing algorithm prefix"},
		{in: "md5:" + good.Hex, wantErr: `unsupported digest algorithm "md5"`},
		{in: "sha256:abc", wantErr: "must be 64 characters, got 3"},
		{in: "sha256:" + strings.ToUpper(good.Hex), wantErr: "want lower-case hex"},
		{in: "sha512:" + good.Hex, wantErr: "must be 128 characters"},
		{in: "", wantErr: "missing algorithm prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDigest(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseDigest(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseDigest(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
			if got.String() != tt.in {
				t.Errorf("String() = %q, want %q", got.String(), tt.in)
			}
		})
	}
}

func TestPutHasVerify(t *testing.T) {
	for _, d := range []Digest{sha256Of("hello"), sha512Of("hello")} {
		t.Run(d.Algorithm, func(t *testing.T) {
			c := openTemp(t)
			if ok, err := c.Has(d); ok || err != nil {
				t.Fatalf("Has before Put = %v, %v", ok, err)
			}
			p, err := c.Put(d, strings.NewReader("hello"))
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(c.Dir(), "blobs", d.Algorithm, d.Hex); p != want || c.Path(d) != want {
				t.Errorf("path = %s, Path = %s, want %s", p, c.Path(d), want)
			}
			if b, _ := os.ReadFile(p); string(b) != "hello" {
				t.Errorf("content = %q", b)
			}
			if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o644 {
				t.Errorf("mode = %v, want 0644", fi.Mode())
			}
			if ok, err := c.Has(d); !ok || err != nil {
				t.Fatalf("Has after Put = %v, %v", ok, err)
			}
			if err := c.Verify(d); err != nil {
				t.Fatal(err)
			}
			// Corrupt it: Has stays cheap, Verify notices.
			if err := os.WriteFile(p, []byte("HELLO"), 0o644); err != nil {
				t.Fatal(err)
			}
			var ce *ChecksumError
			if err := c.Verify(d); !errors.As(err, &ce) || ce.Expected != d {
				t.Fatalf("Verify of corrupt blob = %v, want *ChecksumError", err)
			}
			if err := c.Remove(d); err != nil {
				t.Fatal(err)
			}
			if err := c.Verify(d); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Verify of removed blob = %v, want fs.ErrNotExist", err)
			}
		})
	}
}

func TestPutMismatchLeavesNothing(t *testing.T) {
	c := openTemp(t)
	want := sha256Of("expected")
	_, err := c.Put(want, strings.NewReader("actual"))
	var ce *ChecksumError
	if !errors.As(err, &ce) {
		t.Fatalf("Put = %v, want *ChecksumError", err)
	}
	if ce.Expected != want || ce.Actual != sha256Of("actual") {
		t.Errorf("ChecksumError = %+v", ce)
	}
	msg := fmt.Sprintf("checksum mismatch: expected %s, got %s", want, sha256Of("actual"))
	if err.Error() != msg {
		t.Errorf("Error() = %q, want %q", err, msg)
	}
	ce.Artifact = "kubelet v1.35.4"
	if !strings.HasPrefix(ce.Error(), "checksum mismatch for kubelet v1.35.4: expected sha256:") {
		t.Errorf("Error() = %q", ce.Error())
	}
	if names := entries(t, filepath.Join(c.Dir(), "blobs", "sha256")); len(names) != 0 {
		t.Errorf("blob dir not empty after mismatch: %v", names)
	}
}

func TestPutReadErrorLeavesNothing(t *testing.T) {
	c := openTemp(t)
	boom := errors.New("boom")
	_, err := c.Put(sha256Of("x"), iotest.ErrReader(boom))
	if !errors.Is(err, boom) {
		t.Fatalf("Put = %v, want wrapped boom", err)
	}
	if names := entries(t, filepath.Join(c.Dir(), "blobs", "sha256")); len(names) != 0 {
		t.Errorf("blob dir not empty after read error: %v", names)
	}
}

func TestPutInvalidDigest(t *testing.T) {
	c := openTemp(t)
	if _, err := c.Put(Digest{Algorithm: "sha256", Hex: "../../x"}, strings.NewReader("x")); err == nil {
		t.Fatal("Put with invalid digest succeeded")
	}
	if _, err := c.Has(Digest{}); err == nil {
		t.Fatal("Has with zero digest succeeded")
	}
}

func TestPutFile(t *testing.T) {
	c := openTemp(t)
	d, p, err := c.PutFile(strings.NewReader("some content"))
	if err != nil {
		t.Fatal(err)
	}
	if d != sha256Of("some content") || p != c.Path(d) {
		t.Fatalf("PutFile = %v, %s", d, p)
	}
	if err := c.Verify(d); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentPutSameBlob(t *testing.T) {
	c := openTemp(t)
	content := strings.Repeat("0123456789abcdef", 1<<14)
	d := sha256Of(content)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A second Cache value stands in for another process.
			c2, err := Open(c.Dir())
			if err == nil {
				_, err = c2.Put(d, iotest.HalfReader(strings.NewReader(content)))
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Verify(d); err != nil {
		t.Fatal(err)
	}
	if names := entries(t, filepath.Join(c.Dir(), "blobs", "sha256")); len(names) != 1 {
		t.Errorf("blob dir = %v, want just the blob", names)
	}
}

func TestPutEntry(t *testing.T) {
	c := openTemp(t)
	key := "kubelet/v1.35.4/go1.26.8/amd64"
	if _, err := c.Entry(key); !errors.Is(err, ErrNotCached) {
		t.Fatalf("Entry before PutEntry = %v, want ErrNotCached", err)
	}
	calls := 0
	fill := func(tmp string) error {
		calls++
		return os.WriteFile(filepath.Join(tmp, "kubelet"), []byte("binary"), 0o755)
	}
	e, err := c.PutEntry(key, fill)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(c.Dir(), "entries", hexSHA256([]byte(key)), "files"); e.Dir != want {
		t.Errorf("entry dir = %s, want %s", e.Dir, want)
	}
	if b, err := os.ReadFile(e.Path("kubelet")); err != nil || string(b) != "binary" {
		t.Errorf("artifact = %q, %v", b, err)
	}
	if fi, _ := os.Stat(filepath.Dir(e.Dir)); fi.Mode().Perm() != 0o755 {
		t.Errorf("dir mode = %v", fi.Mode())
	}
	if got, err := c.Entry(key); err != nil || got.Dir != e.Dir || got.Adopted {
		t.Errorf("Entry after PutEntry = %+v, %v", got, err)
	}
	if _, err := c.PutEntry(key, fill); err != nil || calls != 1 {
		t.Errorf("second PutEntry: err %v, fill called %d times, want 1", err, calls)
	}
	// A flipped byte is caught when the file is read, and named.
	os.WriteFile(e.Path("kubelet"), []byte("BINARY"), 0o755)
	var ce *CorruptError
	if err := c.VerifyEntry(key); !errors.As(err, &ce) || ce.Key != key || ce.Problem != ProblemContent || ce.Item != KindEntry {
		t.Fatalf("VerifyEntry of a corrupt entry = %v; want a *CorruptError for %q", err, key)
	}
}

func TestPutEntryFillErrorLeavesNothing(t *testing.T) {
	c := openTemp(t)
	boom := errors.New("boom")
	_, err := c.PutEntry("k", func(tmp string) error {
		os.WriteFile(filepath.Join(tmp, "half"), nil, 0o644)
		return boom
	})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), `filling cache entry "k"`) {
		t.Fatalf("PutEntry = %v", err)
	}
	if names := entries(t, filepath.Join(c.Dir(), "entries")); len(names) != 0 {
		t.Errorf("entries dir not empty: %v", names)
	}
}

func TestPutEntryRace(t *testing.T) {
	c := openTemp(t)
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A second Cache value stands in for another process.
			c2, err := Open(c.Dir())
			if err == nil {
				_, err = c2.PutEntry("same", func(tmp string) error {
					return os.WriteFile(filepath.Join(tmp, "f"), []byte("data"), 0o644)
				})
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if names := entries(t, filepath.Join(c.Dir(), "entries")); len(names) != 1 {
		t.Errorf("entries dir = %v, want the one entry", names)
	}
	if err := c.VerifyEntry("same"); err != nil {
		t.Error(err)
	}
}

func TestDefaultDir(t *testing.T) {
	t.Setenv("NODEBAKE_CACHE", "/some/where")
	if d, err := DefaultDir(); err != nil || d != "/some/where" {
		t.Errorf("DefaultDir = %s, %v", d, err)
	}
	t.Setenv("NODEBAKE_CACHE", "")
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	if d, err := DefaultDir(); err != nil || d != "/xdg/nodebake" {
		t.Errorf("DefaultDir = %s, %v", d, err)
	}
}

func TestOpenEmpty(t *testing.T) {
	if _, err := Open(""); err == nil {
		t.Fatal("Open(\"\") succeeded")
	}
}
