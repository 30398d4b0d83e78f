package build

import (
	"io/fs"
	"path"

	"github.com/nodebake/nodebake/layers/entry"
	"github.com/nodebake/nodebake/layers/firstboot"
	"github.com/nodebake/nodebake/layers/worker"
)

// firstbootUnits bakes the first-boot program's units, enabled where their
// [Install] section says (sysinit.target).
func firstbootUnits() ([]entry.Entry, error) {
	var out []entry.Entry
	err := fs.WalkDir(firstboot.Units(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(firstboot.Units(), p)
		if err != nil {
			return err
		}
		name := path.Base(p)
		out = append(out,
			entry.File(worker.SystemdUnitDir+"/"+name, 0o644, b),
			entry.Symlink(worker.SystemdUnitDir+"/sysinit.target.wants/"+name, "../"+name))
		return nil
	})
	return out, err
}
