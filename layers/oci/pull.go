package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/nodebake/nodebake/layers/cache"
	"github.com/nodebake/nodebake/layers/failure"
)

// Pull is Open with a cache. A registry image is stored blob by blob in the
// cache's content-addressed store (whose blobs/<algorithm>/<hex> tree is
// that of an OCI image layout), and the image returned reads from there.
// A registry reference pinned by digest (ref@sha256:... or WithDigest) whose
// blobs are all cached, and verify, is served without any network access;
// layers already cached are not downloaded again. oci: and tarball:
// references are opened directly.
func Pull(ctx context.Context, ref string, c *cache.Cache, opts ...Option) (v1.Image, error) {
	s, err := makeSettings(opts)
	if err != nil {
		return nil, failure.Errorf(failure.Invalid, "pulling image %s: %w", ref, err)
	}
	src, err := parseRef(ref, s.insecure)
	if err != nil {
		return nil, failure.New(failure.Invalid, err)
	}
	if src.registry == nil {
		return Open(ctx, ref, opts...)
	}
	img, err := pull(ctx, src.registry, c, s)
	if err != nil {
		return nil, failure.Errorf(failure.Source, "pulling image %s: %w", ref, err)
	}
	return img, nil
}

func pull(ctx context.Context, ref name.Reference, c *cache.Cache, s settings) (v1.Image, error) {
	pin := s.pin
	if d, ok := ref.(name.Digest); ok {
		h, err := v1.NewHash(d.DigestStr())
		if err != nil {
			return nil, err
		}
		if pin != nil && *pin != h {
			return nil, fmt.Errorf("reference digest %s differs from pinned digest %s", h, pin)
		}
		pin = &h
	}
	if pin != nil {
		img, ok, err := fromCache(c, *pin, s.platform)
		if err != nil || ok {
			return img, err
		}
	}
	if s.offline {
		if pin == nil {
			return nil, failure.Errorf(failure.Source, "offline and %w (not pinned by digest)", cache.ErrNotCached)
		}
		return nil, failure.Errorf(failure.Source, "offline and %w (%s)", cache.ErrNotCached, pin)
	}
	desc, img, err := openRemote(ctx, ref, s)
	if err != nil {
		return nil, err
	}
	if err := checkPin(img, desc.Digest, pin); err != nil {
		return nil, err
	}
	if err := store(c, img); err != nil {
		return nil, err
	}
	if desc.MediaType.IsIndex() {
		if _, err := c.Put(toDigest(desc.Digest), bytes.NewReader(desc.Manifest)); err != nil {
			return nil, fmt.Errorf("caching index %s: %w", desc.Digest, err)
		}
	}
	h, err := img.Digest()
	if err != nil {
		return nil, err
	}
	cached, ok, err := fromCache(c, h, s.platform)
	if err == nil && !ok {
		err = fmt.Errorf("image %s incomplete in the cache after storing it", h)
	}
	return cached, err
}

// store copies img's layers (those not yet cached), config and manifest
// into c, manifest last.
func store(c *cache.Cache, img v1.Image) error {
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		h, err := l.Digest()
		if err != nil {
			return err
		}
		if ok, err := c.Has(toDigest(h)); err != nil || ok {
			if err != nil {
				return err
			}
			continue
		}
		rc, err := l.Compressed()
		if err != nil {
			return fmt.Errorf("fetching layer %s: %w", h, err)
		}
		_, err = c.Put(toDigest(h), rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("caching layer %s: %w", h, err)
		}
	}
	blobs := []struct {
		what string
		hash func() (v1.Hash, error)
		raw  func() ([]byte, error)
	}{
		{"config", img.ConfigName, img.RawConfigFile},
		{"manifest", img.Digest, img.RawManifest},
	}
	for _, b := range blobs {
		h, err := b.hash()
		if err != nil {
			return err
		}
		raw, err := b.raw()
		if err != nil {
			return fmt.Errorf("fetching %s %s: %w", b.what, h, err)
		}
		if _, err := c.Put(toDigest(h), bytes.NewReader(raw)); err != nil {
			return fmt.Errorf("caching %s %s: %w", b.what, h, err)
		}
	}
	return nil
}

