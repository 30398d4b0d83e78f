package artifact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/nodebake/nodebake/layers/failure"
)

// Result is what Pull fetched.
type Result struct {
	// Digest is the manifest digest.
	Digest v1.Hash
	// Ref is the pulled manifest as REGISTRY/REPO@DIGEST.
	Ref string
	// Manifest is the OCI manifest as the registry served it.
	Manifest []byte
	// Files are the files written, in manifest order.
	Files []string
}

// Pull fetches the artifact ref names into outDir, verifying the manifest
// (against opts.Digest, when set) and every blob's digest and size as it is
// written. Files are written under temporary names and renamed into place
// only once everything has verified; on any error every temporary file is
// removed and outDir is left as it was.
func Pull(ctx context.Context, ref, outDir string, opts Options) (*Result, error) {
	r, err := parseRef(ref, opts.Insecure)
	if err != nil {
		return nil, err
	}
	var pin *v1.Hash
	if opts.Digest != "" {
		h, err := v1.NewHash(opts.Digest)
		if err != nil {
			return nil, failure.Errorf(failure.Invalid, "digest %q: %w", opts.Digest, err)
		}
		pin = &h
	}
	ro := remoteOptions(ctx, opts)
	desc, err := remote.Get(r, ro...)
	if err != nil {
		return nil, failure.Errorf(failure.Source, "fetching the manifest of %s: %w", ref, err)
	}
	if got := sha256Hash(desc.Manifest); got != desc.Digest {
		return nil, failure.Errorf(failure.Source, "manifest of %s: digest mismatch: got %s, want %s", ref, got, desc.Digest)
	}
	if pin != nil && desc.Digest != *pin {
		return nil, failure.Errorf(failure.Source, "manifest of %s: digest mismatch: got %s, want %s (--digest)", ref, desc.Digest, pin)
	}
	m, err := checkManifest(ref, desc.MediaType, desc.Manifest)
	if err != nil {
		return nil, err
	}
	names, err := outputNames(m, opts.Decompress)
	if err != nil {
		return nil, failure.Errorf(failure.Source, "manifest of %s: %w", ref, err)
	}
	p := &puller{dir: outDir}
	defer p.cleanup()
	if err := p.mkdir(); err != nil {
		return nil, err
	}
	repo := r.Context()
	var nbManifest string // temporary path of the nodebake manifest
	for i, l := range m.Layers {
		title := l.Annotations[AnnotationTitle]
		tmp, err := p.fetch(ctx, repo, l, title, ro)
		if err != nil {
			return nil, err
		}
		if l.MediaType == MediaTypeManifest && nbManifest == "" {
			nbManifest = tmp
		}
		p.files = append(p.files, pulledFile{tmp: tmp, name: names[i], mt: l.MediaType, title: title})
	}
	if opts.Decompress {
		if err := p.decompress(ctx, nbManifest); err != nil {
			return nil, err
		}
	}
	res := &Result{Digest: desc.Digest, Ref: repo.Digest(desc.Digest.String()).String(), Manifest: desc.Manifest}
	for i := range p.files {
		f := &p.files[i]
		dst := filepath.Join(outDir, f.name)
		// CreateTemp makes 0600 files; a pulled image is as readable as
		// a built one.
		if err := os.Chmod(f.tmp, 0o644); err != nil {
			return nil, fmt.Errorf("%w", err)
		}
		if err := os.Rename(f.tmp, dst); err != nil {
			return nil, fmt.Errorf("%w", err)
		}
		f.tmp = ""
		res.Files = append(res.Files, dst)
	}
	p.done = true
	return res, nil
}

// checkManifest accepts an OCI image manifest with our artifactType.
func checkManifest(ref string, mt types.MediaType, raw []byte) (*v1.Manifest, error) {
	if mt != types.OCIManifestSchema1 {
		what := "a manifest of type " + string(mt)
		if mt.IsIndex() {
			what = "an image index (" + string(mt) + ")"
		}
		return nil, failure.Errorf(failure.Invalid, "%s is not a nodebake image: it is %s, want an OCI manifest with artifactType %s", ref, what, ArtifactType)
	}
	var m v1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, failure.Errorf(failure.Source, "manifest of %s: %w", ref, err)
	}
	if m.ArtifactType != ArtifactType {
		got := fmt.Sprintf("artifactType %q", m.ArtifactType)
		if m.ArtifactType == "" {
			got = fmt.Sprintf("no artifactType and config %s (a container image?)", m.Config.MediaType)
		}
		return nil, failure.Errorf(failure.Invalid, "%s is not a nodebake image: it has %s, want artifactType %s", ref, got, ArtifactType)
	}
	return &m, nil
}

