package nodebake

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nodebake/nodebake/layers/spec"
	"github.com/nodebake/nodebake/plugin/embedded"
)

// FirstbootName is the first-boot program's file name.
const FirstbootName = "nodebake-firstboot"

// firstbootProgram is the first-boot program a build bakes into the
// image: the one firstboot_binary names, or else the one embedded in the
// plugin for the image's architecture.
type firstbootProgram struct {
	// path is the configured program; empty for the embedded one.
	path string
	// arch is the image's architecture, for the embedded program.
	arch spec.Arch
}

// findFirstboot checks the configured program, or that the plugin embeds
// one for arch.
func findFirstboot(configured string, arch spec.Arch) (firstbootProgram, error) {
	if configured != "" {
		if err := checkProgram(configured); err != nil {
			return firstbootProgram{}, fmt.Errorf("firstboot_binary: %w", err)
		}
		abs, err := filepath.Abs(configured)
		if err != nil {
			return firstbootProgram{}, fmt.Errorf("firstboot_binary: %w", err)
		}
		return firstbootProgram{path: abs}, nil
	}
	if _, err := embedded.Firstboot(string(arch)); err != nil {
		return firstbootProgram{}, err
	}
	return firstbootProgram{arch: arch}, nil
}

// String says which program it is.
func (f firstbootProgram) String() string {
	if f.path != "" {
		return f.path
	}
	return embedded.Describe(string(f.arch))
}

// writeTo returns the program's path: the configured file, or the
// embedded program written into dir (mode 0755).
func (f firstbootProgram) writeTo(dir string) (string, error) {
	if f.path != "" {
		return f.path, nil
	}
	b, err := embedded.Firstboot(string(f.arch))
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, FirstbootName)
	if err := os.WriteFile(p, b, 0o755); err != nil {
		return "", fmt.Errorf("writing the embedded %s: %w", FirstbootName, err)
	}
	return p, nil
}

// checkProgram checks that p is an executable regular file.
func checkProgram(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return errors.New(p + " is not a regular file")
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return errors.New(p + " is not executable")
	}
	return nil
}
