package netboot

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
)

const sectorSize = 512

// Partition type GUIDs (UEFI and the Discoverable Partitions Specification).
const (
	typeESP       = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	typeRootAMD64 = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
	typeRootARM64 = "B921B045-1DF0-41C3-AF44-4C6F280D3FAE"
)

// partition is one GPT entry.
type partition struct {
	index      int
	typeGUID   string // upper case
	name       string
	start, end int64 // byte offsets, end exclusive
}

func (p partition) size() int64 { return p.end - p.start }

// readGPT reads the primary GPT of the image f.
func readGPT(f io.ReaderAt, name string) ([]partition, error) {
	hdr := make([]byte, sectorSize)
	if _, err := f.ReadAt(hdr, sectorSize); err != nil {
		return nil, fmt.Errorf("%s: reading the GPT header: %w", name, err)
	}
	if string(hdr[:8]) != "EFI PART" {
		return nil, fmt.Errorf("%s: no GPT (LBA 1 lacks the \"EFI PART\" signature)", name)
	}
	le := binary.LittleEndian
	entriesLBA := int64(le.Uint64(hdr[72:]))
	count := int64(le.Uint32(hdr[80:]))
	entrySize := int64(le.Uint32(hdr[84:]))
	if entrySize < 128 || count <= 0 || count > 1024 || entriesLBA < 2 {
		return nil, fmt.Errorf("%s: GPT header: implausible partition array (%d entries of %d bytes at LBA %d)", name, count, entrySize, entriesLBA)
	}
	buf := make([]byte, count*entrySize)
	if _, err := f.ReadAt(buf, entriesLBA*sectorSize); err != nil {
		return nil, fmt.Errorf("%s: reading the GPT partition array: %w", name, err)
	}
	var parts []partition
	for i := range count {
		e := buf[i*entrySize : (i+1)*entrySize]
		if bytes.Equal(e[:16], make([]byte, 16)) {
			continue
		}
		first, last := int64(le.Uint64(e[32:])), int64(le.Uint64(e[40:]))
		if last < first {
			return nil, fmt.Errorf("%s: GPT entry %d: last LBA %d before first LBA %d", name, i+1, last, first)
		}
		parts = append(parts, partition{
			index:    int(i) + 1,
			typeGUID: guidString(e[:16]),
			name:     utf16Name(e[56:128]),
			start:    first * sectorSize,
			end:      (last + 1) * sectorSize,
		})
	}
	return parts, nil
}

// guidString formats a GPT GUID (mixed endian) in upper case.
func guidString(b []byte) string {
	le := binary.LittleEndian
	return fmt.Sprintf("%08X-%04X-%04X-%X-%X", le.Uint32(b[0:]), le.Uint16(b[4:]), le.Uint16(b[6:]), b[8:10], b[10:16])
}

func utf16Name(b []byte) string {
	var r []rune
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		r = append(r, rune(c))
	}
	return string(r)
}

// findPartitions picks the ESP (by type) and the root partition (by a
// root partition type, else by the name "root").
func findPartitions(parts []partition, name string) (esp, root partition, err error) {
	var haveESP, haveRoot bool
	for _, p := range parts {
		switch {
		case p.typeGUID == typeESP && !haveESP:
			esp, haveESP = p, true
		case (p.typeGUID == typeRootAMD64 || p.typeGUID == typeRootARM64) && !haveRoot:
			root, haveRoot = p, true
		}
	}
	if !haveRoot {
		for _, p := range parts {
			if p.name == "root" {
				root, haveRoot = p, true
				break
			}
		}
	}
	switch {
	case !haveESP:
		return esp, root, fmt.Errorf("%s: no EFI system partition (type %s) in the GPT", name, typeESP)
	case !haveRoot:
		return esp, root, fmt.Errorf("%s: no root partition (type %s or %s, or named \"root\") in the GPT", name, typeRootAMD64, typeRootARM64)
	}
	return esp, root, nil
}

