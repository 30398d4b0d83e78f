package artifact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/nodebake/nodebake/layers/failure"
)

// emptyConfig is the content of the OCI empty descriptor.
const emptyConfig = "{}"

// Push uploads files to ref (REGISTRY/REPO:TAG or REGISTRY/REPO@DIGEST) as
// one artifact and returns the manifest digest. Blobs already in the
// repository are not uploaded again. The manifest depends only on the files
// and options, so pushing the same files twice gives the same digest.
func Push(ctx context.Context, ref string, files []File, opts Options) (v1.Hash, error) {
	r, err := parseRef(ref, opts.Insecure)
	if err != nil {
		return v1.Hash{}, err
	}
	if len(files) == 0 {
		return v1.Hash{}, failure.New(failure.Invalid, errors.New("no files to push"))
	}
	layers, err := fileLayers(files)
	if err != nil {
		return v1.Hash{}, err
	}
	annotations, err := manifestAnnotations(files, layers, opts)
	if err != nil {
		return v1.Hash{}, err
	}
	config := static.NewLayer([]byte(emptyConfig), MediaTypeEmpty)
	raw, err := buildManifest(config, layers, annotations)
	if err != nil {
		return v1.Hash{}, err
	}
	ro := remoteOptions(ctx, opts)
	if err := remote.WriteLayer(r.Context(), config, ro...); err != nil {
		return v1.Hash{}, failure.Errorf(failure.Source, "uploading the config blob to %s: %w", r.Context(), err)
	}
	for _, l := range layers {
		if err := remote.WriteLayer(r.Context(), l.layer, ro...); err != nil {
			return v1.Hash{}, failure.Errorf(failure.Source, "uploading %s to %s: %w", l.name, r.Context(), err)
		}
	}
	m := rawManifest(raw)
	d := m.digest()
	if dr, ok := r.(name.Digest); ok && dr.DigestStr() != d.String() {
		return v1.Hash{}, failure.Errorf(failure.Invalid, "reference %s: the artifact's manifest digest is %s", ref, d)
	}
	if err := remote.Put(r, m, ro...); err != nil {
		return v1.Hash{}, failure.Errorf(failure.Source, "uploading the manifest to %s: %w", r, err)
	}
	return d, nil
}

// pushLayer is one file ready to push.
type pushLayer struct {
	name  string
	layer *fileLayer
}

// fileLayers checks the files' names and hashes each file.
func fileLayers(files []File) ([]pushLayer, error) {
	seen := map[string]bool{}
	var out []pushLayer
	for _, f := range files {
		n := f.Name
		if n == "" {
			n = baseName(f.Path)
		}
		if err := checkName(n); err != nil {
			return nil, failure.New(failure.Invalid, err)
		}
		if seen[n] {
			return nil, failure.Errorf(failure.Invalid, "two files named %s", n)
		}
		seen[n] = true
		mt := f.MediaType
		if mt == "" {
			var err error
			if mt, err = MediaTypeFor(n); err != nil {
				return nil, failure.New(failure.Invalid, err)
			}
		}
		l, err := newFileLayer(f.Path, mt)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
				return nil, failure.New(failure.Invalid, err)
			}
			return nil, err
		}
		out = append(out, pushLayer{name: n, layer: l})
	}
	return out, nil
}

func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}

// checkName accepts a plain file name: a pull writes a file by that name.
func checkName(n string) error {
	switch {
	case n == "", n == ".", n == "..":
		return fmt.Errorf("invalid file name %q", n)
	case strings.ContainsAny(n, "/\\\x00"):
		return fmt.Errorf("invalid file name %q: not a plain file name", n)
	case len(n) > 255:
		return fmt.Errorf("invalid file name %q: too long", n)
	}
	return nil
}

