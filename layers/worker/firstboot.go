package worker

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"

	"github.com/nodebake/nodebake/layers/entry"
	"github.com/nodebake/nodebake/layers/firstboot"
)

// Firstboot returns the first-boot program at program (a
// nodebake-firstboot binary on the build host), baked at
// firstboot.ProgramPath, and its systemd units, enabled where their
// [Install] section says (sysinit.target).
func Firstboot(program string) ([]entry.Entry, error) {
	if program == "" {
		return nil, errors.New("no nodebake-firstboot program given")
	}
	fi, err := os.Stat(program)
	if err != nil {
		return nil, fmt.Errorf("the first-boot program: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("the first-boot program %s is not a regular file", program)
	}
	out := []entry.Entry{{Path: firstboot.ProgramPath, Type: tar.TypeReg, Mode: 0o755, Size: fi.Size(),
		Open: func() (io.ReadCloser, error) { return os.Open(program) }}}
	err = fs.WalkDir(firstboot.Units(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(firstboot.Units(), p)
		if err != nil {
			return err
		}
		name := path.Base(p)
		out = append(out,
			entry.File(SystemdUnitDir+"/"+name, 0o644, b),
			entry.Symlink(SystemdUnitDir+"/sysinit.target.wants/"+name, "../"+name))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("the first-boot units: %w", err)
	}
	return out, nil
}
