package main

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/nodebake/nodebake/builder/build"
	"github.com/nodebake/nodebake/layers/oci/artifact"
	"github.com/nodebake/nodebake/layers/spec"
)

func newPushCmd(e *env) *cobra.Command {
	var o struct {
		format, imageVersion string
		insecure             bool
		epoch                int64
		annotations          keyValues
	}
	cmd := &cobra.Command{
		Use:   "push IMAGE REGISTRY/REPO:TAG",
		Short: "Push a built image to a registry as an OCI artifact",
		Long: "Push a built image as one OCI artifact (artifactType " + artifact.ArtifactType + "):\n" +
			"the disk in --format, the manifest, and the SBOM and SHA256SUMS when present.\n" +
			"IMAGE is the raw disk (out/worker.raw), any of its files, or out/worker.\n" +
			"For raw.zst without a .raw.zst beside the raw, the raw is compressed to a temporary file.\n" +
			"Credentials come from the Docker config and its credential helpers.\n" +
			"Prints REGISTRY/REPO@DIGEST.",
		Args: exactArgs(2, "IMAGE and REGISTRY/REPO:TAG"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			dir, name := imageName(args[0])
			opts := artifact.Options{Insecure: o.insecure, Version: o.imageVersion, Annotations: o.annotations.m}
			if o.epoch >= 0 {
				opts.Created = time.Unix(o.epoch, 0).UTC()
			}
			files, cleanup, err := artifact.ImageFiles(ctx, dir, name, o.format)
			if err != nil {
				return fmt.Errorf("IMAGE %s: %w", args[0], err)
			}
			defer cleanup()
			d, err := artifact.Push(ctx, args[1], files, opts)
			if err != nil {
				return err
			}
			repo := args[1]
			if i := strings.LastIndex(repo, "@"); i >= 0 {
				repo = repo[:i]
			} else if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
				repo = repo[:i]
			}
			fmt.Fprintf(e.stdout, "%s@%s\n", repo, d)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.format, "format", "raw.zst", "the disk `FORMAT` to push: raw.zst, raw, qcow2, vhd, vmdk, gce")
	f.BoolVar(&o.insecure, "insecure", false, "allow a plain-HTTP registry")
	f.Int64Var(&o.epoch, "source-date-epoch", -1, "the created annotation, seconds since the epoch (default: from the image manifest, else 0)")
	f.StringVar(&o.imageVersion, "image-version", "", "the org.opencontainers.image.version annotation (default: the Kubernetes version)")
	f.Var(&o.annotations, "annotation", "add a manifest annotation `KEY=VALUE` (repeatable)")
	return cmd
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

var _ pflag.Value = (*keyValues)(nil)

func (kv *keyValues) String() string { return "" }
func (kv *keyValues) Type() string   { return "KEY=VALUE" }

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
