// Package gce writes a raw disk image in the form Google Compute Engine
// imports images from: a gzip-compressed tar archive holding exactly one
// file, disk.raw, in the old GNU tar format, the archive `tar
// --format=oldgnu -Sczf image.tar.gz disk.raw` makes.
//
// Compute Engine wants disk.raw to be a whole number of GiB (its "GB"), so
// the image is padded with zeros up to the next GiB multiple: disk.raw is
// the raw image followed by zeros. A GPT's backup header and partition
// array move to the end of the padded disk, where they belong (see
// gpt.go), and the primary header and protective MBR say so: sgdisk -v
// finds disk.raw clean. The padding costs nothing: disk.raw is a
// GNU sparse member (type 'S') whose sparse map lists only the non-zero
// 4 KiB blocks, so the holes and the padding are neither stored nor
// compressed, as with tar -S.
//
// The member has mode 0644, uid and gid 0, owner and group root and
// Options.ModTime as its mtime; the gzip header has no file name and
// Options.ModTime as its mtime. The archive is compressed in parallel
// (independent 1 MiB blocks that each carry the previous block's tail as
// their dictionary), which gives the same bytes for any number of workers.
package gce

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/klauspost/pgzip"

	"github.com/nodebake/nodebake/builder/publish/sparse"
)

// Options tunes Write.
type Options struct {
	// Seed would derive identifiers; the archive has none.
	Seed []byte
	// ModTime is the mtime of disk.raw and of the gzip header; it must lie
	// between 1970 and 2106 (gzip keeps 32 bits of Unix time).
	ModTime time.Time
	// Workers is the number of compressing goroutines; 0 means GOMAXPROCS.
	Workers int
}

const (
	// MemberName is the one file in the archive.
	MemberName = "disk.raw"
	// Align is the multiple of disk.raw's size.
	Align = 1 << 30

	blockSize  = 4096     // the granularity of the sparse map
	recordSize = 20 * 512 // GNU tar's default record: the archive is padded to it
	gzipBlock  = 1 << 20
	chunk      = 4 << 20
)

