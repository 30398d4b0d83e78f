package firstboot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"
)

// writer writes files atomically as a set: stage writes every file to a
// temporary name in its directory (fsynced), commit renames them all into
// place, abort removes the temporaries.
type writer struct {
	root  string
	chown bool
	gids  map[string]int
	temps []staged
}

type staged struct{ tmp, final string }

// write stages and commits files.
func (w *writer) write(files []File) error {
	if err := w.stage(files); err != nil {
		return err
	}
	return w.commit()
}

func (w *writer) stage(files []File) error {
	for _, f := range files {
		if err := w.stageOne(f); err != nil {
			w.abort()
			return err
		}
	}
	return nil
}

func (w *writer) gid(group string) (int, error) {
	if group == "" {
		return 0, nil
	}
	if gid, ok := w.gids[group]; ok {
		return gid, nil
	}
	b, err := os.ReadFile(filepath.Join(w.root, "etc", "group"))
	if err != nil {
		return 0, fmt.Errorf("looking up group %s: %w", group, err)
	}
	gid, err := parseGroup(b, group)
	if err != nil {
		return 0, err
	}
	if w.gids == nil {
		w.gids = map[string]int{}
	}
	w.gids[group] = gid
	return gid, nil
}

func (w *writer) stageOne(f File) (err error) {
	final := filepath.Join(w.root, f.Path)
	dir, base := filepath.Split(final)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(f.Path), err)
	}
	if w.unchanged(final, f) {
		return nil // nothing to do: saves an fsync on every later boot
	}
	// Leftovers of an interrupted run.
	if old, _ := filepath.Glob(filepath.Join(dir, "."+base+".tmp-*")); len(old) > 0 {
		for _, o := range old {
			_ = os.Remove(o)
		}
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", f.Path, err)
	}
	w.temps = append(w.temps, staged{tmp: tmp.Name(), final: final})
	defer func() {
		if cerr := tmp.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("writing %s: %w", f.Path, cerr)
		}
	}()
	if _, err := tmp.Write(f.Data); err != nil {
		return fmt.Errorf("writing %s: %w", f.Path, err)
	}
	if w.chown {
		gid, err := w.gid(f.Group)
		if err != nil {
			return fmt.Errorf("writing %s: %w", f.Path, err)
		}
		if err := tmp.Chown(0, gid); err != nil {
			return fmt.Errorf("writing %s: %w", f.Path, err)
		}
	}
	if err := tmp.Chmod(f.Mode); err != nil {
		return fmt.Errorf("writing %s: %w", f.Path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", f.Path, err)
	}
	return nil
}

// unchanged reports whether final already has f's content, mode and
// (when chowning) owner.
func (w *writer) unchanged(final string, f File) bool {
	info, err := os.Lstat(final)
	if err != nil || !info.Mode().IsRegular() || info.Mode().Perm() != f.Mode.Perm() || info.Size() != int64(len(f.Data)) {
		return false
	}
	if w.chown {
		gid, err := w.gid(f.Group)
		st, ok := info.Sys().(*syscall.Stat_t)
		if err != nil || !ok || st.Uid != 0 || int(st.Gid) != gid {
			return false
		}
	}
	data, err := os.ReadFile(final)
	return err == nil && bytes.Equal(data, f.Data)
}

// commit renames every staged file into place and syncs their directories.
func (w *writer) commit() error {
	dirs := map[string]bool{}
	for i, s := range w.temps {
		if err := os.Rename(s.tmp, s.final); err != nil {
			w.temps = w.temps[i:]
			w.abort()
			return fmt.Errorf("renaming into %s: %w", s.final, err)
		}
		dirs[filepath.Dir(s.final)] = true
	}
	w.temps = nil
	var names []string
	for d := range dirs {
		names = append(names, d)
	}
	sort.Strings(names)
	var errs []error
	for _, d := range names {
		if err := syncDir(d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// abort removes every staged temporary file.
func (w *writer) abort() {
	for _, s := range w.temps {
		_ = os.Remove(s.tmp)
	}
	w.temps = nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

func writeStatus(opts Options, st Status) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the status: %w", err)
	}
	w := &writer{root: opts.Root, chown: opts.Chown}
	return w.write([]File{{Path: StatusPath, Mode: 0o644, Data: append(b, '\n')}})
}

// Summary is a one-line description of a successful run.
func (st Status) Summary() string {
	return fmt.Sprintf("node %s configured from %s (%d files)", st.NodeName, st.Source, len(st.Files))
}
