// Package fat reads files from a FAT12, FAT16 or FAT32 filesystem image
// without mounting it: enough for the small config drives that clouds and
// hypervisors attach (OpenStack's config-2 on vfat, NoCloud's cidata).
// Long file names (VFAT) are read and checked against their short entry's
// checksum; names match case-insensitively, as FAT does.
//
// The image is hostile input: the boot sector's geometry is checked, every
// cluster number is range-checked, cluster chains are bounded by the sizes
// they must hold (so a loop ends), and directories are bounded by
// MaxDirSize. Standard library only.
package fat

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
	// MaxDirSize bounds the bytes of one directory read.
	MaxDirSize = 1 << 20
	// MaxDepth bounds the components of a path looked up.
	MaxDepth = 16
)

// Errors returned by Open and ReadFile, for errors.Is.
var (
	// ErrNotFAT is returned by Open when the boot sector is not FAT's.
	ErrNotFAT = errors.New("no FAT boot sector")
	// ErrTooLarge is returned for a file larger than the caller's limit.
	ErrTooLarge = errors.New("file too large")
	// ErrCorrupt is returned for structures that break the format.
	ErrCorrupt = errors.New("corrupt FAT filesystem")
)

// Type is the FAT variant, decided by the cluster count as the
// specification says.
type Type int

// The FAT variants.
const (
	FAT12 Type = 12
	FAT16 Type = 16
	FAT32 Type = 32
)

// FS is an opened FAT filesystem.
type FS struct {
	r            io.ReaderAt
	typ          Type
	bytesPerSec  int64
	clusterBytes int64
	fatOffset    int64 // byte offset of the first FAT
	fatBytes     int64 // bytes in one FAT
	rootOffset   int64 // FAT12/16: the fixed root directory
	rootBytes    int64
	rootCluster  uint32 // FAT32
	dataOffset   int64  // byte offset of cluster 2
	clusters     uint32 // count of data clusters
}

// Type reports the FAT variant.
func (f *FS) Type() Type { return f.typ }

// Open checks the boot sector of a FAT filesystem.
func Open(r io.ReaderAt) (*FS, error) {
	b := make([]byte, 512)
	if err := readFull(r, b, 0); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotFAT, err)
	}
	le16 := func(o int) int64 { return int64(binary.LittleEndian.Uint16(b[o:])) }
	le32 := func(o int) int64 { return int64(binary.LittleEndian.Uint32(b[o:])) }
	if b[510] != 0x55 || b[511] != 0xAA || !(b[0] == 0xEB && b[2] == 0x90 || b[0] == 0xE9) {
		return nil, ErrNotFAT
	}
	bps := le16(11)
	switch bps {
	case 512, 1024, 2048, 4096:
	default:
		return nil, fmt.Errorf("%w: %d bytes per sector", ErrNotFAT, bps)
	}
	spc := int64(b[13])
	if spc == 0 || spc&(spc-1) != 0 {
		return nil, fmt.Errorf("%w: %d sectors per cluster", ErrNotFAT, spc)
	}
	rsvd, nfats, rootEnts := le16(14), int64(b[16]), le16(17)
	if rsvd == 0 || nfats == 0 {
		return nil, fmt.Errorf("%w: %d reserved sectors, %d FATs", ErrNotFAT, rsvd, nfats)
	}
	fatSz := le16(22)
	if fatSz == 0 {
		fatSz = le32(36)
	}
	tot := le16(19)
	if tot == 0 {
		tot = le32(32)
	}
	if fatSz == 0 || tot == 0 {
		return nil, fmt.Errorf("%w: FAT size %d, total sectors %d", ErrNotFAT, fatSz, tot)
	}
	rootSecs := (rootEnts*32 + bps - 1) / bps
	firstData := rsvd + nfats*fatSz + rootSecs
	if firstData >= tot {
		return nil, fmt.Errorf("%w: no data region (%d sectors before it, %d in all)", ErrCorrupt, firstData, tot)
	}
	count := (tot - firstData) / spc
	f := &FS{
		r:            r,
		bytesPerSec:  bps,
		clusterBytes: bps * spc,
		fatOffset:    rsvd * bps,
		fatBytes:     fatSz * bps,
		dataOffset:   firstData * bps,
		clusters:     uint32(min(count, 0x0FFFFFF5)),
	}
	switch {
	case count < 4085:
		f.typ = FAT12
	case count < 65525:
		f.typ = FAT16
	default:
		f.typ = FAT32
	}
	if f.typ == FAT32 {
		if rootEnts != 0 || le16(22) != 0 {
			return nil, fmt.Errorf("%w: FAT32 with a fixed root directory", ErrCorrupt)
		}
		f.rootCluster = uint32(le32(44))
		if !f.valid(f.rootCluster) {
			return nil, fmt.Errorf("%w: root directory cluster %d out of range", ErrCorrupt, f.rootCluster)
		}
	} else {
		if rootEnts == 0 {
			return nil, fmt.Errorf("%w: FAT%d without a root directory", ErrCorrupt, f.typ)
		}
		f.rootOffset = (rsvd + nfats*fatSz) * bps
		f.rootBytes = rootEnts * 32
	}
	// The FAT must have an entry for every cluster.
	need := (int64(f.clusters) + 2) * int64(f.typ) / 8
	if need > f.fatBytes {
		return nil, fmt.Errorf("%w: a FAT of %d bytes cannot map %d clusters", ErrCorrupt, f.fatBytes, f.clusters)
	}
	return f, nil
}

