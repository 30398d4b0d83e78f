package firstboot

import (
	"embed"
	"io/fs"
	"path"
	"strings"
)

//go:embed units/*.service
var units embed.FS

// Units returns the systemd units the image bakes into
// /etc/systemd/system (file name -> content).
func Units() fs.FS {
	sub, err := fs.Sub(units, "units")
	if err != nil {
		return units // cannot happen: "units" is a valid path
	}
	return sub
}

// MetadataGuardUnit is the image's unit that keeps pods away from the
// cloud metadata services (rendered by layers/worker; named here, with
// the other units the image and first boot share, for the spec's managed
// paths).
const MetadataGuardUnit = "nodebake-metadata-guard.service"

// Unit is one of the first-boot units.
type Unit struct {
	Name    string
	Content []byte
	// WantedBy lists the targets its [Install] section names: the image
	// enables it there, as systemctl enable would. Empty for a unit
	// another pulls in (nodebake-grow-var.service, by /var's mount).
	WantedBy []string
}

// UnitFiles returns the first-boot units, in name order.
func UnitFiles() []Unit {
	var out []Unit
	_ = fs.WalkDir(Units(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(Units(), p)
		if err != nil {
			return err
		}
		out = append(out, Unit{Name: path.Base(p), Content: b, WantedBy: WantedBy(string(b))})
		return nil
	})
	return out
}

// WantedBy returns the targets of a unit's [Install] WantedBy= lines.
func WantedBy(unit string) []string {
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
