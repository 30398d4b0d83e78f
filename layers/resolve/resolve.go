// Package resolve resolves the layers a spec names into what an image is
// composed of: it opens images (the base, components taken from OCI
// images, preloaded images) through the cache, fetches components' release
// artifacts or builds them from source, reads each component's files by
// its catalogue layout, and bakes preloaded images as archives. What it
// resolved is recorded as the manifest's records (BaseInfo, ComponentInfo,
// PreloadInfo).
//
// The library is silent: progress goes to the callbacks of WithLog and
// WithDownloads.
package resolve

import (
	"archive/tar"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/nodebake/nodebake/layers/cache"
	"github.com/nodebake/nodebake/layers/components"
	"github.com/nodebake/nodebake/layers/entry"
	"github.com/nodebake/nodebake/layers/failure"
	"github.com/nodebake/nodebake/layers/fetch"
	"github.com/nodebake/nodebake/layers/gosource"
	"github.com/nodebake/nodebake/layers/oci"
	"github.com/nodebake/nodebake/layers/spec"
	"github.com/nodebake/nodebake/layers/worker"
)

// BaseInfo records the base OS image.
type BaseInfo struct {
	Image  string `json:"image"`
	Digest string `json:"digest"`
	// Packages is the number of Debian packages installed in the base.
	Packages int `json:"packages"`
}

// ComponentInfo records one baked component.
type ComponentInfo struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	From    string `json:"from"`
	// Source is the URL, image reference or module the component came from.
	Source string `json:"source"`
	// Checksum is the pinned checksum of the release artifact or image.
	Checksum string     `json:"checksum,omitempty"`
	Files    []FileInfo `json:"files"`
}

// FileInfo records one installed or written file.
type FileInfo struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	// SHA1 is for the SBOM (SPDX file checksums), not the manifest.
	SHA1 string `json:"-"`
	Size int64  `json:"size"`
}

// PreloadInfo records a preloaded container image.
type PreloadInfo struct {
	Ref    string `json:"ref"`
	Source string `json:"source"`
	Digest string `json:"digest"`
}

// Resolver resolves the layers of one spec. Build one with New.
type Resolver struct {
	spec      *spec.Spec
	cache     *cache.Cache
	client    *http.Client
	transport http.RoundTripper
	offline   bool
	goBuilder gosource.Builder
	log       func(string)
	downloads func(fetch.Progress)

	// late holds the files whose SHA1 is taken while the image is
	// composed (see CompleteDigests).
	late lateDigests
}

// lateDigests are the SHA1s of component files read through the cache,
// taken as the image is composed, by image path, and the files to read
// for any that were not.
type lateDigests struct {
	mu      sync.Mutex
	sha1    map[string]string
	entries map[string]entry.Entry
}

func (l *lateDigests) set(p, sum string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sha1 == nil {
		l.sha1 = map[string]string{}
	}
	l.sha1[p] = sum
}

func (l *lateDigests) get(p string) (string, entry.Entry, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.entries[p]
	return l.sha1[p], e, ok
}

// defer makes e a file whose SHA1 is taken when it is read: e's reader
// verifies the content's sha256 while it streams, and the SHA1 counts only
// when it has read all of it (io.EOF, which a verifying reader gives only
// when the content matched).
func (l *lateDigests) deferSHA1(e entry.Entry) entry.Entry {
	l.mu.Lock()
	if l.entries == nil {
		l.entries = map[string]entry.Entry{}
	}
	l.entries[e.Path] = e
	l.mu.Unlock()
	open := e.Open
	e.Open = func() (io.ReadCloser, error) {
		rc, err := open()
		if err != nil {
			return nil, err
		}
		return &sha1Tee{rc: rc, h: sha1.New(), done: func(sum string) { l.set(e.Path, sum) }}, nil
	}
	return e
}

// sha1Tee hashes what is read through it and reports the SHA1 at io.EOF.
type sha1Tee struct {
	rc   io.ReadCloser
	h    hash.Hash
	done func(string)
}

