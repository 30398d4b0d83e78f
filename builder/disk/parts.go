package disk

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
	"github.com/diskfs/go-diskfs/partition/gpt"
)

// Parts are the pieces of a disk in the default layout (as Write makes it
// without Image.Verified) that another disk can be made of: the root
// filesystem, the kernel, the initrd, systemd-boot and the extra kernel
// command-line words of its loader entry. ReadParts reads them back, so a
// built image can be turned into a verified one (Parts.Image).
type Parts struct {
	// Arch is the architecture the root partition type says.
	Arch string
	// Kernel, Initrd and Bootloader are read from the ESP (held in
	// memory); their Path is empty.
	Kernel, Initrd, Bootloader File
	// Cmdline are the loader entry's words after those the writer sets
	// (root=, rootfstype=, ro).
	Cmdline []string
	// RootSize is the size of the root filesystem (squashfs bytes_used).
	RootSize int64

	f          *os.File
	rootOffset int64
}

// Limits of ReadParts.
const (
	maxLoaderEntry = 64 << 10
	maxBootloader  = 64 << 20

	squashfsMagic         = "hsqs"
	squashfsBytesUsedOff  = 40
	squashfsSuperblockLen = 96
)

// ReadParts opens the disk image at path, checks that it is in the
// default layout (an ESP with the loader entry Write makes, a squashfs root
// partition) and reads its parts. Close it when done: the root filesystem
// is read from the image by WriteRoot.
func ReadParts(path string) (_ *Parts, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading disk parts: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading disk parts: %w", err)
	}
	t, err := gpt.Read(f, sectorSize, sectorSize)
	if err != nil {
		return nil, fmt.Errorf("reading the partition table of %s: %w", path, err)
	}
	p := &Parts{f: f}
	var esp, root *gpt.Partition
	for _, part := range t.Partitions {
		if part == nil || part.Type == gpt.Unused {
			continue
		}
		typ := strings.ToUpper(string(part.Type))
		switch {
		case typ == typeESP && esp == nil:
			esp = part
		case root == nil:
			for arch, a := range arches {
				if typ == a.rootType {
					root, p.Arch = part, arch
				}
			}
		}
	}
	if esp == nil || root == nil {
		return nil, fmt.Errorf("reading disk parts of %s: no ESP and root partition", path)
	}
	for _, part := range []*gpt.Partition{esp, root} {
		if part.End < part.Start || int64(part.End+1)*sectorSize > fi.Size() {
			return nil, fmt.Errorf("reading disk parts of %s: partition %d (sectors %d..%d) lies outside the %d-byte image", path, part.Index, part.Start, part.End, fi.Size())
		}
	}

	// The root: a squashfs, whose superblock says how long it is.
	p.rootOffset = int64(root.Start) * sectorSize
	rootLen := int64(root.End-root.Start+1) * sectorSize
	sb := make([]byte, squashfsSuperblockLen)
	if _, err := f.ReadAt(sb, p.rootOffset); err != nil {
		return nil, fmt.Errorf("reading the root filesystem superblock of %s: %w", path, err)
	}
	if string(sb[:4]) != squashfsMagic {
		return nil, fmt.Errorf("reading disk parts of %s: the root partition does not start with a squashfs superblock", path)
	}
	used := binary.LittleEndian.Uint64(sb[squashfsBytesUsedOff:])
	if used < squashfsSuperblockLen || used > uint64(rootLen) {
		return nil, fmt.Errorf("reading disk parts of %s: squashfs says it uses %d bytes of a %d-byte partition", path, used, rootLen)
	}
	p.RootSize = int64(used)

	// The ESP: the loader entry names the kernel, the initrd and the
	// command line.
	espStart := int64(esp.Start) * sectorSize
	espLen := int64(esp.End-esp.Start+1) * sectorSize
	fs, err := fat32.Read(file.New(f, true), espLen, espStart, sectorSize)
	if err != nil {
		return nil, fmt.Errorf("reading the ESP of %s: %w", path, err)
	}
	entry, err := readFAT(fs, entryPath, maxLoaderEntry)
	if err != nil {
		return nil, fmt.Errorf("reading disk parts of %s: %w", path, err)
	}
	kernelPath, initrdPath, options, err := parseEntry(entry)
	if err != nil {
		return nil, fmt.Errorf("reading disk parts of %s: loader entry %s: %w", path, entryPath, err)
	}
	for _, w := range options {
		if strings.HasPrefix(w, "root=") || strings.HasPrefix(w, "rootfstype=") || w == "ro" {
			continue
		}
		p.Cmdline = append(p.Cmdline, w)
	}
	for _, x := range []struct {
		dst   *File
		path  string
		limit int64
	}{
		{&p.Kernel, kernelPath, maxInitrdSize},
		{&p.Initrd, initrdPath, maxInitrdSize},
		{&p.Bootloader, "/EFI/BOOT/" + arches[p.Arch].loaderName, maxBootloader},
	} {
		b, err := readFAT(fs, x.path, x.limit)
		if err != nil {
			return nil, fmt.Errorf("reading disk parts of %s: %w", path, err)
		}
		*x.dst = BytesFile("", b)
	}
	return p, nil
}

