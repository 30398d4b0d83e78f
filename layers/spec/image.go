package spec

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
)

// ImageSourceKind says what kind of image source a string names.
type ImageSourceKind string

// Image source kinds.
const (
	// ImageOCILayout is an OCI image layout directory ("oci:DIR").
	ImageOCILayout ImageSourceKind = "oci"
	// ImageTarball is a docker or OCI image tarball ("tarball:FILE").
	ImageTarball ImageSourceKind = "tarball"
	// ImageRegistry is a registry reference (repo:tag or repo@sha256:...).
	ImageRegistry ImageSourceKind = "registry"
)

// ImageSource is a parsed image source string.
type ImageSource struct {
	Kind ImageSourceKind
	// Path is the layout directory or tarball file (oci, tarball), as
	// written: resolve it with Spec.ResolvePath.
	Path string
	// Ref is the registry reference (registry).
	Ref string
	// Digest is the manifest digest named in the source ("sha256:HEX"), if any.
	Digest string
}

var (
	digestRE = regexp.MustCompile(DigestPattern)
	// refRE follows the distribution reference grammar: an optional
	// registry host[:port], lower-case path components, an optional tag and
	// an optional digest.
	refRE = regexp.MustCompile(`^` +
		`(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?)/)?` +
		`[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*` +
		`(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?` +
		`(?:@sha256:[0-9a-f]{64})?$`)
)

// ParseImageSource parses "oci:DIR", "oci:DIR@sha256:HEX", "tarball:FILE"
// or a registry reference.
func ParseImageSource(s string) (ImageSource, error) {
	switch {
	case s == "":
		return ImageSource{}, fmt.Errorf("empty image source")
	case strings.HasPrefix(s, "oci:"):
		dir, digest := strings.TrimPrefix(s, "oci:"), ""
		if i := strings.LastIndex(dir, "@"); i >= 0 {
			dir, digest = dir[:i], dir[i+1:]
			if !digestRE.MatchString(digest) {
				return ImageSource{}, fmt.Errorf("invalid digest %q in %q: want sha256:<64 lower-case hex>", digest, s)
			}
		}
		if dir == "" {
			return ImageSource{}, fmt.Errorf("%q names no OCI layout directory", s)
		}
		return ImageSource{Kind: ImageOCILayout, Path: dir, Digest: digest}, nil
	case strings.HasPrefix(s, "tarball:"):
		f := strings.TrimPrefix(s, "tarball:")
		if f == "" {
			return ImageSource{}, fmt.Errorf("%q names no tarball file", s)
		}
		return ImageSource{Kind: ImageTarball, Path: f}, nil
	}
	if err := checkReference(s); err != nil {
		return ImageSource{}, err
	}
	src := ImageSource{Kind: ImageRegistry, Ref: s}
	if i := strings.LastIndex(s, "@"); i >= 0 {
		src.Digest = s[i+1:]
	}
	return src, nil
}

// checkReference checks a registry image reference.
func checkReference(ref string) error {
	if len(ref) > 512 || !refRE.MatchString(ref) {
		return fmt.Errorf("invalid image reference %q: want oci:DIR, tarball:FILE or a registry reference like registry.example/repo:tag", ref)
	}
	return nil
}

// hasTagOrDigest says whether a valid reference carries a tag or a digest.
func hasTagOrDigest(ref string) bool {
	if strings.Contains(ref, "@") {
		return true
	}
	last := ref[strings.LastIndex(ref, "/")+1:]
	return strings.Contains(last, ":")
}

// ResolvePath resolves a path written in the spec: absolute paths are kept,
// relative ones are joined to s.Dir.
func (s *Spec) ResolvePath(p string) string {
	if filepath.IsAbs(p) || s.Dir == "" {
		return filepath.Clean(p)
	}
	return filepath.Join(s.Dir, p)
}
