package cache

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Kind is the kind of thing stored in the cache directory, as VerifyAll
// and Prune report it.
type Kind string

// The kinds.
const (
	// KindBlob is a blob: a download or an OCI image blob.
	KindBlob Kind = "blob"
	// KindEntry is a keyed entry: a derived artifact (or a legacy
	// entry an older nodebake wrote).
	KindEntry Kind = "entry"
	// KindTemporary is a writer's temporary file or directory.
	KindTemporary Kind = "temporary"
	// KindStray is anything else under blobs/, entries/ or keyed/.
	KindStray Kind = "stray"
)

// staleTemporary is how old a writer's temporary must be before Prune
// takes it for abandoned (a writer killed mid-way); a live writer's is
// younger.
const staleTemporary = 24 * time.Hour

// item is one thing found in the cache directory.
type item struct {
	kind Kind
	// name is the key of an entry, the digest of a blob, else the path
	// relative to the cache directory.
	name    string
	path    string
	digest  Digest // blobs
	size    int64
	modTime time.Time
	// recorded is set for entries whose record names their key.
	recorded bool
}

// list finds everything under blobs/, entries/ and keyed/ (legacy
// entries).
func (c *Cache) list() ([]item, error) {
	var items []item
	for _, algo := range []string{"sha256", "sha512"} {
		dir := filepath.Join(c.dir, "blobs", algo)
		des, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, de := range des {
			it := item{path: filepath.Join(dir, de.Name()), name: path.Join("blobs", algo, de.Name())}
			fi, err := de.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed meanwhile
			}
			if err != nil {
				return nil, err
			}
			it.modTime, it.size = fi.ModTime(), fi.Size()
			d := Digest{Algorithm: algo, Hex: de.Name()}
			switch {
			case strings.HasPrefix(de.Name(), ".tmp-"):
				it.kind = KindTemporary
			case d.Validate() == nil && de.Type().IsRegular():
				it.kind, it.name, it.digest = KindBlob, d.String(), d
			default:
				it.kind = KindStray
				it.size = treeSize(it.path)
			}
			items = append(items, it)
		}
	}
	for _, root := range []string{entriesDir, legacyDir} {
		more, err := c.listEntries(root)
		if err != nil {
			return nil, err
		}
		items = append(items, more...)
	}
	return items, nil
}

// listEntries lists the entries under DIR/root: recorded ones under
// entries/, legacy ones (no record; the key in a .key file) under keyed/.
func (c *Cache) listEntries(root string) ([]item, error) {
	var items []item
	dir := filepath.Join(c.dir, root)
	des, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, de := range des {
		n := de.Name()
		it := item{path: filepath.Join(dir, n), name: path.Join(root, n)}
		fi, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		it.modTime = fi.ModTime()
		switch {
		case strings.HasPrefix(n, ".tmp-"):
			it.kind = KindTemporary
		case root == legacyDir && strings.HasSuffix(n, ".key") && de.Type().IsRegular():
			// An older version's key file: part of its entry, or
			// left over when the entry is gone.
			if _, err := os.Lstat(strings.TrimSuffix(it.path, ".key")); err == nil {
				continue
			}
			it.kind = KindTemporary
		case isHex64(n) && de.IsDir():
			it.kind = KindEntry
			if root == legacyDir {
				it.name = legacyName(it.path)
			} else if rec, err := readRecord(it.path); err == nil {
				it.name, it.recorded = rec.Key, true
			}
		default:
			it.kind = KindStray
		}
		it.size = treeSize(it.path)
		items = append(items, it)
	}
	return items, nil
}

func isHex64(s string) bool {
	return len(s) == 64 && strings.Trim(s, "0123456789abcdef") == ""
}