// fromCache returns the image whose manifest (or index, resolved for the
// platform) has digest h, if it and all its blobs are cached and verify.
// A blob that fails verification is removed and counts as a miss.
func fromCache(c *cache.Cache, h v1.Hash, platform v1.Platform) (v1.Image, bool, error) {
	raw, ok, err := readVerified(c, h)
	if err != nil || !ok {
		return nil, false, err
	}
	var probe struct {
		MediaType types.MediaType `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return nil, false, fmt.Errorf("reading cached manifest %s: %w", h, err)
	}
	if probe.MediaType.IsIndex() || (probe.MediaType == "" && probe.Manifests != nil) {
		im, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, false, fmt.Errorf("reading cached index %s: %w", h, err)
		}
		// The same choice remote makes: the first image for the platform.
		for _, d := range im.Manifests {
			if d.MediaType.IsImage() && (d.Platform == nil || d.Platform.Satisfies(platform)) {
				return fromCache(c, d.Digest, platform)
			}
		}
		return nil, false, nil
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, false, fmt.Errorf("reading cached manifest %s: %w", h, err)
	}
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		if ok, err := intact(c, d.Digest); err != nil || !ok {
			return nil, false, err
		}
	}
	img, err := partial.CompressedToImage(&cachedImage{c: c, raw: raw, manifest: m})
	if err != nil {
		return nil, false, err
	}
	return img, true, nil
}

// readVerified returns a small cached blob if it is present and intact.
func readVerified(c *cache.Cache, h v1.Hash) ([]byte, bool, error) {
	ok, err := intact(c, h)
	if err != nil || !ok {
		return nil, false, err
	}
	raw, err := os.ReadFile(c.Path(toDigest(h)))
	if err != nil {
		return nil, false, fmt.Errorf("reading cached blob %s: %w", h, err)
	}
	return raw, true, nil
}

// intact reports whether blob h is cached and verifies, removing it if it
// is corrupt.
func intact(c *cache.Cache, h v1.Hash) (bool, error) {
	d := toDigest(h)
	ok, err := c.Has(d)
	if err != nil || !ok {
		return false, err
	}
	err = c.Verify(d)
	var ce *cache.ChecksumError
	if errors.As(err, &ce) {
		return false, c.Remove(d)
	}
	return err == nil, err
}

func toDigest(h v1.Hash) cache.Digest {
	return cache.Digest{Algorithm: h.Algorithm, Hex: h.Hex}
}

// cachedImage is an image whose blobs are all in the cache.
type cachedImage struct {
	c        *cache.Cache
	raw      []byte
	manifest *v1.Manifest
}

var _ partial.CompressedImageCore = (*cachedImage)(nil)

func (i *cachedImage) RawManifest() ([]byte, error) { return i.raw, nil }

func (i *cachedImage) MediaType() (types.MediaType, error) {
	if i.manifest.MediaType != "" {
		return i.manifest.MediaType, nil
	}
	return types.OCIManifestSchema1, nil
}

func (i *cachedImage) RawConfigFile() ([]byte, error) {
	return os.ReadFile(i.c.Path(toDigest(i.manifest.Config.Digest)))
}

func (i *cachedImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, d := range append([]v1.Descriptor{i.manifest.Config}, i.manifest.Layers...) {
		if d.Digest == h {
			return &cachedBlob{path: i.c.Path(toDigest(h)), desc: d}, nil
		}
	}
	return nil, fmt.Errorf("image has no blob %s", h)
}

// cachedBlob is a layer (or config) blob in the cache.
type cachedBlob struct {
	path string
	desc v1.Descriptor
}

func (b *cachedBlob) Digest() (v1.Hash, error)            { return b.desc.Digest, nil }
func (b *cachedBlob) Size() (int64, error)                { return b.desc.Size, nil }
func (b *cachedBlob) MediaType() (types.MediaType, error) { return b.desc.MediaType, nil }
func (b *cachedBlob) Compressed() (io.ReadCloser, error)  { return os.Open(b.path) }