// entry is a parsed directory entry.
type entry struct {
	long, short string
	dir         bool
	cluster     uint32
	size        int64
}

// ReadFile returns the content of the file at name ("a/b/c", relative to
// the root). It fails with an error wrapping fs.ErrNotExist when there is
// no such file, and ErrTooLarge when it holds more than limit bytes.
func (f *FS) ReadFile(name string, limit int64) ([]byte, error) {
	parts := strings.Split(strings.Trim(name, "/"), "/")
	if len(parts) > MaxDepth {
		return nil, fmt.Errorf("%s: more than %d path components", name, MaxDepth)
	}
	var cur entry
	isRoot := true
	for i, p := range parts {
		if p == "" || p == "." || p == ".." {
			return nil, fmt.Errorf("%s: invalid path", name)
		}
		if !isRoot && !cur.dir {
			return nil, fmt.Errorf("%s: %s is not a directory: %w", name, strings.Join(parts[:i], "/"), fs.ErrNotExist)
		}
		var dir []byte
		var err error
		if isRoot {
			dir, err = f.rootDir()
		} else {
			dir, err = f.chain(cur.cluster, MaxDirSize, true)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: reading a directory: %w", name, err)
		}
		next, found, err := lookup(dir, p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if !found {
			return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
		}
		cur, isRoot = next, false
	}
	if cur.dir {
		return nil, fmt.Errorf("%s: is a directory", name)
	}
	if cur.size > limit {
		return nil, fmt.Errorf("%s: %w: %d bytes, more than %d", name, ErrTooLarge, cur.size, limit)
	}
	if cur.size == 0 {
		return []byte{}, nil
	}
	b, err := f.chain(cur.cluster, cur.size, false)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return b, nil
}

// rootDir reads the root directory.
func (f *FS) rootDir() ([]byte, error) {
	if f.typ == FAT32 {
		return f.chain(f.rootCluster, MaxDirSize, true)
	}
	if f.rootBytes > MaxDirSize {
		return nil, fmt.Errorf("%w: root directory of %d bytes, more than %d", ErrTooLarge, f.rootBytes, MaxDirSize)
	}
	b := make([]byte, f.rootBytes)
	return b, readFull(f.r, b, f.rootOffset)
}

// chain reads the cluster chain starting at c. For a file it reads exactly
// size bytes and the chain must hold them; for a directory (dir) it reads
// the whole chain, which must end within size bytes. A cluster met twice is
// a loop. Either way at most size/clusterBytes+1 clusters are visited.
func (f *FS) chain(c uint32, size int64, dir bool) ([]byte, error) {
	var out []byte
	seen := map[uint32]bool{}
	for {
		if !f.valid(c) {
			return nil, fmt.Errorf("%w: cluster %d out of range", ErrCorrupt, c)
		}
		if seen[c] {
			return nil, fmt.Errorf("%w: cluster loop at cluster %d", ErrCorrupt, c)
		}
		seen[c] = true
		n := f.clusterBytes
		if !dir {
			n = min(n, size-int64(len(out)))
		} else if int64(len(out))+n > size {
			return nil, fmt.Errorf("%w: directory larger than %d bytes", ErrTooLarge, size)
		}
		buf := make([]byte, n)
		if err := readFull(f.r, buf, f.dataOffset+int64(c-2)*f.clusterBytes); err != nil {
			return nil, err
		}
		out = append(out, buf...)
		if !dir && int64(len(out)) == size {
			return out, nil
		}
		next, err := f.next(c)
		if err != nil {
			return nil, err
		}
		if f.end(next) {
			if dir {
				return out, nil
			}
			return nil, fmt.Errorf("%w: cluster chain ends after %d of %d bytes", ErrCorrupt, len(out), size)
		}
		c = next
	}
}

// valid reports whether c names a data cluster.
func (f *FS) valid(c uint32) bool { return c >= 2 && c < f.clusters+2 }

// end reports an end-of-chain mark.
func (f *FS) end(c uint32) bool {
	switch f.typ {
	case FAT12:
		return c >= 0xFF8
	case FAT16:
		return c >= 0xFFF8
	default:
		return c >= 0x0FFFFFF8
	}
}

// next reads the FAT entry of cluster c.
func (f *FS) next(c uint32) (uint32, error) {
	var b [4]byte
	switch f.typ {
	case FAT12:
		off := int64(c) + int64(c)/2
		if err := readFull(f.r, b[:2], f.fatOffset+off); err != nil {
			return 0, err
		}
		v := uint32(binary.LittleEndian.Uint16(b[:]))
		if c&1 == 1 {
			return v >> 4, nil
		}
		return v & 0xFFF, nil
	case FAT16:
		if err := readFull(f.r, b[:2], f.fatOffset+2*int64(c)); err != nil {
			return 0, err
		}
		return uint32(binary.LittleEndian.Uint16(b[:])), nil
	default:
		if err := readFull(f.r, b[:], f.fatOffset+4*int64(c)); err != nil {
			return 0, err
		}
		return binary.LittleEndian.Uint32(b[:]) & 0x0FFFFFFF, nil
	}
}

// lookup finds name in a directory's raw entries.
func lookup(dir []byte, name string) (entry, bool, error) {
	var lfn []uint16 // the long name being assembled, in order
	var lfnSum byte
	lfnNext := 0 // the sequence number expected next; 0: none pending
	for off := 0; off+32 <= len(dir); off += 32 {
		d := dir[off : off+32]
		if d[0] == 0x00 {
			break // no more entries
		}
		if d[0] == 0xE5 {
			lfnNext = 0
			continue
		}
		attr := d[11]
		if attr&0x3F == 0x0F { // a long name part
			ord := int(d[0] & 0x1F)
			if d[0]&0x40 != 0 {
				if ord == 0 || ord > 20 {
					lfnNext = 0
					continue
				}
				lfn = make([]uint16, 13*ord)
				lfnSum, lfnNext = d[13], ord
			} else if lfnNext <= 0 || ord != lfnNext || d[13] != lfnSum {
				lfnNext = 0
				continue
			}
			base := (ord - 1) * 13
			for i, o := range []int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30} {
				lfn[base+i] = binary.LittleEndian.Uint16(d[o:])
			}
			lfnNext = ord - 1
			if lfnNext == 0 {
				lfnNext = -1 // complete: the short entry comes next
			}
			continue
		}
		long := ""
		if lfnNext == -1 && checksum(d[:11]) == lfnSum {
			long = decodeLFN(lfn)
		}
		lfnNext = 0
		if attr&0x08 != 0 {
			continue // the volume label
		}
		e := entry{
			long:    long,
			short:   shortName(d),
			dir:     attr&0x10 != 0,
			cluster: uint32(binary.LittleEndian.Uint16(d[20:]))<<16 | uint32(binary.LittleEndian.Uint16(d[26:])),
			size:    int64(binary.LittleEndian.Uint32(d[28:])),
		}
		if e.short == "." || e.short == ".." {
			continue
		}
		if (e.long != "" && strings.EqualFold(e.long, name)) || strings.EqualFold(e.short, name) {
			if e.dir {
				e.size = 0
			}
			return e, true, nil
		}
	}
	return entry{}, false, nil
}

// decodeLFN turns the UTF-16 parts of a long name into a string: it ends at
// a NUL (the rest is 0xFFFF padding).
func decodeLFN(u []uint16) string {
	for i, c := range u {
		if c == 0 {
			u = u[:i]
			break
		}
	}
	return string(utf16.Decode(u))
}

// shortName formats an 8.3 name, honouring the lower-case flags that
// Windows NT and Linux set in byte 12.
func shortName(d []byte) string {
	base := []byte(strings.TrimRight(string(d[0:8]), " "))
	ext := []byte(strings.TrimRight(string(d[8:11]), " "))
	if len(base) > 0 && base[0] == 0x05 {
		base[0] = 0xE5
	}
	if d[12]&0x08 != 0 {
		base = []byte(strings.ToLower(string(base)))
	}
	if d[12]&0x10 != 0 {
		ext = []byte(strings.ToLower(string(ext)))
	}
	if len(ext) == 0 {
		return string(base)
	}
	return string(base) + "." + string(ext)
}

// checksum is the short name checksum that long name entries carry.
func checksum(name []byte) byte {
	var s byte
	for _, c := range name {
		s = (s&1)<<7 + s>>1 + c
	}
	return s
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
