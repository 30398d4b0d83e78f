package gce

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"

	"github.com/nodebake/nodebake/builder/publish/sparse"
)

// A GPT keeps a backup header in the disk's last sector, and the backup
// partition array just before it. Padding disk.raw to a whole GiB would
// leave both in the middle of the disk (sgdisk -v: "The secondary
// header's self-pointer indicates that it doesn't reside at the end of
// the disk"), so the padded disk gets them at its new end: the patches
// below rewrite the primary header (the backup's place and the last
// usable sector, with its CRC), write the backup array and header at the
// end, zero the old ones and widen the protective MBR's partition.

const (
	sector = 512
	// maxGPTEntries bounds the partition array read (the usual array is
	// 128 entries of 128 bytes).
	maxGPTEntries = 1024
)

// patch is bytes laid over disk.raw at an offset.
type patch struct {
	off  int64
	data []byte
}

// gptHeader is the fields of a GPT header that move.
type gptHeader struct {
	raw                   []byte // the header's bytes (headerSize of them)
	myLBA, alternateLBA   uint64
	firstUsable, lastUsed uint64
	entriesLBA            uint64
	count, entrySize      uint32
}

var le = binary.LittleEndian

// readGPTHeader reads and checks the GPT header at lba; ok is false when
// there is no GPT signature there.
func readGPTHeader(r io.ReaderAt, lba uint64) (h gptHeader, ok bool, err error) {
	b := make([]byte, sector)
	if _, err := r.ReadAt(b, int64(lba)*sector); err != nil {
		return h, false, fmt.Errorf("reading LBA %d: %w", lba, err)
	}
	if string(b[:8]) != "EFI PART" {
		return h, false, nil
	}
	size := le.Uint32(b[12:])
	if size < 92 || size > sector {
		return h, true, fmt.Errorf("GPT header at LBA %d: header size %d", lba, size)
	}
	raw := slices.Clone(b[:size])
	want := le.Uint32(raw[16:])
	clear(raw[16:20])
	if got := crc32.ChecksumIEEE(raw); got != want {
		return h, true, fmt.Errorf("GPT header at LBA %d: CRC %08x, the header says %08x", lba, got, want)
	}
	le.PutUint32(raw[16:], want)
	h = gptHeader{
		raw:          raw,
		myLBA:        le.Uint64(raw[24:]),
		alternateLBA: le.Uint64(raw[32:]),
		firstUsable:  le.Uint64(raw[40:]),
		lastUsed:     le.Uint64(raw[48:]),
		entriesLBA:   le.Uint64(raw[72:]),
		count:        le.Uint32(raw[80:]),
		entrySize:    le.Uint32(raw[84:]),
	}
	if h.myLBA != lba || h.count == 0 || h.count > maxGPTEntries || h.entrySize < 128 || h.entrySize > 4096 || h.entrySize%8 != 0 {
		return h, true, fmt.Errorf("GPT header at LBA %d: implausible (my LBA %d, %d entries of %d bytes)", lba, h.myLBA, h.count, h.entrySize)
	}
	return h, true, nil
}

// withCRC returns the header's bytes with fields set and the CRC redone.
func (h gptHeader) withCRC(set func(b []byte)) []byte {
	b := slices.Clone(h.raw)
	set(b)
	clear(b[16:20])
	le.PutUint32(b[16:], crc32.ChecksumIEEE(b))
	out := make([]byte, sector)
	copy(out, b)
	return out
}

