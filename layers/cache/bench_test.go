package cache

import (
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkEntryRead measures what verification costs a warm build's
// reads of cached entries of realistic sizes: a 100 MB binary built from
// source and a 500 MB normalized base tar, from the page cache.
//
//	plain      os.Open and read, no verification (what builds did before)
//	streaming  Entry, then Entry.Open: hashed while read
//	up-front   Entry and Entry.VerifyFile, then a plain read
//
// Run: go test -run '^$' -bench EntryRead -benchtime 5x -count 5 ./layers/cache
func BenchmarkEntryRead(b *testing.B) {
	for _, size := range []struct {
		name string
		file string
		n    int64
	}{
		{"binary-100MB", "kubelet", 100 << 20},
		{"tar-500MB", "base.tar", 500 << 20},
	} {
		b.Run(size.name, func(b *testing.B) {
			c, err := Open(filepath.Join(b.TempDir(), "cache"))
			if err != nil {
				b.Fatal(err)
			}
			key := "bench/" + size.name
			e, err := c.PutEntry(key, func(dir string) error {
				f, err := os.Create(filepath.Join(dir, size.file))
				if err != nil {
					return err
				}
				if _, err := io.CopyN(f, rand.Reader, size.n); err != nil {
					f.Close()
					return err
				}
				return f.Close()
			})
			if err != nil {
				b.Fatal(err)
			}
			p := e.Path(size.file)
			buf := make([]byte, 32<<10) // io.Copy's buffer, as rootfs.Compose uses
			read := func(b *testing.B, r io.Reader) {
				n, err := io.CopyBuffer(io.Discard, onlyReader{r}, buf)
				if err != nil || n != size.n {
					b.Fatalf("read %d bytes: %v", n, err)
				}
			}
			plain := func(b *testing.B) {
				f, err := os.Open(p)
				if err != nil {
					b.Fatal(err)
				}
				read(b, f)
				f.Close()
			}
			// Warm the page cache, as a warm build finds it.
			plain(b)
			b.Run("plain", func(b *testing.B) {
				b.SetBytes(size.n)
				for b.Loop() {
					plain(b)
				}
			})
			b.Run("streaming", func(b *testing.B) {
				b.SetBytes(size.n)
				for b.Loop() {
					e, err := c.Entry(key)
					if err != nil {
						b.Fatal(err)
					}
					rc, err := e.Open(size.file)
					if err != nil {
						b.Fatal(err)
					}
					read(b, rc)
					if err := rc.Close(); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("up-front", func(b *testing.B) {
				b.SetBytes(size.n)
				for b.Loop() {
					e, err := c.Entry(key)
					if err != nil {
						b.Fatal(err)
					}
					if err := e.VerifyFile(size.file); err != nil {
						b.Fatal(err)
					}
					plain(b)
				}
			})
		})
	}
}