// nodebakeManifest is the part of the build manifest (<name>.manifest.json)
// that the artifact uses.
type nodebakeManifest struct {
	Name     string `json:"name"`
	Arch     string `json:"arch"`
	SpecHash string `json:"specHash"`
	// SBOM and Checksums name the SBOM and SHA256SUMS files.
	SBOM      string `json:"sbom"`
	Checksums string `json:"checksums"`
	// Created and SourceDateEpoch are read if the manifest has them.
	Created         string `json:"created"`
	SourceDateEpoch *int64 `json:"sourceDateEpoch"`
	Image           struct {
		File   string `json:"file"`
		SHA256 string `json:"sha256"`
		Size   int64  `json:"size"`
	} `json:"image"`
	Components []struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"components"`
}

// maxManifestSize bounds the nodebake manifest read into memory.
const maxManifestSize = 16 << 20

func readNodebakeManifest(path string) (*nodebakeManifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var m nodebakeManifest
	if err := json.NewDecoder(io.LimitReader(f, maxManifestSize)).Decode(&m); err != nil {
		return nil, fmt.Errorf("reading the nodebake manifest %s: %w", baseName(path), err)
	}
	return &m, nil
}

func (m *nodebakeManifest) kubernetesVersion() string {
	for _, c := range m.Components {
		if c.Name == "kubelet" {
			return c.Version
		}
	}
	return ""
}

func (m *nodebakeManifest) created() (time.Time, bool) {
	if m.Created != "" {
		if t, err := time.Parse(time.RFC3339, m.Created); err == nil {
			return t, true
		}
	}
	if m.SourceDateEpoch != nil {
		return time.Unix(*m.SourceDateEpoch, 0), true
	}
	return time.Time{}, false
}

// manifestAnnotations derives the manifest's annotations from the nodebake
// manifest among the files (if any) and the options.
func manifestAnnotations(files []File, layers []pushLayer, opts Options) (map[string]string, error) {
	var nm *nodebakeManifest
	for i, l := range layers {
		if l.layer.mt == MediaTypeManifest {
			m, err := readNodebakeManifest(files[i].Path)
			if err != nil {
				return nil, failure.New(failure.Invalid, err)
			}
			nm = m
			break
		}
	}
	created := time.Unix(0, 0)
	if t, ok := nm.createdOrZero(); ok {
		created = t
	}
	if !opts.Created.IsZero() {
		created = opts.Created
	}
	a := map[string]string{AnnotationCreated: created.UTC().Format(time.RFC3339)}
	version := opts.Version
	if nm != nil {
		set := func(k, v string) {
			if v != "" {
				a[k] = v
			}
		}
		set(AnnotationKubernetesVersion, nm.kubernetesVersion())
		set(AnnotationName, nm.Name)
		set(AnnotationArch, nm.Arch)
		set(AnnotationSpecHash, nm.SpecHash)
		set(AnnotationImageSHA256, nm.Image.SHA256)
		if version == "" {
			version = nm.kubernetesVersion()
		}
	}
	if version != "" {
		a[AnnotationVersion] = version
	}
	maps.Copy(a, opts.Annotations)
	return a, nil
}

func (m *nodebakeManifest) createdOrZero() (time.Time, bool) {
	if m == nil {
		return time.Time{}, false
	}
	return m.created()
}

// buildManifest returns the artifact's OCI image manifest.
func buildManifest(config v1.Layer, layers []pushLayer, annotations map[string]string) ([]byte, error) {
	cd, err := config.Digest()
	if err != nil {
		return nil, err
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  ArtifactType,
		Config:        v1.Descriptor{MediaType: MediaTypeEmpty, Digest: cd, Size: int64(len(emptyConfig))},
		Annotations:   annotations,
	}
	for _, l := range layers {
		m.Layers = append(m.Layers, v1.Descriptor{
			MediaType:   l.layer.mt,
			Digest:      l.layer.digest,
			Size:        l.layer.size,
			Annotations: map[string]string{AnnotationTitle: l.name},
		})
	}
	return json.Marshal(m)
}

// rawManifest is a manifest to upload as is.
type rawManifest []byte

func (m rawManifest) RawManifest() ([]byte, error)        { return m, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

func (m rawManifest) digest() v1.Hash {
	s := sha256.Sum256(m)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

// parseRef parses a registry reference; a bad one is of kind failure.Invalid.
func parseRef(ref string, insecure bool) (name.Reference, error) {
	var nopts []name.Option
	if insecure {
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nopts...)
	if err != nil {
		return nil, failure.Errorf(failure.Invalid, "reference %q: %w", ref, err)
	}
	return r, nil
}

func remoteOptions(ctx context.Context, opts Options) []remote.Option {
	kc := opts.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	ro := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(kc)}
	if opts.Transport != nil {
		ro = append(ro, remote.WithTransport(opts.Transport))
	}
	return ro
}
