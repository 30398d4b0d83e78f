package nodebake

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// FirstbootName is the first-boot program's file name.
const FirstbootName = "nodebake-firstboot"

// firstbootLookup holds where findFirstboot looks; tests replace the
// defaults.
type firstbootLookup struct {
	// executable returns the plugin's own path.
	executable func() (string, error)
	// lookPath searches PATH.
	lookPath func(string) (string, error)
}

func defaultFirstbootLookup() firstbootLookup {
	return firstbootLookup{executable: os.Executable, lookPath: exec.LookPath}
}

// find locates the nodebake-firstboot program: the configured path, else
// next to the plugin's executable (where `make bin` puts it beside
// nodebake), else on PATH. A plugin installed by `packer plugins install`
// is copied into Packer's plugin directory, where nothing sits next to it,
// so PATH is the usual place then.
func (l firstbootLookup) find(configured string) (string, error) {
	if configured != "" {
		if err := checkProgram(configured); err != nil {
			return "", fmt.Errorf("firstboot_binary: %w", err)
		}
		return filepath.Abs(configured)
	}
	var tried []string
	if exe, err := l.executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), FirstbootName)
		if checkProgram(p) == nil {
			return p, nil
		}
		tried = append(tried, p)
	}
	if p, err := l.lookPath(FirstbootName); err == nil {
		if err := checkProgram(p); err == nil {
			return filepath.Abs(p)
		}
	}
	tried = append(tried, "PATH")
	return "", fmt.Errorf("firstboot_binary: the %s program was not found (looked in %v): build it (make bin) and put it on PATH, or set firstboot_binary", FirstbootName, tried)
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
