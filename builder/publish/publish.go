// Package publish converts a built raw disk image into the formats users
// publish: raw.zst, qcow2, VHD, stream-optimized VMDK, the GCE import
// tarball, the network-boot bundle and, for a verified image, the update
// systemd-sysupdate installs. Every converter is pure Go; each
// writes under a temporary name, and nothing takes its final name until
// every requested format is written (Staged.Commit).
package publish

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/nodebake/nodebake/builder/disk"
	"github.com/nodebake/nodebake/builder/publish/gce"
	"github.com/nodebake/nodebake/builder/publish/netboot"
	"github.com/nodebake/nodebake/builder/publish/qcow2"
	"github.com/nodebake/nodebake/builder/publish/rawzst"
	"github.com/nodebake/nodebake/builder/publish/vhd"
	"github.com/nodebake/nodebake/builder/publish/vmdk"
	"github.com/nodebake/nodebake/builder/sysupdate"
	"github.com/nodebake/nodebake/layers/spec"
)

// Target is one output to write: a format and its final path (a file, or
// for a directory format the directory). The build plan names them.
type Target struct {
	Format spec.Format
	Path   string
}

// Options configure a conversion.
type Options struct {
	// Targets are the outputs to write; a FormatRaw target is skipped (the
	// raw image is the input, kept or not by the caller).
	Targets []Target
	// Seed derives every identifier a format carries (VHD unique id, VMDK
	// CID and UUID); the build passes the spec hash and base digest.
	Seed []byte
	// ModTime is every timestamp a format carries.
	ModTime time.Time
	// Workers bounds parallel compression; GOMAXPROCS when 0.
	Workers int
	// FirstbootBinary is the nodebake-firstboot program; the network-boot
	// bundle's initrd runs its netroot command. Required for FormatNetboot.
	FirstbootBinary string
	// NetbootURL is where the network-boot bundle will be served from;
	// empty lets the iPXE script use the URL it was loaded from.
	NetbootURL string
	// Progress, when set, is told when each format starts.
	Progress func(format spec.Format, message string)
}

// Output is one written format.
type Output struct {
	Format spec.Format
	// Path is the final path: a file, or a directory for FormatNetboot.
	Path string
	// Files are the final paths of the files written, with their sha256
	// and size: the one file, or each file of a bundle.
	Files []File
	// Duration is how long the conversion took.
	Duration time.Duration

	tmp string
}

// File is one written file.
type File struct {
	Path   string
	SHA256 string
	Size   int64
}

// Size returns the total size of the output's files.
func (o Output) Size() int64 {
	var n int64
	for _, f := range o.Files {
		n += f.Size
	}
	return n
}

// Staged are written outputs still under their temporary names.
type Staged struct {
	Outputs []Output
}

// converter writes a single-file format.
type converter func(ctx context.Context, dst, src *os.File, o Options) error

// converters returns the writers of the single-file formats (their names
// and extensions are the spec's format table's). Every writer takes the
// same options: the seed, the timestamp and the number of workers.
func converters() map[spec.Format]converter {
	return map[spec.Format]converter{
		spec.FormatRawZst: func(ctx context.Context, dst, src *os.File, o Options) error {
			return rawzst.Write(ctx, dst, src, rawzst.Options{Seed: o.Seed, ModTime: o.ModTime, Workers: o.Workers})
		},
		spec.FormatQCOW2: func(ctx context.Context, dst, src *os.File, o Options) error {
			return qcow2.Write(ctx, dst, src, qcow2.Options{Seed: o.Seed, ModTime: o.ModTime, Workers: o.Workers})
		},
		spec.FormatVHD: func(ctx context.Context, dst, src *os.File, o Options) error {
			return vhd.Write(ctx, dst, src, vhd.Options{Seed: o.Seed, ModTime: o.ModTime, Workers: o.Workers})
		},
		spec.FormatVMDK: func(ctx context.Context, dst, src *os.File, o Options) error {
			return vmdk.Write(ctx, dst, src, vmdk.Options{Seed: o.Seed, ModTime: o.ModTime, Workers: o.Workers})
		},
		spec.FormatGCE: func(ctx context.Context, dst, src *os.File, o Options) error {
			return gce.Write(ctx, dst, src, gce.Options{Seed: o.Seed, ModTime: o.ModTime, Workers: o.Workers})
		},
	}
}

// check refuses a target whose format is unknown or that has no writer.
func check(t Target) error {
	if _, ok := t.Format.Info(); !ok {
		return fmt.Errorf("unknown format %q (known: %s)", t.Format, spec.FormatNames())
	}
	if _, ok := converters()[t.Format]; !ok && t.Format != spec.FormatRaw && t.Format != spec.FormatNetboot && t.Format != spec.FormatUpdate {
		return fmt.Errorf("format %s has no writer", t.Format)
	}
	if t.Path == "" {
		return fmt.Errorf("format %s: no output path", t.Format)
	}
	return nil
}

