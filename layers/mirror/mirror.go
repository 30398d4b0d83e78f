// Package mirror builds a release mirror: a directory laid out like the
// upstream release sites (dl.k8s.io/release/..., github.com/.../releases/
// download/...), holding the release artifacts of a spec's components built
// from source through the Go module proxy. Served over HTTP, it is a
// drop-in for sources.mirror; it serves air-gapped sites and is how the
// test suite exercises the production download path without the internet.
//
// The artifacts' checksums are also the pins of builds from source: a spec
// that says `from: go` with a component's sha256 for an architecture
// builds it and refuses the result unless its release artifact, packed the
// same way, has that checksum (package resolve). SumsFile in the mirror's
// root lists every artifact written into it.
package mirror

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nodebake/nodebake/layers/spec"
)

// SumsFile is the file in the mirror's root that lists the checksum of
// every artifact written into the mirror, as sha256sum -c reads it.
const SumsFile = "SHA256SUMS"

// maxSumsFile bounds the SumsFile read back to add to it.
const maxSumsFile = 4 << 20

// Artifact is one release artifact written into the mirror.
type Artifact struct {
	Component spec.ComponentName
	Version   string
	Arch      spec.Arch
	// Path is relative to the mirror root: HOST/PATH of the upstream URL.
	Path   string
	SHA256 string
}

// BuildFunc returns a directory holding a component's binaries built from
// source (resolve.Resolver.BuildFromSource builds and caches them).
type BuildFunc func(ctx context.Context, component, version string) (string, error)

// Write builds every component of s from source and writes its release
// artifact into root at its upstream path, plus a ".sha256" file beside it
// as dl.k8s.io publishes, and adds them to root's SumsFile. It returns the
// artifacts with their checksums.
func Write(ctx context.Context, s *spec.Spec, root string, build BuildFunc) ([]Artifact, error) {
	var out []Artifact
	for _, nc := range s.NamedComponents() {
		name, layout := nc.Name, nc.Catalogue
		upstream := layout.ReleaseURL(nc.Component.Version, string(s.Arch))
		rel, ok := strings.CutPrefix(upstream, "https://")
		if !ok {
			return nil, fmt.Errorf("%s: no upstream release URL", name)
		}
		bins, err := build(ctx, name, nc.Component.Version)
		if err != nil {
			return nil, fmt.Errorf("building %s %s: %w", name, nc.Component.Version, err)
		}
		dst := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return nil, err
		}
		if err := layout.PackRelease(os.DirFS(bins), dst); err != nil {
			return nil, fmt.Errorf("packing %s: %w", name, err)
		}
		sum, err := fileSHA256(dst)
		if err != nil {
			return nil, err
		}
		if err := writeFile(dst+".sha256", []byte(sum+"\n")); err != nil {
			return nil, err
		}
		out = append(out, Artifact{Component: nc.Key, Version: nc.Component.Version, Arch: s.Arch, Path: rel, SHA256: sum})
	}
	if err := addSums(filepath.Join(root, SumsFile), out); err != nil {
		return nil, fmt.Errorf("writing %s: %w", SumsFile, err)
	}
	return out, nil
}

// addSums adds the artifacts to the sums file p (replacing the lines of
// the same paths), sorted by path, written under a temporary name.
func addSums(p string, arts []Artifact) error {
	sums := map[string]string{}
	f, err := os.Open(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	default:
		data, err := io.ReadAll(io.LimitReader(f, maxSumsFile+1))
		f.Close()
		if err != nil {
			return err
		}
		if len(data) > maxSumsFile {
			return fmt.Errorf("%s is larger than %d bytes", p, maxSumsFile)
		}
		for i, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
			if line == "" {
				continue
			}
			sum, rel, ok := strings.Cut(line, "  ")
			if !ok || len(sum) != 64 || strings.Trim(sum, "0123456789abcdef") != "" || !fs.ValidPath(rel) {
				return fmt.Errorf("%s:%d: not a line of sha256sum (HEX  PATH)", p, i+1)
			}
			sums[rel] = sum
		}
	}
	for _, a := range arts {
		sums[a.Path] = a.SHA256
	}
	var b strings.Builder
	for _, rel := range slices.Sorted(maps.Keys(sums)) {
		fmt.Fprintf(&b, "%s  %s\n", sums[rel], rel)
	}
	return writeFile(p, []byte(b.String()))
}

// Pin returns a copy of s whose components come from the mirror at url,
// pinned by the artifacts' checksums.
func Pin(s *spec.Spec, url string, arts []Artifact) (*spec.Spec, error) {
	c := s.Clone()
	c.Sources.Mirror = url
	for _, a := range arts {
		comp, ok := c.Components[a.Component]
		if !ok {
			return nil, fmt.Errorf("the spec has no component %s", a.Component)
		}
		comp.From = spec.FromRelease
		comp.URL, comp.Image = "", ""
		comp.SHA256 = map[spec.Arch]string{s.Arch: a.SHA256}
		comp.SHA512 = nil
		c.SetComponent(a.Component, comp)
	}
	return c, nil
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// writeFile writes data under a temporary name and renames it into place.
func writeFile(p string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), p)
}
