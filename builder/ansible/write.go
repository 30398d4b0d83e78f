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
}

type stagedFile struct {
	tmp, final string
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
	if err := os.MkdirAll(dir, perm); err != nil {
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
	for i, f := range s.files {
		if err := os.Rename(f.tmp, f.final); err != nil {
			s.files = s.files[i:]
			return fmt.Errorf("writing %s: %w", f.final, err)
		}
	}
	s.files = nil
	return nil
}

// abort removes what is still staged.
func (s *stager) abort() {
	for _, f := range s.files {
		os.Remove(f.tmp)
	}
	s.files = nil
}
