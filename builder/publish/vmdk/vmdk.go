// Package vmdk writes a raw disk image as a stream-optimized VMDK, the disk
// format of OVF/OVA appliances that vSphere imports (VMware Virtual Disk
// Format 1.1, "Stream-Optimized Compressed Sparse Extent").
//
// The file is a monolithic sparse extent with the descriptor embedded:
//
//	sector 0        sparse extent header (version 3, compressed grains,
//	                markers, grain directory at the end)
//	sector 1..20    the descriptor (createType "streamOptimized")
//	sector 128..    for each 64 KiB grain holding a non-zero byte, in guest
//	                order: a grain marker (guest sector, compressed size)
//	                and the grain deflated in zlib format, padded to a sector
//	then            for each grain table: a metadata marker and the table
//	                (512 entries: the sector of each grain's marker, 0 for
//	                a grain that reads as zeros)
//	then            a metadata marker and the grain directory
//	then            a footer marker, the footer (the header again, with the
//	                grain directory's offset) and the end-of-stream marker
//
// All-zero grains are omitted, also inside data extents, so the output
// depends on the image's bytes only. Grains are compressed by
// Options.Workers goroutines and written in guest order.
package vmdk

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zlib"

	"github.com/nodebake/nodebake/builder/publish/sparse"
)

// Options tunes Write.
type Options struct {
	// Seed derives the descriptor's content id (CID) and ddb.uuid. It must
	// not be empty.
	Seed []byte
	// ModTime would be any timestamp in the file; a VMDK has none.
	ModTime time.Time
	// Workers is the number of compressing goroutines; 0 means GOMAXPROCS.
	Workers int
}

const (
	sector         = 512
	grainSectors   = 128 // 64 KiB grains
	grainSize      = grainSectors * sector
	gtEntries      = 512 // grain table entries: 32 MiB of guest per table
	gtSectors      = gtEntries * 4 / sector
	descOffset     = 1  // sector of the embedded descriptor
	descSectors    = 20 // room for it
	overheadSector = 128

	magic           = 0x564d444b // "KDMV" read as little-endian
	flagNLDetect    = 1 << 0     // valid new line detection test
	flagCompressed  = 1 << 16
	flagMarkers     = 1 << 17
	gdAtEnd         = 0xFFFFFFFFFFFFFFFF
	compressDeflate = 1

	markerEOS    = 0
	markerGT     = 1
	markerGD     = 2
	markerFooter = 3

	// adapterType is the virtual controller vSphere attaches the disk to.
	adapterType = "lsilogic"
	// hwVersion is the oldest virtual hardware the disk works with; what
	// qemu-img and VMware's own exports write for stream-optimized disks.
	hwVersion = "4"
)

