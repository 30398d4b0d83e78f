package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// A keyed entry is a directory DIR/entries/<sha256(key)> holding
//
//	entry.json   the record: the key and every file's size and sha256
//	files/       the files, as the entry's fill function wrote them
//
// The record is written next to the files in a temporary directory that is
// renamed into place as a whole, so an entry never exists without its
// record.
//
// Older versions of nodebake kept entries without records in
// DIR/keyed/<sha256(key)> (the files directly in it, the key in a sibling
// <sha256(key)>.key file). Those legacy entries are never read as they
// are: PutEntry adopts one into a recorded entry (its files linked, then
// hashed and recorded) instead of making the entry again, and VerifyAll
// reports them as unrecorded until Prune or VerifyAll's Evict removes them.
const (
	entriesDir   = "entries"
	legacyDir    = "keyed"
	recordName   = "entry.json"
	filesName    = "files"
	recordFormat = "nodebake.cache.entry.v1"

	// Bounds on what a record may hold; real entries hold a few files.
	maxRecordBytes = 1 << 20
	maxFiles       = 10000
	maxKeyBytes    = 1024
	maxPathBytes   = 1024
)

// record is the content of entry.json.
type record struct {
	Format string       `json:"format"`
	Key    string       `json:"key"`
	Files  []FileRecord `json:"files"`
}

// FileRecord is what an entry recorded about one of its files when it was
// written.
type FileRecord struct {
	// Path is slash-separated and relative to the entry's Dir.
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Digest returns the recorded sha256 digest.
func (r FileRecord) Digest() Digest { return Digest{Algorithm: "sha256", Hex: r.SHA256} }

// Entry is a keyed cache entry whose record was read and whose files were
// found, by name and size, as recorded. Their content is checked by Verify,
// or while they are read through Open.
type Entry struct {
	// Key is the entry's key.
	Key string
	// Dir is the directory holding the entry's files.
	Dir string
	// Files lists the recorded files, sorted by path.
	Files []FileRecord
	// Adopted is set on the entry PutEntry made from a legacy entry: its
	// digests were recorded when it was adopted, not when it was made.
	Adopted bool
}

// checkKey reports a key that cannot name an entry.
func checkKey(key string) error {
	switch {
	case key == "":
		return errors.New("empty key")
	case len(key) > maxKeyBytes:
		return fmt.Errorf("key is %d bytes, more than %d", len(key), maxKeyBytes)
	case !utf8.ValidString(key):
		return errors.New("key is not valid UTF-8")
	case strings.IndexFunc(key, unicode.IsControl) >= 0:
		return fmt.Errorf("key %q holds a control character", key)
	}
	return nil
}

// entryRoot returns the directory of the entry stored under key.
func (c *Cache) entryRoot(key string) string {
	return filepath.Join(c.dir, entriesDir, keyHash(key))
}

// legacyRoot returns the directory an older nodebake stored key's entry in.
func (c *Cache) legacyRoot(key string) string {
	return filepath.Join(c.dir, legacyDir, keyHash(key))
}

func keyHash(key string) string {
	s := sha256.Sum256([]byte(key))
	return hex.EncodeToString(s[:])
}

// Entry looks up the entry stored under key and checks, cheaply, that its
// files are the recorded ones with the recorded sizes; it also marks the
// entry used (for Prune). It does not hash: read the files through
// Entry.Open, or call Entry.Verify.
//
// A missing entry gives an error wrapping ErrNotCached; an entry that is
// not as recorded, or has no record, a *CorruptError naming the key.
func (c *Cache) Entry(key string) (*Entry, error) {
	return c.entry(key, true)
}

// entry is Entry; touch marks the entry used.
func (c *Cache) entry(key string, touch bool) (*Entry, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("looking up a cache entry: %w", err)
	}
	root := c.entryRoot(key)
	fi, err := os.Lstat(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("cache entry %q: %w", key, ErrNotCached)
	}
	if err != nil {
		return nil, fmt.Errorf("looking up cache entry %q: %w", key, err)
	}
	if !fi.IsDir() {
		return nil, &CorruptError{Item: KindEntry, Key: key, Problem: ProblemRecord, Err: errors.New("not a directory")}
	}
	rec, err := readRecord(root)
	if err != nil {
		return nil, &CorruptError{Item: KindEntry, Key: key, Problem: ProblemRecord, Err: err}
	}
	if rec.Key != key {
		return nil, &CorruptError{Item: KindEntry, Key: key, Problem: ProblemRecord, Err: fmt.Errorf("the record names key %q", rec.Key)}
	}
	e := &Entry{Key: key, Dir: filepath.Join(root, filesName), Files: rec.Files}
	if err := e.checkTree(); err != nil {
		return nil, err
	}
	if touch {
		now := time.Now()
		_ = os.Chtimes(root, now, now) // last use, for Prune; a read-only cache is fine
	}
	return e, nil
}

