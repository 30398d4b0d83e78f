package worker

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

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
	err = fs.WalkDir(firstboot.Units(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(firstboot.Units(), p)
		if err != nil {
			return err
		}
		name := path.Base(p)
		out = append(out, entry.File(SystemdUnitDir+"/"+name, 0o644, b))
		for _, target := range wantedBy(string(b)) {
			out = append(out, entry.Symlink(SystemdUnitDir+"/"+target+".wants/"+name, "../"+name))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("the first-boot units: %w", err)
	}
	out = append(out, entry.File(growvar.DefinitionsDir+"/"+growvar.DefinitionFile, 0o644, []byte(growvar.Definition)))
	return out, nil
}

// wantedBy returns the targets of a unit's [Install] WantedBy= lines, as
// systemctl enable would link it.
func wantedBy(unit string) []string {
	var targets []string
	section := ""
	for _, line := range strings.Split(unit, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line
			continue
		}
		if v, ok := strings.CutPrefix(line, "WantedBy="); ok && section == "[Install]" {
			targets = append(targets, strings.Fields(v)...)
		}
	}
	return targets
}
