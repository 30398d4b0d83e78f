package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/nodebake/nodebake/builder/build"
	"github.com/nodebake/nodebake/layers/failure"
	"github.com/nodebake/nodebake/layers/gosource"
	"github.com/nodebake/nodebake/layers/mirror"
	"github.com/nodebake/nodebake/layers/oci"
	"github.com/nodebake/nodebake/layers/resolve"
)

func newMirrorCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mirror",
		Short: "Build a release mirror of a spec's components from source (build)",
	}
	var dir, cacheDir string
	buildCmd := &cobra.Command{
		Use:   "build SPEC.yaml -d DIR",
		Short: "Build a spec's components from source into a release mirror",
		Long: "Build every component of a spec from source through the Go module proxy and write its\n" +
			"release artifact into DIR, laid out like the upstream release sites (DIR/HOST/PATH), with\n" +
			"DIR/" + mirror.SumsFile + " listing them all. Serve DIR over HTTP and set sources.mirror to use it.\n\n" +
			"The checksums are printed as a spec's components block: the pins. The same sha256 pins a\n" +
			"component downloaded from the mirror (from: release) and one built from source (from: go:\n" +
			"the build is refused unless its release artifact, packed the same way, has it). Pins hold\n" +
			"for the Go toolchain that built them. Run once per architecture (the spec's arch).",
		Args: exactArgs(1, "exactly one spec file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := loadSpec(args[0])
			if err != nil {
				return err
			}
			c, err := openCache(cacheDir)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			p := newProgress(e, false)
			say := func(msg string) { p.event(build.Event{Stage: build.StageFetch, Message: msg}) }
			gb := gosource.Builder{Log: p.goLog(), Progress: func(pr gosource.Progress) { say(pr.String()) }}
			gover, err := gb.GoVersion(ctx)
			if err != nil {
				return err
			}
			layers := resolve.New(s, c, resolve.WithGo(gb), resolve.WithLog(say))
			arts, err := mirror.Write(ctx, s, dir, layers.BuildFromSource)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "# The pins of %s's components for linux/%s, built from source with %s;\n", s.Name, s.Arch, gover)
			fmt.Fprintf(e.stdout, "# also in %s. They pin from: go (checked on every build from source) and\n",
				filepath.Join(dir, mirror.SumsFile))
			fmt.Fprintln(e.stdout, "# from: release with sources.mirror set to where the mirror is served.")
			fmt.Fprintln(e.stdout, "components:")
			for _, a := range arts {
				fmt.Fprintf(e.stdout, "  %s:\n    version: %s\n    sha256:\n      %s: %s\n", a.Component, a.Version, a.Arch, a.SHA256)
			}
			return nil
		},
	}
	buildCmd.Flags().StringVarP(&dir, "dir", "d", "mirror", "mirror `DIR`")
	buildCmd.Flags().StringVar(&cacheDir, "cache", "", "cache `DIR` (default $NODEBAKE_CACHE or the user cache directory)")
	cmd.AddCommand(buildCmd)
	return cmd
}

func newImageCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "image",
		Aliases: []string{"base"},
		Short:   "Make OCI image layouts from filesystem tars: base OS, preloaded images (import)",
	}
	var o struct {
		arch, entrypoint string
		epoch            int64
	}
	imp := &cobra.Command{
		Use:   "import ROOTFS.tar LAYOUT-DIR",
		Short: "Turn a filesystem tar into a one-layer OCI image layout",
		Long: "Turn a filesystem tar (a base OS as mmdebstrap writes it, or a container's files) into a\n" +
			"one-layer OCI image layout that a spec names as oci:LAYOUT-DIR (base.image, images[].image).\n" +
			"The same tar gives the same digest.",
		Args: exactArgs(2, "ROOTFS.tar and LAYOUT-DIR"),
		RunE: func(_ *cobra.Command, args []string) error {
			img, err := oci.ImageFromRootfsTar(args[0], time.Unix(o.epoch, 0).UTC(), o.arch)
			if err != nil {
				return failure.New(failure.Invalid, err)
			}
			if o.entrypoint != "" {
				if img, err = oci.WithEntrypoint(img, []string{o.entrypoint}); err != nil {
					return err
				}
			}
			if err := oci.WriteLayout(args[1], img, nil); err != nil {
				return err
			}
			d, err := img.Digest()
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "oci:%s@%s\n", args[1], d)
			return nil
		},
	}
	f := imp.Flags()
	f.StringVar(&o.arch, "arch", "amd64", "image `ARCH`itecture")
	f.Int64Var(&o.epoch, "source-date-epoch", 0, "the image's creation time, seconds since the epoch")
	f.StringVar(&o.entrypoint, "entrypoint", "", "the container entrypoint `PATH` (for container images)")
	cmd.AddCommand(imp)
	return cmd
}