// readRecord reads and validates the record of the entry directory root.
func readRecord(root string) (*record, error) {
	f, err := os.Open(filepath.Join(root, recordName))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxRecordBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", recordName, err)
	}
	if len(data) > maxRecordBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes", recordName, maxRecordBytes)
	}
	var rec record
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", recordName, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("decoding %s: data after the record", recordName)
	}
	if rec.Format != recordFormat {
		return nil, fmt.Errorf("%s: format %q, want %q", recordName, rec.Format, recordFormat)
	}
	if err := checkKey(rec.Key); err != nil {
		return nil, fmt.Errorf("%s: %w", recordName, err)
	}
	if len(rec.Files) > maxFiles {
		return nil, fmt.Errorf("%s lists %d files, more than %d", recordName, len(rec.Files), maxFiles)
	}
	for i, f := range rec.Files {
		if err := checkRelPath(f.Path); err != nil {
			return nil, fmt.Errorf("%s: files[%d].path: %w", recordName, i, err)
		}
		if i > 0 && rec.Files[i-1].Path >= f.Path {
			return nil, fmt.Errorf("%s: files[%d].path %q is not sorted after %q", recordName, i, f.Path, rec.Files[i-1].Path)
		}
		if f.Size < 0 {
			return nil, fmt.Errorf("%s: files[%d] (%s): negative size", recordName, i, f.Path)
		}
		if err := f.Digest().Validate(); err != nil {
			return nil, fmt.Errorf("%s: files[%d] (%s): %w", recordName, i, f.Path, err)
		}
	}
	return &rec, nil
}

// checkRelPath reports a record path that is not a clean, relative,
// slash-separated path inside the entry.
func checkRelPath(p string) error {
	switch {
	case len(p) > maxPathBytes:
		return fmt.Errorf("longer than %d bytes", maxPathBytes)
	case !fs.ValidPath(p) || p == ".":
		return fmt.Errorf("%q is not a clean relative path", p)
	case strings.ContainsAny(p, "\\\x00"):
		return fmt.Errorf("%q holds a backslash or NUL", p)
	}
	return nil
}

// checkTree compares the files on disk with the record by name, type and
// size. Directories are not recorded; anything else must be.
func (e *Entry) checkTree() error {
	want := make(map[string]FileRecord, len(e.Files))
	for _, f := range e.Files {
		want[f.Path] = f
	}
	var extra []string
	seen := make(map[string]bool, len(e.Files))
	err := filepath.WalkDir(e.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(e.Dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		f, ok := want[rel]
		if !ok || !d.Type().IsRegular() {
			extra = append(extra, rel)
			return nil
		}
		seen[rel] = true
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Size() != f.Size {
			return &CorruptError{Item: KindEntry, Key: e.Key, File: rel, Problem: ProblemSize, RecordedSize: f.Size, ActualSize: fi.Size()}
		}
		return nil
	})
	var ce *CorruptError
	if errors.As(err, &ce) {
		return ce
	}
	if errors.Is(err, fs.ErrNotExist) && len(e.Files) > 0 {
		err = nil // the files directory is gone: every file is missing
	}
	if err != nil {
		return fmt.Errorf("checking cache entry %q: %w", e.Key, err)
	}
	for _, f := range e.Files {
		if !seen[f.Path] {
			return &CorruptError{Item: KindEntry, Key: e.Key, File: f.Path, Problem: ProblemMissing, Recorded: f.Digest(), RecordedSize: f.Size}
		}
	}
	if len(extra) > 0 {
		slices.Sort(extra)
		return &CorruptError{Item: KindEntry, Key: e.Key, File: extra[0], Problem: ProblemExtra}
	}
	return nil
}

