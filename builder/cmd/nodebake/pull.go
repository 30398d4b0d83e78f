package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nodebake/nodebake/layers/oci/artifact"
)

func newPullCmd(e *env) *cobra.Command {
	var o struct {
		dir, digest          string
		decompress, insecure bool
	}
	cmd := &cobra.Command{
		Use:   "pull REGISTRY/REPO[:TAG|@DIGEST]",
		Short: "Fetch an image pushed with push, verified by digest",
		Long: "Fetch an image pushed with nodebake push into DIR, verifying the manifest (against\n" +
			"--digest, when given) and every file's digest and size. Files are renamed into place\n" +
			"only when all have verified; a failed pull leaves nothing behind.\n" +
			"Prints REGISTRY/REPO@DIGEST, then the files written.",
		Args: exactArgs(1, "one REGISTRY/REPO[:TAG|@DIGEST]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := artifact.Pull(cmd.Context(), args[0], o.dir, artifact.Options{
				Insecure: o.insecure, Digest: o.digest, Decompress: o.decompress,
			})
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, res.Ref)
			for _, f := range res.Files {
				fmt.Fprintln(e.stdout, f)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.dir, "output", "o", ".", "output `DIR`")
	f.StringVar(&o.digest, "digest", "", "the expected manifest `DIGEST` (sha256:...)")
	f.BoolVar(&o.decompress, "decompress", false, "write a raw.zst disk as a sparse raw, verified against the image manifest")
	f.BoolVar(&o.insecure, "insecure", false, "allow a plain-HTTP registry")
	return cmd
}
