package build

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/nodebake/nodebake/builder/authenticode"
	"github.com/nodebake/nodebake/builder/disk"
	"github.com/nodebake/nodebake/builder/rootfs"
	"github.com/nodebake/nodebake/builder/sysupdate"
	"github.com/nodebake/nodebake/layers/entry"
	"github.com/nodebake/nodebake/layers/failure"
	"github.com/nodebake/nodebake/layers/spec"
	"github.com/nodebake/nodebake/layers/worker"
)

// VerifiedInfo describes the verified boot chain of an image built with
// output.verifiedBoot.
type VerifiedInfo struct {
	// Version is the image's version (IMAGE_VERSION).
	Version string `json:"version"`
	// RootHash is the dm-verity root hash of the root filesystem (sha256,
	// hex), which the UKI's command line carries.
	RootHash string `json:"rootHash"`
	// HashTreeSize is the size of the hash device (superblock and tree).
	HashTreeSize int64 `json:"hashTreeSize"`
	// SlotSize is the size of each root slot.
	SlotSize int64 `json:"slotSize"`
	// Slots are the root slots: A holds this version, B is empty.
	Slots []SlotInfo `json:"slots"`
	// UKI is the Unified Kernel Image on the ESP.
	UKI UKIInfo `json:"uki"`
	// Cmdline is the kernel command line inside the UKI.
	Cmdline string `json:"cmdline"`
	// Tries is how many boots a newly installed version gets.
	Tries int `json:"tries"`
	// SigningCertificate is the sha256 fingerprint (hex) of the
	// certificate systemd-boot and the UKI are signed with; empty when
	// unsigned.
	SigningCertificate string `json:"signingCertificate,omitempty"`
	// UpdateSource is where the image looks for updates; empty for none.
	UpdateSource string `json:"updateSource,omitempty"`
}

// SlotInfo is one root slot.
type SlotInfo struct {
	Label string `json:"label"`
	// Root and Verity are the partitions' numbers and PARTUUIDs.
	Root           int    `json:"root"`
	RootPartUUID   string `json:"rootPartUUID"`
	Verity         int    `json:"verity"`
	VerityPartUUID string `json:"verityPartUUID"`
}

// UKIInfo is the UKI file.
type UKIInfo struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// stubPaths are systemd-stub in the base, by architecture.
var stubPaths = map[spec.Arch]string{
	spec.ArchAMD64: "/usr/lib/systemd/boot/efi/linuxx64.efi.stub",
	spec.ArchARM64: "/usr/lib/systemd/boot/efi/linuxaa64.efi.stub",
}

// osReleasePaths are where a base keeps os-release (the second usually
// links to the first).
var osReleasePaths = []string{"/usr/lib/os-release", "/etc/os-release"}

// renderVerified adds what a verified image carries in its root: the
// os-release with IMAGE_ID and IMAGE_VERSION (systemd-boot sorts UKIs by
// them, systemd-sysupdate reads the running version from it), the health
// check, the update definitions and units; it finds systemd-stub in the
// base and, when signing, reads the key. Without verified boot it does
// nothing.
func (b *run) renderVerified(context.Context) error {
	s := b.spec
	if !s.VerifiedBootEnabled() {
		return nil
	}
	v := s.Output.VerifiedBoot
	base, paths, err := baseOSRelease(b.base)
	if err != nil {
		return err
	}
	osrel, err := disk.OSRelease(base, s.Name, v.Version)
	if err != nil {
		return failure.Errorf(failure.Invalid, "base.image: %w", err)
	}
	for _, p := range paths {
		b.overlay = append(b.overlay, entry.File(p, 0o644, osrel))
	}
	b.overlay = append(b.overlay, worker.VerifiedBoot(s)...)
	if u := v.Updates; u != nil {
		transfers, err := sysupdate.Transfers(sysupdate.Config{Name: s.Name, Source: u.Source, AllowHTTP: u.AllowHTTP, Tries: v.Tries})
		if err != nil {
			return failure.Errorf(failure.Invalid, "output.verifiedBoot.updates: %w", err)
		}
		for _, t := range transfers {
			b.overlay = append(b.overlay, entry.File(t.Path, 0o644, []byte(t.Content)))
		}
	}
	stub, err := stubFile(b.base, s.Arch)
	if err != nil {
		return err
	}
	signer, err := b.loadSigner()
	if err != nil {
		return err
	}
	b.verified = &disk.Verified{
		Name:    s.Name,
		Version: v.Version,
		// The image as built boots without a counter: a node that never
		// gets its node config must not reboot in a loop. Installed
		// updates get v.Tries (the transfer definitions).
		Tries:     0,
		SlotSize:  int64(v.SlotSize),
		Stub:      stub,
		OSRelease: osrel,
		Uname:     b.boot.release,
		Signer:    signer,
		Workers:   b.opts.Workers,
	}
	how := "unsigned"
	if signer != nil {
		how = "signed by " + signer.Certificate().Subject.String()
	}
	b.opts.say(StageCompose, "verified boot: version %s, %s", v.Version, how)
	return nil
}