// Path returns where the entry's file name (a recorded, slash-separated
// path) is.
func (e *Entry) Path(name string) string {
	return filepath.Join(e.Dir, filepath.FromSlash(name))
}

// File returns the record of the entry's file name.
func (e *Entry) File(name string) (FileRecord, bool) {
	i, ok := slices.BinarySearchFunc(e.Files, name, func(f FileRecord, n string) int { return strings.Compare(f.Path, n) })
	if !ok {
		return FileRecord{}, false
	}
	return e.Files[i], true
}

// Open opens the entry's file name for reading and verifies it while it is
// read: its size is checked at once, and when its last byte has been read
// the reader returns a *CorruptError instead of io.EOF if the content's
// sha256 is not the recorded one. Close repeats that verdict. A reader
// closed before the end verifies nothing.
func (e *Entry) Open(name string) (io.ReadCloser, error) {
	return e.open(name)
}

func (e *Entry) open(name string) (*verifyingReader, error) {
	rec, ok := e.File(name)
	if !ok {
		return nil, fmt.Errorf("cache entry %q has no file %q", e.Key, name)
	}
	f, err := os.Open(e.Path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &CorruptError{Item: KindEntry, Key: e.Key, File: name, Problem: ProblemMissing, Recorded: rec.Digest(), RecordedSize: rec.Size}
	}
	if err != nil {
		return nil, fmt.Errorf("reading cache entry %q: %w", e.Key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("reading cache entry %q: %w", e.Key, err)
	}
	if fi.Size() != rec.Size {
		f.Close()
		return nil, &CorruptError{Item: KindEntry, Key: e.Key, File: name, Problem: ProblemSize, RecordedSize: rec.Size, ActualSize: fi.Size()}
	}
	return newVerifyingReader(f, rec.Digest(), rec.Size, KindEntry, e.Key, name), nil
}

// FS returns the entry's files as a file system whose files verify while
// they are read, as Open's do; Stat reports the recorded size without
// opening the file. It holds the recorded files only: directories cannot
// be opened or listed.
func (e *Entry) FS() fs.FS { return entryFS{e} }

type entryFS struct{ e *Entry }

func (f entryFS) Open(name string) (fs.File, error) {
	if _, ok := f.e.File(name); !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return f.e.open(name)
}

func (f entryFS) Stat(name string) (fs.FileInfo, error) {
	rec, ok := f.e.File(name)
	if !ok {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	}
	return recordInfo{rec}, nil
}

// recordInfo describes a recorded file as a regular file of its recorded
// size.
type recordInfo struct{ rec FileRecord }

func (r recordInfo) Name() string       { return path.Base(r.rec.Path) }
func (r recordInfo) Size() int64        { return r.rec.Size }
func (r recordInfo) Mode() fs.FileMode  { return 0o644 }
func (r recordInfo) ModTime() time.Time { return time.Time{} }
func (r recordInfo) IsDir() bool        { return false }
func (r recordInfo) Sys() any           { return nil }

// Verify reads every file of the entry and checks it against the record.
func (e *Entry) Verify() error {
	for _, f := range e.Files {
		if err := e.VerifyFile(f.Path); err != nil {
			return err
		}
	}
	return nil
}

// VerifyFile reads the entry's file name and checks it against the record.
func (e *Entry) VerifyFile(name string) error {
	rc, err := e.Open(name)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	_, err = io.CopyBuffer(io.Discard, onlyReader{rc}, buf)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	var ce *CorruptError
	if err != nil && !errors.As(err, &ce) {
		err = fmt.Errorf("verifying cache entry %q file %s: %w", e.Key, name, err)
	}
	return err
}

// onlyReader hides every method but Read, so io.Copy uses its buffer.
type onlyReader struct{ io.Reader }

// VerifyEntry looks up the entry stored under key and verifies all of it.
func (c *Cache) VerifyEntry(key string) error {
	e, err := c.Entry(key)
	if err != nil {
		return err
	}
	return e.Verify()
}

// Evict removes the entry stored under key, whatever its state, so that it
// can be made again; a legacy entry of the key goes with it (an adopted
// entry shares its files). A missing entry is not an error. The entry
// disappears at once (it is renamed away, then deleted): a reader sees it
// whole or not at all, though a reader that already holds it open keeps
// reading the old files.
func (c *Cache) Evict(key string) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("evicting a cache entry: %w", err)
	}
	for _, root := range []string{c.entryRoot(key), c.legacyRoot(key)} {
		if err := c.removeEntryDir(root); err != nil {
			return fmt.Errorf("evicting cache entry %q: %w", key, err)
		}
	}
	return nil
}