// readFAT reads a whole file of the ESP, at most limit bytes.
func readFAT(fs *fat32.FileSystem, p string, limit int64) ([]byte, error) {
	r, err := fs.OpenFile(p, os.O_RDONLY)
	if err != nil {
		return nil, fmt.Errorf("opening ESP file %s: %w", p, err)
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading ESP file %s: %w", p, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("ESP file %s is larger than %d bytes", p, limit)
	}
	return b, nil
}

// parseEntry reads the linux, initrd and options lines of a Boot Loader
// Specification type 1 entry.
func parseEntry(b []byte) (kernel, initrd string, options []string, err error) {
	for _, line := range strings.Split(string(b), "\n") {
		key, val, _ := strings.Cut(strings.TrimSpace(line), " ")
		val = strings.TrimSpace(val)
		switch key {
		case "linux":
			kernel = val
		case "initrd":
			initrd = val
		case "options":
			options = append(options, strings.Fields(val)...)
		}
	}
	for name, v := range map[string]string{"linux": kernel, "initrd": initrd} {
		if checkESPPath(v) != nil {
			return "", "", nil, fmt.Errorf("%s %q is not an ESP path", name, v)
		}
	}
	return kernel, initrd, options, nil
}

// WriteRoot copies the root filesystem to w; it is an Image.WriteRoot.
func (p *Parts) WriteRoot(ctx context.Context, w io.WriterAt) (int64, error) {
	if p.f == nil {
		return 0, errors.New("copying the root filesystem: parts are closed")
	}
	buf := make([]byte, copyChunk)
	for off := int64(0); off < p.RootSize; {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		n := min(int64(len(buf)), p.RootSize-off)
		if _, err := p.f.ReadAt(buf[:n], p.rootOffset+off); err != nil {
			return 0, fmt.Errorf("copying the root filesystem: %w", err)
		}
		if _, err := w.WriteAt(buf[:n], off); err != nil {
			return 0, fmt.Errorf("copying the root filesystem: %w", err)
		}
		off += n
	}
	return p.RootSize, nil
}

// Root returns a reader of the root filesystem.
func (p *Parts) Root() *io.SectionReader { return io.NewSectionReader(p.f, p.rootOffset, p.RootSize) }

// Close closes the image.
func (p *Parts) Close() error {
	if p.f == nil {
		return nil
	}
	err := p.f.Close()
	p.f = nil
	return err
}

// Image returns an Image of these parts: the given Image with its Arch,
// Kernel, Initrd, Bootloader and WriteRoot taken from p, and the loader
// entry's command-line words before its own.
func (p *Parts) Image(img Image) Image {
	img.Arch = p.Arch
	img.Kernel, img.Initrd, img.Bootloader = p.Kernel, p.Initrd, p.Bootloader
	img.Cmdline = append(append([]string(nil), p.Cmdline...), img.Cmdline...)
	img.WriteRoot = p.WriteRoot
	return img
}