func (t *sha1Tee) Read(p []byte) (int, error) {
	n, err := t.rc.Read(p)
	t.h.Write(p[:n])
	if err == io.EOF {
		t.done(hex.EncodeToString(t.h.Sum(nil)))
	}
	return n, err
}

func (t *sha1Tee) Close() error { return t.rc.Close() }

// Option configures a Resolver.
type Option func(*Resolver)

// WithHTTPClient sets the client release artifacts are downloaded with.
func WithHTTPClient(c *http.Client) Option { return func(r *Resolver) { r.client = c } }

// WithTransport sets the transport registries are reached through.
func WithTransport(t http.RoundTripper) Option { return func(r *Resolver) { r.transport = t } }

// WithOffline forbids any download: everything must be in the cache.
func WithOffline(offline bool) Option { return func(r *Resolver) { r.offline = offline } }

// WithGo sets the Go toolchain components are built from source with.
func WithGo(b gosource.Builder) Option { return func(r *Resolver) { r.goBuilder = b } }

// WithLog receives a line for each step that takes time (a download, a
// build from source, preparing a preloaded image).
func WithLog(fn func(message string)) Option { return func(r *Resolver) { r.log = fn } }

// WithDownloads receives the progress of release artifact downloads.
func WithDownloads(fn func(fetch.Progress)) Option { return func(r *Resolver) { r.downloads = fn } }

// New returns a Resolver of the layers of s, which must be defaulted and
// valid, using cache c.
func New(s *spec.Spec, c *cache.Cache, opts ...Option) *Resolver {
	r := &Resolver{spec: s, cache: c}
	for _, o := range opts {
		o(r)
	}
	return r
}

func (r *Resolver) say(format string, args ...any) {
	if r.log != nil {
		r.log(fmt.Sprintf(format, args...))
	}
}

// Image opens an image source of the spec (oci:DIR, tarball:FILE or a
// registry reference; relative paths against the spec's directory) through
// the cache, pinned by digest when digest is set.
func (r *Resolver) Image(ctx context.Context, ref, digest string) (v1.Image, error) {
	s := r.spec
	src, err := spec.ParseImageSource(ref)
	if err != nil {
		return nil, failure.New(failure.Invalid, err)
	}
	resolved := ref
	switch src.Kind {
	case spec.ImageOCILayout:
		resolved = "oci:" + s.ResolvePath(src.Path)
		if src.Digest != "" {
			resolved += "@" + src.Digest
		}
	case spec.ImageTarball:
		resolved = "tarball:" + s.ResolvePath(src.Path)
	}
	opts := []oci.Option{oci.WithPlatform(string(s.Arch))}
	if digest != "" {
		opts = append(opts, oci.WithDigest(digest))
	}
	if r.transport != nil {
		opts = append(opts, oci.WithTransport(r.transport))
	}
	if r.offline {
		opts = append(opts, oci.WithOffline(true))
	}
	return oci.Pull(ctx, resolved, r.cache, opts...)
}

// Base opens the base image. A base named as an OCI layout that is not
// there is invalid input, and the error says how to build it.
func (r *Resolver) Base(ctx context.Context) (v1.Image, BaseInfo, error) {
	s := r.spec
	if src, err := spec.ParseImageSource(s.Base.Image); err == nil && src.Kind == spec.ImageOCILayout {
		dir := s.ResolvePath(src.Path)
		if _, err := os.Stat(filepath.Join(dir, "index.json")); errors.Is(err, fs.ErrNotExist) {
			return nil, BaseInfo{}, failure.Errorf(failure.Invalid,
				"base.image: %s: there is no OCI image layout at %s; build the base OS with scripts/build-base.sh (make base)", s.Base.Image, dir)
		}
	}
	img, err := r.Image(ctx, s.Base.Image, s.Base.Digest)
	if err != nil {
		return nil, BaseInfo{}, fmt.Errorf("base.image: %w", err)
	}
	d, err := img.Digest()
	if err != nil {
		return nil, BaseInfo{}, fmt.Errorf("base.image: %w", err)
	}
	return img, BaseInfo{Image: s.Base.Image, Digest: d.String()}, nil
}

