package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/nodebake/nodebake/builder/build"
	"github.com/nodebake/nodebake/layers/oci/artifact"
	"github.com/nodebake/nodebake/layers/spec"
)

func runPush(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "push", "IMAGE REGISTRY/REPO:TAG",
		"Push a built image as one OCI artifact (artifactType "+artifact.ArtifactType+"):\n"+
			"the disk in --format, the manifest, and the SBOM and SHA256SUMS when present.\n"+
			"IMAGE is the raw disk (out/worker.raw), any of its files, or out/worker.\n"+
			"For raw.zst without a .raw.zst beside the raw, the raw is compressed to a temporary file.\n"+
			"Credentials come from the Docker config and its credential helpers.\n"+
			"Prints REGISTRY/REPO@DIGEST.")
	format := fs.String("format", "raw.zst", "the disk `FORMAT` to push: raw.zst, raw, qcow2, vhd, vmdk, gce")
	insecure := fs.Bool("insecure", false, "allow a plain-HTTP registry")
	epoch := fs.Int64("source-date-epoch", -1, "the created annotation, seconds since the epoch (default: from the image manifest, else 0)")
	imageVersion := fs.String("image-version", "", "the org.opencontainers.image.version annotation (default: the Kubernetes version)")
	var annotations keyValues
	fs.Var(&annotations, "annotation", "add a manifest annotation `KEY=VALUE` (repeatable)")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usagef("want IMAGE and REGISTRY/REPO:TAG")
	}
	dir, name := imageName(fs.Arg(0))
	opts := artifact.Options{Insecure: *insecure, Version: *imageVersion, Annotations: annotations.m}
	if *epoch >= 0 {
		opts.Created = time.Unix(*epoch, 0).UTC()
	}
	files, cleanup, err := artifact.ImageFiles(ctx, dir, name, *format)
	if err != nil {
		return fmt.Errorf("IMAGE %s: %w", fs.Arg(0), err)
	}
	defer cleanup()
	d, err := artifact.Push(ctx, fs.Arg(1), files, opts)
	if err != nil {
		return err
	}
	repo := fs.Arg(1)
	if i := strings.LastIndex(repo, "@"); i >= 0 {
		repo = repo[:i]
	} else if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	fmt.Fprintf(e.stdout, "%s@%s\n", repo, d)
	return nil
}

// imageName splits an image path into its directory and name: out/worker.raw,
// out/worker.manifest.json and out/worker all name the image "worker" in out.
// It knows the names a build gives its outputs from the build plan.
func imageName(p string) (dir, name string) {
	dir, base := filepath.Split(p)
	if dir == "" {
		dir = "."
	}
	// The suffixes, longest first: an image named "x" in every format.
	plan, err := build.PlanOutputs("", "x", spec.Formats())
	if err != nil {
		return dir, base
	}
	var suffixes []string
	for _, p := range plan.Paths() {
		suffixes = append(suffixes, strings.TrimPrefix(p, "x"))
	}
	sort.Slice(suffixes, func(i, j int) bool { return len(suffixes[i]) > len(suffixes[j]) })
	for _, s := range suffixes {
		if n, ok := strings.CutSuffix(base, s); ok && n != "" {
			return dir, n
		}
	}
	return dir, base
}

// keyValues is a repeatable KEY=VALUE flag.
type keyValues struct{ m map[string]string }

var _ flag.Value = (*keyValues)(nil)

func (kv *keyValues) String() string { return "" }

func (kv *keyValues) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", s)
	}
	if kv.m == nil {
		kv.m = map[string]string{}
	}
	kv.m[k] = v
	return nil
}
