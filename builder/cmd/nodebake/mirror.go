package main

import (
	"fmt"
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
			"release artifact into DIR, laid out like the upstream release sites (DIR/HOST/PATH).\n" +
			"Serve DIR over HTTP and set sources.mirror to use it; the checksums are printed as YAML.",
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
			p := newProgress(e, false)
			layers := resolve.New(s, c, resolve.WithGo(gosource.Builder{Log: p.goLog()}),
				resolve.WithLog(func(msg string) { p.event(build.Event{Stage: build.StageFetch, Message: msg}) }))
			arts, err := mirror.Write(cmd.Context(), s, dir, layers.BuildFromSource)
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, "components:")
			for _, a := range arts {
				fmt.Fprintf(e.stdout, "  %s:\n    version: %s\n    from: release\n    sha256:\n      %s: %s\n", a.Component, a.Version, s.Arch, a.SHA256)
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
