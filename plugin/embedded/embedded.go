// Package embedded holds the nodebake-firstboot programs the plugin bakes
// into images, one per image architecture, so that the plugin needs
// nothing else installed. They are built from this repository's sources by
// scripts/build-firstboot.sh (make plugin-firstboot, which every plugin
// target runs first; scripts/release-plugin.sh for releases) into this
// directory, and embedded when the plugin is compiled: the same sources
// give the same bytes as `make bin`'s bin/nodebake-firstboot.
//
// Building the plugin without them fails with "pattern
// nodebake-firstboot-linux-*: no matching files found": run make
// plugin-firstboot.
package embedded

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"slices"
	"strings"
)

// programs are the embedded first-boot programs, named
// nodebake-firstboot-linux-ARCH.
//
//go:embed nodebake-firstboot-linux-*
var programs embed.FS

// prefix is the programs' file name before the architecture.
const prefix = "nodebake-firstboot-linux-"

// Firstboot returns the embedded first-boot program for images of
// architecture arch (amd64, arm64).
func Firstboot(arch string) ([]byte, error) {
	if strings.ContainsAny(arch, "/*?[\\") || arch == "" {
		return nil, fmt.Errorf("architecture %q", arch)
	}
	b, err := programs.ReadFile(prefix + arch)
	if err != nil {
		return nil, fmt.Errorf("this plugin has no embedded nodebake-firstboot for %s images (it has %s): set firstboot_binary", arch, strings.Join(Arches(), ", "))
	}
	return b, nil
}

// Arches lists the architectures the plugin has a first-boot program for.
func Arches() []string {
	var out []string
	ents, _ := fs.ReadDir(programs, ".")
	for _, e := range ents {
		if a, ok := strings.CutPrefix(e.Name(), prefix); ok {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out
}

// Describe says which program Firstboot(arch) is, for logs: its size and
// sha256.
func Describe(arch string) string {
	b, err := Firstboot(arch)
	if err != nil {
		return err.Error()
	}
	sum := sha256.Sum256(b)
	return fmt.Sprintf("embedded linux/%s, %d bytes, sha256 %s", arch, len(b), hex.EncodeToString(sum[:]))
}
