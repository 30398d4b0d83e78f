// Package sysupdate describes the updates of a verified nodebake disk (see
// builder/disk, Image.Verified) for systemd-sysupdate: the transfer
// definitions the image carries under /usr/lib/sysupdate.d, and the names of
// the artifacts a published update consists of.
//
// An update of version V is three files next to a SHA256SUMS manifest:
//
//	<name>_<V>_<data-uuid>.root.raw     the root filesystem (squashfs)
//	<name>_<V>_<hash-uuid>.verity.raw   its dm-verity hash device
//	<name>_<V>.efi                      the UKI (signed, when signing)
//
// where the two UUIDs are the halves of the root hash: sysupdate sets them
// as the PARTUUIDs of the slot it writes (the @u of the source pattern),
// so the UKI's roothash= finds the new root as it finds the first. The
// transfers write the root and its tree into the "_empty" (or the oldest
// unprotected) slot, labelled <name>_<V> and <name>_<V>_verity, and the
// UKI to /EFI/Linux/<name>_<V>+<tries>.efi: systemd-boot then tries the
// new version first and falls back to the running one when its tries run
// out. The transfer of the UKI comes last (sysupdate installs in file-name
// order), so a version never becomes bootable before its root is in place.
package sysupdate

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/nodebake/nodebake/builder/disk"
)

// Dir is where the image carries the transfer definitions.
const Dir = "/usr/lib/sysupdate.d"

// Artifact name suffixes.
const (
	RootSuffix   = ".root.raw"
	VeritySuffix = ".verity.raw"
	UKISuffix    = ".efi"
)

// Config describes where updates come from and how they are installed.
type Config struct {
	// Name is the image name (disk.Verified.Name).
	Name string
	// Source is the URL of the directory holding SHA256SUMS and the
	// artifacts: https, or http to a loopback address or with AllowHTTP.
	Source string
	// AllowHTTP accepts a plain http Source (tests: a server the guest
	// reaches through QEMU's user network). Without Verify and Secure
	// Boot, whoever is on the path can then install anything.
	AllowHTTP bool
	// Tries is the number of boot attempts a new version gets (1..9).
	Tries int
	// Verify makes sysupdate check SHA256SUMS.gpg against its keyring;
	// without it only the artifacts' checksums in SHA256SUMS are checked.
	Verify bool
}

// File is one transfer definition.
type File struct {
	Path    string // absolute path in the image
	Content string
}

// Validate checks c.
func (c Config) Validate() error {
	var errs []error
	if c.Name == "" || strings.ContainsFunc(c.Name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-')
	}) {
		errs = append(errs, fmt.Errorf("sysupdate: name %q: want lower-case letters, digits and '-'", c.Name))
	}
	if err := checkSource(c.Source, c.AllowHTTP); err != nil {
		errs = append(errs, err)
	}
	if c.Tries < 1 || c.Tries > disk.MaxTries {
		errs = append(errs, fmt.Errorf("sysupdate: tries %d is outside 1..%d", c.Tries, disk.MaxTries))
	}
	return errors.Join(errs...)
}

// checkSource accepts an https URL, or http to a loopback host or when
// allowed.
func checkSource(s string, allowHTTP bool) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("sysupdate: source %q: %w", s, err)
	}
	switch {
	case u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("sysupdate: source %q: want scheme://host/path, without user, query or fragment", s)
	case strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return fmt.Errorf("sysupdate: source %q contains white space or a control character", s)
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && (allowHTTP || u.Hostname() == "localhost" || strings.HasPrefix(u.Hostname(), "127.") || u.Hostname() == "::1"):
		return nil
	}
	return fmt.Errorf("sysupdate: source %q: want https (http only to a loopback address, or with AllowHTTP)", s)
}

// Transfers returns the transfer definitions, in the order sysupdate runs
// them (root, its hash tree, then the UKI).
func Transfers(c Config) ([]File, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	src := strings.TrimSuffix(c.Source, "/")
	verify := "no"
	if c.Verify {
		verify = "yes"
	}
	head := "# nodebake: generated; see systemd-sysupdate(8) and sysupdate.d(5).\n[Transfer]\nProtectVersion=%A\nVerify=" + verify + "\n\n"
	source := func(pattern string) string {
		return "[Source]\nType=url-file\nPath=" + src + "\nMatchPattern=" + pattern + "\n\n"
	}
	n := c.Name
	partition := func(typ, label string) string {
		return "[Target]\nType=partition\nPath=auto\nMatchPartitionType=" + typ +
			"\nMatchPattern=" + label + "\nReadOnly=yes\n"
	}
	tries := strconv.Itoa(c.Tries)
	return []File{
		{Dir + "/10-" + n + "-root.transfer", head +
			source(n+"_@v_@u"+RootSuffix) +
			partition("root", disk.Label(n, "@v", false))},
		{Dir + "/20-" + n + "-root-verity.transfer", head +
			source(n+"_@v_@u"+VeritySuffix) +
			partition("root-verity", disk.Label(n, "@v", true))},
		{Dir + "/90-" + n + "-uki.transfer", head +
			source(n+"_@v"+UKISuffix) +
			"[Target]\nType=regular-file\nPath=" + disk.UKIDir + "\nPathRelativeTo=boot\n" +
			"MatchPattern=" + n + "_@v+@l-@d.efi " + n + "_@v+@l.efi " + n + "_@v.efi\n" +
			"Mode=0444\nTriesLeft=" + tries + "\nTriesDone=0\nInstancesMax=2\n"},
	}, nil
}

// Artifacts returns the file names of the update of version with the
// given root hash (hex): root filesystem, hash device, UKI.
func Artifacts(name, version, rootHash string) (root, verity, uki string, err error) {
	if len(rootHash) != 64 || strings.Trim(rootHash, "0123456789abcdef") != "" {
		return "", "", "", fmt.Errorf("sysupdate: root hash %q is not 64 lower-case hex digits", rootHash)
	}
	data, err := uuid.Parse(rootHash[:32])
	if err != nil {
		return "", "", "", err
	}
	hash, err := uuid.Parse(rootHash[32:])
	if err != nil {
		return "", "", "", err
	}
	return name + "_" + version + "_" + data.String() + RootSuffix,
		name + "_" + version + "_" + hash.String() + VeritySuffix,
		disk.UKIName(name, version, 0), nil
}
