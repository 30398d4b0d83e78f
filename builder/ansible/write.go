package ansible

import (
	"fmt"
	"os"
	"path/filepath"
)

// stager writes files all-or-nothing: each to a temporary name in its
// directory (synced), and only when every one is written are they renamed
// into place. abort removes what was staged.
type stager struct {
	files []stagedFile
	// scratch files are removed however the import ends.
	scratch []string
	// dirs are the directories the stager created, removed again on abort
	// when empty.
	dirs []string
}

type stagedFile struct {
	tmp, final string
}

// mkdirAll creates dir (with perm) and its missing parents (0755),
// remembering what it created.
func (s *stager) mkdirAll(dir string, perm os.FileMode) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := s.mkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(dir, perm); err != nil && !os.IsExist(err) {
		return err
	}
	s.dirs = append([]string{dir}, s.dirs...) // deepest first
	return nil
}

// addScratch writes data to a temporary file in dir that never becomes an
// output (a secret a library reads from a file).
func (s *stager) addScratch(dir string, data []byte) (string, error) {
	if err := s.mkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, ".scratch-*")
	if err != nil {
		return "", err
	}
	s.scratch = append(s.scratch, f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return "", err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return "", err
	}
	return f.Name(), f.Close()
}

// add stages data for final with mode and returns the temporary path.
func (s *stager) add(final string, data []byte, mode os.FileMode) (string, error) {
	var tmp string
	err := s.addFunc(final, mode, func(t string) error {
		tmp = t
		f, err := os.OpenFile(t, os.O_WRONLY|os.O_TRUNC, mode)
		if err != nil {
			return err
		}
		if _, err := f.Write(data); err != nil {
			f.Close()
			return err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
	return tmp, err
}

// addFunc stages final by letting write fill the temporary path, then
// sets its mode.
func (s *stager) addFunc(final string, mode os.FileMode, write func(tmp string) error) error {
	dir := filepath.Dir(final)
	perm := os.FileMode(0o755)
	if mode&0o077 == 0 {
		perm = 0o700
	}
	if err := s.mkdirAll(dir, perm); err != nil {
		return fmt.Errorf("writing %s: %w", final, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(final)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", final, err)
	}
	tmp := f.Name()
	f.Close()
	s.files = append(s.files, stagedFile{tmp: tmp, final: final})
	if err := os.Chmod(tmp, mode); err != nil {
		return fmt.Errorf("writing %s: %w", final, err)
	}
	if err := write(tmp); err != nil {
		return fmt.Errorf("writing %s: %w", final, err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fmt.Errorf("writing %s: %w", final, err)
	}
	return nil
}

// commit renames every staged file into place.
func (s *stager) commit() error {
	for _, p := range s.scratch {
		os.Remove(p)
	}
	s.scratch = nil
	for i, f := range s.files {
		if err := os.Rename(f.tmp, f.final); err != nil {
			s.files = s.files[i:]
			return fmt.Errorf("writing %s: %w", f.final, err)
		}
	}
	s.files, s.dirs = nil, nil
	return nil
}

// abort removes what is still staged, and the directories made for it.
func (s *stager) abort() {
	for _, p := range s.scratch {
		os.Remove(p)
	}
	for _, f := range s.files {
		os.Remove(f.tmp)
	}
	for _, d := range s.dirs {
		os.Remove(d) // only when empty
	}
	s.files, s.scratch, s.dirs = nil, nil, nil
}