// Write converts the raw image src to a stream-optimized VMDK in dst. The
// descriptor names the extent by dst's base name.
func Write(ctx context.Context, dst *os.File, src *os.File, opts Options) error {
	if len(opts.Seed) == 0 {
		return errors.New("vmdk: Seed is empty")
	}
	size, err := sparse.Size(src)
	if err != nil {
		return fmt.Errorf("vmdk: %w", err)
	}
	if size == 0 {
		return fmt.Errorf("vmdk: %s is empty", src.Name())
	}
	capacity := (size + sector - 1) / sector // sectors
	grains := (capacity + grainSectors - 1) / grainSectors
	numGTs := (grains + gtEntries - 1) / gtEntries
	desc, err := descriptor(filepath.Base(dst.Name()), capacity, opts.Seed)
	if err != nil {
		return err
	}
	ext, err := sparse.Data(src)
	if err != nil {
		return fmt.Errorf("vmdk: %w", err)
	}

	if _, err := dst.Seek(overheadSector*sector, 0); err != nil {
		return fmt.Errorf("vmdk: seek %s: %w", dst.Name(), err)
	}
	out := &sectorWriter{w: bufio.NewWriterSize(dst, 4<<20), off: overheadSector * sector}
	gt := make([]uint32, numGTs*gtEntries)
	if err := writeGrains(ctx, out, src, size, ext, gt, sparse.Workers(opts.Workers)); err != nil {
		return err
	}

	// Grain tables, then the grain directory.
	gd := make([]uint32, numGTs)
	table := make([]byte, gtSectors*sector)
	for i := int64(0); i < numGTs; i++ {
		for j := 0; j < gtEntries; j++ {
			binary.LittleEndian.PutUint32(table[j*4:], gt[i*gtEntries+int64(j)])
		}
		out.write(marker(gtSectors, markerGT))
		gd[i] = uint32(out.off / sector)
		out.write(table)
	}
	gdSectors := (numGTs*4 + sector - 1) / sector
	gdb := make([]byte, gdSectors*sector)
	for i, e := range gd {
		binary.LittleEndian.PutUint32(gdb[i*4:], e)
	}
	out.write(marker(uint64(gdSectors), markerGD))
	gdOffset := uint64(out.off / sector)
	out.write(gdb)

	out.write(marker(1, markerFooter))
	out.write(header(uint64(capacity), gdOffset))
	out.write(marker(0, markerEOS))
	if err := out.flush(); err != nil {
		return fmt.Errorf("vmdk: write %s: %w", dst.Name(), err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := dst.WriteAt(header(uint64(capacity), gdAtEnd), 0); err != nil {
		return fmt.Errorf("vmdk: write header to %s: %w", dst.Name(), err)
	}
	if _, err := dst.WriteAt(desc, descOffset*sector); err != nil {
		return fmt.Errorf("vmdk: write descriptor to %s: %w", dst.Name(), err)
	}
	return nil
}

// header is the sparse extent header; in the footer gdOffset is the grain
// directory's sector, in the header proper gdAtEnd says to look there.
func header(capacity, gdOffset uint64) []byte {
	h := make([]byte, sector)
	le := binary.LittleEndian
	le.PutUint32(h[0:], magic)
	le.PutUint32(h[4:], 3) // version 3: stream-optimized
	le.PutUint32(h[8:], flagNLDetect|flagCompressed|flagMarkers)
	le.PutUint64(h[12:], capacity)
	le.PutUint64(h[20:], grainSectors)
	le.PutUint64(h[28:], descOffset)
	le.PutUint64(h[36:], descSectors)
	le.PutUint32(h[44:], gtEntries)
	le.PutUint64(h[48:], 0) // no redundant grain directory
	le.PutUint64(h[56:], gdOffset)
	le.PutUint64(h[64:], overheadSector)
	h[72] = 0                                          // cleanly closed
	h[73], h[74], h[75], h[76] = '\n', ' ', '\r', '\n' // new line detection characters
	le.PutUint16(h[77:], compressDeflate)
	return h
}

// marker is a metadata marker: the number of sectors of metadata that
// follow, size 0 and the type.
func marker(sectors uint64, typ uint32) []byte {
	m := make([]byte, sector)
	binary.LittleEndian.PutUint64(m[0:], sectors)
	binary.LittleEndian.PutUint32(m[12:], typ)
	return m
}

// descriptor is the embedded descriptor, zero-padded to its sectors.
func descriptor(name string, capacity int64, seed []byte) ([]byte, error) {
	if strings.ContainsAny(name, "\"\n\r") {
		return nil, fmt.Errorf("vmdk: file name %q cannot be named in the descriptor", name)
	}
	h := sha256.Sum256(append([]byte("nodebake/vmdk\x00"), seed...))
	cid := binary.BigEndian.Uint32(h[:4])
	if cid == 0xFFFFFFFF {
		cid = 0xFFFFFFFE // ffffffff means "no parent"
	}
	var uuid strings.Builder
	for i, b := range h[4:20] {
		switch {
		case i == 8:
			uuid.WriteByte('-')
		case i > 0:
			uuid.WriteByte(' ')
		}
		fmt.Fprintf(&uuid, "%02x", b)
	}
	cyl := min(capacity/(255*63), 65535)
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Disk DescriptorFile\n")
	fmt.Fprintf(&b, "version=1\n")
	fmt.Fprintf(&b, "encoding=\"UTF-8\"\n")
	fmt.Fprintf(&b, "CID=%08x\n", cid)
	fmt.Fprintf(&b, "parentCID=ffffffff\n")
	fmt.Fprintf(&b, "createType=\"streamOptimized\"\n")
	fmt.Fprintf(&b, "\n# Extent description\n")
	fmt.Fprintf(&b, "RW %d SPARSE \"%s\"\n", capacity, name)
	fmt.Fprintf(&b, "\n# The Disk Data Base\n#DDB\n\n")
	fmt.Fprintf(&b, "ddb.adapterType = \"%s\"\n", adapterType)
	fmt.Fprintf(&b, "ddb.geometry.cylinders = \"%d\"\n", cyl)
	fmt.Fprintf(&b, "ddb.geometry.heads = \"255\"\n")
	fmt.Fprintf(&b, "ddb.geometry.sectors = \"63\"\n")
	fmt.Fprintf(&b, "ddb.uuid = \"%s\"\n", uuid.String())
	fmt.Fprintf(&b, "ddb.virtualHWVersion = \"%s\"\n", hwVersion)
	if b.Len() > descSectors*sector {
		return nil, fmt.Errorf("vmdk: descriptor of %d bytes does not fit %d sectors", b.Len(), descSectors)
	}
	d := make([]byte, descSectors*sector)
	copy(d, b.Bytes())
	return d, nil
}

// sectorWriter writes sequentially and keeps the offset; the first error
// sticks.
type sectorWriter struct {
	w   *bufio.Writer
	off int64
	err error
}

func (s *sectorWriter) write(b []byte) {
	if s.err != nil {
		return
	}
	_, s.err = s.w.Write(b)
	s.off += int64(len(b))
}

func (s *sectorWriter) flush() error {
	if s.err != nil {
		return s.err
	}
	return s.w.Flush()
}

// job is one grain to compress; done receives the grain marker and data,
// padded to a sector.
type job struct {
	idx  int64
	raw  []byte
	done chan []byte
}

// writeGrains compresses the non-zero grains with workers goroutines and
// writes them in guest order, filling gt with the sector of each.
func writeGrains(ctx context.Context, out *sectorWriter, src *os.File, size int64, ext []sparse.Extent, gt []uint32, workers int) error {
	jobs := make(chan job, 2*workers)
	order := make(chan job, 4*workers) // the same jobs, in guest order
	free := make(chan []byte, 8*workers)
	var wg sync.WaitGroup
	var werr error // the first compression error, set under mu
	var mu sync.Mutex
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf bytes.Buffer
			zw, err := zlib.NewWriterLevel(&buf, zlib.DefaultCompression)
			for j := range jobs {
				if err == nil {
					buf.Reset()
					buf.Write(make([]byte, 12)) // grain marker: LBA, size
					zw.Reset(&buf)
					if _, err = zw.Write(j.raw); err == nil {
						err = zw.Close()
					}
				}
				if err != nil {
					mu.Lock()
					if werr == nil {
						werr = fmt.Errorf("vmdk: compress grain %d: %w", j.idx, err)
					}
					mu.Unlock()
					j.done <- nil
					continue
				}
				n := buf.Len()
				rec := make([]byte, (n+sector-1)/sector*sector)
				copy(rec, buf.Bytes())
				binary.LittleEndian.PutUint64(rec[0:], uint64(j.idx*grainSectors))
				binary.LittleEndian.PutUint32(rec[8:], uint32(n-12))
				select {
				case free <- j.raw:
				default:
				}
				j.done <- rec
			}
		}()
	}
	// The writer takes results in guest order.
	wdone := make(chan struct{})
	go func() {
		defer close(wdone)
		for j := range order {
			rec := <-j.done
			if rec == nil {
				continue
			}
			gt[j.idx] = uint32(out.off / sector)
			out.write(rec)
		}
	}()

	rerr := sparse.ForEachBlock(ctx, src, size, ext, grainSize, func(idx int64, b []byte) error {
		var raw []byte
		select {
		case raw = <-free:
		default:
			raw = make([]byte, grainSize)
		}
		copy(raw, b)
		clear(raw[len(b):]) // a short last grain is padded with zeros
		j := job{idx: idx, raw: raw, done: make(chan []byte, 1)}
		order <- j
		jobs <- j
		return nil
	})
	close(jobs)
	close(order)
	wg.Wait()
	<-wdone
	if rerr != nil {
		return fmt.Errorf("vmdk: read grains: %w", rerr)
	}
	if werr != nil {
		return werr
	}
	if out.err != nil {
		return fmt.Errorf("vmdk: write grains: %w", out.err)
	}
	if out.off/sector > 0xFFFFFFFF {
		return errors.New("vmdk: the grains take more than 2 TiB")
	}
	return nil
}
