package build

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/nodebake/nodebake/builder/disk"
	"github.com/nodebake/nodebake/builder/rootfs"
	"github.com/nodebake/nodebake/builder/sbom"
	"github.com/nodebake/nodebake/layers/cache"
	"github.com/nodebake/nodebake/layers/entry"
	"github.com/nodebake/nodebake/layers/failure"
	"github.com/nodebake/nodebake/layers/oci"
	"github.com/nodebake/nodebake/layers/spec"
)

// baseTar is the file of the normalized base's cache entry.
const baseTar = "base.tar"

// normalizedBase returns the cache entry of the base image's filesystem as
// a canonical tar, cached by the image digest and the epoch: it is
// normalized once per base.
func normalizedBase(ctx context.Context, c *cache.Cache, img v1.Image, epoch int64, say func(string, ...any)) (*cache.Entry, error) {
	d, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("base.image: %w", err)
	}
	key := fmt.Sprintf("normalized-base/v1/%s/%d", d, epoch)
	e, err := c.PutEntry(key, func(tmp string) error {
		say("normalizing base image %s (once per base)", d)
		rc := oci.Flatten(img)
		defer rc.Close()
		return rootfs.Normalize(ctx, rc, filepath.Join(tmp, baseTar), epoch)
	})
	if err != nil {
		return nil, fmt.Errorf("base.image: normalizing: %w", err)
	}
	if e.Adopted {
		say("adopted the normalized base an older nodebake cached (its digests are recorded from now on)")
	}
	if _, ok := e.File(baseTar); !ok {
		return nil, fmt.Errorf("base.image: cache entry %q has no %s", key, baseTar)
	}
	return e, nil
}

// backgroundCheck verifies a file of a cache entry while the build goes
// on: the normalized base is read in pieces, wherever its files are, so
// it is hashed whole beside the build, on another core, and the build
// waits for the verdict before it publishes anything.
type backgroundCheck struct {
	done chan struct{}
	err  error
}

func verifyInBackground(e *cache.Entry, name string) *backgroundCheck {
	c := &backgroundCheck{done: make(chan struct{})}
	go func() {
		defer close(c.done)
		c.err = e.VerifyFile(name)
	}()
	return c
}

// wait returns the verdict; nil for no check.
func (c *backgroundCheck) wait() error {
	if c == nil {
		return nil
	}
	<-c.done
	return c.err
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
		return bs, failure.Errorf(failure.Invalid, "base.image: want exactly one /boot/vmlinuz-*, found %d", len(kernels))
	}
	bs.release = strings.TrimPrefix(path.Base(kernels[0].Path), "vmlinuz-")
	initrd, ok := b.Lookup("/boot/initrd.img-" + bs.release)
	if !ok || initrd.Type != tar.TypeReg {
		return bs, failure.Errorf(failure.Invalid, "base.image: no /boot/initrd.img-%s next to the kernel", bs.release)
	}
	efi := "systemd-bootx64.efi"
	if arch == spec.ArchARM64 {
		efi = "systemd-bootaa64.efi"
	}
	loader, ok := b.Lookup("/usr/lib/systemd/boot/efi/" + efi)
	if !ok || loader.Type != tar.TypeReg {
		return bs, failure.Errorf(failure.Invalid, "base.image: no /usr/lib/systemd/boot/efi/%s (install systemd-boot-efi in the base)", efi)
	}
	if kernels[0].Type != tar.TypeReg {
		return bs, failure.Errorf(failure.Invalid, "base.image: %s is not a regular file", kernels[0].Path)
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
		return nil, distro, failure.Errorf(failure.Invalid, "base.image: %s: %w", status, err)
	}
	return pkgs, distro, nil
}
