// Package sparse finds the data regions of a sparse file and walks its
// non-zero blocks. The publish format writers share it so that only the
// allocated part of a raw disk image is ever read.
//
// What a writer emits must depend on the bytes of the image only, never on
// how the file system happens to have allocated it (two file systems may
// report a zero region as data on one and as a hole on the other), so the
// writers treat data extents only as a hint of where to read and decide
// by content which blocks hold data.
package sparse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"syscall"
)

// Extent is a byte range [Off, Off+Len) of a file.
type Extent struct{ Off, Len int64 }

// End is the offset just past the extent.
func (e Extent) End() int64 { return e.Off + e.Len }

// Whence values of lseek(2) for sparse files (Linux, the BSDs, Solaris).
const (
	seekData = 3
	seekHole = 4
)

// Data returns the data extents of f (SEEK_DATA/SEEK_HOLE; the whole file
// when the FS does not support them), sorted, non-overlapping. The file
// offset of f is left unspecified; read it with ReadAt.
func Data(f *os.File) ([]Extent, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("sparse: stat %s: %w", f.Name(), err)
	}
	size := fi.Size()
	if size == 0 {
		return nil, nil
	}
	var out []Extent
	off := int64(0)
	for off < size {
		start, err := f.Seek(off, seekData)
		if err != nil {
			if errors.Is(err, syscall.ENXIO) {
				break // only a hole is left
			}
			if off == 0 && (errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP) || errors.Is(err, syscall.EOPNOTSUPP)) {
				return []Extent{{0, size}}, nil
			}
			return nil, fmt.Errorf("sparse: SEEK_DATA %s at %d: %w", f.Name(), off, err)
		}
		if start >= size {
			break
		}
		end, err := f.Seek(start, seekHole)
		if err != nil {
			return nil, fmt.Errorf("sparse: SEEK_HOLE %s at %d: %w", f.Name(), start, err)
		}
		if end > size {
			end = size
		}
		if end <= start {
			return nil, fmt.Errorf("sparse: %s: SEEK_HOLE at %d returned %d", f.Name(), start, end)
		}
		if n := len(out); n > 0 && out[n-1].End() >= start {
			out[n-1].Len = end - out[n-1].Off
		} else {
			out = append(out, Extent{start, end - start})
		}
		off = end
	}
	return out, nil
}

// Blocks rounds the extents out to whole blocks of bs bytes (block i is
// [i*bs, (i+1)*bs)), clipped to size, and returns the covering block index
// ranges [First, Last] in increasing order, merged where they touch.
func Blocks(ext []Extent, size, bs int64) []BlockRange {
	var out []BlockRange
	nblocks := (size + bs - 1) / bs
	for _, e := range ext {
		if e.Len <= 0 || e.Off >= size {
			continue
		}
		first := e.Off / bs
		last := (min(e.End(), size) - 1) / bs
		if last >= nblocks {
			last = nblocks - 1
		}
		if n := len(out); n > 0 && out[n-1].Last+1 >= first {
			out[n-1].Last = max(out[n-1].Last, last)
			continue
		}
		out = append(out, BlockRange{first, last})
	}
	return out
}

// BlockRange is the inclusive range of block indexes [First, Last].
type BlockRange struct{ First, Last int64 }

// IsZero reports whether b holds only zero bytes.
func IsZero(b []byte) bool {
	// b[0] is zero and every byte equals the one before it: the
	// overlapping comparison runs at memequal speed with no zero buffer.
	return len(b) == 0 || (b[0] == 0 && bytes.Equal(b[1:], b[:len(b)-1]))
}

// chunkSize is how much ForEachBlock reads at once.
const chunkSize = 4 << 20

// ForEachBlock reads the blocks of bs bytes of src (size bytes long) that
// overlap the data extents ext, in increasing order, and calls fn for each
// one that holds a non-zero byte, with the block index and its bytes. The
// last block of the file is short when size is not a multiple of bs. b is
// valid only during the call. ctx is checked before every read.
func ForEachBlock(ctx context.Context, src io.ReaderAt, size int64, ext []Extent, bs int64, fn func(idx int64, b []byte) error) error {
	if bs <= 0 || bs > chunkSize {
		return fmt.Errorf("sparse: block size %d out of range", bs)
	}
	per := chunkSize / bs
	buf := make([]byte, per*bs)
	for _, r := range Blocks(ext, size, bs) {
		for first := r.First; first <= r.Last; first += per {
			if err := ctx.Err(); err != nil {
				return err
			}
			last := min(first+per-1, r.Last)
			off := first * bs
			n := min((last+1)*bs, size) - off
			if _, err := src.ReadAt(buf[:n], off); err != nil && !(errors.Is(err, io.EOF) && n == 0) {
				return fmt.Errorf("sparse: read %d bytes at %d: %w", n, off, err)
			}
			for i := first; i <= last; i++ {
				lo := (i - first) * bs
				hi := min(lo+bs, n)
				b := buf[lo:hi]
				if IsZero(b) {
					continue
				}
				if err := fn(i, b); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Size returns the size of f in bytes.
func Size(f *os.File) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("%s is not a regular file", f.Name())
	}
	return fi.Size(), nil
}

// Workers returns n, or GOMAXPROCS when n <= 0.
func Workers(n int) int {
	if n > 0 {
		return n
	}
	return max(1, runtime.GOMAXPROCS(0))
}
