// Package blockdev finds block devices by filesystem label without udev: it
// lists /sys/class/block and reads each device's label from its first
// sectors (FAT12/16/32 boot sector, ISO 9660 primary volume descriptor).
// Standard library only.
package blockdev

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// FSType is a filesystem type as mount(2) names it.
type FSType string

// The filesystems whose labels ReadLabel reads.
const (
	FAT     FSType = "vfat"
	ISO9660 FSType = "iso9660"
)

// Label is a filesystem's type and volume label.
type Label struct {
	FS   FSType
	Name string
}

// ErrNoFilesystem is returned by ReadLabel for data that holds neither a
// FAT nor an ISO 9660 filesystem.
var ErrNoFilesystem = errors.New("no FAT or ISO 9660 filesystem")

// ReadLabel reads the filesystem type and label at the start of r: the
// FAT32 boot sector's volume label at 0x47, FAT12/16's at 0x2B, or the ISO
// 9660 primary volume descriptor's volume identifier at 0x8028. A FAT
// volume without a label ("NO NAME") has an empty Name.
func ReadLabel(r io.ReaderAt) (Label, error) {
	var boot [512]byte
	if _, err := r.ReadAt(boot[:], 0); err != nil && !errors.Is(err, io.EOF) {
		return Label{}, fmt.Errorf("reading the boot sector: %w", err)
	} else if err == nil {
		if name, ok := fatLabel(boot[:]); ok {
			return Label{FS: FAT, Name: name}, nil
		}
	}
	var pvd [2048]byte
	if _, err := r.ReadAt(pvd[:], 16*2048); err != nil {
		if errors.Is(err, io.EOF) {
			return Label{}, ErrNoFilesystem
		}
		return Label{}, fmt.Errorf("reading the ISO 9660 volume descriptor: %w", err)
	}
	if pvd[0] == 1 && string(pvd[1:6]) == "CD001" && pvd[6] == 1 {
		return Label{FS: ISO9660, Name: strings.TrimRight(string(pvd[40:72]), " \x00")}, nil
	}
	return Label{}, ErrNoFilesystem
}

// fatLabel checks a FAT boot sector and returns its volume label.
func fatLabel(b []byte) (string, bool) {
	le16 := func(o int) int { return int(binary.LittleEndian.Uint16(b[o:])) }
	if b[510] != 0x55 || b[511] != 0xAA || !(b[0] == 0xEB && b[2] == 0x90 || b[0] == 0xE9) {
		return "", false
	}
	switch le16(11) { // bytes per sector
	case 512, 1024, 2048, 4096:
	default:
		return "", false
	}
	spc := b[13] // sectors per cluster
	if spc == 0 || spc&(spc-1) != 0 || le16(14) == 0 || b[16] == 0 {
		return "", false
	}
	var sig, at int
	if le16(22) == 0 && le16(17) == 0 && binary.LittleEndian.Uint32(b[36:]) != 0 {
		sig, at = 0x42, 0x47 // FAT32: sectors per FAT in the extended BPB
	} else if le16(22) != 0 {
		sig, at = 0x26, 0x2B // FAT12/16
	} else {
		return "", false
	}
	if b[sig] != 0x29 {
		return "", true // no extended boot signature: no label
	}
	name := strings.TrimRight(string(b[at:at+11]), " \x00")
	if name == "NO NAME" {
		name = ""
	}
	return name, true
}

// Device is a block device with a filesystem label.
type Device struct {
	// Name is the kernel's name, e.g. "vdb" or "sr0".
	Name string
	// Path is the device node, e.g. "/dev/vdb" (without the root prefix).
	Path  string
	Label Label
}

// Scan lists the block devices under root (root/sys/class/block, device
// nodes root/dev/NAME) that hold a FAT or ISO 9660 filesystem, with their
// labels, in the kernel's name order. Devices that cannot be opened or
// read (e.g. an empty CD-ROM drive), that are empty or that hold neither
// filesystem are skipped. A root without /sys/class/block has none.
func Scan(root string) ([]Device, error) {
	sys := filepath.Join(root, "sys", "class", "block")
	entries, err := os.ReadDir(sys)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing block devices: %w", err)
	}
	var found []Device
	for _, e := range entries {
		name := e.Name()
		if size, err := os.ReadFile(filepath.Join(sys, name, "size")); err == nil && strings.TrimSpace(string(size)) == "0" {
			continue
		}
		dev := "/dev/" + devName(filepath.Join(sys, name, "uevent"), name)
		l, err := labelOf(filepath.Join(root, dev))
		if err != nil {
			continue
		}
		found = append(found, Device{Name: name, Path: dev, Label: l})
	}
	return found, nil
}

// WithLabel returns the devices whose filesystem label is label (compared
// case-insensitively), in order.
func WithLabel(devs []Device, label string) []Device {
	var out []Device
	for _, d := range devs {
		if strings.EqualFold(d.Label.Name, label) {
			out = append(out, d)
		}
	}
	return out
}

// FindByLabel lists the block devices under root whose filesystem label
// is label (compared case-insensitively), in the kernel's name order: Scan
// then WithLabel.
func FindByLabel(root, label string) ([]Device, error) {
	devs, err := Scan(root)
	if err != nil {
		return nil, err
	}
	return WithLabel(devs, label), nil
}

// devName returns DEVNAME from a device's uevent file, or name.
func devName(uevent, name string) string {
	b, err := os.ReadFile(uevent)
	if err != nil {
		return name
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "DEVNAME="); ok && v != "" && !strings.Contains(v, "..") {
			return v
		}
	}
	return name
}

func labelOf(path string) (Label, error) {
	f, err := os.Open(path)
	if err != nil {
		return Label{}, err
	}
	defer f.Close()
	return ReadLabel(f)
}
