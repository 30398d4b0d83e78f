// Package vhd writes a raw disk image as a fixed VHD, the format Azure
// imports page blobs from: the raw bytes, padded with zeros to a whole MiB
// (Azure requires the virtual size to be a MiB multiple), followed by the
// 512-byte hard disk footer of the Virtual Hard Disk Image Format
// Specification. The output stays sparse: only the non-zero 64 KiB blocks
// of the image are written, the rest is left as holes.
//
// The footer's creator application is "qem2". Readers disagree on where a
// VHD's size comes from: Virtual PC took it from the CHS geometry, Hyper-V
// and Azure take the footer's current size. QEMU (block/vpc.c) decides by
// the creator application: "vpc " and "qemu" mean the geometry (which can
// only express a multiple of heads*sectors and so is usually smaller than
// the image), while "qem2" (what `qemu-img convert -o force_size=on`
// writes), "win ", "d2v ", "CTXS" and "tap\0" mean the current size. With
// "qem2" QEMU sees exactly the padded size, as Azure does. The geometry is
// still the one the specification's algorithm gives for the size.
//
// A fixed VHD has no header, only the footer at its end, so QEMU cannot
// probe it and takes it for raw: open it with an explicit format (`qemu-img
// info -f vpc`), as for the fixed VHDs qemu-img itself writes.
package vhd

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/google/uuid"

	"github.com/nodebake/nodebake/builder/publish/sparse"
)

// Options tunes Write.
type Options struct {
	// Seed derives the footer's unique id. It must not be empty.
	Seed []byte
	// ModTime is the footer's timestamp; before 2000-01-01 it is clamped to
	// it (SOURCE_DATE_EPOCH=0), after 2136-02-07 UTC it is an error
	// (the footer counts seconds since 2000 in 32 bits).
	ModTime time.Time
	// Workers is unused: writing is bound by reading the raw image.
	Workers int
}

const (
	// FooterSize is the size of the hard disk footer.
	FooterSize = 512
	// Align is the multiple of the virtual size (Azure's requirement).
	Align = 1 << 20

	blockSize = 64 << 10
	writeBuf  = 4 << 20
	// maxSize is the largest fixed VHD size Azure and the specification's
	// 2040 GiB limit (QEMU's too) allow.
	maxSize = 2040 << 30
)

// epoch is the VHD timestamp origin, 2000-01-01T00:00:00Z, in Unix time.
const epoch = 946684800