// Components fetches or builds every component of the spec, in catalogue
// order, and returns their records and the files they install.
func (r *Resolver) Components(ctx context.Context) ([]ComponentInfo, []entry.Entry, error) {
	var infos []ComponentInfo
	var entries []entry.Entry
	for _, nc := range r.spec.NamedComponents() {
		info, ents, err := r.component(ctx, nc)
		if err != nil {
			return nil, nil, err
		}
		infos = append(infos, info)
		entries = append(entries, ents...)
	}
	return infos, entries, nil
}

// component resolves one component from its source.
func (r *Resolver) component(ctx context.Context, nc spec.NamedComponent) (ComponentInfo, []entry.Entry, error) {
	s := r.spec
	name, c, layout := nc.Name, nc.Component, nc.Catalogue
	field := "components." + string(nc.Key)
	info := ComponentInfo{Name: name, Version: c.Version, From: string(c.From)}
	var ents []entry.Entry
	// The sha256 of files read through the cache, which verifies them
	// against it, by image path.
	verified := map[string]string{}
	switch c.From {
	case spec.FromRelease:
		algo, sum, _ := c.Checksum(s.Arch)
		url := s.ArtifactURL(nc.Key)
		r.say("%s %s from %s", name, c.Version, url)
		d := cache.Digest{Algorithm: algo, Hex: strings.ToLower(sum)}
		p, err := r.fetcher().Fetch(ctx, fetch.Artifact{
			Name:   fmt.Sprintf("%s %s linux/%s", name, c.Version, s.Arch),
			URL:    url,
			Digest: d,
		})
		if err != nil {
			return info, nil, fmt.Errorf("%s: %w", field, err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			return info, nil, fmt.Errorf("%s: %w", field, err)
		}
		info.Source, info.Checksum = url, d.String()
		// Read through the cache, verified while it streams.
		open := func() (io.ReadCloser, error) { return r.cache.OpenBlob(d) }
		if ents, err = layout.FromRelease(open, fi.Size()); err != nil {
			return info, nil, fmt.Errorf("%s: %w", field, err)
		}
		if layout.Artifact == components.Binary && d.Algorithm == "sha256" {
			verified[layout.Files[0].To] = d.Hex
		}
	case spec.FromGo:
		e, src, err := r.buildFromSource(ctx, name, c.Version)
		if err != nil {
			return info, nil, fmt.Errorf("%s: %w", field, err)
		}
		info.Source = src
		if info.Checksum, err = r.checkPin(nc, e, src); err != nil {
			return info, nil, err
		}
		if ents, err = layout.FromBuild(e.FS()); err != nil {
			return info, nil, fmt.Errorf("%s: %w", field, err)
		}
		for _, f := range layout.Files {
			if rec, ok := e.File(f.Name); ok {
				verified[f.To] = rec.SHA256
			}
		}
	case spec.FromOCI:
		img, err := r.Image(ctx, c.Image, "")
		if err != nil {
			return info, nil, fmt.Errorf("%s.image: %w", field, err)
		}
		d, err := img.Digest()
		if err != nil {
			return info, nil, fmt.Errorf("%s.image: %w", field, err)
		}
		info.Source, info.Checksum = c.Image, d.String()
		rc := oci.Flatten(img)
		ents, err = layout.FromFilesystem(rc)
		rc.Close()
		if err != nil {
			return info, nil, failure.Errorf(failure.Invalid, "%s: %w", field, err)
		}
	default:
		return info, nil, failure.Errorf(failure.Invalid, "%s.from: unknown source %q", field, c.From)
	}
	for i, e := range ents {
		if sum, ok := verified[e.Path]; ok {
			// Read when the image is composed, verified as it streams;
			// its SHA1 for the SBOM is taken then (CompleteDigests).
			ents[i] = r.late.deferSHA1(e)
			info.Files = append(info.Files, FileInfo{Path: e.Path, SHA256: sum, Size: e.Size})
			continue
		}
		sum, sum1, err := digests(e)
		if err != nil {
			return info, nil, fmt.Errorf("%s: %w", field, err)
		}
		info.Files = append(info.Files, FileInfo{Path: e.Path, SHA256: sum, SHA1: sum1, Size: e.Size})
	}
	return info, ents, nil
}

// BuildFromSource builds the program with upstream name name (a component,
// or a control plane program of the catalogue) at version from source
// through the Go module proxy, for the spec's architecture, and returns
// the directory of its binaries. Builds are cached by name, version, Go
// version and architecture. The caller reads the files as it likes, so a
// cached build is verified here, all of it: a corrupt one is evicted and
// built again, once. A failed build is a source failure.
func (r *Resolver) BuildFromSource(ctx context.Context, name, version string) (string, error) {
	for attempt := 0; ; attempt++ {
		e, _, err := r.buildFromSource(ctx, name, version)
		if err == nil {
			err = e.Verify()
		}
		if err == nil {
			return e.Dir, nil
		}
		var ce *cache.CorruptError
		if attempt > 0 || !errors.As(err, &ce) {
			return "", err
		}
		r.say("%v; building it again", ce)
		if err := r.cache.EvictCorrupt(ce); err != nil {
			return "", err
		}
	}
}

// buildFromSource returns the cache entry of name at version built from
// source, building it first when it is not cached, and where the binaries
// came from: "go:MODULE@VERSION (GOVERSION)". The entry's files verify
// while they are read (Entry.FS).
func (r *Resolver) buildFromSource(ctx context.Context, name, version string) (*cache.Entry, string, error) {
	recipe, err := components.Recipe(name)
	if err != nil {
		return nil, "", err
	}
	gover, err := r.goBuilder.GoVersion(ctx)
	if err != nil {
		return nil, "", err
	}
	source := fmt.Sprintf("go:%s@%s (%s)", recipe.Module, version, gover)
	key := fmt.Sprintf("gosource/v1/%s/%s/%s/%s", name, version, gover, r.spec.Arch)
	e, err := r.cache.PutEntry(key, func(tmp string) error {
		r.say("building %s %s from source (%s)", name, version, gover)
		return r.goBuilder.Build(ctx, recipe, version, string(r.spec.Arch), tmp)
	})
	if err != nil {
		return nil, "", failure.New(failure.Source, err)
	}
	if e.Adopted {
		r.say("%s %s: adopted the build an older nodebake cached (its digests are recorded from now on)", name, version)
	}
	return e, source, nil
}

// checkPin refuses a component built from source whose release artifact
// (what `nodebake mirror build` packs from the same build: the binary
// itself, or a deterministic tar.gz) does not have the checksum the spec
// pins for the architecture. It returns the pin ("sha256:HEX"), or "" when
// there is none.
func (r *Resolver) checkPin(nc spec.NamedComponent, e *cache.Entry, source string) (string, error) {
	arch := r.spec.Arch
	algo, want, ok := nc.Component.Checksum(arch)
	if !ok {
		return "", nil
	}
	field := fmt.Sprintf("components.%s.%s.%s", nc.Key, algo, arch)
	h := sha256.New()
	if algo == "sha512" {
		h = sha512.New()
	}
	if err := nc.Catalogue.WriteRelease(h, e.FS()); err != nil {
		return "", fmt.Errorf("%s: checking the build from source against the pin: %w", field, err)
	}
	got := hex.EncodeToString(h.Sum(nil))
	if got != want {
		return "", failure.Errorf(failure.Source,
			"%s: %s %s built from source (%s) for linux/%s is %s:%s, but the spec pins %s:%s: refusing it (another Go toolchain or other sources give other bytes)",
			field, nc.Name, nc.Component.Version, source, arch, algo, got, algo, want)
	}
	return algo + ":" + want, nil
}

// preloadArchive is the file of a preloaded image's cache entry.
const preloadArchive = "image.tar"

// Preloads turns the spec's images into image archives baked under
// worker.PreloadDir; the image's preload unit imports them into
// containerd's k8s.io namespace at boot, so a node with no route to a
// registry still starts pods. Archives are cached by image digest and ref.
func (r *Resolver) Preloads(ctx context.Context) ([]PreloadInfo, []entry.Entry, error) {
	var infos []PreloadInfo
	var out []entry.Entry
	for i, im := range r.spec.Images {
		field := fmt.Sprintf("images[%d]", i)
		img, err := r.Image(ctx, im.Image, im.Digest)
		if err != nil {
			return nil, nil, fmt.Errorf("%s.image: %w", field, err)
		}
		d, err := img.Digest()
		if err != nil {
			return nil, nil, fmt.Errorf("%s.image: %w", field, err)
		}
		key := fmt.Sprintf("preload/v1/%s/%s", d, im.Ref)
		e, err := r.cache.PutEntry(key, func(tmp string) error {
			r.say("preparing preloaded image %s", im.Ref)
			return oci.WriteTarball(filepath.Join(tmp, preloadArchive), im.Ref, img)
		})
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", field, err)
		}
		if e.Adopted {
			r.say("%s: adopted the archive an older nodebake cached (its digests are recorded from now on)", im.Ref)
		}
		rec, ok := e.File(preloadArchive)
		if !ok {
			return nil, nil, fmt.Errorf("%s: cache entry %q has no %s", field, key, preloadArchive)
		}
		// Read when the image is composed, verified while it streams.
		out = append(out, entry.Entry{
			Path: fmt.Sprintf("%s/%02d.tar", worker.PreloadDir(), i), Type: tar.TypeReg, Mode: 0o644, Size: rec.Size,
			Open: func() (io.ReadCloser, error) { return e.Open(preloadArchive) },
		})
		infos = append(infos, PreloadInfo{Ref: im.Ref, Source: im.Image, Digest: d.String()})
	}
	return infos, out, nil
}

