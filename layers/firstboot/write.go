package firstboot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
)

// How a commit works (all or nothing, also across a crash):
//
//  1. Plan: the files whose content, mode or owner differ, and the files to
//     remove. Unchanged files are left alone, so later boots write nothing.
//  2. Stage: each new file is written to ".NAME.nodebake-new" in its
//     directory and synced; each file that is replaced or removed gets a
//     hard link ".NAME.nodebake-old" (its backup); the directories are
//     synced.
//  3. Journal: CommitJournalPath lists every file of the commit and whether
//     it had a backup; it is written to a temporary name, synced and
//     renamed, so it appears whole. Until here nothing has changed.
//  4. Apply: each staged file is renamed over its final name (or the file
//     removed); the directories are synced.
//  5. Finish: the journal is removed (the commit point), then the backups.
//
// If a step of 4 fails, or the caller asks for it, the commit is rolled
// back from the journal: each backup is renamed back over its file, files
// without one are removed, leftover staged files are removed, and then the
// journal. If the machine stops anywhere in 4 or 5, the next run finds the
// journal before it touches anything else and rolls back the same way, so
// the files are entirely the old set; then it writes the new set again.
// Backups live next to their files, on the same filesystem: files under
// /run are gone after a crash anyway, and the next run writes them anew.
// If a rollback cannot complete, the journal stays and the next run
// retries it.

const (
	stagedSuffix = ".nodebake-new"
	backupSuffix = ".nodebake-old"
)

func stagedName(p string) string {
	return path.Join(path.Dir(p), "."+path.Base(p)+stagedSuffix)
}

func backupName(p string) string {
	return path.Join(path.Dir(p), "."+path.Base(p)+backupSuffix)
}

// fileOps are the calls that change files. Tests replace them to make any
// one of them fail.
type fileOps struct {
	// writeFile creates name (replacing a leftover), writes data, sets mode
	// and, when chown, owner root and group gid, and syncs it.
	writeFile func(name string, data []byte, mode os.FileMode, chown bool, gid int) error
	rename    func(oldpath, newpath string) error
	link      func(oldname, newname string) error
	remove    func(name string) error
	syncDir   func(dir string) error
}

func osFileOps() fileOps {
	return fileOps{
		writeFile: writeFileSynced,
		rename:    os.Rename,
		link:      os.Link,
		remove:    os.Remove,
		syncDir:   syncDir,
	}
}

func writeFileSynced(name string, data []byte, mode os.FileMode, chown bool, gid int) (err error) {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if errors.Is(err, fs.ErrExist) {
		if err = os.Remove(name); err == nil {
			f, err = os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
		}
	}
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(name)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if chown {
		if err := f.Chown(0, gid); err != nil {
			return err
		}
	}
	if err := f.Chmod(mode); err != nil {
		return err
	}
	return f.Sync()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// writer writes files under root; every path it is given and every path
// its errors name is as the image sees it.
type writer struct {
	root  string
	chown bool
	ops   fileOps
	gids  map[string]int
}

func newWriter(opts Options) *writer {
	ops := osFileOps()
	if opts.fileOps != nil {
		ops = *opts.fileOps
	}
	return &writer{root: opts.Root, chown: opts.Chown, ops: ops}
}

// real returns the host path of an image path.
func (w *writer) real(p string) string { return filepath.Join(w.root, p) }

// errorAt describes a failed operation on an image path without the root
// prefix: the cause of a path error, not its path.
func errorAt(what, p string, err error) error {
	var pe *fs.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		err = pe.Err
	case errors.As(err, &le):
		err = le.Err
	}
	return fmt.Errorf("%s %s: %w", what, p, err)
}

