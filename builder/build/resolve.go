package build

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/nodebake/nodebake/builder/disk"
	"github.com/nodebake/nodebake/builder/rootfs"
	"github.com/nodebake/nodebake/builder/sbom"
	"github.com/nodebake/nodebake/layers/cache"
	"github.com/nodebake/nodebake/layers/components"
	"github.com/nodebake/nodebake/layers/entry"
	"github.com/nodebake/nodebake/layers/failure"
	"github.com/nodebake/nodebake/layers/fetch"
	"github.com/nodebake/nodebake/layers/oci"
	"github.com/nodebake/nodebake/layers/spec"
	"github.com/nodebake/nodebake/layers/worker"
)

// openImage opens an image source of the spec (base, component or
// preloaded image) through the cache.
func openImage(ctx context.Context, s *spec.Spec, ref, digest string, o *Options) (v1.Image, error) {
	src, err := spec.ParseImageSource(ref)
	if err != nil {
		return nil, failure.New(failure.Invalid, err)
	}
	r := ref
	switch src.Kind {
	case spec.ImageOCILayout:
		r = "oci:" + s.ResolvePath(src.Path)
		if src.Digest != "" {
			r += "@" + src.Digest
		}
	case spec.ImageTarball:
		r = "tarball:" + s.ResolvePath(src.Path)
	}
	opts := []oci.Option{oci.WithPlatform(string(s.Arch))}
	if digest != "" {
		opts = append(opts, oci.WithDigest(digest))
	}
	if o.Transport != nil {
		opts = append(opts, oci.WithTransport(o.Transport))
	}
	if o.Offline {
		opts = append(opts, oci.WithOffline(true))
	}
	return oci.Pull(ctx, r, o.Cache, opts...)
}

// resolveBase opens the base image and returns its normalized filesystem,
// cached by the image digest and the epoch.
func resolveBase(ctx context.Context, s *spec.Spec, o *Options) (*rootfs.Base, BaseInfo, error) {
	if src, err := spec.ParseImageSource(s.Base.Image); err == nil && src.Kind == spec.ImageOCILayout {
		dir := s.ResolvePath(src.Path)
		if _, err := os.Stat(filepath.Join(dir, "index.json")); errors.Is(err, fs.ErrNotExist) {
			return nil, BaseInfo{}, failure.Errorf(failure.Invalid,
				"base.image: %s: there is no OCI image layout at %s; build the base OS with scripts/build-base.sh (make base)", s.Base.Image, dir)
		}
	}
	img, err := openImage(ctx, s, s.Base.Image, s.Base.Digest, o)
	if err != nil {
		return nil, BaseInfo{}, fmt.Errorf("base.image: %w", err)
	}
	d, err := img.Digest()
	if err != nil {
		return nil, BaseInfo{}, fmt.Errorf("base.image: %w", err)
	}
	info := BaseInfo{Image: s.Base.Image, Digest: d.String()}
	key := fmt.Sprintf("normalized-base/v1/%s/%d", d, s.SourceDateEpoch)
	dir, ok, err := o.Cache.Keyed(key)
	if err != nil {
		return nil, info, err
	}
	if !ok {
		o.say(StageResolve, "normalizing base image %s (once per base)", d)
		dir, err = o.Cache.PutKeyed(key, func(tmp string) error {
			rc := oci.Flatten(img)
			defer rc.Close()
			return rootfs.Normalize(ctx, rc, filepath.Join(tmp, "base.tar"), s.SourceDateEpoch)
		})
		if err != nil {
			return nil, info, fmt.Errorf("base.image: normalizing: %w", err)
		}
	}
	b, err := rootfs.OpenBase(filepath.Join(dir, "base.tar"))
	if err != nil {
		return nil, info, err
	}
	return b, info, nil
}

