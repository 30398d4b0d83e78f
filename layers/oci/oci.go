// Package oci reads and writes container images with go-containerregistry.
//
// An image reference is one of:
//
//	oci:DIR                an OCI image layout; its one image (or the one for the platform)
//	oci:DIR@sha256:<hex>   the manifest with that digest in an OCI image layout
//	tarball:FILE           a "docker save" tarball
//	anything else          a registry reference, e.g. registry.k8s.io/pause:3.10.1
//
// Registry images are resolved for linux/<arch>, authenticated with the
// default keychain (the docker config), and can be kept in the
// content-addressed cache by Pull so a rebuild needs no network.
package oci

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/nodebake/nodebake/layers/failure"
)

// Option configures Open and Pull.
type Option func(*options)

type options struct {
	arch      string
	transport http.RoundTripper
	insecure  bool
	digest    string
	keychain  authn.Keychain
	offline   bool
}

// WithPlatform selects the image for linux/<arch> in a multi-platform
// image (default "amd64"). arch may carry a variant: "arm/v7".
func WithPlatform(arch string) Option { return func(o *options) { o.arch = arch } }

// WithTransport sets the HTTP transport for registry access.
func WithTransport(t http.RoundTripper) Option { return func(o *options) { o.transport = t } }

// WithInsecure allows plain-HTTP registries.
func WithInsecure(insecure bool) Option { return func(o *options) { o.insecure = insecure } }

// WithDigest pins the image: its manifest digest (or, for a registry
// reference, the digest of the index the reference names) must equal
// digest ("sha256:<hex>").
func WithDigest(digest string) Option { return func(o *options) { o.digest = digest } }

// WithKeychain sets the registry credentials (default authn.DefaultKeychain).
func WithKeychain(k authn.Keychain) Option { return func(o *options) { o.keychain = k } }

// WithOffline makes Pull fail instead of using the network: registry
// images must be pinned by digest and already cached.
func WithOffline(offline bool) Option { return func(o *options) { o.offline = offline } }

// settings are validated options.
type settings struct {
	options
	platform v1.Platform
	pin      *v1.Hash
}

func makeSettings(opts []Option) (settings, error) {
	s := settings{options: options{arch: "amd64", keychain: authn.DefaultKeychain}}
	for _, o := range opts {
		o(&s.options)
	}
	p, err := v1.ParsePlatform("linux/" + s.arch)
	if err != nil || s.arch == "" || p.Architecture == "" {
		return s, fmt.Errorf("platform: invalid architecture %q", s.arch)
	}
	s.platform = *p
	if s.digest != "" {
		h, err := v1.NewHash(s.digest)
		if err != nil {
			return s, fmt.Errorf("digest pin %q: %w", s.digest, err)
		}
		s.pin = &h
	}
	return s, nil
}

// source is a parsed image reference.
type source struct {
	layoutDir string   // oci:DIR
	manifest  *v1.Hash // oci:DIR@digest
	tarball   string   // tarball:FILE
	registry  name.Reference
}

func parseRef(ref string, insecure bool) (source, error) {
	switch {
	case strings.HasPrefix(ref, "oci:"):
		dir := strings.TrimPrefix(ref, "oci:")
		var src source
		if i := strings.LastIndex(dir, "@"); i >= 0 {
			h, err := v1.NewHash(dir[i+1:])
			if err != nil {
				return source{}, fmt.Errorf("parsing image reference %q: manifest digest: %w", ref, err)
			}
			src.manifest = &h
			dir = dir[:i]
		}
		if dir == "" {
			return source{}, fmt.Errorf("parsing image reference %q: empty layout directory", ref)
		}
		src.layoutDir = dir
		return src, nil
	case strings.HasPrefix(ref, "tarball:"):
		file := strings.TrimPrefix(ref, "tarball:")
		if file == "" {
			return source{}, fmt.Errorf("parsing image reference %q: empty tarball file name", ref)
		}
		return source{tarball: file}, nil
	}
	var nopts []name.Option
	if insecure {
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nopts...)
	if err != nil {
		return source{}, fmt.Errorf("parsing image reference %q: %w", ref, err)
	}
	return source{registry: r}, nil
}

