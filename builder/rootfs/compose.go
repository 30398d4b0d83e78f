package rootfs

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/nodebake/nodebake/layers/entry"
)

// Base is a normalized base filesystem tar, indexed for lookups.
type Base struct {
	f       *os.File
	entries []spooled // in canonical order; offset is the data offset in f
	index   map[string]int
}

// OpenBase opens a tar written by Normalize.
func OpenBase(p string) (*Base, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	b := &Base{f: f, index: map[string]int{}}
	pr := &posReader{r: f}
	tr := tar.NewReader(pr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("reading normalized base %s: %w", p, err)
		}
		e, err := fromHeader(h)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("reading normalized base %s: %w", p, err)
		}
		b.index[e.Path] = len(b.entries)
		b.entries = append(b.entries, spooled{Entry: e, offset: pr.pos})
	}
	for i := range b.entries {
		s := &b.entries[i]
		if s.Type == tar.TypeReg {
			off, size := s.offset, s.Size
			s.Open = func() (io.ReadCloser, error) {
				return io.NopCloser(io.NewSectionReader(f, off, size)), nil
			}
		}
	}
	return b, nil
}

// Close releases the base's file.
func (b *Base) Close() error { return b.f.Close() }

// Lookup returns the entry at an absolute path.
func (b *Base) Lookup(p string) (entry.Entry, bool) {
	i, ok := b.index[p]
	if !ok {
		return entry.Entry{}, false
	}
	return b.entries[i].Entry, true
}

// Glob returns the entries whose paths match an absolute path.Match pattern,
// in canonical order.
func (b *Base) Glob(pattern string) []entry.Entry {
	var out []entry.Entry
	for _, s := range b.entries {
		if ok, _ := path.Match(pattern, s.Path); ok {
			out = append(out, s.Entry)
		}
	}
	return out
}

// Walk calls fn for every entry in canonical order.
func (b *Base) Walk(fn func(entry.Entry) error) error {
	for _, s := range b.entries {
		if err := fn(s.Entry); err != nil {
			return err
		}
	}
	return nil
}

// Len reports the number of entries.
func (b *Base) Len() int { return len(b.entries) }

// posReader tracks the read position of a file so the data offset of each
// tar entry is known; it seeks to skip entries it is not asked to read.
type posReader struct {
	r   io.ReadSeeker
	pos int64
}

func (p *posReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.pos += int64(n)
	return n, err
}

func (p *posReader) Seek(off int64, whence int) (int64, error) {
	n, err := p.r.Seek(off, whence)
	if err == nil {
		p.pos = n
	}
	return n, err
}

// Options shape a composition.
type Options struct {
	// ModTime is the mtime of every entry (SOURCE_DATE_EPOCH).
	ModTime int64
	// Remove lists path.Match patterns of base paths left out of the image
	// (a removed directory takes its subtree with it).
	Remove []string
}

// Compose writes the canonical tar stream of base with overlay applied: an
// overlay entry replaces the base entry at the same path; parents missing
// from both are created 0755 root:root. The overlay must not hold hardlinks,
// must not replace a base directory with a non-directory, and must not
// place entries below a base symlink (write to the link's target instead).
func Compose(ctx context.Context, w io.Writer, base *Base, overlay []entry.Entry, opts Options) error {
	ov, err := prepareOverlay(base, overlay)
	if err != nil {
		return err
	}
	removed := func(p string) bool {
		for _, pat := range opts.Remove {
			for d := p; ; d = path.Dir(d) {
				if ok, _ := path.Match(pat, d); ok {
					return true
				}
				if d == "/" {
					break
				}
			}
		}
		return false
	}
	tw := tar.NewWriter(w)
	emit := func(e *entry.Entry) error {
		if err := tw.WriteHeader(header(e, opts.ModTime)); err != nil {
			return fmt.Errorf("writing %s: %w", e.Path, err)
		}
		if e.Type != tar.TypeReg || e.Size == 0 {
			return nil
		}
		rc, err := e.Open()
		if err != nil {
			return fmt.Errorf("opening %s: %w", e.Path, err)
		}
		defer rc.Close()
		n, err := io.Copy(tw, rc)
		if err != nil {
			return fmt.Errorf("writing %s: %w", e.Path, err)
		}
		if n != e.Size {
			return fmt.Errorf("writing %s: content is %d bytes, expected %d", e.Path, n, e.Size)
		}
		return nil
	}
	i, j := 0, 0
	var entries []spooled
	if base != nil {
		entries = base.entries
	}
	for i < len(entries) || j < len(ov) {
		if err := ctx.Err(); err != nil {
			return err
		}
		switch {
		case j >= len(ov) || (i < len(entries) && entries[i].Path < ov[j].Path):
			e := entries[i].Entry
			i++
			if removed(e.Path) {
				continue
			}
			if e.Type == tar.TypeLink && removed(e.Linkname) {
				return fmt.Errorf("removing %s would break the hardlink %s", e.Linkname, e.Path)
			}
			if err := emit(&e); err != nil {
				return err
			}
		default:
			if i < len(entries) && entries[i].Path == ov[j].Path {
				i++ // replaced
			}
			e := ov[j]
			j++
			if err := emit(&e); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

func prepareOverlay(base *Base, overlay []entry.Entry) ([]entry.Entry, error) {
	byPath := map[string]entry.Entry{}
	for _, e := range overlay {
		p, err := entry.CleanPath(e.Path)
		if err != nil {
			return nil, err
		}
		if p != e.Path {
			return nil, fmt.Errorf("overlay path %q is not absolute and clean (%q)", e.Path, p)
		}
		if e.Type == tar.TypeLink {
			return nil, fmt.Errorf("overlay entry %s: hardlinks are not supported in overlays", p)
		}
		if e.Type == tar.TypeReg && e.Open == nil {
			return nil, fmt.Errorf("overlay entry %s: no content", p)
		}
		if prev, dup := byPath[p]; dup && !(prev.Type == tar.TypeDir && e.Type == tar.TypeDir) {
			return nil, fmt.Errorf("overlay entry %s is given twice", p)
		}
		byPath[p] = e
	}
	lookup := func(p string) (entry.Entry, bool) {
		if e, ok := byPath[p]; ok {
			return e, true
		}
		if base != nil {
			return base.Lookup(p)
		}
		return entry.Entry{}, false
	}
	for p, e := range byPath {
		if base != nil {
			if old, ok := base.Lookup(p); ok && old.Type == tar.TypeDir && e.Type != tar.TypeDir {
				return nil, fmt.Errorf("overlay entry %s would replace a directory of the base", p)
			}
		}
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			parent, ok := lookup(d)
			if !ok {
				byPath[d] = entry.Dir(d, 0o755)
				continue
			}
			if parent.Type == tar.TypeSymlink {
				return nil, fmt.Errorf("overlay entry %s: its parent %s is a symlink to %s in the base; use the real path", p, d, parent.Linkname)
			}
			if parent.Type != tar.TypeDir {
				return nil, fmt.Errorf("overlay entry %s: its parent %s is not a directory", p, d)
			}
		}
	}
	out := make([]entry.Entry, 0, len(byPath))
	for _, e := range byPath {
		out = append(out, e)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Path < out[b].Path })
	return out, nil
}

// IsUnder reports whether p is dir or inside it.
func IsUnder(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}
