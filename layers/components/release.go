package components

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"time"
)

// PackRelease writes the upstream-shaped release artifact of a component
// from its binaries built from source, by name in fsys, to out: the plain
// binary, or a tar.gz with the upstream member names. The output is
// deterministic (fixed times, no owner names), so its checksum is stable
// for the same binaries: it is what a pin of a build from source checks
// (see WriteRelease). It is written under a temporary name and renamed.
func (c Component) PackRelease(fsys fs.FS, out string) error {
	f, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := c.WriteRelease(f, fsys); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), out)
}

// WriteRelease writes the release artifact PackRelease packs to w.
func (c Component) WriteRelease(w io.Writer, fsys fs.FS) error {
	copyFile := func(dst io.Writer, name string) error {
		src, err := fsys.Open(name)
		if err != nil {
			return fmt.Errorf("%s: %w", c.Name, err)
		}
		_, err = io.Copy(dst, src)
		if cerr := src.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("%s: %s: %w", c.Name, name, err)
		}
		return nil
	}
	switch c.Artifact {
	case Binary:
		return copyFile(w, c.Files[0].Name)
	case TarGz:
		zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
		if err != nil {
			return err
		}
		tw := tar.NewWriter(zw)
		epoch := time.Unix(0, 0).UTC()
		dirs := map[string]bool{}
		for _, in := range c.Files {
			if d := path.Dir(cleanMember(in.Member)); d != "." && !dirs[d] {
				dirs[d] = true
				if err := tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch}); err != nil {
					return err
				}
			}
			fi, err := fs.Stat(fsys, in.Name)
			if err != nil {
				return fmt.Errorf("%s: %w", c.Name, err)
			}
			if err := tw.WriteHeader(&tar.Header{Name: in.Member, Typeflag: tar.TypeReg, Mode: 0o755, Size: fi.Size(), ModTime: epoch}); err != nil {
				return err
			}
			if err := copyFile(tw, in.Name); err != nil {
				return err
			}
		}
		if err := tw.Close(); err != nil {
			return err
		}
		return zw.Close()
	}
	return fmt.Errorf("%s: unknown artifact kind", c.Name)
}