// resolveComponents fetches or builds every component and returns the
// manifest records and the files they install.
func resolveComponents(ctx context.Context, s *spec.Spec, o *Options) ([]ComponentInfo, []entry.Entry, error) {
	f := o.fetcher(s)
	var infos []ComponentInfo
	var entries []entry.Entry
	for _, nc := range s.NamedComponents() {
		name := nc.Name
		field := "components." + string(nc.Key)
		c, layout := nc.Component, nc.Catalogue
		info := ComponentInfo{Name: name, Version: c.Version, From: string(c.From)}
		var ents []entry.Entry
		switch c.From {
		case spec.FromRelease:
			algo, sum, _ := c.Checksum(s.Arch)
			url := s.ArtifactURL(nc.Key)
			o.say(StageFetch, "%s %s from %s", name, c.Version, url)
			p, err := f.Fetch(ctx, fetch.Artifact{
				Name:   fmt.Sprintf("%s %s linux/%s", name, c.Version, s.Arch),
				URL:    url,
				Digest: cache.Digest{Algorithm: algo, Hex: strings.ToLower(sum)},
			})
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", field, err)
			}
			info.Source, info.Checksum = url, algo+":"+strings.ToLower(sum)
			if ents, err = layout.FromRelease(p); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", field, err)
			}
		case spec.FromGo:
			dir, src, err := buildFromSource(ctx, s, o, name, c.Version)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", field, err)
			}
			info.Source = src
			if ents, err = layout.FromBuild(dir); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", field, err)
			}
		case spec.FromOCI:
			img, err := openImage(ctx, s, c.Image, "", o)
			if err != nil {
				return nil, nil, fmt.Errorf("%s.image: %w", field, err)
			}
			d, _ := img.Digest()
			info.Source, info.Checksum = c.Image, d.String()
			rc := oci.Flatten(img)
			ents, err = layout.FromFilesystem(rc)
			rc.Close()
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", field, err)
			}
		default:
			return nil, nil, fmt.Errorf("%s.from: unknown source %q", field, c.From)
		}
		for _, e := range ents {
			sum, sum1, err := entryDigests(e)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", field, err)
			}
			info.Files = append(info.Files, FileInfo{Path: e.Path, SHA256: sum, SHA1: sum1, Size: e.Size})
		}
		infos = append(infos, info)
		entries = append(entries, ents...)
	}
	return infos, entries, nil
}

// buildFromSource builds a component through the Go module proxy, cached by
// component, version, Go version and architecture.
func buildFromSource(ctx context.Context, s *spec.Spec, o *Options, name, version string) (string, string, error) {
	r, err := components.Recipe(name)
	if err != nil {
		return "", "", err
	}
	gover, err := o.Go.GoVersion(ctx)
	if err != nil {
		return "", "", err
	}
	src := fmt.Sprintf("go:%s@%s (%s)", r.Module, version, gover)
	key := fmt.Sprintf("gosource/v1/%s/%s/%s/%s", name, version, gover, s.Arch)
	dir, ok, err := o.Cache.Keyed(key)
	if err != nil {
		return "", "", err
	}
	if ok {
		return dir, src, nil
	}
	o.say(StageFetch, "building %s %s from source (%s)", name, version, gover)
	dir, err = o.Cache.PutKeyed(key, func(tmp string) error {
		return o.Go.Build(ctx, r, version, string(s.Arch), tmp)
	})
	if err != nil {
		return "", "", failure.New(failure.Source, err)
	}
	return dir, src, nil
}

// entryDigests returns the SHA256 and SHA1 of a file; the SBOM needs SHA1
// for its files and package verification codes.
func entryDigests(e entry.Entry) (sha256Hex, sha1Hex string, err error) {
	rc, err := e.Open()
	if err != nil {
		return "", "", err
	}
	defer rc.Close()
	h, h1 := sha256.New(), sha1.New()
	if _, err := io.Copy(io.MultiWriter(h, h1), rc); err != nil {
		return "", "", fmt.Errorf("hashing %s: %w", e.Path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), hex.EncodeToString(h1.Sum(nil)), nil
}

// configLayer renders the configuration and adds the first-boot program and
// the image's own description.
func configLayer(s *spec.Spec, program, specHash string, comps []ComponentInfo, base BaseInfo) ([]entry.Entry, error) {
	out, err := worker.Render(s)
	if err != nil {
		return nil, err
	}
	fb, err := worker.Firstboot(program)
	if err != nil {
		return nil, err
	}
	out = append(out, fb...)
	info := map[string]any{"name": s.Name, "arch": s.Arch, "specHash": specHash, "kubernetesVersion": s.Kubernetes.Version, "components": comps, "base": base}
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return nil, err
	}
	out = append(out, entry.File(worker.ImageInfo(), 0o644, append(b, '\n')))
	return out, nil
}

