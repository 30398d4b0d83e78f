package artifact

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"
	"github.com/nodebake/nodebake/layers/failure"
	"github.com/nodebake/nodebake/layers/spec"
)

// ImageFiles returns the files of the built image <dir>/<name>.* to push,
// in a fixed order: the disk in the given output format (e.g. "raw.zst",
// "raw", "qcow2", named as the spec's format table says), the nodebake manifest, and the SPDX SBOM and SHA256SUMS when
// they exist. For "raw.zst" without a <name>.raw.zst, <name>.raw is
// compressed to a temporary file beside it; call cleanup when done with the
// files (it is never nil).
func ImageFiles(ctx context.Context, dir, name, format string) (files []File, cleanup func(), err error) {
	cleanup = func() {}
	format = strings.TrimPrefix(format, ".")
	info, ok := spec.Format(format).Info()
	switch {
	case !ok:
		return nil, cleanup, failure.Errorf(failure.Invalid, "format %q: not a disk image format (known: %s)", format, spec.FormatNames())
	case info.Directory:
		return nil, cleanup, failure.Errorf(failure.Invalid, "format %q: a directory of files, not one disk image; push a disk format", format)
	}
	diskName := name + info.Extension
	mt, err := MediaTypeFor(diskName)
	if err != nil || !IsDisk(mt) {
		return nil, cleanup, failure.Errorf(failure.Invalid, "format %q: not a disk image format", format)
	}
	disk := filepath.Join(dir, diskName)
	if _, err := os.Stat(disk); err != nil {
		raw := filepath.Join(dir, name+".raw")
		if format != "raw.zst" || !errors.Is(err, fs.ErrNotExist) {
			return nil, cleanup, failure.New(failure.Invalid, err)
		}
		if _, err := os.Stat(raw); err != nil {
			return nil, cleanup, failure.Errorf(failure.Invalid, "no disk image: %w", err)
		}
		tmp, err := os.CreateTemp(dir, "."+diskName+".tmp-*")
		if err != nil {
			return nil, cleanup, fmt.Errorf("compressing %s: %w", raw, err)
		}
		cleanup = func() { os.Remove(tmp.Name()) }
		err = CompressFile(ctx, raw, tmp)
		if cerr := tmp.Close(); err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			cleanup()
			return nil, func() {}, fmt.Errorf("compressing %s: %w", raw, err)
		}
		disk = tmp.Name()
	}
	files = append(files, File{Path: disk, Name: diskName, MediaType: mt})
	manifest := filepath.Join(dir, name+".manifest.json")
	if _, err := os.Stat(manifest); err != nil {
		cleanup()
		return nil, func() {}, failure.Errorf(failure.Invalid, "the image's manifest: %w", err)
	}
	files = append(files, File{Path: manifest})
	sbom, sums := name+".spdx.json", name+".SHA256SUMS"
	if nm, err := readNodebakeManifest(manifest); err == nil {
		// The manifest names its SBOM and sums files, when it has them.
		if nm.SBOM != "" {
			sbom = filepath.Base(nm.SBOM)
		}
		if nm.Checksums != "" {
			sums = filepath.Base(nm.Checksums)
		}
	}
	for _, extra := range []string{sbom, sums} {
		p := filepath.Join(dir, extra)
		if _, err := os.Stat(p); err == nil {
			files = append(files, File{Path: p})
		}
	}
	return files, cleanup, nil
}

// CompressFile writes the zstd compression of the file at src to dst,
// streaming. The output depends only on the input.
func CompressFile(ctx context.Context, src string, dst io.Writer) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	enc, err := zstd.NewWriter(dst, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return err
	}
	if _, err := io.Copy(enc, &ctxReader{ctx: ctx, r: in}); err != nil {
		enc.Close()
		return err
	}
	return enc.Close()
}

// sparseBlock is the granularity at which runs of zeros become holes.
const sparseBlock = 64 << 10

// decompressFile decompresses the zstd file at src into out as a sparse
// file, and returns the sha256 and size of the decompressed content.
func decompressFile(ctx context.Context, src string, out *os.File) (v1.Hash, int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return v1.Hash{}, 0, err
	}
	defer in.Close()
	dec, err := zstd.NewReader(in, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(1<<27))
	if err != nil {
		return v1.Hash{}, 0, err
	}
	defer dec.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	zero := make([]byte, sparseBlock)
	var off int64
	for {
		if err := ctx.Err(); err != nil {
			return v1.Hash{}, 0, err
		}
		n, rerr := io.ReadFull(dec, buf)
		h.Write(buf[:n])
		for i := 0; i < n; i += sparseBlock {
			b := buf[i:min(i+sparseBlock, n)]
			if bytes.Equal(b, zero[:len(b)]) {
				continue
			}
			if _, err := out.WriteAt(b, off+int64(i)); err != nil {
				return v1.Hash{}, 0, err
			}
		}
		off += int64(n)
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return v1.Hash{}, 0, rerr
		}
	}
	if err := out.Truncate(off); err != nil {
		return v1.Hash{}, 0, err
	}
	return hashOf(h), off, nil
}
