package disk

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat12"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
)

const (
	espLabel       = "ESP"
	defaultKernel  = "/vmlinuz"
	defaultInitrd  = "/initrd.img"
	defaultTitle   = "nodebake"
	entryName      = "nodebake.conf"
	loaderConfPath = "/loader/loader.conf"
	entryPath      = "/loader/entries/" + entryName

	// copyChunk is the size of each write into the FAT. go-diskfs v1.9.4
	// rewrites both FATs on every write that grows a file, so small writes
	// are slow; a multiple of the cluster size keeps its offsets aligned.
	copyChunk = 4 << 20

	// Offset of the FAT32 volume serial in the boot sector, and the sector
	// of the backup boot sector go-diskfs writes.
	volumeIDOffset   = 0x43
	backupBootSector = 6
)

// espFile is one file to put on the ESP, with the field it came from.
type espFile struct {
	field string // for errors: "Kernel", "ExtraESP[2]"
	File
}

// kernelCmdline is the options line of the loader entry.
func kernelCmdline(img Image, id ids) string {
	words := append([]string{"root=PARTUUID=" + id.root.String(), "rootfstype=squashfs", "ro"}, img.Cmdline...)
	return strings.Join(words, " ")
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// loaderConf is /loader/loader.conf.
func loaderConf() []byte {
	return []byte("timeout 0\ndefault " + entryName + "\neditor no\n")
}

// loaderEntry is the Boot Loader Specification type 1 entry.
func loaderEntry(img Image, id ids) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "title %s\n", orDefault(img.Title, defaultTitle))
	fmt.Fprintf(&b, "linux %s\n", orDefault(img.Kernel.Path, defaultKernel))
	fmt.Fprintf(&b, "initrd %s\n", orDefault(img.Initrd.Path, defaultInitrd))
	fmt.Fprintf(&b, "options %s\n", kernelCmdline(img, id))
	return []byte(b.String())
}

// espContents lists every ESP file, sorted by path. The seed only matters
// for the loader entry (root PARTUUID); validation passes a zero ids.
func espContents(img Image, id ids) []espFile {
	a := arches[img.Arch]
	boot := img.Bootloader
	files := []espFile{
		{"Bootloader", File{Path: "/EFI/BOOT/" + a.loaderName, Open: boot.Open, Size: boot.Size}},
		{"Bootloader", File{Path: "/EFI/systemd/" + a.bootName, Open: boot.Open, Size: boot.Size}},
		{"Kernel", File{Path: orDefault(img.Kernel.Path, defaultKernel), Open: img.Kernel.Open, Size: img.Kernel.Size}},
		{"Initrd", File{Path: orDefault(img.Initrd.Path, defaultInitrd), Open: img.Initrd.Open, Size: img.Initrd.Size}},
		{"loader.conf", BytesFile(loaderConfPath, loaderConf())},
		{"loader entry", BytesFile(entryPath, loaderEntry(img, id))},
	}
	for i, f := range img.ExtraESP {
		files = append(files, espFile{fmt.Sprintf("ExtraESP[%d]", i), f})
	}
	sortESP(files)
	return files
}

func sortESP(files []espFile) {
	sort.SliceStable(files, func(i, j int) bool { return files[i].Path < files[j].Path })
}

// parentDirs lists the directories above p, outermost first ("/a/b/c" →
// "/a", "/a/b").
func parentDirs(p string) []string {
	var dirs []string
	for d := path.Dir(p); d != "/"; d = path.Dir(d) {
		dirs = append([]string{d}, dirs...)
	}
	return dirs
}

// writeESP makes the FAT32 filesystem of partition 1 and fills it.
func writeESP(ctx context.Context, f *os.File, img Image, l layout, id ids) error {
	return fillESP(ctx, f, img, l, id, espContents(img, id))
}

