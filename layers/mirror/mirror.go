// Package mirror builds a release mirror: a directory laid out like the
// upstream release sites (dl.k8s.io/release/..., github.com/.../releases/
// download/...), holding the release artifacts of a spec's components built
// from source through the Go module proxy. Served over HTTP, it is a
// drop-in for sources.mirror; it serves air-gapped sites and is how the
// test suite exercises the production download path without the internet.
package mirror

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/nodebake/nodebake/layers/spec"
)

// Artifact is one release artifact written into the mirror.
type Artifact struct {
	Component spec.ComponentName
	Version   string
	// Path is relative to the mirror root: HOST/PATH of the upstream URL.
	Path   string
	SHA256 string
}

// BuildFunc returns a directory holding a component's binaries built from
// source (resolve.Resolver.BuildFromSource builds and caches them).
type BuildFunc func(ctx context.Context, component, version string) (string, error)

// Write builds every component of s from source and writes its release
// artifact into root at its upstream path, plus a ".sha256" file beside it
// as dl.k8s.io publishes. It returns the artifacts with their checksums.
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
		if err := layout.PackRelease(bins, dst); err != nil {
			return nil, fmt.Errorf("packing %s: %w", name, err)
		}
		sum, err := fileSHA256(dst)
		if err != nil {
			return nil, err
		}
		if err := writeFile(dst+".sha256", []byte(sum+"\n")); err != nil {
			return nil, err
		}
		out = append(out, Artifact{Component: nc.Key, Version: nc.Component.Version, Path: rel, SHA256: sum})
	}
	return out, nil
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
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
