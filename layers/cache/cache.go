// Package cache is a content-addressed store on disk for everything a build
// fetches or derives.
//
// Blobs live under DIR/blobs/<algorithm>/<hex>, the same shape as the blob
// directory of an OCI image layout. Derived artifacts (for example binaries
// built from source) live under DIR/keyed/<sha256(key)>. Every entry is
// written to a temporary name in its final directory and renamed into place
// only when complete, so concurrent writers, even in different processes,
// never see or leave a partial entry.
package cache

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
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
	for _, sub := range []string{"blobs/sha256", "blobs/sha512", "keyed"} {
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

// Verify re-hashes the stored blob with digest d. A blob whose content does
// not match gives a *ChecksumError; a missing one an error wrapping
// fs.ErrNotExist.
func (c *Cache) Verify(d Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("verifying %s in the cache: %w", d, err)
	}
	f, err := os.Open(c.Path(d))
	if err != nil {
		return fmt.Errorf("verifying %s in the cache: %w", d, err)
	}
	defer f.Close()
	h := newHash(d.Algorithm)
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("verifying %s in the cache: %w", d, err)
	}
	if got := sum(d.Algorithm, h); got != d {
		return &ChecksumError{Artifact: c.Path(d), Expected: d, Actual: got}
	}
	return nil
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

// keyedDir returns the directory for key.
func (c *Cache) keyedDir(key string) string {
	return filepath.Join(c.dir, "keyed", fmt.Sprintf("%x", sha256.Sum256([]byte(key))))
}

// Keyed returns the directory of the derived artifact stored under key
// (DIR/keyed/<sha256(key)>) and whether it is complete. A keyed directory
// only ever appears by an atomic rename of a filled one, so its presence
// means it is complete.
func (c *Cache) Keyed(key string) (dir string, ok bool, err error) {
	if key == "" {
		return "", false, errors.New("looking up a keyed cache entry: empty key")
	}
	dir = c.keyedDir(key)
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return dir, false, nil
	}
	if err != nil {
		return dir, false, fmt.Errorf("looking up cache entry %q: %w", key, err)
	}
	return dir, fi.IsDir(), nil
}

// PutKeyed stores a derived artifact under key and returns its directory.
// fill writes the artifact into an empty temporary directory, which is then
// renamed into place; a file DIR/keyed/<sha256(key)>.key records the key for
// people reading the cache. If the entry already exists, fill is not called.
// When two writers race, the first rename wins and the other's work is
// discarded.
func (c *Cache) PutKeyed(key string, fill func(tmpDir string) error) (string, error) {
	dir, ok, err := c.Keyed(key)
	if err != nil || ok {
		return dir, err
	}
	parent := filepath.Dir(dir)
	tmp, err := os.MkdirTemp(parent, ".tmp-*")
	if err != nil {
		return "", fmt.Errorf("storing cache entry %q: %w", key, err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", fmt.Errorf("storing cache entry %q: %w", key, err)
	}
	if err := fill(tmp); err != nil {
		return "", fmt.Errorf("filling cache entry %q: %w", key, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, ok, kerr := c.Keyed(key); kerr == nil && ok {
			return dir, nil // another writer got there first
		}
		return "", fmt.Errorf("storing cache entry %q: %w", key, err)
	}
	if err := writeFileAtomic(dir+".key", []byte(key+"\n")); err != nil {
		return "", fmt.Errorf("storing cache entry %q: %w", key, err)
	}
	return dir, nil
}

// writeFileAtomic writes data to path through a temporary file and a rename.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