// Open returns the image that ref names. See the package documentation for
// the reference forms. Registry images are read lazily: layers are fetched
// when read.
func Open(ctx context.Context, ref string, opts ...Option) (v1.Image, error) {
	s, err := makeSettings(opts)
	if err != nil {
		return nil, failure.Errorf(failure.Invalid, "opening image %s: %w", ref, err)
	}
	src, err := parseRef(ref, s.insecure)
	if err != nil {
		return nil, failure.New(failure.Invalid, err)
	}
	var img v1.Image
	var named v1.Hash // what the reference itself resolved to, for the pin
	switch {
	case src.layoutDir != "":
		img, err = openLayout(src.layoutDir, src.manifest, s.platform)
	case src.tarball != "":
		img, err = tarball.ImageFromPath(src.tarball, nil)
	default:
		var desc *remote.Descriptor
		desc, img, err = openRemote(ctx, src.registry, s)
		if err == nil {
			named = desc.Digest
		}
	}
	if err == nil {
		err = checkPin(img, named, s.pin)
	}
	if err != nil {
		// A local layout or tarball is the caller's input; a registry is
		// a source.
		kind := failure.Invalid
		if src.registry != nil {
			kind = failure.Source
		}
		return nil, failure.Errorf(kind, "opening image %s: %w", ref, err)
	}
	return img, nil
}

// checkPin verifies img's manifest digest (or named, the digest the
// reference resolved to) against pin.
func checkPin(img v1.Image, named v1.Hash, pin *v1.Hash) error {
	if pin == nil {
		return nil
	}
	got, err := img.Digest()
	if err != nil {
		return fmt.Errorf("computing manifest digest: %w", err)
	}
	if got == *pin || named == *pin {
		return nil
	}
	return fmt.Errorf("manifest digest mismatch: expected %s, got %s", pin, got)
}

// remoteOptions turns settings into go-containerregistry remote options.
func remoteOptions(ctx context.Context, s settings) []remote.Option {
	ro := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(s.keychain),
		remote.WithPlatform(s.platform),
	}
	if s.transport != nil {
		ro = append(ro, remote.WithTransport(s.transport))
	}
	return ro
}

// openRemote fetches the manifest ref names and resolves it to the image
// for the platform.
func openRemote(ctx context.Context, ref name.Reference, s settings) (*remote.Descriptor, v1.Image, error) {
	desc, err := remote.Get(ref, remoteOptions(ctx, s)...)
	if err != nil {
		return nil, nil, err
	}
	img, err := desc.Image()
	if err != nil {
		return nil, nil, err
	}
	return desc, img, nil
}

// openLayout returns the image in the layout at dir with the given manifest
// digest or, without one, the only image for the platform.
func openLayout(dir string, manifest *v1.Hash, platform v1.Platform) (v1.Image, error) {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("reading OCI layout: %w", err)
	}
	var found []candidate
	if err := findImages(idx, manifest, platform, &found); err != nil {
		return nil, fmt.Errorf("reading OCI layout %s: %w", dir, err)
	}
	switch {
	case len(found) == 1:
		return found[0].index.Image(found[0].digest)
	case len(found) == 0 && manifest != nil:
		return nil, fmt.Errorf("OCI layout %s has no image manifest %s", dir, manifest)
	case len(found) == 0:
		return nil, fmt.Errorf("OCI layout %s has no image for %s", dir, platform)
	}
	var ds []string
	for _, c := range found {
		ds = append(ds, c.digest.String())
	}
	return nil, fmt.Errorf("OCI layout %s has %d images for %s, select one with oci:%s@<digest>: %s",
		dir, len(found), platform, dir, strings.Join(ds, ", "))
}

// candidate is an image manifest found in an index.
type candidate struct {
	index  v1.ImageIndex
	digest v1.Hash
}

// findImages collects, depth first and without duplicates, the image
// manifests in idx that have digest want or, when want is nil, suit the
// platform. An index whose digest is want is searched by platform.
func findImages(idx v1.ImageIndex, want *v1.Hash, platform v1.Platform, found *[]candidate) error {
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	for _, d := range im.Manifests {
		switch {
		case d.MediaType.IsIndex():
			sub := want
			if want != nil && d.Digest == *want {
				sub = nil
			}
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return err
			}
			if err := findImages(child, sub, platform, found); err != nil {
				return err
			}
		case d.MediaType.IsImage():
			if want != nil && d.Digest != *want {
				continue
			}
			if want == nil && d.Platform != nil && !d.Platform.Satisfies(platform) {
				continue
			}
			if !containsDigest(*found, d.Digest) {
				*found = append(*found, candidate{index: idx, digest: d.Digest})
			}
		}
	}
	return nil
}

func containsDigest(cs []candidate, h v1.Hash) bool {
	for _, c := range cs {
		if c.digest == h {
			return true
		}
	}
	return false
}

// Flatten returns the image's filesystem as one tar stream with whiteouts
// applied (mutate.Extract). Entries come upper layer first, so a hardlink
// may precede its target and a parent directory may be missing: normalise
// the stream before writing a filesystem from it. The caller must close it.
func Flatten(img v1.Image) io.ReadCloser {
	return mutate.Extract(img)
}
