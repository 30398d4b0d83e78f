// Package cache is a content-addressed store on disk for everything a build
// fetches or derives.
//
// Blobs (downloads, OCI image blobs) live under DIR/blobs/<algorithm>/<hex>,
// the same shape as the blob directory of an OCI image layout: a blob's name
// is its digest. Derived artifacts (binaries built from source, the
// normalized base, preloaded image archives) are keyed entries under
// DIR/entries/<sha256(key)>, each with a record of its files' sizes and
// sha256 digests taken when it was written (see Entry).
//
// Every entry is written to a temporary name in its final directory and
// renamed into place only when complete, so concurrent writers, even in
// different processes, never see or leave a partial entry. Every read can
// be verified against the digests: while streaming (OpenBlob, Entry.Open,
// Entry.FS), which costs a hash of what is read anyway, or up front
// (Verify, Entry.Verify). A mismatch is a *CorruptError naming the blob's
// digest or the entry's key, a source failure (package failure); the
// caller evicts it (EvictCorrupt) and fetches or makes it again.
package cache

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Cache is a content-addressed store rooted at a directory.
// It is safe for concurrent use by several goroutines and processes.
type Cache struct {
	dir string
}

// DefaultDir returns the cache directory to use when none is given:
// $NODEBAKE_CACHE if set, else the user's cache directory plus "nodebake".
func DefaultDir() (string, error) {
	if d := os.Getenv("NODEBAKE_CACHE"); d != "" {
		return d, nil
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("finding the default cache directory (set NODEBAKE_CACHE): %w", err)
	}
	return filepath.Join(base, "nodebake"), nil
}

// Open opens the cache rooted at dir, creating it and its subdirectories
// (mode 0755) when missing.
func Open(dir string) (*Cache, error) {
	if dir == "" {
		return nil, errors.New("opening cache: empty directory name")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("opening cache %s: %w", dir, err)
	}
	for _, sub := range []string{"blobs/sha256", "blobs/sha512", entriesDir} {
		if err := os.MkdirAll(filepath.Join(abs, sub), 0o755); err != nil {
			return nil, fmt.Errorf("opening cache %s: %w", dir, err)
		}
	}
	return &Cache{dir: abs}, nil
}

// Dir returns the absolute root directory of the cache.
func (c *Cache) Dir() string { return c.dir }

// Path returns where the blob with digest d is (or would be) stored:
// DIR/blobs/<algorithm>/<hex>.
func (c *Cache) Path(d Digest) string {
	return filepath.Join(c.dir, "blobs", d.Algorithm, d.Hex)
}

// Has reports whether a non-empty blob with digest d is stored. It does not
// re-hash the content; use Verify for that.
func (c *Cache) Has(d Digest) (bool, error) {
	if err := d.Validate(); err != nil {
		return false, fmt.Errorf("looking up %s in the cache: %w", d, err)
	}
	fi, err := os.Stat(c.Path(d))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("looking up %s in the cache: %w", d, err)
	}
	return fi.Mode().IsRegular() && fi.Size() > 0, nil
}

// Verify re-hashes the stored blob with digest d and marks it used (for
// Prune). A blob whose content does not match gives a *CorruptError (which
// wraps a *ChecksumError); a missing one an error wrapping fs.ErrNotExist.
func (c *Cache) Verify(d Digest) error {
	return c.verifyBlob(d, true)
}

func (c *Cache) verifyBlob(d Digest, touch bool) error {
	rc, err := c.openBlob(d, touch)
	if err != nil {
		return err
	}
	_, err = io.CopyBuffer(io.Discard, onlyReader{rc}, make([]byte, 1<<20))
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	var ce *CorruptError
	if err != nil && !errors.As(err, &ce) {
		return fmt.Errorf("verifying %s in the cache: %w", d, err)
	}
	return err
}

// OpenBlob opens the stored blob with digest d for reading, marks it used
// (for Prune), and verifies it while it is read: at the end of the blob the
// reader returns a *CorruptError instead of io.EOF if the content does not
// match d. Close repeats that verdict. A missing blob gives an error
// wrapping fs.ErrNotExist.
func (c *Cache) OpenBlob(d Digest) (io.ReadCloser, error) {
	return c.openBlob(d, true)
}

func (c *Cache) openBlob(d Digest, touch bool) (io.ReadCloser, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("reading %s from the cache: %w", d, err)
	}
	p := c.Path(d)
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("reading %s from the cache: %w", d, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("reading %s from the cache: %w", d, err)
	}
	if touch {
		now := time.Now()
		_ = os.Chtimes(p, now, now) // last use, for Prune; a read-only cache is fine
	}
	// The size is the file's: a blob records none, and one that changed
	// size fails the digest anyway. Knowing it, the verdict comes with the
	// last byte, even to a reader that never asks for more.
	return newVerifyingReader(f, d, fi.Size(), KindBlob, d.String(), ""), nil
}

// Remove deletes the blob with digest d; a missing blob is not an error.
func (c *Cache) Remove(d Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("removing %s from the cache: %w", d, err)
	}
	if err := os.Remove(c.Path(d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing %s from the cache: %w", d, err)
	}
	return nil
}

// Put stores the content read from r under digest d and returns its path.
// The content is hashed while it is written to a temporary file next to its
// final place; the file is renamed into place only if the sum matches d.
// On a mismatch Put returns a *ChecksumError and leaves nothing behind.
// An error from r is returned wrapped.
func (c *Cache) Put(d Digest, r io.Reader) (string, error) {
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("storing %s in the cache: %w", d, err)
	}
	tmp, got, err := c.writeTemp(d.Algorithm, r)
	if err != nil {
		return "", fmt.Errorf("storing %s in the cache: %w", d, err)
	}
	if got != d {
		os.Remove(tmp)
		return "", &ChecksumError{Expected: d, Actual: got}
	}
	return c.commit(tmp, d)
}

// PutFile stores content whose digest is not known in advance and returns
// its sha256 digest and path.
func (c *Cache) PutFile(r io.Reader) (Digest, string, error) {
	tmp, d, err := c.writeTemp("sha256", r)
	if err != nil {
		return Digest{}, "", fmt.Errorf("storing a file in the cache: %w", err)
	}
	p, err := c.commit(tmp, d)
	return d, p, err
}

// writeTemp copies r into a temporary file in the blob directory of
// algorithm, hashing on the way, and returns the file's name and digest.
func (c *Cache) writeTemp(algorithm string, r io.Reader) (string, Digest, error) {
	f, err := os.CreateTemp(filepath.Join(c.dir, "blobs", algorithm), ".tmp-*")
	if err != nil {
		return "", Digest{}, err
	}
	h := newHash(algorithm)
	_, err = io.Copy(io.MultiWriter(f, h), r)
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", Digest{}, err
	}
	return f.Name(), sum(algorithm, h), nil
}

// commit renames a complete temporary blob to its final path.
func (c *Cache) commit(tmp string, d Digest) (string, error) {
	p := c.Path(d)
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("storing %s in the cache: %w", d, err)
	}
	return p, nil
}
