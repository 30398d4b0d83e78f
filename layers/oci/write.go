package oci

import (
	"archive/tar"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ImageFromRootfsTar returns a one-layer OCI image for linux/<arch> whose
// filesystem is the tar at path (plain, or gzip/zstd compressed). created is
// used for the image and history timestamps (take it from
// SOURCE_DATE_EPOCH): the same inputs always give the same digest.
// The compressed layer is kept in memory once computed.
func ImageFromRootfsTar(path string, created time.Time, arch string) (v1.Image, error) {
	s, err := makeSettings([]Option{WithPlatform(arch)})
	if err != nil {
		return nil, fmt.Errorf("making image from %s: %w", path, err)
	}
	if err := checkTar(path); err != nil {
		return nil, fmt.Errorf("making image from %s: %w", path, err)
	}
	layer, err := tarball.LayerFromFile(path, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, fmt.Errorf("making image from %s: %w", path, err)
	}
	at := v1.Time{Time: created.UTC()}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:     plainLayer{layer},
		MediaType: types.OCILayer,
		History:   v1.History{Created: at, CreatedBy: "rootfs tar"},
	})
	if err != nil {
		return nil, fmt.Errorf("making image from %s: %w", path, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("making image from %s: %w", path, err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS = s.platform.OS
	cfg.Architecture = s.platform.Architecture
	cfg.Variant = s.platform.Variant
	cfg.Created = at
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, fmt.Errorf("making image from %s: %w", path, err)
	}
	return img, nil
}

// plainLayer hides a tarball layer's own Descriptor method, whose empty
// annotations map would otherwise make the in-memory manifest differ from
// the serialized one.
type plainLayer struct{ v1.Layer }

// checkTar fails unless path is a compressed file or starts with a tar header.
func checkTar(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var magic [4]byte
	if _, err := f.ReadAt(magic[:], 0); err == nil &&
		(string(magic[:2]) == "\x1f\x8b" || string(magic[:]) == "\x28\xb5\x2f\xfd") {
		return nil // gzip or zstd: checked when decompressed
	}
	if _, err := tar.NewReader(f).Next(); err != nil {
		return fmt.Errorf("not a tar archive: %w", err)
	}
	return nil
}

// WriteLayout writes img as the single image of a fresh OCI image layout
// at dir, with annotations on its index entry (for example
// "org.opencontainers.image.ref.name"). The layout is built in a temporary
// directory beside dir and renamed into place; an existing layout at dir
// is replaced, but any other non-empty directory is left alone and is an
// error. The same image and annotations give the same bytes.
func WriteLayout(dir string, img v1.Image, annotations map[string]string) error {
	if err := checkReplaceable(dir); err != nil {
		return fmt.Errorf("writing OCI layout %s: %w", dir, err)
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("writing OCI layout %s: %w", dir, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing OCI layout %s: %w", dir, err)
	}
	defer os.RemoveAll(tmp)
	p, err := layout.Write(tmp, empty.Index)
	if err == nil {
		var lo []layout.Option
		if len(annotations) > 0 {
			lo = append(lo, layout.WithAnnotations(annotations))
		}
		err = p.AppendImage(img, lo...)
	}
	if err == nil {
		err = normalizeModes(tmp)
	}
	if err == nil {
		err = replaceDir(tmp, dir)
	}
	if err != nil {
		return fmt.Errorf("writing OCI layout %s: %w", dir, err)
	}
	return nil
}

// checkReplaceable fails if dir exists and is neither empty nor an OCI layout.
func checkReplaceable(dir string) error {
	es, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(es) == 0) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		return errors.New("directory exists and is not an OCI layout; refusing to replace it")
	}
	return nil
}

// normalizeModes makes directories 0755 and files 0644 under root, whatever
// the umask or temporary-file modes were.
func normalizeModes(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		mode := fs.FileMode(0o644)
		if d.IsDir() {
			mode = 0o755
		}
		return os.Chmod(p, mode)
	})
}

// replaceDir renames the directory tmp to dir, moving any existing dir
// aside first and deleting it afterwards.
func replaceDir(tmp, dir string) error {
	err := os.Rename(tmp, dir)
	if err == nil {
		return nil
	}
	if _, serr := os.Stat(dir); serr != nil {
		return err
	}
	old := tmp + ".old"
	if err := os.Rename(dir, old); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.Rename(old, dir)
		return err
	}
	return os.RemoveAll(old)
}

// WriteTarball writes img as a "docker save" tarball tagged ref (for
// example registry.k8s.io/pause:3.10.1), loadable with `ctr images import`
// and `docker load`. The file is written beside path and renamed into place.
func WriteTarball(path string, ref string, img v1.Image) error {
	r, err := name.ParseReference(ref)
	if err != nil {
		return fmt.Errorf("writing image tarball %s: reference %q: %w", path, ref, err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing image tarball %s: %w", path, err)
	}
	defer os.Remove(f.Name()) // a no-op once renamed
	err = tarball.Write(r, img, f)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("writing image tarball %s: %w", path, err)
	}
	return nil
}

// WithEntrypoint returns img with its config's entrypoint set.
func WithEntrypoint(img v1.Image, entrypoint []string) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading image config: %w", err)
	}
	cfg := cf.Config.DeepCopy()
	cfg.Entrypoint = entrypoint
	return mutate.Config(img, *cfg)
}
