package firstboot

import (
	"embed"
	"io/fs"
)

//go:embed units/*.service
var units embed.FS

// Units returns the systemd units the image bakes into
// /usr/lib/systemd/system (file name -> content).
func Units() fs.FS {
	sub, err := fs.Sub(units, "units")
	if err != nil {
		return units // cannot happen: "units" is a valid path
	}
	return sub
}
