// Package iso9660 reads files from an ISO 9660 image without mounting it:
// enough for the small, shallow config drives that clouds attach
// (OpenStack's config-2, NoCloud's cidata). It understands Rock Ridge names
// (preferred, as Linux does), Joliet names, and plain ISO 9660 names
// (matched without their ";1" version and case-insensitively).
//
// The image is hostile input: every size, offset and count is checked and
// bounded, both-endian fields must agree, and nothing is read past the
// limits below. Standard library only.
package iso9660

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"unicode/utf16"
)

// Bounds on what a config drive may hold.
const (
	// MaxDirSize bounds a directory's extent.
	MaxDirSize = 1 << 20
	// MaxDepth bounds the components of a path looked up.
	MaxDepth = 16
	// MaxDescriptors bounds the volume descriptors scanned.
	MaxDescriptors = 64
	// MaxContinuations bounds the SUSP continuation areas (CE) followed
	// for one directory record.
	MaxContinuations = 8
	// MaxNameLen bounds a Rock Ridge name assembled from NM entries.
	MaxNameLen = 1024
)

const sectorSize = 2048

// Errors returned by ReadFile, for errors.Is.
var (
	// ErrNotISO9660 is returned by Open when there is no primary volume
	// descriptor.
	ErrNotISO9660 = errors.New("no ISO 9660 primary volume descriptor")
	// ErrTooLarge is returned for a file larger than the caller's limit.
	ErrTooLarge = errors.New("file too large")
	// ErrCorrupt is returned for structures that break the format.
	ErrCorrupt = errors.New("corrupt ISO 9660 image")
)

// FS is an opened ISO 9660 image.
type FS struct {
	r         io.ReaderAt
	blockSize int64
	blocks    int64 // volume space size in blocks
	root      record
	// names says how directory entries are named in the tree at root.
	names naming
	// suspSkip is the Rock Ridge LEN_SKP from the root's SP entry.
	suspSkip int
}

type naming int

const (
	plainNames naming = iota
	rockRidgeNames
	jolietNames
)

// record is a parsed directory record.
type record struct {
	name   string // as stored: ISO, or Joliet decoded to UTF-8
	extent int64  // first block of the data (extended attribute record skipped)
	size   int64
	dir    bool
	multi  bool // multi-extent: more records follow for the same file
	su     []byte
}

// Open reads the volume descriptors of an image.
func Open(r io.ReaderAt) (*FS, error) {
	var pvd, joliet []byte
	for i := 0; ; i++ {
		if i == MaxDescriptors {
			return nil, fmt.Errorf("%w: no volume descriptor set terminator within %d descriptors", ErrCorrupt, MaxDescriptors)
		}
		d := make([]byte, sectorSize)
		if err := readFull(r, d, int64(16+i)*sectorSize); err != nil {
			if pvd == nil {
				return nil, ErrNotISO9660
			}
			return nil, fmt.Errorf("reading volume descriptor %d: %w", i, err)
		}
		if string(d[1:6]) != "CD001" || d[6] != 1 {
			if pvd == nil {
				return nil, ErrNotISO9660
			}
			return nil, fmt.Errorf("%w: volume descriptor %d has no CD001 signature", ErrCorrupt, i)
		}
		switch d[0] {
		case 1:
			if pvd == nil {
				pvd = d
			}
		case 2:
			if joliet == nil && isJoliet(d[88:120]) {
				joliet = d
			}
		case 255:
			if pvd == nil {
				return nil, ErrNotISO9660
			}
			return newFS(r, pvd, joliet)
		}
	}
}

// isJoliet tells a Joliet supplementary volume descriptor by its escape
// sequences (UCS-2 level 1, 2 or 3).
func isJoliet(esc []byte) bool {
	return esc[0] == '%' && esc[1] == '/' && (esc[2] == '@' || esc[2] == 'C' || esc[2] == 'E')
}

