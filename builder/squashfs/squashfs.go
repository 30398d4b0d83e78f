package squashfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"runtime"
)

// Defaults applied by Write to zero fields of Options.
const (
	DefaultBlockSize = 131072
	DefaultLevel     = 3
)

// Options tunes Write. The zero value is valid.
type Options struct {
	// BlockSize is the data block size: a power of two from 4 KiB to 1 MiB.
	// Zero means DefaultBlockSize (128 KiB).
	BlockSize int
	// Level is the zstd compression level, 1..22. Zero means DefaultLevel (3).
	Level int
	// Workers is the number of parallel compressors. Zero or less means
	// runtime.GOMAXPROCS(0). The output does not depend on it.
	Workers int
	// ModTime is the superblock modification time in unix seconds; it is
	// also the mtime of the root and of parent directories the tar stream
	// does not describe. Every other inode's mtime comes from its tar header.
	ModTime int64
	// DroppedXattr, when not nil, is called for every xattr that squashfs
	// cannot store and Write therefore leaves out, like mksquashfs does:
	// those outside the user., trusted. and security. name spaces, such as
	// the POSIX ACLs in system.posix_acl_access. entry is the tar name.
	DroppedXattr func(entry, name string)
}

// OptionError reports an invalid field of Options.
type OptionError struct {
	Field  string
	Value  int64
	Reason string
}

func (e *OptionError) Error() string {
	return fmt.Sprintf("squashfs option %s=%d: %s", e.Field, e.Value, e.Reason)
}

// EntryError reports a tar entry that cannot be stored.
type EntryError struct {
	Entry string // tar name of the entry, as found in the stream
	Err   error
}

func (e *EntryError) Error() string { return fmt.Sprintf("tar entry %q: %v", e.Entry, e.Err) }

func (e *EntryError) Unwrap() error { return e.Err }

func (o Options) withDefaults() (Options, error) {
	if o.BlockSize == 0 {
		o.BlockSize = DefaultBlockSize
	}
	if o.BlockSize < 4096 || o.BlockSize > 1<<20 || bits.OnesCount(uint(o.BlockSize)) != 1 {
		return o, &OptionError{"BlockSize", int64(o.BlockSize), "must be a power of two from 4096 to 1048576"}
	}
	if o.Level == 0 {
		o.Level = DefaultLevel
	}
	if o.Level < 1 || o.Level > 22 {
		return o, &OptionError{"Level", int64(o.Level), "zstd level must be from 1 to 22"}
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.ModTime < 0 || o.ModTime > math.MaxUint32 {
		return o, &OptionError{"ModTime", o.ModTime, "must fit in an unsigned 32 bit number of seconds"}
	}
	return o, nil
}

// Write reads a tar stream and writes a squashfs filesystem to dst starting at
// offset 0. It returns the filesystem size in bytes, padded with zeros to a
// multiple of 4 KiB like mksquashfs; Write writes nothing past that size.
// A tar entry that cannot be stored gives an *EntryError naming it, invalid
// options an *OptionError.
func Write(ctx context.Context, dst io.WriterAt, src io.Reader, opts Options) (int64, error) {
	if dst == nil || src == nil {
		return 0, errors.New("squashfs: nil destination or source")
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return 0, err
	}
	start := int64(superblockSize)
	if opts.Level != zstdDefaultLevel {
		start += compOptionsSize
	}
	p, err := newPipeline(dst, start, opts)
	if err != nil {
		return 0, err
	}
	root, ingestErr := ingest(ctx, src, p, opts)
	dataEnd, pipeErr := p.finish(ingestErr == nil)
	if ingestErr != nil {
		return 0, ingestErr
	}
	if pipeErr != nil {
		return 0, pipeErr
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return writeTables(dst, root, p.frags, dataEnd, p.highWater, opts)
}
