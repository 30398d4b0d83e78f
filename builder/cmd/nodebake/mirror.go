package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/nodebake/nodebake/builder/build"
	"github.com/nodebake/nodebake/layers/failure"
	"github.com/nodebake/nodebake/layers/gosource"
	"github.com/nodebake/nodebake/layers/mirror"
	"github.com/nodebake/nodebake/layers/oci"
	"github.com/nodebake/nodebake/layers/resolve"
)

func runMirror(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] != "build" {
		fmt.Fprintln(e.stdout, "Usage: nodebake mirror build -d DIR SPEC.yaml")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return nil
		}
		return usagef("want the subcommand build")
	}
	fs := newFlags(e, "mirror build", "SPEC.yaml",
		"Build every component of a spec from source through the Go module proxy and write its\n"+
			"release artifact into DIR, laid out like the upstream release sites (DIR/HOST/PATH), with\n"+
			"DIR/"+mirror.SumsFile+" listing them all. Serve DIR over HTTP and set sources.mirror to use it.\n\n"+
			"The checksums are printed as a spec's components block: the pins. The same sha256 pins a\n"+
			"component downloaded from the mirror (from: release) and one built from source (from: go:\n"+
			"the build is refused unless its release artifact, packed the same way, has it). Pins hold\n"+
			"for the Go toolchain that built them. Run once per architecture (the spec's arch).")
	dir := fs.String("d", "mirror", "mirror `DIR`")
	cacheDir := fs.String("cache", "", "cache `DIR`")
	if err := parse(e, fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want exactly one spec file")
	}
	s, err := loadSpec(fs.Arg(0))
	if err != nil {
		return err
	}
	c, err := openCache(*cacheDir)
	if err != nil {
		return err
	}
	p := newProgress(e, false)
	say := func(msg string) { p.event(build.Event{Stage: build.StageFetch, Message: msg}) }
	gb := gosource.Builder{Log: p.goLog(), Progress: func(pr gosource.Progress) { say(pr.String()) }}
	gover, err := gb.GoVersion(ctx)
	if err != nil {
		return err
	}
	layers := resolve.New(s, c, resolve.WithGo(gb), resolve.WithLog(say))
	arts, err := mirror.Write(ctx, s, *dir, layers.BuildFromSource)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "# The pins of %s's components for linux/%s, built from source with %s;\n", s.Name, s.Arch, gover)
	fmt.Fprintf(e.stdout, "# also in %s. They pin from: go (checked on every build from source) and\n",
		filepath.Join(*dir, mirror.SumsFile))
	fmt.Fprintln(e.stdout, "# from: release with sources.mirror set to where the mirror is served.")
	fmt.Fprintln(e.stdout, "components:")
	for _, a := range arts {
		fmt.Fprintf(e.stdout, "  %s:\n    version: %s\n    sha256:\n      %s: %s\n", a.Component, a.Version, a.Arch, a.SHA256)
	}
	return nil
}

func runImage(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] != "import" {
		fmt.Fprintln(e.stdout, "Usage: nodebake image import [--arch ARCH] [--source-date-epoch N] [--entrypoint PATH] ROOTFS.tar LAYOUT-DIR")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return nil
		}
		return usagef("want the subcommand import")
	}
	fs := newFlags(e, "image import", "ROOTFS.tar LAYOUT-DIR",
		"Turn a filesystem tar (a base OS as mmdebstrap writes it, or a container's files) into a\n"+
			"one-layer OCI image layout that a spec names as oci:LAYOUT-DIR (base.image, images[].image).\n"+
			"The same tar gives the same digest.")
	arch := fs.String("arch", "amd64", "image `ARCH`itecture")
	epoch := fs.Int64("source-date-epoch", 0, "the image's creation time, seconds since the epoch")
	entrypoint := fs.String("entrypoint", "", "the container entrypoint `PATH` (for container images)")
	if err := parse(e, fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usagef("want ROOTFS.tar and LAYOUT-DIR")
	}
	img, err := oci.ImageFromRootfsTar(fs.Arg(0), time.Unix(*epoch, 0).UTC(), *arch)
	if err != nil {
		return failure.New(failure.Invalid, err)
	}
	if *entrypoint != "" {
		if img, err = oci.WithEntrypoint(img, []string{*entrypoint}); err != nil {
			return err
		}
	}
	if err := oci.WriteLayout(fs.Arg(1), img, nil); err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "oci:%s@%s\n", fs.Arg(1), d)
	return nil
}
