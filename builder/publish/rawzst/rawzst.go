// Package rawzst writes a raw disk image as one zstd frame (".raw.zst"),
// the form in which raw images are usually published for download: `zstd
// -d --sparse` gives back the raw image with its holes.
//
// The frame header carries the content size (the raw image size), so a
// reader knows the decompressed size up front. The output depends only on
// the bytes of the image and the options: the frame has no timestamp or
// identifier, so Options.Seed and Options.ModTime are unused.
package rawzst

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/nodebake/nodebake/builder/publish/sparse"
)

// Options tunes Write.
type Options struct {
	// Seed would derive identifiers; a zstd frame has none.
	Seed []byte
	// ModTime would be any timestamp in the file; a zstd frame has none.
	ModTime time.Time
	// Workers is the number of compressing goroutines; 0 means GOMAXPROCS.
	Workers int
}

// chunk is how much is read and fed to the encoder at once.
const chunk = 4 << 20

// Write compresses the raw image src into dst as one zstd frame.
func Write(ctx context.Context, dst *os.File, src *os.File, opts Options) error {
	size, err := sparse.Size(src)
	if err != nil {
		return fmt.Errorf("rawzst: %w", err)
	}
	ext, err := sparse.Data(src)
	if err != nil {
		return fmt.Errorf("rawzst: %w", err)
	}
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedDefault),
		zstd.WithEncoderConcurrency(sparse.Workers(opts.Workers)),
		zstd.WithEncoderCRC(true),
	)
	if err != nil {
		return fmt.Errorf("rawzst: new zstd encoder: %w", err)
	}
	enc.ResetContentSize(dst, size)
	werr := feed(ctx, enc, src, size, ext)
	cerr := enc.Close()
	if werr != nil {
		return werr
	}
	if cerr != nil {
		return fmt.Errorf("rawzst: finish zstd frame in %s: %w", dst.Name(), cerr)
	}
	return nil
}

// feed writes the whole content of src to enc: the data extents as read,
// the holes as zeros (without reading them).
func feed(ctx context.Context, enc *zstd.Encoder, src *os.File, size int64, ext []sparse.Extent) error {
	buf := make([]byte, chunk)
	zeros := make([]byte, chunk)
	zeroFill := func(n int64) error {
		for n > 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			m := min(n, int64(len(zeros)))
			if _, err := enc.Write(zeros[:m]); err != nil {
				return fmt.Errorf("rawzst: compress: %w", err)
			}
			n -= m
		}
		return nil
	}
	pos := int64(0)
	for _, e := range ext {
		if err := zeroFill(e.Off - pos); err != nil {
			return err
		}
		for off := e.Off; off < e.End(); {
			if err := ctx.Err(); err != nil {
				return err
			}
			n := min(e.End()-off, int64(len(buf)))
			if _, err := src.ReadAt(buf[:n], off); err != nil {
				return fmt.Errorf("rawzst: read %s at %d: %w", src.Name(), off, err)
			}
			if _, err := enc.Write(buf[:n]); err != nil {
				return fmt.Errorf("rawzst: compress: %w", err)
			}
			off += n
		}
		pos = e.End()
	}
	return zeroFill(size - pos)
}
