// Package configdrive writes config drive images: a small FAT32 filesystem
// labelled NODEBAKE holding node.yaml at its root, which the first-boot
// program finds by label and reads. Attach it to a machine as a second disk
// (e.g. QEMU -drive file=drive.img,format=raw,if=virtio,readonly=on).
package configdrive

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"

	"github.com/nodebake/nodebake/layers/firstboot"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
)

// Size is the image size: 100 MiB, a FAT32 size go-diskfs v1.9.4 writes
// correctly (some sizes give a FAT that mtools refuses). The image is
// sparse, so it takes a few hundred KiB on disk.
const Size = 100 << 20

// Write writes a config drive image holding nodeYAML as node.yaml to path,
// through a temporary file renamed into place. nodeYAML must parse as a
// node config (it is not validated: that needs the image's facts). The
// image is the same bytes for the same nodeYAML.
func Write(path string, nodeYAML []byte) (err error) {
	if _, err := nodeconfig.Parse(nodeYAML); err != nil {
		return fmt.Errorf("writing config drive %s: the node config does not parse: %w", path, err)
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing config drive %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Truncate(Size); err != nil {
		return fmt.Errorf("writing config drive %s: %w", path, err)
	}
	if err := writeFAT(f, nodeYAML); err != nil {
		return fmt.Errorf("writing config drive %s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("writing config drive %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing config drive %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing config drive %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing config drive %s: %w", path, err)
	}
	return nil
}

func writeFAT(f *os.File, nodeYAML []byte) error {
	d, err := diskfs.OpenBackend(file.New(f, false), diskfs.WithOpenMode(diskfs.ReadWrite))
	if err != nil {
		return fmt.Errorf("opening the image: %w", err)
	}
	fs, err := d.CreateFilesystem(disk.FilesystemSpec{
		Partition:    0,
		FSType:       filesystem.TypeFat32,
		VolumeLabel:  firstboot.DriveLabel,
		Reproducible: true,
	})
	if err != nil {
		return fmt.Errorf("creating the FAT32 filesystem: %w", err)
	}
	name := "/" + firstboot.DriveFile
	out, err := fs.OpenFile(name, os.O_CREATE|os.O_RDWR)
	if err != nil {
		return fmt.Errorf("creating %s: %w", name, err)
	}
	if _, err := out.Write(nodeYAML); err != nil {
		out.Close()
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	// Fixed timestamps, so the image depends on the content only: the
	// file's and the volume label entry's (go-diskfs stamps it with the
	// wall clock).
	epoch := time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, p := range []string{name, "/" + firstboot.DriveLabel} {
		if err := fs.Chtimes(p, epoch, epoch, epoch); err != nil {
			return fmt.Errorf("setting the times of %s: %w", p, err)
		}
	}
	return nil
}
