package worker

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/nodebake/nodebake/layers/entry"
	"github.com/nodebake/nodebake/layers/firstboot"
	"github.com/nodebake/nodebake/layers/firstboot/growvar"
)

// Firstboot returns the first-boot program at program (a
// nodebake-firstboot binary on the build host), baked at
// firstboot.ProgramPath, its systemd units, each enabled where its
// [Install] section's WantedBy= says (a unit without one is pulled in by
// another: nodebake-grow-var.service by /var's fstab line), and the
// systemd-repart definition that grows /var.
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
	for _, u := range firstboot.UnitFiles() {
		out = append(out, entry.File(SystemdUnitDir+"/"+u.Name, 0o644, u.Content))
		for _, target := range u.WantedBy {
			out = append(out, entry.Symlink(SystemdUnitDir+"/"+target+".wants/"+u.Name, "../"+u.Name))
		}
	}
	out = append(out, entry.File(growvar.DefinitionsDir+"/"+growvar.DefinitionFile, 0o644, []byte(growvar.Definition)))
	return out, nil
}
