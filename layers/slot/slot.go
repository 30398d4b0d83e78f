// Package slot names the versions of a verified, A/B-updatable image: the
// GPT labels of its root slots, the file names of its Unified Kernel Images
// with systemd-boot's boot counter, and what image names and versions may
// be. The spec checks names and versions with it, the disk writer and the
// update definitions (systemd-sysupdate) lay out and match them: one home
// for the convention all of them and systemd read.
package slot

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
)

const (
	// EmptyLabel is the GPT label of a free slot, the one
	// systemd-sysupdate writes a new version into.
	EmptyLabel = "_empty"
	// VeritySuffix ends the label of a root-verity partition.
	VeritySuffix = "_verity"
	// MaxLabelLength is the length of a GPT partition name in UTF-16 code
	// units (systemd's GPT_LABEL_MAX).
	MaxLabelLength = 36
	// MaxNameLength bounds an image name, leaving room in the labels for
	// the version.
	MaxNameLength = 16
	// UKIDir is where systemd-boot looks for Boot Loader Specification
	// type 2 entries on the ESP.
	UKIDir = "/EFI/Linux"
	// MaxTries bounds the boot attempts a new version gets (systemd-boot's
	// counter is one digit here).
	MaxTries = 9
	// VersionChars are the characters a version may hold besides letters
	// and digits.
	VersionChars = ".~^-"
)

// Label returns the GPT label of the partitions holding version: the root
// <name>_<version>, its verity partition <name>_<version>_verity.
func Label(name, version string, verity bool) string {
	l := name + "_" + version
	if verity {
		l += VeritySuffix
	}
	return l
}

// UKIName returns the file name of the UKI of version under UKIDir, with
// systemd-boot's boot counter "+tries" unless tries is 0.
func UKIName(name, version string, tries int) string {
	n := name + "_" + version
	if tries > 0 {
		n += "+" + strconv.Itoa(tries)
	}
	return n + ".efi"
}

// CheckName checks an image name: lower-case letters, digits and '-',
// starting with a letter, at most MaxNameLength characters. The name is
// IMAGE_ID in os-release and the first part of every label and UKI name.
func CheckName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty image name")
	case len(name) > MaxNameLength:
		return fmt.Errorf("image name %q is longer than %d characters", name, MaxNameLength)
	case name[0] < 'a' || name[0] > 'z' || strings.ContainsFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-')
	}):
		return fmt.Errorf("image name %q: want lower-case letters, digits and '-', starting with a letter", name)
	}
	return nil
}

// CheckVersion checks the version of the image called name: letters,
// digits and VersionChars, starting with a letter or digit; no '_' (it
// separates the parts of a label) and no '+' (it starts systemd-boot's
// counter); short enough for the verity partition's label.
func CheckVersion(name, version string) error {
	switch {
	case version == "":
		return fmt.Errorf("empty version")
	case !isAlnum(rune(version[0])) || strings.ContainsFunc(version, func(r rune) bool {
		return !isAlnum(r) && !strings.ContainsRune(VersionChars, r)
	}):
		return fmt.Errorf("version %q: want letters, digits and %q, starting with a letter or digit", version, VersionChars)
	case len(utf16.Encode([]rune(Label(name, version, true)))) > MaxLabelLength:
		return fmt.Errorf("version %q: the verity partition label %q is longer than %d characters", version, Label(name, version, true), MaxLabelLength)
	}
	return nil
}

func isAlnum(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}
