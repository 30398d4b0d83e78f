// Package disk writes the bootable GPT disk image: an EFI System Partition
// (FAT32, systemd-boot, kernel, initrd and a Boot Loader Specification entry),
// a read-only root partition holding the root filesystem, and an empty /var
// partition that the image formats on first boot.
//
// With Image.Verified the disk is instead verified and A/B-updatable: a
// dm-verity root in slot A with its hash tree in a root-verity partition,
// an empty slot B, and an ESP holding systemd-boot and a Unified Kernel
// Image whose command line carries the root hash (see Verified). ReadParts
// reads the parts of a default-layout disk back, to make a verified one.
//
// Every identifier that would otherwise be random (disk GUID, partition
// GUIDs, FAT volume id, the verity salt) derives from Image.Seed, and every
// FAT timestamp is Image.ModTime, so the same inputs give the same bytes.
package disk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// File is one file for the ESP.
type File struct {
	// Path is the absolute path inside the ESP ("/EFI/BOOT/BOOTX64.EFI").
	// For Image.Kernel and Image.Initrd it may be empty (then /vmlinuz and
	// /initrd.img); for Image.Bootloader it is ignored, the loader goes to
	// its fixed places.
	Path string
	// Open returns the content, closed after copying. It is called once per
	// copy (twice for the bootloader).
	Open func() (io.ReadCloser, error)
	// Size is the exact length of the content in bytes.
	Size int64
}

// Image describes the disk image to write.
type Image struct {
	// Arch is "amd64" or "arm64": it selects the root partition type and the
	// removable-media loader path (BOOTX64.EFI or BOOTAA64.EFI).
	Arch string
	// Seed is the source of every identifier (disk GUID, partition GUIDs,
	// FAT volume id); typically a hash of the spec. It must not be empty.
	Seed []byte
	// ModTime is the timestamp of every FAT directory entry (stored in
	// UTC, 2 s resolution); typically from SOURCE_DATE_EPOCH. Must lie in
	// 1980..2107.
	ModTime time.Time
	// ESPSize is the ESP size in bytes, a multiple of 1 MiB between 33 MiB
	// and 4 GiB, and not one of the sizes go-diskfs v1.9.4 lays out wrongly
	// (64, 129, 194, 259, 505..507, 762, 763, ... MiB; see ValidESPSize).
	// DefaultESPSize is known good.
	ESPSize int64
	// VarSize is the /var partition size in bytes, a positive multiple of
	// 1 MiB. The partition is left empty (zeros, sparse).
	VarSize int64
	// DiskSize, when set, is the size of the image in bytes, a multiple of
	// 1 MiB: /var then takes what the ESP, the root filesystem and the GPT
	// leave, and VarSize is the least it may get (a disk too small for
	// that is an error naming DiskSize). At boot /var grows further, to
	// the end of the disk the image is written to.
	DiskSize int64
	// Kernel and Initrd are copied to the ESP (default /vmlinuz and
	// /initrd.img) and named by the loader entry.
	Kernel File
	Initrd File
	// Bootloader is systemd-boot (systemd-bootx64.efi or
	// systemd-bootaa64.efi); it is copied to /EFI/BOOT/BOOTX64.EFI (or
	// BOOTAA64.EFI) and /EFI/systemd/systemd-bootx64.efi (or ...aa64.efi).
	Bootloader File
	// Cmdline holds extra kernel command-line words. The writer prepends
	// "root=PARTUUID=<root> rootfstype=squashfs ro"; root= and rootfstype=
	// are therefore refused here.
	Cmdline []string
	// Title is the loader entry title; empty means "nodebake".
	Title string
	// ExtraESP holds any further files for the ESP.
	ExtraESP []File
	// WriteRoot writes the root filesystem at offset 0 of w and returns its
	// size in bytes. w is a window on the image file starting at the root
	// partition; WriteRoot must not write past the size it returns.
	WriteRoot func(ctx context.Context, w io.WriterAt) (int64, error)
	// Verified, when not nil, makes a verified, A/B-updatable disk (a
	// dm-verity root, two root slots, a UKI on the ESP) instead of the
	// default layout; see Verified. Kernel, Initrd and Cmdline then go
	// into the UKI, and Title is not used.
	Verified *Verified
}