func (w *writer) gid(group string) (int, error) {
	if group == "" {
		return 0, nil
	}
	if gid, ok := w.gids[group]; ok {
		return gid, nil
	}
	b, err := nodeconfig.ReadRegularFile(w.real("/etc/group"), nodeconfig.MaxSize)
	if err != nil {
		return 0, fmt.Errorf("looking up group %s in /etc/group: %w", group, err)
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

// writeOne writes one file atomically: staged, renamed, its directory
// synced. It is for files outside a commit (the status, node-ready).
func (w *writer) writeOne(f File) error {
	if err := os.MkdirAll(w.real(path.Dir(f.Path)), 0o755); err != nil {
		return errorAt("creating", path.Dir(f.Path), err)
	}
	gid, err := w.gid(f.Group)
	if err != nil {
		return fmt.Errorf("writing %s: %w", f.Path, err)
	}
	tmp := stagedName(f.Path)
	if err := w.ops.writeFile(w.real(tmp), f.Data, f.Mode, w.chown, gid); err != nil {
		return errorAt("writing", tmp, err)
	}
	if err := w.ops.rename(w.real(tmp), w.real(f.Path)); err != nil {
		w.ops.remove(w.real(tmp))
		return errorAt("renaming into", f.Path, err)
	}
	if err := w.ops.syncDir(w.real(path.Dir(f.Path))); err != nil {
		return errorAt("syncing", path.Dir(f.Path), err)
	}
	return nil
}

// unchanged reports whether the file at p already has f's content, mode
// and (when chowning) owner.
func (w *writer) unchanged(f File) bool {
	final := w.real(f.Path)
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

// journal is a commit in progress, as CommitJournalPath holds it.
type journal struct {
	Files []journalEntry `json:"files"`
}

type journalEntry struct {
	Path string `json:"path"`
	// Backup says that the file existed and has a backup.
	Backup bool `json:"backup"`
}

// change is one file of a commit: written from File, or removed.
type change struct {
	File
	remove bool
	backup bool
}

// commit is a planned and staged set of changes.
type commit struct {
	w       *writer
	changes []change
}

// begin plans, stages and journals a commit that writes files and removes
// the files named in remove (when they exist). Nothing is changed when it
// fails.
func (w *writer) begin(files []File, remove []string) (*commit, error) {
	c := &commit{w: w}
	for _, f := range files {
		if w.unchanged(f) {
			continue
		}
		_, err := os.Lstat(w.real(f.Path))
		c.changes = append(c.changes, change{File: f, backup: err == nil})
	}
	for _, p := range remove {
		if _, err := os.Lstat(w.real(p)); err == nil {
			c.changes = append(c.changes, change{File: File{Path: p}, remove: true, backup: true})
		}
	}
	if len(c.changes) == 0 {
		return c, nil
	}
	if err := c.stage(); err != nil {
		c.clean()
		return nil, err
	}
	return c, nil
}

func (c *commit) dirs() []string {
	var dirs []string
	for _, ch := range c.changes {
		if d := path.Dir(ch.Path); !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

func (c *commit) stage() error {
	w := c.w
	for _, ch := range c.changes {
		// Leftovers of a run that stopped before its journal was written.
		w.ops.remove(w.real(stagedName(ch.Path)))
		w.ops.remove(w.real(backupName(ch.Path)))
	}
	for _, ch := range c.changes {
		if ch.remove {
			continue
		}
		if err := os.MkdirAll(w.real(path.Dir(ch.Path)), 0o755); err != nil {
			return errorAt("creating", path.Dir(ch.Path), err)
		}
		gid, err := w.gid(ch.Group)
		if err != nil {
			return fmt.Errorf("writing %s: %w", ch.Path, err)
		}
		if err := w.ops.writeFile(w.real(stagedName(ch.Path)), ch.Data, ch.Mode, w.chown, gid); err != nil {
			return errorAt("writing", stagedName(ch.Path), err)
		}
	}
	for _, ch := range c.changes {
		if ch.backup {
			if err := w.ops.link(w.real(ch.Path), w.real(backupName(ch.Path))); err != nil {
				return errorAt("keeping a backup of", ch.Path, err)
			}
		}
	}
	for _, d := range c.dirs() {
		if err := w.ops.syncDir(w.real(d)); err != nil {
			return errorAt("syncing", d, err)
		}
	}
	var j journal
	for _, ch := range c.changes {
		j.Files = append(j.Files, journalEntry{Path: ch.Path, Backup: ch.backup})
	}
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the commit journal: %w", err)
	}
	return w.writeOne(File{Path: CommitJournalPath, Mode: 0o600, Data: append(b, '\n')})
}

// clean removes what stage made, after it failed: no file was replaced.
func (c *commit) clean() {
	w := c.w
	for _, ch := range c.changes {
		w.ops.remove(w.real(stagedName(ch.Path)))
		if ch.backup {
			w.ops.remove(w.real(backupName(ch.Path)))
		}
	}
	w.ops.remove(w.real(stagedName(CommitJournalPath)))
	w.ops.remove(w.real(CommitJournalPath)) // only there if its directory could not be synced
}

// apply puts every staged file in place (or removes it); on failure it
// rolls the commit back.
func (c *commit) apply() error {
	w := c.w
	for _, ch := range c.changes {
		var err error
		if ch.remove {
			if err = w.ops.remove(w.real(ch.Path)); err != nil {
				err = errorAt("removing", ch.Path, err)
			}
		} else if err = w.ops.rename(w.real(stagedName(ch.Path)), w.real(ch.Path)); err != nil {
			err = errorAt("renaming into", ch.Path, err)
		}
		if err != nil {
			return errors.Join(err, c.rollback())
		}
	}
	for _, d := range c.dirs() {
		if err := w.ops.syncDir(w.real(d)); err != nil {
			return errors.Join(errorAt("syncing", d, err), c.rollback())
		}
	}
	return nil
}

// rollback restores the old files from the journal's commit.
func (c *commit) rollback() error {
	if len(c.changes) == 0 {
		return nil
	}
	var j journal
	for _, ch := range c.changes {
		j.Files = append(j.Files, journalEntry{Path: ch.Path, Backup: ch.backup})
	}
	return c.w.restore(j)
}

// finish ends the commit: the journal goes (the commit point), then the
// backups. If the journal cannot be removed, the commit is rolled back.
func (c *commit) finish() error {
	if len(c.changes) == 0 {
		return nil
	}
	w := c.w
	if err := w.ops.remove(w.real(CommitJournalPath)); err != nil {
		return errors.Join(errorAt("removing", CommitJournalPath, err), c.rollback())
	}
	// If the journal's removal is not durable, a crash rolls back to the
	// old set, which is whole too: the error does not matter.
	_ = w.ops.syncDir(w.real(path.Dir(CommitJournalPath)))
	for _, ch := range c.changes {
		if ch.backup {
			w.ops.remove(w.real(backupName(ch.Path))) // a leftover is removed by the next commit
		}
	}
	return nil
}

// restore rolls back the commit j describes, whatever part of it was
// applied: backups go back over their files, files without a backup are
// removed, staged files are removed, then the journal. On failure the
// journal stays, for the next run to retry.
func (w *writer) restore(j journal) error {
	var errs []error
	gone := func(err error) bool { return err == nil || errors.Is(err, fs.ErrNotExist) }
	var dirs []string
	for _, e := range slices.Backward(j.Files) {
		p := e.Path
		if d := path.Dir(p); !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
		if e.Backup {
			// If the file was never replaced, the backup is a second
			// link to it, the rename does nothing and the backup stays:
			// it is removed after.
			if err := w.ops.rename(w.real(backupName(p)), w.real(p)); !gone(err) {
				errs = append(errs, errorAt("restoring", p, err))
				continue
			}
			if err := w.ops.remove(w.real(backupName(p))); !gone(err) {
				errs = append(errs, errorAt("removing the backup of", p, err))
			}
		} else if err := w.ops.remove(w.real(p)); !gone(err) {
			errs = append(errs, errorAt("removing", p, err))
		}
		if err := w.ops.remove(w.real(stagedName(p))); !gone(err) {
			errs = append(errs, errorAt("removing", stagedName(p), err))
		}
	}
	for _, d := range dirs {
		if err := w.ops.syncDir(w.real(d)); !gone(err) {
			errs = append(errs, errorAt("syncing", d, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("rolling back to the previous files (the next run retries): %w", errors.Join(errs...))
	}
	if err := w.ops.remove(w.real(CommitJournalPath)); !gone(err) {
		return fmt.Errorf("rolling back to the previous files: %w", errorAt("removing", CommitJournalPath, err))
	}
	return nil
}

// recover rolls back a commit that a previous run did not finish (the
// machine stopped, or its rollback failed), so that the files are the
// whole old set again.
func (w *writer) recover() error {
	data, err := nodeconfig.ReadRegularFile(w.real(CommitJournalPath), 64<<10)
	if errors.Is(err, fs.ErrNotExist) {
		w.removeLeftovers()
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the commit journal %s: %w", CommitJournalPath, err)
	}
	var j journal
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("reading the commit journal %s: %w", CommitJournalPath, err)
	}
	for _, e := range j.Files {
		if !committed(e.Path) {
			return fmt.Errorf("the commit journal %s names %q, which first boot does not write", CommitJournalPath, e.Path)
		}
	}
	if err := w.restore(j); err != nil {
		return fmt.Errorf("finishing the interrupted commit in %s: %w", CommitJournalPath, err)
	}
	w.removeLeftovers()
	return nil
}

// removeLeftovers removes staged files and backups that a run left when
// it stopped before writing its journal or after removing it: without a
// journal they belong to no commit.
func (w *writer) removeLeftovers() {
	dirs := OwnedDirs()
	for _, p := range OwnedFiles() {
		if d := path.Dir(p); !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	for _, d := range dirs {
		for _, suffix := range []string{stagedSuffix, backupSuffix} {
			found, _ := filepath.Glob(filepath.Join(w.real(d), ".*"+suffix))
			for _, f := range found {
				w.ops.remove(f)
			}
		}
	}
}

func (w *writer) writeStatus(st Status) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the status: %w", err)
	}
	return w.writeOne(File{Path: StatusPath, Mode: 0o644, Data: append(b, '\n')})
}

// writeReady writes node-ready; if it cannot be made durable, it is
// removed again.
func (w *writer) writeReady() error {
	err := w.writeOne(File{Path: ReadyPath, Mode: 0o644})
	if err != nil {
		if rerr := w.ops.remove(w.real(ReadyPath)); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = errors.Join(err, errorAt("removing", ReadyPath, rerr))
		}
	}
	return err
}

// Summary is a one-line description of a successful run.
func (st Status) Summary() string {
	s := fmt.Sprintf("node %s configured from %s (%d files)", st.NodeName, st.Source, len(st.Files))
	if st.Clock != nil {
		s += " after it " + st.Clock.Message
	}
	return s
}