// treeSize adds up the sizes of the regular files under p.
func treeSize(p string) int64 {
	var n int64
	filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// VerifyEvent reports one checked blob or entry.
type VerifyEvent struct {
	Kind Kind
	// Name is the entry's key or the blob's digest.
	Name string
	// Index counts the items checked so far, this one included, of Count.
	Index, Count int
	// Bytes counts the bytes checked so far, of TotalBytes.
	Bytes, TotalBytes int64
	// Err is nil when the item is intact, else why not (usually a
	// *CorruptError).
	Err error
	// Evicted is set when the item was removed (VerifyOptions.Evict).
	Evicted bool
}

// VerifyOptions shape VerifyAll.
type VerifyOptions struct {
	// Progress receives an event after each item.
	Progress func(VerifyEvent)
	// Evict removes every item that does not verify.
	Evict bool
}

// VerifyReport sums up VerifyAll.
type VerifyReport struct {
	Checked int
	Bytes   int64
	// Problems holds one error per item that did not verify.
	Problems []error
	Evicted  int
}

// VerifyAll checks every blob and every keyed entry of the cache against
// its digests, reading all of it. Verifying does not count as a use for
// Prune. Writers' temporaries are skipped. The returned error is for the
// walk itself (or ctx); what is wrong with items is in the report.
func (c *Cache) VerifyAll(ctx context.Context, opts VerifyOptions) (VerifyReport, error) {
	var rep VerifyReport
	items, err := c.list()
	if err != nil {
		return rep, fmt.Errorf("verifying the cache: listing %s: %w", c.dir, err)
	}
	items = slices.DeleteFunc(items, func(it item) bool { return it.kind == KindTemporary })
	var total int64
	for _, it := range items {
		total += it.size
	}
	for i, it := range items {
		if err := ctx.Err(); err != nil {
			return rep, fmt.Errorf("verifying the cache: %w", context.Cause(ctx))
		}
		var err error
		switch {
		case it.kind == KindBlob:
			err = c.verifyBlob(it.digest, false)
		case it.kind == KindEntry && it.recorded && it.path != c.entryRoot(it.name):
			err = &CorruptError{Item: it.kind, Key: it.name, Problem: ProblemRecord,
				Err: fmt.Errorf("the record is in %s, which is not the key's directory", filepath.Base(it.path))}
		case it.kind == KindEntry && it.recorded:
			var e *Entry
			if e, err = c.entry(it.name, false); err == nil {
				err = e.Verify()
			}
		case it.kind == KindEntry:
			if filepath.Base(filepath.Dir(it.path)) == legacyDir {
				err = &CorruptError{Item: it.kind, Key: it.name, Problem: ProblemUnrecorded}
			} else {
				_, rerr := readRecord(it.path)
				err = &CorruptError{Item: it.kind, Key: it.name, Problem: ProblemRecord, Err: rerr}
			}
		default:
			err = &CorruptError{Item: it.kind, Key: it.name, Problem: ProblemExtra}
		}
		rep.Checked++
		rep.Bytes += it.size
		ev := VerifyEvent{Kind: it.kind, Name: it.name, Index: i + 1, Count: len(items), Bytes: rep.Bytes, TotalBytes: total, Err: err}
		if err != nil {
			rep.Problems = append(rep.Problems, err)
			if opts.Evict {
				if rerr := c.removeItem(it); rerr != nil {
					return rep, fmt.Errorf("verifying the cache: evicting %s: %w", it.name, rerr)
				}
				rep.Evicted++
				ev.Evicted = true
			}
		}
		if opts.Progress != nil {
			opts.Progress(ev)
		}
	}
	return rep, nil
}

// removeItem deletes one listed item.
func (c *Cache) removeItem(it item) error {
	switch it.kind {
	case KindEntry:
		return c.removeEntryDir(it.path)
	case KindBlob:
		if err := os.Remove(it.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	return os.RemoveAll(it.path)
}

// PruneOptions select what Prune removes. At least one of UnusedSince and
// Keep must be given; with both, an item is removed only when both select
// it.
type PruneOptions struct {
	// UnusedSince selects items last used before this time. Reads through
	// Entry, OpenBlob and Verify count as uses (VerifyAll does not).
	UnusedSince time.Time
	// Keep, when not nil, selects every item not named in it: entries by
	// key, blobs by digest ("sha256:<hex>"). An empty, non-nil Keep
	// selects everything.
	Keep []string
	// DryRun reports what would be removed and removes nothing.
	DryRun bool
	// Progress receives an event for each item removed (or, with DryRun,
	// that would be).
	Progress func(PruneEvent)
}

// PruneEvent reports one removed item.
type PruneEvent struct {
	Kind     Kind
	Name     string
	Size     int64
	LastUsed time.Time
	DryRun   bool
}

// PruneReport sums up Prune.
type PruneReport struct {
	Removed      int
	RemovedBytes int64
	Kept         int
	KeptBytes    int64
}

// Prune removes the blobs and entries opts selects, and writers'
// temporaries abandoned more than a day ago. Do not prune a cache a build
// is using: an entry removed under a running build fails that build.
func (c *Cache) Prune(ctx context.Context, opts PruneOptions) (PruneReport, error) {
	var rep PruneReport
	if opts.UnusedSince.IsZero() && opts.Keep == nil {
		return rep, errors.New("pruning the cache: nothing selected (give a time the entries have been unused since, or the keys to keep)")
	}
	keep := make(map[string]bool, len(opts.Keep))
	for _, k := range opts.Keep {
		keep[k] = true
	}
	items, err := c.list()
	if err != nil {
		return rep, fmt.Errorf("pruning the cache: listing %s: %w", c.dir, err)
	}
	staleBefore := time.Now().Add(-staleTemporary)
	for _, it := range items {
		if err := ctx.Err(); err != nil {
			return rep, fmt.Errorf("pruning the cache: %w", context.Cause(ctx))
		}
		var remove bool
		if it.kind == KindTemporary {
			remove = it.modTime.Before(staleBefore)
		} else {
			byTime := opts.UnusedSince.IsZero() || it.modTime.Before(opts.UnusedSince)
			byKeep := opts.Keep == nil || !keep[it.name]
			remove = byTime && byKeep
		}
		if !remove {
			rep.Kept++
			rep.KeptBytes += it.size
			continue
		}
		if !opts.DryRun {
			if err := c.removeItem(it); err != nil {
				return rep, fmt.Errorf("pruning the cache: removing %s: %w", it.name, err)
			}
		}
		rep.Removed++
		rep.RemovedBytes += it.size
		if opts.Progress != nil {
			opts.Progress(PruneEvent{Kind: it.kind, Name: it.name, Size: it.size, LastUsed: it.modTime, DryRun: opts.DryRun})
		}
	}
	return rep, nil
}