// EvictCorrupt removes what a *CorruptError names, a blob or an entry, so
// that it is fetched or made again.
func (c *Cache) EvictCorrupt(ce *CorruptError) error {
	if ce.Item == KindBlob {
		d, err := ParseDigest(ce.Key)
		if err != nil {
			return fmt.Errorf("evicting blob %s: %w", ce.Key, err)
		}
		return c.Remove(d)
	}
	return c.Evict(ce.Key)
}

// removeEntryDir removes an entry directory (and an older version's .key
// file next to it) by renaming it into a temporary directory first.
func (c *Cache) removeEntryDir(root string) error {
	if err := os.Remove(root + ".key"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if _, err := os.Lstat(root); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	trash, err := os.MkdirTemp(filepath.Dir(root), ".tmp-evict-")
	if err != nil {
		return err
	}
	err = os.Rename(root, filepath.Join(trash, "entry"))
	if errors.Is(err, fs.ErrNotExist) {
		err = nil // someone else evicted it
	}
	if rerr := os.RemoveAll(trash); err == nil {
		err = rerr
	}
	return err
}

// PutEntry returns the entry stored under key, making it first when it is
// missing: fill writes the entry's files (regular files, in any
// directories) into an empty directory; they are then hashed and recorded,
// and the whole entry is renamed into place. If a good entry exists, fill
// is not called; nor is it when a legacy entry of the key can be adopted
// (the returned Entry says Adopted). An entry that is not as recorded (a
// file missing, or of another size) gives its *CorruptError: the caller
// says so, evicts it and asks again. When two writers race, the first
// rename wins and the other's work is discarded.
func (c *Cache) PutEntry(key string, fill func(dir string) error) (*Entry, error) {
	e, err := c.Entry(key)
	switch {
	case err == nil:
		return e, nil
	case !errors.Is(err, ErrNotCached):
		return nil, err
	}
	if e := c.adopt(key); e != nil {
		return e, nil
	}
	return c.store(key, fill)
}

// store fills, records and renames into place the entry for key.
func (c *Cache) store(key string, fill func(dir string) error) (*Entry, error) {
	root := c.entryRoot(key)
	tmp, err := os.MkdirTemp(filepath.Dir(root), ".tmp-")
	if err != nil {
		return nil, fmt.Errorf("storing cache entry %q: %w", key, err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	files := filepath.Join(tmp, filesName)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("storing cache entry %q: %w", key, err)
	}
	if err := os.Mkdir(files, 0o755); err != nil {
		return nil, fmt.Errorf("storing cache entry %q: %w", key, err)
	}
	if err := fill(files); err != nil {
		return nil, fmt.Errorf("filling cache entry %q: %w", key, err)
	}
	recs, err := recordFiles(files)
	if err != nil {
		return nil, fmt.Errorf("storing cache entry %q: %w", key, err)
	}
	data, err := json.MarshalIndent(record{Format: recordFormat, Key: key, Files: recs}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("storing cache entry %q: %w", key, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, recordName), append(data, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("storing cache entry %q: %w", key, err)
	}
	if err := os.Rename(tmp, root); err != nil {
		if e, gerr := c.Entry(key); gerr == nil {
			return e, nil // another writer got there first
		}
		return nil, fmt.Errorf("storing cache entry %q: %w", key, err)
	}
	return &Entry{Key: key, Dir: filepath.Join(root, filesName), Files: recs}, nil
}

// adopt makes the entry for key from the legacy entry an older nodebake
// stored under key, if there is one that names the key and holds only
// regular files and directories (at most maxFiles): its files are
// hard-linked (or copied) into a new entry and recorded as they are now.
// It returns nil when there is nothing to adopt, or the adoption failed:
// then the entry is made anew. The legacy entry is left in place, for
// older nodebake versions that share the cache.
func (c *Cache) adopt(key string) *Entry {
	root := c.legacyRoot(key)
	if legacyKey(root) != key {
		return nil
	}
	if fi, err := os.Lstat(root); err != nil || !fi.IsDir() {
		return nil
	}
	e, err := c.store(key, func(dir string) error {
		return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(root, p)
			if err != nil || rel == "." {
				return err
			}
			dst := filepath.Join(dir, rel)
			switch {
			case d.IsDir():
				return os.Mkdir(dst, 0o755)
			case !d.Type().IsRegular():
				return errUnadoptable
			}
			return linkOrCopy(p, dst)
		})
	})
	if err != nil {
		return nil
	}
	e.Adopted = true
	return e
}

// errUnadoptable stops the adoption of a legacy entry that holds what an
// entry may not: it is made again instead.
var errUnadoptable = errors.New("the legacy entry holds a file that is not regular")

// linkOrCopy hard-links src to dst, or copies it where links cannot be
// made.
func linkOrCopy(src, dst string) error {
	if os.Link(src, dst) == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// recordFiles hashes every file under dir, which must hold only regular
// files and directories.
func recordFiles(dir string) ([]FileRecord, error) {
	var recs []FileRecord
	buf := make([]byte, 1<<20)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is a %s; an entry holds regular files and directories only", rel, typeName(d.Type()))
		}
		if err := checkRelPath(rel); err != nil {
			return err
		}
		if len(recs) == maxFiles {
			return fmt.Errorf("more than %d files", maxFiles)
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		n, err := io.CopyBuffer(h, onlyReader{f}, buf)
		if err != nil {
			return fmt.Errorf("hashing %s: %w", rel, err)
		}
		recs = append(recs, FileRecord{Path: rel, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))})
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(recs, func(a, b FileRecord) int { return strings.Compare(a.Path, b.Path) })
	return recs, nil
}

func typeName(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

// legacyKey returns the key an older version's .key file next to root
// names, or "" when there is none that is a valid key.
func legacyKey(root string) string {
	f, err := os.Open(root + ".key")
	if err != nil {
		return ""
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyBytes+2))
	if k := strings.TrimSuffix(string(b), "\n"); err == nil && checkKey(k) == nil {
		return k
	}
	return ""
}

// legacyName is how Prune and VerifyAll name an entry directory that has
// no readable record: by its older version's .key file, else by its path
// relative to the cache directory.
func legacyName(root string) string {
	if k := legacyKey(root); k != "" {
		return k
	}
	return path.Join(filepath.Base(filepath.Dir(root)), filepath.Base(root))
}