func newFS(r io.ReaderAt, pvd, joliet []byte) (*FS, error) {
	bs, err := both16(pvd[128:132])
	if err != nil {
		return nil, fmt.Errorf("logical block size: %w", err)
	}
	switch bs {
	case 512, 1024, 2048:
	default:
		return nil, fmt.Errorf("%w: logical block size %d", ErrCorrupt, bs)
	}
	blocks, err := both32(pvd[80:88])
	if err != nil {
		return nil, fmt.Errorf("volume space size: %w", err)
	}
	f := &FS{r: r, blockSize: int64(bs), blocks: int64(blocks)}
	root, err := f.parseRecord(pvd[156:190], jolietNone)
	if err != nil {
		return nil, fmt.Errorf("root directory record: %w", err)
	}
	if !root.dir {
		return nil, fmt.Errorf("%w: the root directory record is not a directory", ErrCorrupt)
	}
	f.root = root

	// Rock Ridge: the first record of the root directory (".") starts its
	// system use area with an SP entry.
	if skip, ok, err := f.rootSP(); err != nil {
		return nil, err
	} else if ok {
		f.names, f.suspSkip = rockRidgeNames, skip
		return f, nil
	}
	if joliet != nil {
		jroot, err := f.parseRecord(joliet[156:190], jolietNone)
		if err != nil {
			return nil, fmt.Errorf("joliet root directory record: %w", err)
		}
		if jroot.dir {
			f.root, f.names = jroot, jolietNames
		}
	}
	return f, nil
}

type jolietMode bool

const (
	jolietNone jolietMode = false
	jolietUCS2 jolietMode = true
)

// rootSP looks for the SUSP SP entry in the root's "." record.
func (f *FS) rootSP() (skip int, ok bool, err error) {
	dir, err := f.readDir(f.root, jolietNone)
	if err != nil {
		return 0, false, err
	}
	if len(dir) == 0 || dir[0].name != "\x00" {
		return 0, false, fmt.Errorf("%w: the root directory does not start with \".\"", ErrCorrupt)
	}
	su := dir[0].su
	if len(su) >= 7 && su[0] == 'S' && su[1] == 'P' && su[2] >= 7 && su[4] == 0xBE && su[5] == 0xEF {
		return int(su[6]), true, nil
	}
	return 0, false, nil
}