// Convert writes every target of opts (but raw) from the raw image under
// temporary names beside their final paths. On error nothing is left; on
// success the caller commits or aborts the result.
func Convert(ctx context.Context, raw string, opts Options) (_ *Staged, err error) {
	needsFirstboot := false
	// Every target is checked before any work.
	for _, t := range opts.Targets {
		if err := check(t); err != nil {
			return nil, err
		}
		needsFirstboot = needsFirstboot || t.Format == spec.FormatNetboot
	}
	if needsFirstboot && opts.FirstbootBinary == "" {
		return nil, errors.New("publish: the netboot format needs the nodebake-firstboot program")
	}
	st := &Staged{}
	defer func() {
		if err != nil {
			st.Abort()
		}
	}()
	for _, t := range opts.Targets {
		if t.Format == spec.FormatRaw {
			continue
		}
		base := filepath.Base(t.Path)
		if opts.Progress != nil {
			opts.Progress(t.Format, "writing "+base)
		}
		start := time.Now()
		tmp := filepath.Join(filepath.Dir(t.Path), "."+base+".partial")
		out := Output{Format: t.Format, Path: t.Path, tmp: tmp}
		if t.Format == spec.FormatNetboot {
			os.RemoveAll(tmp)
			_, err := netboot.Write(ctx, tmp, raw, netboot.Options{
				FirstbootBinary: opts.FirstbootBinary,
				BaseURL:         opts.NetbootURL,
				ModTime:         opts.ModTime,
			})
			if err != nil {
				return nil, fmt.Errorf("writing the netboot bundle: %w", err)
			}
			files, err := hashTree(ctx, tmp, t.Path)
			if err != nil {
				os.RemoveAll(tmp)
				return nil, fmt.Errorf("hashing the netboot bundle: %w", err)
			}
			out.Files = files
		} else if t.Format == spec.FormatUpdate {
			files, err := writeUpdate(ctx, tmp, raw, t.Path)
			if err != nil {
				return nil, err
			}
			out.Files = files
		} else {
			file, err := writeOne(ctx, converters()[t.Format], raw, tmp, opts)
			if err != nil {
				return nil, fmt.Errorf("writing %s: %w", base, err)
			}
			file.Path = t.Path
			out.Files = []File{file}
		}
		out.Duration = time.Since(start)
		st.Outputs = append(st.Outputs, out)
	}
	return st, nil
}

func writeOne(ctx context.Context, c converter, raw, tmp string, opts Options) (File, error) {
	src, err := os.Open(raw)
	if err != nil {
		return File{}, err
	}
	defer src.Close()
	dst, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return File{}, err
	}
	ok := false
	defer func() {
		if !ok {
			dst.Close()
			os.Remove(tmp)
		}
	}()
	if err := c(ctx, dst, src, opts); err != nil {
		return File{}, err
	}
	if err := dst.Sync(); err != nil {
		return File{}, err
	}
	if _, err := dst.Seek(0, io.SeekStart); err != nil {
		return File{}, err
	}
	h := sha256.New()
	n, err := io.Copy(h, &ctxReader{ctx: ctx, r: dst})
	if err != nil {
		return File{}, fmt.Errorf("hashing: %w", err)
	}
	if err := dst.Close(); err != nil {
		return File{}, err
	}
	ok = true
	return File{SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}, nil
}

// writeUpdate publishes the update to the version of the verified disk
// raw into the new directory tmp, its files named as under final.
func writeUpdate(ctx context.Context, tmp, raw, final string) ([]File, error) {
	os.RemoveAll(tmp)
	vp, err := disk.ReadVerifiedParts(raw)
	if err != nil {
		return nil, fmt.Errorf("writing the update: %w", err)
	}
	defer vp.Close()
	published, err := sysupdate.Publish(ctx, tmp, vp)
	if err != nil {
		return nil, fmt.Errorf("writing the update: %w", err)
	}
	var out []File
	for _, f := range published {
		out = append(out, File{Path: filepath.Join(final, f.Name), SHA256: f.SHA256, Size: f.Size})
	}
	return out, nil
}

// hashTree hashes the regular files under dir, naming them as under final.
func hashTree(ctx context.Context, dir, final string) ([]File, error) {
	var out []File
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file", p)
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		n, err := io.Copy(h, &ctxReader{ctx: ctx, r: f})
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		out = append(out, File{Path: filepath.Join(final, rel), SHA256: hex.EncodeToString(h.Sum(nil)), Size: n})
		return nil
	})
	return out, err
}

// Commit renames every output into place. An output that already exists
// under the final name is replaced.
func (s *Staged) Commit() error {
	for i, o := range s.Outputs {
		if o.tmp == "" {
			continue
		}
		if info, _ := o.Format.Info(); info.Directory {
			if err := os.RemoveAll(o.Path); err != nil {
				return err
			}
		}
		if err := os.Rename(o.tmp, o.Path); err != nil {
			return fmt.Errorf("renaming %s into place: %w", filepath.Base(o.Path), err)
		}
		s.Outputs[i].tmp = ""
	}
	return nil
}

// Remove removes every committed output: the rollback of a Commit when a
// later step fails.
func (s *Staged) Remove() {
	for _, o := range s.Outputs {
		if o.tmp == "" {
			os.RemoveAll(o.Path)
		}
	}
}

// Abort removes every output not yet committed.
func (s *Staged) Abort() {
	for _, o := range s.Outputs {
		if o.tmp != "" {
			os.RemoveAll(o.tmp)
		}
	}
}

// ctxReader stops a copy when the context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
