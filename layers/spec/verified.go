package spec

import (
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"

	"github.com/nodebake/nodebake/layers/slot"
)

// VerifiedBoot configures a verified, A/B-updatable image.
type VerifiedBoot struct {
	// Enabled turns verified boot on: the root is checked block by block
	// by dm-verity against a root hash that the Unified Kernel Image's
	// command line carries, and the disk has a second, empty root slot
	// for updates.
	Enabled bool `yaml:"enabled"`
	// Version is the image's version (IMAGE_VERSION in os-release, part of
	// the slot labels and the UKI's name): letters, digits and ".~^-",
	// starting with a letter or digit. Required when enabled. A node
	// installs a published version only when it compares newer than the
	// one it runs (systemd's version comparison, like "sort -V"): give
	// each build a higher version, e.g. 1.35.4-2.
	Version string `yaml:"version,omitempty"`
	// SlotSize is the size of each of the two root slots, a multiple of
	// 1MiB. An update whose root does not fit the slot cannot be
	// installed, so give a fleet room to grow; the default is the root's
	// size plus half again. The image file is sparse: the empty slot costs
	// nothing until written.
	SlotSize Size `yaml:"slotSize,omitempty"`
	// Tries is how many boots a newly installed version gets to become
	// healthy (kubelet running with the node's configuration) before
	// systemd-boot falls back to the previous one (1..9, default 3). The
	// image as built boots without a counter.
	Tries int `yaml:"tries,omitempty"`
	// Signing, when set, signs systemd-boot and the UKI for UEFI Secure
	// Boot. The key is read only to sign and never enters the image; a
	// build without signing reads no key. nodebake build's --signing-key
	// and --signing-cert take precedence.
	Signing *Signing `yaml:"signing,omitempty"`
	// Updates, when set, make the image look for newer versions at a URL
	// (systemd-sysupdate): nodebake-update.service downloads one into the
	// other slot and reboots into it.
	Updates *Updates `yaml:"updates,omitempty"`
}

// Signing names the Secure Boot signing key and its certificate.
type Signing struct {
	// Key is the PEM private key (RSA, unencrypted), relative to the
	// spec's directory; it must be readable by its owner only (mode 0600
	// or 0400).
	Key string `yaml:"key"`
	// Certificate is the key's PEM certificate, the one enrolled in the
	// firmware's db.
	Certificate string `yaml:"certificate"`
}

// Updates say where nodes find newer versions of the image and when they
// look.
type Updates struct {
	// Source is the URL of the directory an update is published in (the
	// files of the update format, with SHA256SUMS): https, without user,
	// query or fragment.
	Source string `yaml:"source"`
	// AllowHTTP accepts a plain http source. Only on a network you trust:
	// the downloads are checked against SHA256SUMS, which comes over the
	// same connection.
	AllowHTTP bool `yaml:"allowHTTP,omitempty"`
	// Timer is when nodes look for an update on their own and install it
	// (then reboot, without draining the node): a systemd OnCalendar
	// expression such as "daily" or "Sat *-*-* 03:00", checked at build
	// time (times are UTC, the image's clock; no other time zone). Empty
	// (the default) leaves updates to "systemctl start nodebake-update"
	// after a drain.
	Timer string `yaml:"timer,omitempty"`
}

// Limits and defaults of verified boot.
const (
	DefaultTries = 3
	MinTries     = 1
	MaxTries     = slot.MaxTries
	MinSlotSize  = 64 * MiB
	MaxSlotSize  = 1 * TiB
	// MaxTimerLength bounds updates.timer.
	MaxTimerLength = 128
	// TimerChars are the characters an OnCalendar expression may hold
	// besides letters and digits.
	TimerChars   = " *:,./~+-"
	maxURLLength = 2048
)

// VerifiedBootEnabled reports whether the spec asks for a verified image.
func (s *Spec) VerifiedBootEnabled() bool {
	return s.Output.VerifiedBoot != nil && s.Output.VerifiedBoot.Enabled
}

func (v *VerifiedBoot) defaults() {
	if v.Tries == 0 {
		v.Tries = DefaultTries
	}
}