type bootSet struct {
	kernel, initrd, loader disk.File
	release                string
}

// bootFiles finds the kernel, initrd and systemd-boot in the base.
func bootFiles(b *rootfs.Base, arch spec.Arch) (bootSet, error) {
	var bs bootSet
	// Paths are ESP paths; the disk writer places the boot loader itself.
	file := func(espPath string, e entry.Entry) disk.File {
		return disk.File{Path: espPath, Open: e.Open, Size: e.Size}
	}
	kernels := b.Glob("/boot/vmlinuz-*")
	if len(kernels) != 1 {
		return bs, fmt.Errorf("base.image: want exactly one /boot/vmlinuz-*, found %d", len(kernels))
	}
	bs.release = strings.TrimPrefix(path.Base(kernels[0].Path), "vmlinuz-")
	initrd, ok := b.Lookup("/boot/initrd.img-" + bs.release)
	if !ok || initrd.Type != tar.TypeReg {
		return bs, fmt.Errorf("base.image: no /boot/initrd.img-%s next to the kernel", bs.release)
	}
	efi := "systemd-bootx64.efi"
	if arch == spec.ArchARM64 {
		efi = "systemd-bootaa64.efi"
	}
	loader, ok := b.Lookup("/usr/lib/systemd/boot/efi/" + efi)
	if !ok || loader.Type != tar.TypeReg {
		return bs, fmt.Errorf("base.image: no /usr/lib/systemd/boot/efi/%s (install systemd-boot-efi in the base)", efi)
	}
	if kernels[0].Type != tar.TypeReg {
		return bs, fmt.Errorf("base.image: %s is not a regular file", kernels[0].Path)
	}
	bs.kernel, bs.initrd, bs.loader = file("/vmlinuz", kernels[0]), file("/initrd.img", initrd), file("", loader)
	return bs, nil
}

// basePackages reads the Debian packages installed in the base (its
// /var/lib/dpkg/status) and the purl distro of its os-release. A base
// without a dpkg database has no packages.
func basePackages(b *rootfs.Base) ([]sbom.Package, string, error) {
	read := func(p string) ([]byte, bool, error) {
		e, ok := b.Lookup(p)
		if !ok || e.Type != tar.TypeReg {
			return nil, false, nil
		}
		rc, err := e.Open()
		if err != nil {
			return nil, false, fmt.Errorf("base.image: %s: %w", p, err)
		}
		defer rc.Close()
		data, err := io.ReadAll(rc)
		if err != nil {
			return nil, false, fmt.Errorf("base.image: %s: %w", p, err)
		}
		return data, true, nil
	}
	var distro string
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		data, ok, err := read(p)
		if err != nil {
			return nil, "", err
		}
		if ok {
			distro = sbom.ParseOSRelease(data)
			break
		}
	}
	const status = "/var/lib/dpkg/status"
	data, ok, err := read(status)
	if err != nil || !ok {
		return nil, distro, err
	}
	pkgs, err := sbom.ParseDpkgStatus(bytes.NewReader(data))
	if err != nil {
		return nil, distro, fmt.Errorf("base.image: %s: %w", status, err)
	}
	return pkgs, distro, nil
}

func sortedKeys(m map[string]string) []string {
	k := make([]string, 0, len(m))
	for x := range m {
		k = append(k, x)
	}
	sort.Strings(k)
	return k
}

// BuildFromSource returns a function that builds a component of s from
// source through the Go module proxy, with the build cache of opts; the
// mirror package uses it.
func BuildFromSource(s *spec.Spec, opts Options) func(ctx context.Context, component, version string) (string, error) {
	return func(ctx context.Context, component, version string) (string, error) {
		dir, _, err := buildFromSource(ctx, s, &opts, component, version)
		return dir, err
	}
}
