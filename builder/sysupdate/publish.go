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

// Publish writes the update to the version in slot A of a verified disk
// into the new directory dir: the root filesystem, its hash device and the
// UKI under their artifact names (Artifacts), and SHA256SUMS listing them.
// The files are written into a temporary directory next to dir that is
// renamed to dir at the end; dir must not exist. It returns the names
// written, SHA256SUMS last.
func Publish(ctx context.Context, dir string, vp *disk.VerifiedParts) (names []string, err error) {
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
	sums := map[string]string{}
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
		sum, err := writeFile(filepath.Join(tmp, a.name), a.r)
		if err != nil {
			return nil, fmt.Errorf("publishing the update: %w", err)
		}
		sums[a.name] = sum
		names = append(names, a.name)
	}
	sort.Strings(names)
	var b bytes.Buffer
	for _, n := range names {
		fmt.Fprintf(&b, "%s  %s\n", sums[n], n)
	}
	if _, err := writeFile(filepath.Join(tmp, SumsFile), &b); err != nil {
		return nil, fmt.Errorf("publishing the update: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("publishing the update: %w", err)
	}
	return append(names, SumsFile), nil
}

// writeFile writes r to a new file p (0644), synced, and returns its sha256.
func writeFile(p string, r io.Reader) (string, error) {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), r); err != nil {
		f.Close()
		return "", fmt.Errorf("writing %s: %w", p, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", fmt.Errorf("syncing %s: %w", p, err)
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