// squashfsSize returns the bytes_used of the squashfs at offset 0 of r,
// rounded up to 4 KiB.
func squashfsSize(r io.ReaderAt, limit int64, name string) (int64, error) {
	sb := make([]byte, 96)
	if _, err := r.ReadAt(sb, 0); err != nil {
		return 0, fmt.Errorf("%s: reading the squashfs superblock: %w", name, err)
	}
	if string(sb[:4]) != "hsqs" {
		return 0, fmt.Errorf("%s: the root partition does not hold a squashfs (magic %q)", name, sb[:4])
	}
	if major := binary.LittleEndian.Uint16(sb[28:]); major != 4 {
		return 0, fmt.Errorf("%s: squashfs version %d, want 4", name, major)
	}
	used := int64(binary.LittleEndian.Uint64(sb[40:]))
	size := (used + 4095) &^ 4095
	if used <= 96 || size > limit {
		return 0, fmt.Errorf("%s: squashfs bytes_used %d does not fit the %d-byte root partition", name, used, limit)
	}
	return size, nil
}

// loaderEntry is what a Boot Loader Specification entry names.
type loaderEntry struct {
	path                   string
	linux, initrd, options string
}

// esp is the open EFI system partition of an image.
type esp struct {
	fs   *fat32.FileSystem
	name string
}

func openESP(f *os.File, p partition, name string) (*esp, error) {
	fs, err := fat32.Read(file.New(f, true), p.size(), p.start, sectorSize)
	if err != nil {
		return nil, fmt.Errorf("%s: reading the ESP (partition %d) as FAT32: %w", name, p.index, err)
	}
	return &esp{fs: fs, name: name}, nil
}

// open opens a file of the ESP.
func (e *esp) open(p string) (io.ReadCloser, error) {
	f, err := e.fs.OpenFile(p, os.O_RDONLY)
	if err != nil {
		return nil, fmt.Errorf("%s: ESP file %s: %w", e.name, p, err)
	}
	return f, nil
}

func (e *esp) readFile(p string) ([]byte, error) {
	f, err := e.open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("%s: reading ESP file %s: %w", e.name, p, err)
	}
	return b, nil
}

// entry finds the default loader entry: loader.conf's "default" when it
// names an existing entry, else the only entry under /loader/entries.
func (e *esp) entry() (loaderEntry, error) {
	var def string
	if conf, err := e.readFile("/loader/loader.conf"); err == nil {
		for _, line := range strings.Split(string(conf), "\n") {
			if k, v, ok := strings.Cut(strings.TrimSpace(line), " "); ok && k == "default" {
				def = strings.TrimSpace(v)
			}
		}
	}
	var p string
	if def != "" && !strings.ContainsAny(def, "*?[/") {
		if _, err := e.readFile("/loader/entries/" + def); err == nil {
			p = "/loader/entries/" + def
		}
	}
	if p == "" {
		infos, err := e.fs.ReadDir("/loader/entries")
		if err != nil {
			return loaderEntry{}, fmt.Errorf("%s: listing ESP /loader/entries: %w", e.name, err)
		}
		var confs []string
		for _, fi := range infos {
			if !fi.IsDir() && strings.HasSuffix(strings.ToLower(fi.Name()), ".conf") {
				confs = append(confs, fi.Name())
			}
		}
		if len(confs) != 1 {
			return loaderEntry{}, fmt.Errorf("%s: ESP /loader/entries holds %d entries (%s) and loader.conf names no default: want one", e.name, len(confs), strings.Join(confs, ", "))
		}
		p = "/loader/entries/" + confs[0]
	}
	b, err := e.readFile(p)
	if err != nil {
		return loaderEntry{}, err
	}
	le := loaderEntry{path: p}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		v = strings.TrimSpace(v)
		switch k {
		case "linux":
			le.linux = v
		case "initrd":
			if le.initrd != "" {
				return loaderEntry{}, fmt.Errorf("%s: ESP %s: more than one initrd line", e.name, p)
			}
			le.initrd = v
		case "options":
			le.options = strings.TrimSpace(le.options + " " + v)
		}
	}
	switch {
	case le.linux == "":
		return loaderEntry{}, fmt.Errorf("%s: ESP %s: no linux line", e.name, p)
	case le.initrd == "":
		return loaderEntry{}, fmt.Errorf("%s: ESP %s: no initrd line", e.name, p)
	case le.options == "":
		return loaderEntry{}, fmt.Errorf("%s: ESP %s: no options line", e.name, p)
	}
	le.linux, le.initrd = path.Clean("/"+le.linux), path.Clean("/"+le.initrd)
	return le, nil
}