// relocateGPT returns the patches that move the GPT of an image of size
// bytes to the end of a disk of newSize bytes. An image without a GPT (no
// signature at LBA 1) gets none; a GPT that is damaged, or a disk that
// does not grow, is an error.
func relocateGPT(r io.ReaderAt, size, newSize int64) ([]patch, error) {
	if size%sector != 0 || newSize%sector != 0 || newSize <= size {
		return nil, fmt.Errorf("moving the GPT from a %d to a %d byte disk", size, newSize)
	}
	h, ok, err := readGPTHeader(r, 1)
	if err != nil || !ok {
		return nil, err
	}
	arrayBytes := int64(h.count) * int64(h.entrySize)
	arraySectors := uint64((arrayBytes + sector - 1) / sector)
	oldEnd := uint64(size / sector)
	if h.entriesLBA < 2 || h.entriesLBA+arraySectors > h.firstUsable || h.lastUsed >= oldEnd || h.firstUsable > h.lastUsed {
		return nil, fmt.Errorf("GPT header: implausible layout (array at LBA %d, usable %d..%d, disk %d sectors)", h.entriesLBA, h.firstUsable, h.lastUsed, oldEnd)
	}
	array := make([]byte, arraySectors*sector)
	if _, err := r.ReadAt(array[:arrayBytes], int64(h.entriesLBA)*sector); err != nil {
		return nil, fmt.Errorf("reading the GPT partition array: %w", err)
	}
	if got, want := crc32.ChecksumIEEE(array[:arrayBytes]), le.Uint32(h.raw[88:]); got != want {
		return nil, fmt.Errorf("GPT partition array: CRC %08x, the header says %08x", got, want)
	}

	newAlt := uint64(newSize/sector) - 1
	newArray := newAlt - arraySectors
	primary := h.withCRC(func(b []byte) {
		le.PutUint64(b[32:], newAlt)
		le.PutUint64(b[48:], newArray-1)
	})
	backup := h.withCRC(func(b []byte) {
		le.PutUint64(b[24:], newAlt)
		le.PutUint64(b[32:], 1)
		le.PutUint64(b[48:], newArray-1)
		le.PutUint64(b[72:], newArray)
	})
	patches := []patch{{off: sector, data: primary}}

	// The old backup, when it is where a backup belongs (after the last
	// usable sector, inside the old disk), is zeroed: array and header.
	if old := h.alternateLBA; old > h.lastUsed && old < oldEnd {
		from := old - arraySectors
		if bh, ok, err := readGPTHeader(r, old); err == nil && ok && bh.entriesLBA > h.lastUsed && bh.entriesLBA < old {
			from = bh.entriesLBA
		}
		if from > h.lastUsed {
			patches = append(patches, patch{off: int64(from) * sector, data: make([]byte, (old-from+1)*sector)})
		}
	}

	// The protective MBR's partition covers the whole disk, or as much of
	// it as 32 bits count.
	mbr := make([]byte, sector)
	if _, err := r.ReadAt(mbr, 0); err != nil {
		return nil, fmt.Errorf("reading the protective MBR: %w", err)
	}
	if mbr[510] == 0x55 && mbr[511] == 0xAA && mbr[446+4] == 0xEE {
		le.PutUint32(mbr[446+12:], uint32(min(uint64(newSize/sector)-1, 0xFFFFFFFF)))
		patches = append(patches, patch{off: 0, data: mbr})
	}
	return append(patches, patch{off: int64(newArray) * sector, data: array}, patch{off: int64(newAlt) * sector, data: backup}), nil
}

// view is disk.raw as the archive holds it: the raw image, zeros up to
// size, and the patches laid over both.
type view struct {
	src     io.ReaderAt
	srcSize int64
	size    int64
	patches []patch
}

func (v *view) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= v.size {
		return 0, io.EOF
	}
	n := len(p)
	if rest := v.size - off; int64(n) > rest {
		n = int(rest)
	}
	q := p[:n]
	clear(q)
	if off < v.srcSize {
		m := min(int64(n), v.srcSize-off)
		if _, err := v.src.ReadAt(q[:m], off); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
	}
	for _, pt := range v.patches {
		lo, hi := max(off, pt.off), min(off+int64(n), pt.off+int64(len(pt.data)))
		if lo < hi {
			copy(q[lo-off:hi-off], pt.data[lo-pt.off:hi-pt.off])
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// extents returns the data extents of the view: the raw image's, and the
// patches' (which may hold data where the image has holes), merged.
func (v *view) extents(src []sparse.Extent) []sparse.Extent {
	all := slices.Clone(src)
	for _, pt := range v.patches {
		all = append(all, sparse.Extent{Off: pt.off, Len: int64(len(pt.data))})
	}
	slices.SortFunc(all, func(a, b sparse.Extent) int { return int(min(max(a.Off-b.Off, -1), 1)) })
	var out []sparse.Extent
	for _, e := range all {
		if n := len(out); n > 0 && e.Off <= out[n-1].End() {
			out[n-1].Len = max(out[n-1].End(), e.End()) - out[n-1].Off
			continue
		}
		out = append(out, e)
	}
	return out
}
