package main

import (
	"context"
	"fmt"

	"github.com/nodebake/nodebake/layers/oci/artifact"
)

func runPull(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "pull", "REGISTRY/REPO[:TAG|@DIGEST]",
		"Fetch an image pushed with nodebake push into DIR, verifying the manifest (against\n"+
			"--digest, when given) and every file's digest and size. Files are renamed into place\n"+
			"only when all have verified; a failed pull leaves nothing behind.\n"+
			"Prints REGISTRY/REPO@DIGEST, then the files written.")
	dir := fs.String("o", ".", "output `DIR`")
	digest := fs.String("digest", "", "the expected manifest `DIGEST` (sha256:...)")
	decompress := fs.Bool("decompress", false, "write a raw.zst disk as a sparse raw, verified against the image manifest")
	insecure := fs.Bool("insecure", false, "allow a plain-HTTP registry")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want one REGISTRY/REPO[:TAG|@DIGEST]")
	}
	res, err := artifact.Pull(ctx, fs.Arg(0), *dir, artifact.Options{
		Insecure: *insecure, Digest: *digest, Decompress: *decompress,
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, res.Ref)
	for _, f := range res.Files {
		fmt.Fprintln(e.stdout, f)
	}
	return nil
}
