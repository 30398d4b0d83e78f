package rootfs

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/nodebake/nodebake/layers/entry"
)

func unixTime(sec int64) time.Time { return time.Unix(sec, 0).UTC() }

// spooled is an entry read from a source tar whose content sits in a spool
// file at offset.
type spooled struct {
	entry.Entry
	offset int64
}

// Normalize reads a flattened filesystem tar (for example the output of
// go-containerregistry's mutate.Extract, which emits upper layers first, so
// hardlinks may precede their targets and parents may be missing) and writes
// its canonical form to dst, all mtimes set to mtime. dst is written under a
// temporary name and renamed when complete. Content is staged in one spool
// file next to dst, never as real files.
func Normalize(ctx context.Context, src io.Reader, dst string, mtime int64) error {
	dir := filepath.Dir(dst)
	spool, err := os.CreateTemp(dir, ".spool-*")
	if err != nil {
		return fmt.Errorf("creating spool file: %w", err)
	}
	defer os.Remove(spool.Name())
	defer spool.Close()

	entries := map[string]*spooled{}
	tr := tar.NewReader(src)
	var off int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading base filesystem: %w", err)
		}
		if strings.HasPrefix(path.Base(h.Name), ".wh.") {
			continue // whiteouts are applied by the flattener; never baked
		}
		e, err := fromHeader(h)
		if err != nil {
			return fmt.Errorf("reading base filesystem: %w", err)
		}
		s := &spooled{Entry: e, offset: off}
		if e.Type == tar.TypeReg {
			n, err := io.Copy(spool, tr)
			if err != nil {
				return fmt.Errorf("spooling %s: %w", e.Path, err)
			}
			if n != e.Size {
				return fmt.Errorf("spooling %s: read %d bytes, header says %d", e.Path, n, e.Size)
			}
			off += n
		}
		entries[e.Path] = s
	}
	if err := canonicalize(entries); err != nil {
		return err
	}

	paths := make([]string, 0, len(entries))
	for p := range entries {
		paths = append(paths, p)
	}
	sort.Strings(paths)

	out, err := os.CreateTemp(dir, ".normalized-*")
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			out.Close()
			os.Remove(out.Name())
		}
	}()
	tw := tar.NewWriter(out)
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return err
		}
		s := entries[p]
		if err := tw.WriteHeader(header(&s.Entry, mtime)); err != nil {
			return fmt.Errorf("writing %s: %w", p, err)
		}
		if s.Type == tar.TypeReg && s.Size > 0 {
			if _, err := io.Copy(tw, io.NewSectionReader(spool, s.offset, s.Size)); err != nil {
				return fmt.Errorf("writing %s: %w", p, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := out.Sync(); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	if err := os.Rename(out.Name(), dst); err != nil {
		return err
	}
	ok = true
	return nil
}

// canonicalize adds missing parent directories and rewrites hardlink groups
// so that the first path of each group in sort order holds the data.
func canonicalize(entries map[string]*spooled) error {
	if _, ok := entries["/"]; !ok {
		entries["/"] = &spooled{Entry: entry.Dir("/", 0o755)}
	}
	// Parents.
	for p := range entries {
		for d := path.Dir(p); ; d = path.Dir(d) {
			if e, ok := entries[d]; ok {
				if e.Type != tar.TypeDir {
					return fmt.Errorf("base filesystem: %s is inside %s, which is not a directory", p, d)
				}
			} else {
				entries[d] = &spooled{Entry: entry.Dir(d, 0o755)}
			}
			if d == "/" {
				break
			}
		}
	}
	// Hardlink groups, keyed by the path that holds the data.
	groups := map[string][]string{}
	for p, e := range entries {
		if e.Type != tar.TypeLink {
			continue
		}
		target := e.Linkname
		for seen := 0; ; seen++ {
			t, ok := entries[target]
			if !ok {
				return fmt.Errorf("base filesystem: hardlink %s points to %s, which does not exist", p, target)
			}
			if t.Type != tar.TypeLink {
				if t.Type != tar.TypeReg {
					return fmt.Errorf("base filesystem: hardlink %s points to %s, which is not a regular file", p, target)
				}
				break
			}
			if seen > len(entries) {
				return fmt.Errorf("base filesystem: hardlink loop at %s", p)
			}
			target = t.Linkname
		}
		groups[target] = append(groups[target], p)
	}
	for holder, links := range groups {
		all := append([]string{holder}, links...)
		sort.Strings(all)
		first := all[0]
		data := entries[holder]
		if first != holder {
			// Move the data to the first path in order.
			moved := *data
			moved.Path = first
			entries[first] = &moved
		}
		for _, p := range all[1:] {
			link := *data
			link.Path = p
			link.Type = tar.TypeLink
			link.Linkname = first
			link.Size = 0
			entries[p] = &link
		}
	}
	return nil
}