// Partition is one entry of the written partition table.
type Partition struct {
	Number     int    // 1-based partition number
	Name       string // GPT partition name (PARTLABEL)
	TypeGUID   string // upper case, as sgdisk prints it
	PartUUID   string // lower case, as in /dev/disk/by-partuuid
	FirstLBA   uint64 // 512-byte sectors, inclusive
	LastLBA    uint64 // inclusive
	Attributes uint64 // GPT attribute bits
}

// Result describes a written image.
type Result struct {
	Size         int64  // image size in bytes
	RootSize     int64  // root filesystem size as returned by WriteRoot
	DiskGUID     string // lower case
	ESPPartUUID  string
	RootPartUUID string
	VarPartUUID  string
	ESPVolumeID  string // FAT volume serial as blkid shows it ("ABCD-1234")
	Cmdline      string // the full kernel command line of the loader entry
	Partitions   []Partition
	// Verified is set for an Image.Verified disk.
	Verified *VerifiedResult
}

// Write writes the disk image to path. It first writes the root
// filesystem through img.WriteRoot, then the ESP and the partition table,
// into a temporary file next to path that is synced and renamed to path at
// the end. On any error, and when ctx is cancelled, the temporary file is
// removed and path is left untouched. The image is sparse: unwritten
// regions (the /var partition, the ESP's free space) are holes.
func Write(ctx context.Context, path string, img Image) (res Result, err error) {
	if err := img.Validate(); err != nil {
		return Result{}, err
	}
	if path == "" {
		return Result{}, errors.New("writing disk image: empty output path")
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}

	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, base+".tmp-*")
	if err != nil {
		return Result{}, fmt.Errorf("creating temporary image file: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o644); err != nil {
		return Result{}, fmt.Errorf("setting mode of %s: %w", tmp, err)
	}

	res, err = write(ctx, f, img)
	if err != nil {
		return Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	if err := f.Sync(); err != nil {
		return Result{}, fmt.Errorf("syncing %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return Result{}, fmt.Errorf("closing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return Result{}, fmt.Errorf("renaming %s to %s: %w", tmp, path, err)
	}
	// The image is in place; a failure to sync the directory does not undo it.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return res, nil
}

// write fills f (empty, positioned anywhere) with the image.
func write(ctx context.Context, f *os.File, img Image) (Result, error) {
	if img.Verified != nil {
		return writeVerified(ctx, f, img)
	}
	ids := deriveIDs(img.Seed)
	rootOffset := partitionAlign + img.ESPSize

	// 1. Root filesystem, at its final offset.
	rootSize, err := img.WriteRoot(ctx, io.NewOffsetWriter(f, rootOffset))
	if err != nil {
		return Result{}, fmt.Errorf("writing root filesystem: %w", err)
	}
	if rootSize <= 0 {
		return Result{}, fmt.Errorf("writing root filesystem: WriteRoot returned size %d, want > 0", rootSize)
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}

	l := newLayout(img, rootSize, ids)
	if img.DiskSize > 0 {
		if l.size != img.DiskSize {
			var p problems
			p.add("DiskSize", "%d MiB leaves %d MiB for /var after the GPT, the %d MiB ESP and the %d MiB root filesystem; /var needs at least %d MiB",
				img.DiskSize/MiB, (img.DiskSize-(l.size-img.VarSize))/MiB, img.ESPSize/MiB, roundUp(rootSize, partitionAlign)/MiB, img.VarSize/MiB)
			return Result{}, &ValidationError{Errors: p}
		}
	}
	// Cut anything WriteRoot wrote past its size, then extend with holes:
	// the root's tail padding, /var and the GPT area read as zeros.
	if err := f.Truncate(rootOffset + rootSize); err != nil {
		return Result{}, fmt.Errorf("truncating image after root filesystem: %w", err)
	}
	if err := f.Truncate(l.size); err != nil {
		return Result{}, fmt.Errorf("sizing image to %d bytes: %w", l.size, err)
	}

	// 2. ESP.
	if err := writeESP(ctx, f, img, l, ids); err != nil {
		return Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}

	// 3. Partition table (protective MBR, primary and backup GPT).
	if err := writeGPT(f, l, ids); err != nil {
		return Result{}, err
	}
	return l.result(ids, rootSize, kernelCmdline(img, ids)), nil
}
