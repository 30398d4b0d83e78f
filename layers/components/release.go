package components

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// PackRelease writes the upstream-shaped release artifact of a component
// from a directory of binaries built from source: the plain binary, or a
// tar.gz with the upstream member names. The output is deterministic (fixed
// times, no owner names), so its checksum is stable for the same binaries.
// It is written under a temporary name and renamed.
func (c Component) PackRelease(binDir, out string) error {
	tmp := out + ".tmp"
	defer os.Remove(tmp)
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer f.Close()
	switch c.Artifact {
	case Binary:
		src, err := os.Open(filepath.Join(binDir, c.Files[0].Name))
		if err != nil {
			return fmt.Errorf("%s: %w", c.Name, err)
		}
		defer src.Close()
		if _, err := io.Copy(f, src); err != nil {
			return err
		}
	case TarGz:
		zw, err := gzip.NewWriterLevel(f, gzip.BestSpeed)
		if err != nil {
			return err
		}
		tw := tar.NewWriter(zw)
		epoch := time.Unix(0, 0).UTC()
		dirs := map[string]bool{}
		for _, in := range c.Files {
			if d := filepath.Dir(cleanMember(in.Member)); d != "." && !dirs[d] {
				dirs[d] = true
				if err := tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch}); err != nil {
					return err
				}
			}
			p := filepath.Join(binDir, in.Name)
			fi, err := os.Stat(p)
			if err != nil {
				return fmt.Errorf("%s: %w", c.Name, err)
			}
			if err := tw.WriteHeader(&tar.Header{Name: in.Member, Typeflag: tar.TypeReg, Mode: 0o755, Size: fi.Size(), ModTime: epoch}); err != nil {
				return err
			}
			src, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, src)
			src.Close()
			if err != nil {
				return err
			}
		}
		if err := tw.Close(); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}