// fillESP makes the FAT32 filesystem of partition 1 with files, which are
// sorted by path.
func fillESP(ctx context.Context, f *os.File, img Image, l layout, id ids, files []espFile) error {
	start := l.offset(1)
	fs, err := fat32.Create(file.New(f, false), img.ESPSize, start, sectorSize, espLabel, true)
	if err != nil {
		return fmt.Errorf("creating ESP filesystem: %w", err)
	}

	var dirs []string
	seen := map[string]bool{}
	buf := make([]byte, copyChunk)
	for _, ef := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		for _, d := range parentDirs(ef.Path) {
			if !seen[d] {
				seen[d] = true
				dirs = append(dirs, d)
			}
		}
		if d := path.Dir(ef.Path); d != "/" {
			if err := fs.Mkdir(d); err != nil {
				return fmt.Errorf("making ESP directory %s: %w", d, err)
			}
		}
		if err := copyToESP(ctx, fs, ef, buf); err != nil {
			return err
		}
	}

	// go-diskfs stamps new directory entries with the wall clock (or
	// SOURCE_DATE_EPOCH from the environment); overwrite every one, now
	// that nothing else will rewrite them: the volume label, each
	// directory's entry and its "." and "..", and each file.
	mt := img.ModTime.UTC()
	stamps := []string{"/" + espLabel}
	for _, d := range dirs {
		stamps = append(stamps, d, d+"/.", d+"/..")
	}
	for _, ef := range files {
		stamps = append(stamps, ef.Path)
	}
	for _, p := range stamps {
		if err := fs.Chtimes(p, mt, mt, mt); err != nil {
			return fmt.Errorf("setting ESP timestamp of %s: %w", p, err)
		}
	}

	// go-diskfs points ".." of a directory in the root at the root's
	// cluster (2); FAT wants 0 there, and fsck.fat reports it.
	for _, d := range dirs {
		if path.Dir(d) != "/" {
			continue
		}
		if err := fixDotDot(fs, f, start, d); err != nil {
			return err
		}
	}

	// go-diskfs writes volume serial 0 in reproducible mode and offers no
	// way to set it: write it into the boot sector and its backup, little
	// endian as the FAT specification (and blkid) read it.
	var serial [4]byte
	binary.LittleEndian.PutUint32(serial[:], id.volumeID)
	for _, sector := range []int64{0, backupBootSector} {
		if _, err := f.WriteAt(serial[:], start+sector*sectorSize+volumeIDOffset); err != nil {
			return fmt.Errorf("writing ESP volume id: %w", err)
		}
	}
	return nil
}

// fixDotDot sets the cluster of the ".." entry of dir, a directory in the
// root, to 0.
func fixDotDot(fs *fat32.FileSystem, f *os.File, start int64, dir string) error {
	d, err := fs.OpenFile(dir, os.O_RDONLY)
	if err != nil {
		return fmt.Errorf("opening ESP directory %s: %w", dir, err)
	}
	defer d.Close()
	dr, ok := d.(interface {
		GetDiskRanges() ([]fat12.DiskRange, error)
	})
	if !ok {
		return fmt.Errorf("locating ESP directory %s: go-diskfs file %T has no GetDiskRanges", dir, d)
	}
	ranges, err := dr.GetDiskRanges()
	if err != nil || len(ranges) == 0 {
		return fmt.Errorf("locating ESP directory %s: %v ranges, %w", dir, len(ranges), err)
	}
	off := start + int64(ranges[0].Offset) + 32 // "." is the first entry, ".." the second
	var e [32]byte
	if _, err := f.ReadAt(e[:], off); err != nil {
		return fmt.Errorf("reading ESP directory %s: %w", dir, err)
	}
	if string(e[:11]) != "..         " || e[11]&0x10 == 0 {
		return fmt.Errorf("ESP directory %s: second entry is %q, not \"..\"", dir, e[:11])
	}
	clear(e[20:22]) // cluster, high word
	clear(e[26:28]) // cluster, low word
	if _, err := f.WriteAt(e[:], off); err != nil {
		return fmt.Errorf("writing ESP directory %s: %w", dir, err)
	}
	return nil
}

// copyToESP copies one file into the FAT in large chunks.
func copyToESP(ctx context.Context, fs *fat32.FileSystem, ef espFile, buf []byte) (err error) {
	r, err := ef.Open()
	if err != nil {
		return fmt.Errorf("opening %s for ESP %s: %w", ef.field, ef.Path, err)
	}
	defer func() {
		if cerr := r.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("closing %s: %w", ef.field, cerr)
		}
	}()
	w, err := fs.OpenFile(ef.Path, os.O_CREATE|os.O_RDWR)
	if err != nil {
		return fmt.Errorf("creating ESP file %s: %w", ef.Path, err)
	}
	defer w.Close()

	var n int64
	lr := io.LimitReader(r, ef.Size+1)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		k, rerr := io.ReadFull(lr, buf)
		if k > 0 {
			n += int64(k)
			if n > ef.Size {
				return fmt.Errorf("copying %s to ESP %s: content is longer than its Size %d", ef.field, ef.Path, ef.Size)
			}
			if _, err := w.Write(buf[:k]); err != nil {
				return fmt.Errorf("writing ESP file %s: %w", ef.Path, err)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("reading %s: %w", ef.field, rerr)
		}
	}
	if n != ef.Size {
		return fmt.Errorf("copying %s to ESP %s: content has %d bytes, Size says %d", ef.field, ef.Path, n, ef.Size)
	}
	return nil
}