// loadSigner reads the signing key the options or the spec name; nil when
// neither does.
func (b *run) loadSigner() (*authenticode.Signer, error) {
	sg, field := b.opts.Signing, "the signing options"
	if sg == nil {
		if sg = b.spec.Output.VerifiedBoot.Signing; sg == nil {
			return nil, nil
		}
		field = "output.verifiedBoot.signing"
		sg = &spec.Signing{Key: b.spec.ResolvePath(sg.Key), Certificate: b.spec.ResolvePath(sg.Certificate)}
	}
	if sg.Key == "" || sg.Certificate == "" {
		return nil, failure.Errorf(failure.Invalid, "%s: a key and its certificate are both needed", field)
	}
	signer, err := authenticode.LoadSigner(sg.Key, sg.Certificate)
	if err != nil {
		return nil, failure.Errorf(failure.Invalid, "%s: %w", field, err)
	}
	return signer, nil
}

// baseOSRelease reads the base's os-release and returns it with the paths
// that hold it as a regular file.
func baseOSRelease(base *rootfs.Base) ([]byte, []string, error) {
	var data []byte
	var paths []string
	for _, p := range osReleasePaths {
		e, ok := base.Lookup(p)
		if !ok || e.Type != tar.TypeReg {
			continue
		}
		paths = append(paths, p)
		if data != nil {
			continue
		}
		rc, err := e.Open()
		if err != nil {
			return nil, nil, fmt.Errorf("base.image: %s: %w", p, err)
		}
		data, err = io.ReadAll(io.LimitReader(rc, maxOSRelease+1))
		rc.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("base.image: %s: %w", p, err)
		}
		if len(data) > maxOSRelease {
			return nil, nil, failure.Errorf(failure.Invalid, "base.image: %s is larger than %d bytes", p, maxOSRelease)
		}
	}
	if data == nil {
		return nil, nil, failure.Errorf(failure.Invalid, "base.image: no os-release (%v) for verified boot", osReleasePaths)
	}
	return data, paths, nil
}

const maxOSRelease = 64 << 10

// stubFile finds systemd-stub in the base.
func stubFile(base *rootfs.Base, arch spec.Arch) (disk.File, error) {
	p := stubPaths[arch]
	e, ok := base.Lookup(p)
	if !ok || e.Type != tar.TypeReg {
		return disk.File{}, failure.Errorf(failure.Invalid, "base.image: no %s for verified boot (install systemd-boot-efi in the base)", p)
	}
	return disk.File{Open: e.Open, Size: e.Size}, nil
}

// verifiedInfo describes the verified disk for the manifest.
func (b *run) verifiedInfo() *VerifiedInfo {
	d := b.disk
	vr := d.Verified
	if vr == nil {
		return nil
	}
	v := b.spec.Output.VerifiedBoot
	info := &VerifiedInfo{
		Version:      v.Version,
		RootHash:     vr.RootHash,
		HashTreeSize: vr.HashSize,
		UKI:          UKIInfo{Path: vr.UKI, SHA256: vr.UKISHA256, Size: vr.UKISize},
		Cmdline:      d.Cmdline,
		Tries:        v.Tries,
	}
	for _, sl := range vr.Slots {
		root, ver := d.Partitions[sl.Root-1], d.Partitions[sl.Verity-1]
		info.Slots = append(info.Slots, SlotInfo{Label: sl.Label, Root: sl.Root, RootPartUUID: root.PartUUID, Verity: sl.Verity, VerityPartUUID: ver.PartUUID})
		info.SlotSize = int64(root.LastLBA-root.FirstLBA+1) * 512
	}
	if s := b.verified.Signer; s != nil {
		sum := sha256.Sum256(s.Certificate().Raw)
		info.SigningCertificate = hex.EncodeToString(sum[:])
	}
	if u := v.Updates; u != nil {
		info.UpdateSource = u.Source
	}
	return info
}