// Write converts the raw image src into a fixed VHD in dst.
func Write(ctx context.Context, dst *os.File, src *os.File, opts Options) error {
	size, err := sparse.Size(src)
	if err != nil {
		return fmt.Errorf("vhd: %w", err)
	}
	if size == 0 {
		return fmt.Errorf("vhd: %s is empty", src.Name())
	}
	padded := (size + Align - 1) / Align * Align
	if padded > maxSize {
		return fmt.Errorf("vhd: %s: %d bytes is over the VHD limit of %d", src.Name(), padded, int64(maxSize))
	}
	footer, err := Footer(padded, opts)
	if err != nil {
		return err
	}
	ext, err := sparse.Data(src)
	if err != nil {
		return fmt.Errorf("vhd: %w", err)
	}
	w := runWriter{f: dst, buf: make([]byte, 0, writeBuf)}
	err = sparse.ForEachBlock(ctx, src, size, ext, blockSize, func(idx int64, b []byte) error {
		return w.write(idx*blockSize, b)
	})
	if err != nil {
		return fmt.Errorf("vhd: copy data: %w", err)
	}
	if err := w.flush(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := dst.Truncate(padded); err != nil {
		return fmt.Errorf("vhd: set size of %s: %w", dst.Name(), err)
	}
	if _, err := dst.WriteAt(footer, padded); err != nil {
		return fmt.Errorf("vhd: write footer to %s: %w", dst.Name(), err)
	}
	return nil
}

// Footer returns the hard disk footer of a fixed VHD of size bytes.
func Footer(size int64, opts Options) ([]byte, error) {
	if len(opts.Seed) == 0 {
		return nil, errors.New("vhd: Seed is empty")
	}
	if size <= 0 || size%512 != 0 {
		return nil, fmt.Errorf("vhd: size %d is not a positive multiple of 512", size)
	}
	ts := opts.ModTime.Unix() - epoch
	if ts < 0 {
		// A SOURCE_DATE_EPOCH before 2000 (often 0): the footer's
		// timestamp is informational, so it says the VHD epoch itself.
		ts = 0
	}
	if ts > 0xFFFFFFFF {
		return nil, fmt.Errorf("vhd: ModTime %s is outside the VHD timestamp range (2000-01-01 to 2136-02-07 UTC)", opts.ModTime.UTC().Format(time.RFC3339))
	}
	f := make([]byte, FooterSize)
	be := binary.BigEndian
	copy(f[0:], "conectix")                  // cookie
	be.PutUint32(f[8:], 0x00000002)          // features: the reserved bit, always set
	be.PutUint32(f[12:], 0x00010000)         // file format version 1.0
	be.PutUint64(f[16:], 0xFFFFFFFFFFFFFFFF) // data offset: none for a fixed disk
	be.PutUint32(f[24:], uint32(ts))         // timestamp
	copy(f[28:], "qem2")                     // creator application: see the package doc
	be.PutUint32(f[32:], 0x00010000)         // creator version
	copy(f[36:], "Wi2k")                     // creator host OS (the spec knows Wi2k and Mac)
	be.PutUint64(f[40:], uint64(size))       // original size
	be.PutUint64(f[48:], uint64(size))       // current size
	c, h, s := Geometry(size / 512)
	be.PutUint16(f[56:], c)           // cylinders
	f[58], f[59] = h, s               // heads, sectors per track
	be.PutUint32(f[60:], 2)           // disk type: fixed
	copy(f[68:], uniqueID(opts.Seed)) // unique id
	be.PutUint32(f[64:], Checksum(f)) // checksum, over all the rest
	return f, nil
}

// uniqueID derives the footer's UUID from the seed.
func uniqueID(seed []byte) []byte {
	h := sha256.Sum256(append([]byte("nodebake/vhd/unique-id\x00"), seed...))
	id := uuid.NewSHA1(uuid.NameSpaceOID, h[:])
	return id[:]
}

// Checksum is the one's complement of the sum of the footer's bytes,
// without the checksum field (bytes 64..67).
func Checksum(footer []byte) uint32 {
	var sum uint32
	for i, b := range footer {
		if i >= 64 && i < 68 {
			continue
		}
		sum += uint32(b)
	}
	return ^sum
}

// Geometry is the CHS geometry of a disk of totalSectors 512-byte sectors,
// by the algorithm of the VHD specification (appendix "CHS Calculation").
func Geometry(totalSectors int64) (cylinders uint16, heads, sectorsPerTrack uint8) {
	if totalSectors > 65535*16*255 {
		totalSectors = 65535 * 16 * 255
	}
	var spt, hds, cth int64
	if totalSectors >= 65535*16*63 {
		spt = 255
		hds = 16
		cth = totalSectors / spt
	} else {
		spt = 17
		cth = totalSectors / spt
		hds = (cth + 1023) / 1024
		if hds < 4 {
			hds = 4
		}
		if cth >= hds*1024 || hds > 16 {
			spt = 31
			hds = 16
			cth = totalSectors / spt
		}
		if cth >= hds*1024 {
			spt = 63
			hds = 16
			cth = totalSectors / spt
		}
	}
	return uint16(cth / hds), uint8(hds), uint8(spt)
}

// runWriter writes blocks at their offsets, joining adjacent ones into
// large writes.
type runWriter struct {
	f   *os.File
	buf []byte
	at  int64
}

func (w *runWriter) write(off int64, b []byte) error {
	if len(w.buf) > 0 && (w.at+int64(len(w.buf)) != off || len(w.buf)+len(b) > cap(w.buf)) {
		if err := w.flush(); err != nil {
			return err
		}
	}
	if len(w.buf) == 0 {
		w.at = off
	}
	w.buf = append(w.buf, b...)
	return nil
}

func (w *runWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	if _, err := w.f.WriteAt(w.buf, w.at); err != nil {
		return fmt.Errorf("vhd: write %d bytes at %d of %s: %w", len(w.buf), w.at, w.f.Name(), err)
	}
	w.buf = w.buf[:0]
	return nil
}
