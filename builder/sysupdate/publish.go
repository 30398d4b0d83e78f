package sysupdate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/nodebake/nodebake/builder/disk"
)

// SumsFile is the manifest systemd-sysupdate reads from a source.
const SumsFile = "SHA256SUMS"

// Published is one file of a published update.
type Published struct {
	Name   string // file name in the update directory
	SHA256 string // hex
	Size   int64
}

// Publish writes the update to the version in slot A of a verified disk
// into the new directory dir: the root filesystem, its hash device and the
// UKI under their artifact names (Artifacts), and SHA256SUMS listing them.
// The files are written into a temporary directory next to dir that is
// renamed to dir at the end; dir must not exist. It returns the files
// written, sorted by name, SHA256SUMS last.
func Publish(ctx context.Context, dir string, vp *disk.VerifiedParts) (files []Published, err error) {
	root, ver, uki, err := Artifacts(vp.Name, vp.Version, vp.RootHash)
	if err != nil {
		return nil, err
	}
	if _, err := os.Lstat(dir); err == nil {
		return nil, fmt.Errorf("publishing the update: %s exists", dir)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return nil, fmt.Errorf("publishing the update: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("publishing the update: %w", err)
	}
	for _, a := range []struct {
		name string
		r    io.Reader
	}{
		{root, io.NewSectionReader(vp.Root, 0, vp.Root.Size())},
		{ver, io.NewSectionReader(vp.Hash, 0, vp.Hash.Size())},
		{uki, bytes.NewReader(vp.UKI)},
	} {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		f, err := writeFile(filepath.Join(tmp, a.name), &ctxReader{ctx, a.r})
		if err != nil {
			return nil, fmt.Errorf("publishing the update: %w", err)
		}
		files = append(files, f)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	var b bytes.Buffer
	for _, f := range files {
		fmt.Fprintf(&b, "%s  %s\n", f.SHA256, f.Name)
	}
	sums, err := writeFile(filepath.Join(tmp, SumsFile), &b)
	if err != nil {
		return nil, fmt.Errorf("publishing the update: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("publishing the update: %w", err)
	}
	return append(files, sums), nil
}

// writeFile writes r to a new file p (0644), synced, and describes it.
func writeFile(p string, r io.Reader) (Published, error) {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return Published{}, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if err != nil {
		f.Close()
		return Published{}, fmt.Errorf("writing %s: %w", p, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return Published{}, fmt.Errorf("syncing %s: %w", p, err)
	}
	if err := f.Close(); err != nil {
		return Published{}, err
	}
	return Published{Name: filepath.Base(p), SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}, nil
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