// Write converts the raw image src into a GCE image archive in dst.
func Write(ctx context.Context, dst *os.File, src *os.File, opts Options) error {
	mtime := opts.ModTime.Unix()
	if mtime < 0 || mtime > 0xFFFFFFFF {
		return fmt.Errorf("gce: ModTime %s is outside the gzip timestamp range (1970 to 2106)", opts.ModTime.UTC().Format(time.RFC3339))
	}
	size, err := sparse.Size(src)
	if err != nil {
		return fmt.Errorf("gce: %w", err)
	}
	if size == 0 {
		return fmt.Errorf("gce: %s is empty", src.Name())
	}
	realSize := (size + Align - 1) / Align * Align
	ext, err := sparse.Data(src)
	if err != nil {
		return fmt.Errorf("gce: %w", err)
	}
	disk := &view{src: src, srcSize: size, size: realSize}
	if realSize > size {
		if disk.patches, err = relocateGPT(src, size, realSize); err != nil {
			return fmt.Errorf("gce: %s: %w", src.Name(), err)
		}
		ext = disk.extents(ext)
	}
	// First pass: the sparse map, from the non-zero blocks.
	var runs []run
	err = sparse.ForEachBlock(ctx, disk, realSize, ext, blockSize, func(idx int64, b []byte) error {
		off := idx * blockSize
		if n := len(runs); n > 0 && runs[n-1].off+runs[n-1].len == off {
			runs[n-1].len += int64(len(b))
		} else {
			runs = append(runs, run{off, int64(len(b))})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("gce: scan %s: %w", src.Name(), err)
	}
	hdr, err := headers(runs, realSize, mtime)
	if err != nil {
		return err
	}

	workers := sparse.Workers(opts.Workers)
	gz, err := pgzip.NewWriterLevel(dst, pgzip.DefaultCompression)
	if err != nil {
		return fmt.Errorf("gce: new gzip writer: %w", err)
	}
	if err := gz.SetConcurrency(gzipBlock, 2*workers); err != nil {
		return fmt.Errorf("gce: gzip concurrency: %w", err)
	}
	gz.Name = ""
	gz.ModTime = time.Unix(mtime, 0)
	gz.OS = 255 // unknown
	werr := writeTar(ctx, gz, disk, src.Name(), hdr, runs)
	cerr := gz.Close()
	if werr != nil {
		return werr
	}
	if cerr != nil {
		return fmt.Errorf("gce: finish gzip stream in %s: %w", dst.Name(), cerr)
	}
	return nil
}

// run is a stored region of disk.raw.
type run struct{ off, len int64 }

// writeTar writes the member's headers, its stored regions and the end of
// the archive.
func writeTar(ctx context.Context, w io.Writer, src io.ReaderAt, name string, hdr []byte, runs []run) error {
	if _, err := w.Write(hdr); err != nil {
		return fmt.Errorf("gce: compress: %w", err)
	}
	written := int64(len(hdr))
	buf := make([]byte, chunk)
	for _, r := range runs {
		for off := r.off; off < r.off+r.len; {
			if err := ctx.Err(); err != nil {
				return err
			}
			n := min(r.off+r.len-off, chunk)
			if _, err := src.ReadAt(buf[:n], off); err != nil {
				return fmt.Errorf("gce: read %s at %d: %w", name, off, err)
			}
			if _, err := w.Write(buf[:n]); err != nil {
				return fmt.Errorf("gce: compress: %w", err)
			}
			off += n
			written += n
		}
	}
	// Pad the data to a block, add the two zero blocks that end the
	// archive and pad that to a whole record.
	end := (written+511)/512*512 + 2*512
	end = (end + recordSize - 1) / recordSize * recordSize
	if _, err := w.Write(make([]byte, end-written)); err != nil {
		return fmt.Errorf("gce: compress: %w", err)
	}
	return nil
}

// headers returns the old GNU header of the sparse member and its sparse
// extension blocks.
func headers(runs []run, realSize, mtime int64) ([]byte, error) {
	var stored int64
	for _, r := range runs {
		stored += r.len
	}
	// Like GNU tar, end the map with an empty entry at the end of the file
	// when the file ends in a hole (always when it was padded), and give
	// a file without data that one entry only.
	entries := runs
	if n := len(runs); n == 0 || runs[n-1].off+runs[n-1].len < realSize {
		entries = append(entries[:n:n], run{realSize, 0})
	}
	const inHeader, perExt = 4, 21
	nExt := 0
	if len(entries) > inHeader {
		nExt = (len(entries) - inHeader + perExt - 1) / perExt
	}
	out := make([]byte, 512*(1+nExt))
	h := out[:512]
	copy(h[0:100], MemberName)
	if err := octal(h[100:108], 0o644); err != nil {
		return nil, err
	}
	if err := octal(h[108:116], 0); err != nil { // uid
		return nil, err
	}
	if err := octal(h[116:124], 0); err != nil { // gid
		return nil, err
	}
	if err := numeric(h[124:136], stored); err != nil {
		return nil, fmt.Errorf("gce: size: %w", err)
	}
	if err := numeric(h[136:148], mtime); err != nil {
		return nil, fmt.Errorf("gce: mtime: %w", err)
	}
	h[156] = 'S' // GNU sparse file
	copy(h[257:265], "ustar  \x00")
	copy(h[265:297], "root")
	copy(h[297:329], "root")
	put := func(field []byte, e run) error {
		if err := numeric(field[0:12], e.off); err != nil {
			return fmt.Errorf("gce: sparse offset: %w", err)
		}
		if err := numeric(field[12:24], e.len); err != nil {
			return fmt.Errorf("gce: sparse length: %w", err)
		}
		return nil
	}
	for i := 0; i < min(inHeader, len(entries)); i++ {
		if err := put(h[386+24*i:], entries[i]); err != nil {
			return nil, err
		}
	}
	if nExt > 0 {
		h[482] = 1 // isextended
	}
	if err := numeric(h[483:495], realSize); err != nil {
		return nil, fmt.Errorf("gce: real size: %w", err)
	}
	for x := range nExt {
		blk := out[512*(1+x) : 512*(2+x)]
		rest := entries[inHeader+x*perExt:]
		for i := 0; i < min(perExt, len(rest)); i++ {
			if err := put(blk[24*i:], rest[i]); err != nil {
				return nil, err
			}
		}
		if x < nExt-1 {
			blk[504] = 1 // isextended
		}
	}
	// The checksum: the unsigned sum of the header's bytes with the
	// checksum field read as spaces, as six octal digits, NUL, space.
	copy(h[148:156], "        ")
	var sum int64
	for _, b := range h {
		sum += int64(b)
	}
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return out, nil
}

// octal writes v as zero-padded octal digits and a NUL into field.
func octal(field []byte, v int64) error {
	s := fmt.Sprintf("%0*o", len(field)-1, v)
	if v < 0 || len(s) > len(field)-1 {
		return fmt.Errorf("%d does not fit %d octal digits", v, len(field)-1)
	}
	copy(field, s)
	field[len(field)-1] = 0
	return nil
}

// numeric writes v as octal when it fits, else in GNU's base-256 form (a
// leading 0x80 byte, then big-endian).
func numeric(field []byte, v int64) error {
	if v < 0 {
		return errors.New("negative number")
	}
	if octal(field, v) == nil {
		return nil
	}
	clear(field)
	for i := len(field) - 1; i > 0; i-- {
		field[i] = byte(v)
		v >>= 8
	}
	field[0] = 0x80
	return nil
}
