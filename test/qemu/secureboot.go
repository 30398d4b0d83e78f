package qemu

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nodebake/nodebake/test/secureboot"
)

// SecureBoot boots a guest with UEFI Secure Boot: the Secure Boot build of
// OVMF, which keeps its variable store behind SMM (QEMU's -machine
// q35,smm=on and a secure pflash), and a variable store in which keys are
// enrolled and Secure Boot is enforced (see secureboot.EnrolledVars). The
// firmware then starts only EFI images signed by a key in db, and refuses
// the others ("Access Denied" on the console).
type SecureBoot struct {
	// Vars is the variable store template with the keys enrolled; each
	// VM gets its own copy.
	Vars string
	// Code is the Secure Boot build of OVMF; empty means
	// secureboot.CodeFile.
	Code string
}

// secureBootDefaults sets c.Firmware from c.SecureBoot.
func (c Config) secureBootDefaults() (Config, error) {
	sb := c.SecureBoot
	if sb == nil {
		return c, nil
	}
	if sb.Vars == "" {
		return c, errors.New("qemu config: SecureBoot without a variable store (Vars)")
	}
	if c.Firmware != (Firmware{}) {
		return c, errors.New("qemu config: give the firmware either as Firmware or as SecureBoot, not both")
	}
	if c.Kernel != "" || c.NetBoot {
		return c, errors.New("qemu config: SecureBoot boots the disk through the firmware; it does not go with Kernel or NetBoot")
	}
	code := sb.Code
	if code == "" {
		code = secureboot.CodeFile
	}
	if !fileExists(code) {
		return c, fmt.Errorf("qemu config: the Secure Boot firmware %s is not a regular file (Debian package ovmf)", code)
	}
	if !fileExists(sb.Vars) {
		return c, fmt.Errorf("qemu config: the variable store %s is not a regular file", sb.Vars)
	}
	c.Firmware = Firmware{Code: code, Vars: sb.Vars}
	return c, nil
}

// secureBootArgs turns on SMM and the secure pflash in QEMU's arguments a.
func (c Config) secureBootArgs(a []string) []string {
	if c.SecureBoot == nil {
		return a
	}
	for i := 0; i+1 < len(a); i++ {
		if a[i] == "-machine" && !strings.Contains(a[i+1], secureboot.MachineOptions) {
			a[i+1] += "," + secureboot.MachineOptions
		}
	}
	return append(a, "-global", secureboot.QEMUGlobal)
}