// CheckUpdateSource checks where updates come from: an https URL, or
// plain http when allowed.
func CheckUpdateSource(src string, allowHTTP bool) error {
	if len(src) > maxURLLength {
		return fmt.Errorf("longer than %d characters", maxURLLength)
	}
	if strings.ContainsFunc(src, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("%q contains white space or a control character", src)
	}
	u, err := url.Parse(src)
	switch {
	case err != nil:
		return fmt.Errorf("%q is not a URL: %v", src, err)
	case u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return fmt.Errorf("%q: want https://host/path, without user, query or fragment", src)
	case u.Scheme == "https", u.Scheme == "http" && allowHTTP:
		return nil
	case u.Scheme == "http":
		return fmt.Errorf("%q is plain http: use https, or set allowHTTP on a network you trust", src)
	}
	return fmt.Errorf("%q: want an https URL", src)
}

// CheckTimer checks an OnCalendar expression: its length, its characters
// and its grammar (see checkCalendar), so that a timer the node's systemd
// would refuse is refused at build time.
func CheckTimer(t string) error {
	switch {
	case strings.TrimSpace(t) == "":
		return fmt.Errorf("empty")
	case len(t) > MaxTimerLength:
		return fmt.Errorf("longer than %d characters", MaxTimerLength)
	case strings.ContainsFunc(t, func(r rune) bool {
		return !isASCIIAlnum(r) && !strings.ContainsRune(TimerChars, r)
	}):
		return fmt.Errorf("%q: want a systemd calendar expression (letters, digits and %q)", t, TimerChars)
	}
	return checkCalendar(t)
}

func isASCIIAlnum(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}

// CheckKeyFile checks that the file at p is a regular file readable by its
// owner only (the key must not have been shared by its mode).
func CheckKeyFile(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	return CheckKeyMode(p, fi)
}

// CheckKeyMode checks the file info of a signing key file at p.
func CheckKeyMode(p string, fi fs.FileInfo) error {
	switch {
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file", p)
	case fi.Mode().Perm()&0o077 != 0:
		return fmt.Errorf("%s has mode %04o: a signing key must be readable by its owner only (chmod 600)", p, fi.Mode().Perm())
	}
	return nil
}

func (s *Spec) validateVerifiedBoot(errs *errorList) {
	v := s.Output.VerifiedBoot
	if v == nil {
		return
	}
	const p = "output.verifiedBoot"
	if v.Enabled {
		if err := slot.CheckName(s.Name); err != nil {
			errs.add("name", "with %s: %v", p, err)
		}
		if v.Version == "" {
			errs.add(p+".version", "required with verified boot (each build a higher version)")
		}
	}
	if v.Version != "" {
		name := s.Name
		if slot.CheckName(name) != nil {
			name = "x" // the name's own problem is reported above
		}
		if err := slot.CheckVersion(name, v.Version); err != nil {
			errs.add(p+".version", "%v", err)
		}
	}
	if v.SlotSize != 0 {
		checkSize(errs, p+".slotSize", v.SlotSize, MinSlotSize, MaxSlotSize)
	}
	if v.Tries < MinTries || v.Tries > MaxTries {
		errs.add(p+".tries", "%d is out of range %d..%d", v.Tries, MinTries, MaxTries)
	}
	if sg := v.Signing; sg != nil {
		if sg.Key == "" {
			errs.add(p+".signing.key", "required with signing")
		} else if err := CheckKeyFile(s.ResolvePath(sg.Key)); err != nil {
			errs.add(p+".signing.key", "%v", err)
		}
		if sg.Certificate == "" {
			errs.add(p+".signing.certificate", "required with signing")
		} else if fi, err := os.Stat(s.ResolvePath(sg.Certificate)); err != nil {
			errs.add(p+".signing.certificate", "%v", err)
		} else if !fi.Mode().IsRegular() {
			errs.add(p+".signing.certificate", "%s is not a regular file", sg.Certificate)
		}
	}
	if u := v.Updates; u != nil {
		if u.Source == "" {
			errs.add(p+".updates.source", "required with updates")
		} else if err := CheckUpdateSource(u.Source, u.AllowHTTP); err != nil {
			errs.add(p+".updates.source", "%v", err)
		}
		if u.Timer != "" {
			if err := CheckTimer(u.Timer); err != nil {
				errs.add(p+".updates.timer", "%v", err)
			}
		}
	}
}