// outputNames returns the file name each layer is written as, checking that
// every layer has a plain, unique title.
func outputNames(m *v1.Manifest, decompress bool) ([]string, error) {
	seen := map[string]bool{}
	var names []string
	for i, l := range m.Layers {
		title, ok := l.Annotations[AnnotationTitle]
		if !ok {
			return nil, fmt.Errorf("layer %d (%s) has no %s annotation", i, l.Digest, AnnotationTitle)
		}
		if err := checkName(title); err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		if l.Size < 0 {
			return nil, fmt.Errorf("layer %s: negative size", title)
		}
		n := title
		if decompress && l.MediaType == MediaTypeDiskRawZstd {
			n = strings.TrimSuffix(title, ".zst")
			if n == title || checkName(n) != nil {
				return nil, fmt.Errorf("layer %s: cannot name the decompressed file", title)
			}
		}
		if seen[n] {
			return nil, fmt.Errorf("two layers write %s", n)
		}
		seen[n] = true
		names = append(names, n)
	}
	return names, nil
}

// puller tracks the temporary files of one Pull.
type puller struct {
	dir        string
	createdDir bool
	files      []pulledFile
	temps      []string
	done       bool
}

type pulledFile struct {
	tmp   string // temporary path; "" once renamed
	name  string // final name
	title string
	mt    types.MediaType
}

func (p *puller) mkdir() error {
	if _, err := os.Stat(p.dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return fmt.Errorf("%w", err)
	}
	p.createdDir = true
	return nil
}

// cleanup removes every temporary file, and the directory Pull created,
// unless the pull succeeded.
func (p *puller) cleanup() {
	if p.done {
		return
	}
	for _, t := range p.temps {
		os.Remove(t)
	}
	if p.createdDir {
		os.Remove(p.dir) // only if empty
	}
}

func (p *puller) tempFile() (*os.File, error) {
	f, err := os.CreateTemp(p.dir, ".nodebake-pull-*")
	if err != nil {
		return nil, fmt.Errorf("%w", err)
	}
	p.temps = append(p.temps, f.Name())
	return f, nil
}

// fetch downloads one blob to a temporary file, hashing it as it is written,
// and returns the file's path once its digest and size verify.
func (p *puller) fetch(ctx context.Context, repo name.Repository, d v1.Descriptor, title string, ro []remote.Option) (string, error) {
	if d.Digest.Algorithm != "sha256" {
		return "", failure.Errorf(failure.Source, "blob %s: unsupported digest algorithm %s", title, d.Digest.Algorithm)
	}
	f, err := p.tempFile()
	if err != nil {
		return "", err
	}
	defer f.Close()
	l, err := remote.Layer(repo.Digest(d.Digest.String()), ro...)
	if err != nil {
		return "", failure.Errorf(failure.Source, "blob %s: %w", title, err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return "", failure.Errorf(failure.Source, "blob %s: %w", title, err)
	}
	defer rc.Close()
	h := sha256.New()
	// Read one byte more than the descriptor's size to notice a longer blob.
	n, copyErr := io.Copy(io.MultiWriter(f, h), io.LimitReader(&ctxReader{ctx: ctx, r: rc}, d.Size+1))
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	got := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
	switch {
	case n != d.Size && (copyErr == nil || n > d.Size):
		return "", failure.Errorf(failure.Source, "blob %s: size mismatch: got %d bytes, want %d", title, n, d.Size)
	case n == d.Size && got != d.Digest:
		return "", failure.Errorf(failure.Source, "blob %s: digest mismatch: got %s, want %s", title, got, d.Digest)
	case copyErr != nil:
		var pe *os.PathError
		if errors.As(copyErr, &pe) {
			return "", fmt.Errorf("writing %s: %w", title, copyErr)
		}
		return "", failure.Errorf(failure.Source, "blob %s: %w", title, copyErr)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("writing %s: %w", title, err)
	}
	return f.Name(), nil
}

// decompress replaces each zstd-compressed raw disk by its sparse raw,
// verified against the nodebake manifest.
func (p *puller) decompress(ctx context.Context, nbManifest string) error {
	for i := range p.files {
		f := &p.files[i]
		if f.mt != MediaTypeDiskRawZstd {
			continue
		}
		if nbManifest == "" {
			return failure.Errorf(failure.Source, "decompressing %s: the artifact has no nodebake manifest (%s) to verify the disk against", f.title, MediaTypeManifest)
		}
		nm, err := readNodebakeManifest(nbManifest)
		if err != nil {
			return failure.Errorf(failure.Source, "%w", err)
		}
		want, err := v1.NewHash("sha256:" + strings.TrimPrefix(nm.Image.SHA256, "sha256:"))
		if err != nil {
			return failure.Errorf(failure.Source, "decompressing %s: the nodebake manifest's image.sha256 %q: %w", f.title, nm.Image.SHA256, err)
		}
		out, err := p.tempFile()
		if err != nil {
			return err
		}
		got, size, err := decompressFile(ctx, f.tmp, out)
		if cerr := out.Close(); err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return failure.Errorf(failure.Source, "decompressing %s: %w", f.title, err)
		}
		if got != want || (nm.Image.Size > 0 && size != nm.Image.Size) {
			return failure.Errorf(failure.Source, "%s: digest mismatch against the nodebake manifest: got %s (%d bytes), want %s (%d bytes)", f.name, got, size, want, nm.Image.Size)
		}
		os.Remove(f.tmp)
		f.tmp = out.Name()
	}
	return nil
}

func sha256Hash(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

func hashOf(h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
}

// ctxReader stops reading when ctx is done.
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