// fetcher builds the release downloader.
func (r *Resolver) fetcher() *fetch.Fetcher {
	retries := spec.DefaultRetries
	if r.spec.Sources.Retries != nil {
		retries = *r.spec.Sources.Retries
	}
	fo := []fetch.Option{fetch.WithRetries(retries), fetch.WithOffline(r.offline), fetch.WithVerifyOnRead(true)}
	if r.client != nil {
		fo = append(fo, fetch.WithClient(r.client))
	}
	if r.downloads != nil {
		fo = append(fo, fetch.WithProgress(r.downloads))
	}
	return fetch.New(r.cache, fo...)
}

// CompleteDigests fills in the SHA1 (for the SBOM) of the files of comps
// that Components left to be taken while the image is composed; a file
// that was not read then is read now, verified as it streams.
func (r *Resolver) CompleteDigests(comps []ComponentInfo) error {
	for i := range comps {
		for j := range comps[i].Files {
			f := &comps[i].Files[j]
			if f.SHA1 != "" {
				continue
			}
			sum1, e, ok := r.late.get(f.Path)
			if !ok {
				return fmt.Errorf("components: %s: no digest of %s", comps[i].Name, f.Path)
			}
			if sum1 == "" {
				sum256, s1, err := digests(e)
				if err != nil {
					return fmt.Errorf("components: %s: %w", comps[i].Name, err)
				}
				if sum256 != f.SHA256 {
					return fmt.Errorf("components: %s: %s changed while it was read (sha256 %s, then %s)", comps[i].Name, f.Path, f.SHA256, sum256)
				}
				sum1 = s1
			}
			f.SHA1 = sum1
		}
	}
	return nil
}

// digests returns the SHA256 and SHA1 of a file; the SBOM needs SHA1 for
// its files and package verification codes.
func digests(e entry.Entry) (sha256Hex, sha1Hex string, err error) {
	rc, err := e.Open()
	if err != nil {
		return "", "", err
	}
	defer rc.Close()
	h, h1 := sha256.New(), sha1.New()
	if _, err := io.Copy(io.MultiWriter(h, h1), rc); err != nil {
		return "", "", fmt.Errorf("hashing %s: %w", e.Path, err)
	}
	if err := rc.Close(); err != nil {
		return "", "", fmt.Errorf("hashing %s: %w", e.Path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), hex.EncodeToString(h1.Sum(nil)), nil
}