// ReadFile returns the content of the file at name ("a/b/c", relative to
// the root). It fails with an error wrapping fs.ErrNotExist when there is
// no such file, and ErrTooLarge when it holds more than limit bytes.
func (f *FS) ReadFile(name string, limit int64) ([]byte, error) {
	parts := strings.Split(strings.Trim(name, "/"), "/")
	if len(parts) > MaxDepth {
		return nil, fmt.Errorf("%s: more than %d path components", name, MaxDepth)
	}
	cur := f.root
	for i, p := range parts {
		if p == "" || p == "." || p == ".." {
			return nil, fmt.Errorf("%s: invalid path", name)
		}
		if !cur.dir {
			return nil, fmt.Errorf("%s: %s is not a directory: %w", name, strings.Join(parts[:i], "/"), fs.ErrNotExist)
		}
		next, found, err := f.lookup(cur, p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if !found {
			return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
		}
		cur = next
	}
	if cur.dir {
		return nil, fmt.Errorf("%s: is a directory", name)
	}
	if cur.multi {
		return nil, fmt.Errorf("%s: %w: multi-extent files are not supported", name, ErrTooLarge)
	}
	if cur.size > limit {
		return nil, fmt.Errorf("%s: %w: %d bytes, more than %d", name, ErrTooLarge, cur.size, limit)
	}
	b := make([]byte, cur.size)
	if err := f.readExtent(b, cur.extent); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return b, nil
}

// lookup finds the entry called name in the directory dir.
func (f *FS) lookup(dir record, name string) (record, bool, error) {
	entries, err := f.readDir(dir, jolietMode(f.names == jolietNames))
	if err != nil {
		return record{}, false, err
	}
	for _, e := range entries {
		if e.name == "\x00" || e.name == "\x01" {
			continue
		}
		switch f.names {
		case rockRidgeNames:
			rr, relocated, err := f.rockRidgeName(e)
			if err != nil {
				return record{}, false, err
			}
			if relocated {
				continue // shown where its CL entry points, not here
			}
			if rr != "" {
				if rr == name {
					return e, true, nil
				}
				continue
			}
			if plainMatch(e.name, name) {
				return e, true, nil
			}
		default:
			if plainMatch(e.name, name) {
				return e, true, nil
			}
		}
	}
	return record{}, false, nil
}

// plainMatch compares an ISO 9660 or Joliet name, without its ";version"
// and a trailing "." (a name without extension), case-insensitively.
func plainMatch(stored, want string) bool {
	if i := strings.LastIndexByte(stored, ';'); i >= 0 {
		stored = stored[:i]
	}
	stored = strings.TrimSuffix(stored, ".")
	return strings.EqualFold(stored, want)
}

// rockRidgeName assembles the NM entries of a record's system use area,
// following continuation areas. relocated reports an RE entry.
func (f *FS) rockRidgeName(e record) (name string, relocated bool, err error) {
	if f.suspSkip > len(e.su) {
		return "", false, nil
	}
	area := e.su[f.suspSkip:]
	var b strings.Builder
	for hops := 0; ; {
		var ce []byte
		for len(area) >= 4 {
			l := int(area[2])
			if l < 4 || l > len(area) {
				return "", false, fmt.Errorf("%w: system use entry %q of length %d", ErrCorrupt, area[:2], l)
			}
			ent := area[:l]
			area = area[l:]
			switch string(ent[:2]) {
			case "NM":
				if l < 5 {
					return "", false, fmt.Errorf("%w: short NM entry", ErrCorrupt)
				}
				if ent[4]&0x06 != 0 { // CURRENT or PARENT: not a name
					continue
				}
				if b.Len()+l-5 > MaxNameLen {
					return "", false, fmt.Errorf("%w: Rock Ridge name longer than %d bytes", ErrCorrupt, MaxNameLen)
				}
				b.Write(ent[5:])
			case "RE":
				relocated = true
			case "CE":
				if l < 28 {
					return "", false, fmt.Errorf("%w: short CE entry", ErrCorrupt)
				}
				ce = ent
			case "ST":
				area = nil
			}
		}
		if ce == nil {
			return b.String(), relocated, nil
		}
		hops++
		if hops > MaxContinuations {
			return "", false, fmt.Errorf("%w: more than %d SUSP continuation areas", ErrCorrupt, MaxContinuations)
		}
		block, err1 := both32(ce[4:12])
		off, err2 := both32(ce[12:20])
		n, err3 := both32(ce[20:28])
		if err := errors.Join(err1, err2, err3); err != nil {
			return "", false, fmt.Errorf("CE entry: %w", err)
		}
		if int64(off)+int64(n) > f.blockSize || int64(block) >= f.blocks {
			return "", false, fmt.Errorf("%w: CE entry points outside its block or the volume", ErrCorrupt)
		}
		area = make([]byte, n)
		if err := readFull(f.r, area, int64(block)*f.blockSize+int64(off)); err != nil {
			return "", false, fmt.Errorf("reading a SUSP continuation area: %w", err)
		}
	}
}

// readDir parses the records of a directory.
func (f *FS) readDir(dir record, j jolietMode) ([]record, error) {
	if dir.size > MaxDirSize {
		return nil, fmt.Errorf("%w: directory of %d bytes, more than %d", ErrTooLarge, dir.size, MaxDirSize)
	}
	buf := make([]byte, dir.size)
	if err := f.readExtent(buf, dir.extent); err != nil {
		return nil, fmt.Errorf("reading a directory: %w", err)
	}
	var out []record
	for off := 0; off < len(buf); {
		l := int(buf[off])
		if l == 0 {
			// Records do not cross sector boundaries: the rest of this
			// sector is padding.
			off = (off/sectorSize + 1) * sectorSize
			continue
		}
		if l < 34 || off+l > len(buf) || off/sectorSize != (off+l-1)/sectorSize {
			return nil, fmt.Errorf("%w: directory record of length %d at offset %d", ErrCorrupt, l, off)
		}
		rec, err := f.parseRecord(buf[off:off+l], j)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
		off += l
	}
	return out, nil
}

// parseRecord parses one directory record.
func (f *FS) parseRecord(b []byte, j jolietMode) (record, error) {
	if len(b) < 34 || int(b[0]) > len(b) || b[0] < 34 {
		return record{}, fmt.Errorf("%w: directory record too short", ErrCorrupt)
	}
	b = b[:b[0]]
	ext, err := both32(b[2:10])
	if err != nil {
		return record{}, fmt.Errorf("extent location: %w", err)
	}
	size, err := both32(b[10:18])
	if err != nil {
		return record{}, fmt.Errorf("data length: %w", err)
	}
	flags := b[25]
	if b[26] != 0 || b[27] != 0 {
		return record{}, fmt.Errorf("%w: interleaved files are not supported", ErrCorrupt)
	}
	nl := int(b[32])
	if 33+nl > len(b) {
		return record{}, fmt.Errorf("%w: name of %d bytes overruns its record", ErrCorrupt, nl)
	}
	raw := b[33 : 33+nl]
	suStart := 33 + nl
	if nl%2 == 0 {
		suStart++ // padding byte
	}
	var su []byte
	if suStart < len(b) {
		su = b[suStart:]
	}
	name := string(raw)
	if j == jolietUCS2 && nl > 1 {
		if nl%2 != 0 {
			return record{}, fmt.Errorf("%w: Joliet name of odd length", ErrCorrupt)
		}
		u := make([]uint16, nl/2)
		for i := range u {
			u[i] = binary.BigEndian.Uint16(raw[2*i:])
		}
		name = string(utf16.Decode(u))
	}
	r := record{
		name:   name,
		extent: int64(ext) + int64(b[1]), // skip the extended attribute record
		size:   int64(size),
		dir:    flags&0x02 != 0,
		multi:  flags&0x80 != 0,
		su:     su,
	}
	if f.blocks > 0 && r.size > 0 {
		end := r.extent*f.blockSize + r.size
		if r.extent >= f.blocks || end > f.blocks*f.blockSize {
			return record{}, fmt.Errorf("%w: extent of %q lies outside the volume", ErrCorrupt, name)
		}
	}
	return r, nil
}

// readExtent fills b from the extent starting at block.
func (f *FS) readExtent(b []byte, block int64) error {
	return readFull(f.r, b, block*f.blockSize)
}

// readFull reads len(b) bytes at off; a short read is an error.
func readFull(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: truncated: %d of %d bytes at offset %d", ErrCorrupt, n, len(b), off)
	}
	return err
}

// both16 decodes a both-endian 16-bit field (little-endian first).
func both16(b []byte) (uint16, error) {
	le, be := binary.LittleEndian.Uint16(b), binary.BigEndian.Uint16(b[2:])
	if le != be {
		return 0, fmt.Errorf("%w: both-endian field disagrees (%d, %d)", ErrCorrupt, le, be)
	}
	return le, nil
}

// both32 decodes a both-endian 32-bit field (little-endian first).
func both32(b []byte) (uint32, error) {
	le, be := binary.LittleEndian.Uint32(b), binary.BigEndian.Uint32(b[4:])
	if le != be {
		return 0, fmt.Errorf("%w: both-endian field disagrees (%d, %d)", ErrCorrupt, le, be)
	}
	return le, nil
}
