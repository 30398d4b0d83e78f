package build

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nodebake/nodebake/builder/publish"
	"github.com/nodebake/nodebake/layers/failure"
	"github.com/nodebake/nodebake/layers/spec"
)

// ExportOptions configure an Export.
type ExportOptions struct {
	// OutputDir receives the outputs; the image's directory when empty.
	OutputDir string
	// Formats are the formats to write; raw (the input) is skipped.
	Formats []spec.Format
	// FirstbootBinary is the nodebake-firstboot program, for the netboot
	// bundle's initrd.
	FirstbootBinary string
	// NetbootURL is where the netboot bundle will be served from.
	NetbootURL string
	// Workers is the number of parallel compressors; GOMAXPROCS when 0.
	Workers int
	// Progress receives progress events; may be nil.
	Progress func(Event)
}

// ExportResult lists what an Export wrote.
type ExportResult struct {
	Outputs []publish.Output
	// SumsPath is the SHA256SUMS file that now covers the outputs.
	SumsPath string
}

// Export converts a built raw image into other formats. The image's
// manifest (NAME.manifest.json beside NAME.raw) must be there and the image
// must match its sha256: the formats carry the identifiers and timestamps
// the build derived, so an export equals what the build would have
// written. The outputs' sums are merged into the output directory's
// NAME.SHA256SUMS.
func Export(ctx context.Context, raw string, opts ExportOptions) (*ExportResult, error) {
	base := filepath.Base(raw)
	name, ok := strings.CutSuffix(base, ".raw")
	if !ok || name == "" {
		return nil, failure.Errorf(failure.Invalid, "%s: not a raw image (want NAME.raw)", raw)
	}
	dir := filepath.Dir(raw)
	out := opts.OutputDir
	if out == "" {
		out = dir
	}
	// Where the build put the image's manifest, and what the export writes.
	built, err := PlanOutputs(dir, name, nil)
	if err != nil {
		return nil, err
	}
	plan, err := PlanOutputs(out, name, opts.Formats)
	if err != nil {
		return nil, err
	}
	manifestPath := built.Manifest
	b, err := os.ReadFile(manifestPath)
	if err != nil {
		return nil, failure.Errorf(failure.Invalid, "the image's manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, failure.Errorf(failure.Invalid, "%s: %w", manifestPath, err)
	}
	seed, err := imageSeed(m.SpecHash, m.Base.Digest)
	if err != nil {
		return nil, failure.Errorf(failure.Invalid, "%s: %w", manifestPath, err)
	}
	for _, f := range plan.Formats {
		switch {
		case f == spec.FormatUpdate && m.Verified == nil:
			return nil, failure.Errorf(failure.Invalid, "%s: an update is made of a verified image (output.verifiedBoot); this one is not", raw)
		case f == spec.FormatNetboot && m.Verified != nil:
			return nil, failure.Errorf(failure.Invalid, "%s: a netboot bundle boots the root without verity: not of a verified image", raw)
		}
	}
	if opts.Progress != nil {
		opts.Progress(Event{Stage: StageResolve, Message: "checking " + base + " against its manifest"})
	}
	sum, err := sha256File(ctx, raw)
	if err != nil {
		return nil, failure.New(failure.Invalid, err)
	}
	if sum != m.Image.SHA256 {
		return nil, failure.Errorf(failure.Invalid, "%s does not match its manifest: sha256 %s, the manifest says %s", raw, sum, m.Image.SHA256)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, fmt.Errorf("creating the output directory: %w", err)
	}
	staged, err := publish.Convert(ctx, raw, publish.Options{
		Targets:         plan.targets(),
		Seed:            seed,
		ModTime:         time.Unix(m.SourceDateEpoch, 0).UTC(),
		Workers:         opts.Workers,
		FirstbootBinary: opts.FirstbootBinary,
		NetbootURL:      opts.NetbootURL,
		Progress: func(_ spec.Format, msg string) {
			if opts.Progress != nil {
				opts.Progress(Event{Stage: StagePublish, Message: msg})
			}
		},
	})
	if err != nil {
		return nil, err
	}
	defer staged.Abort()
	sumsPath := plan.Sums
	sums, err := readSums(sumsPath)
	if err != nil {
		return nil, err
	}
	outs, err := outputInfos(out, staged)
	if err != nil {
		return nil, err
	}
	for _, oi := range outs {
		for _, f := range oi.Files {
			sums[f.Path] = f.SHA256
		}
	}
	if err := install("", "", staged, []sidecar{{sumsPath, sha256Sums(sums)}}); err != nil {
		return nil, err
	}
	return &ExportResult{Outputs: staged.Outputs, SumsPath: sumsPath}, nil
}

// readSums reads a SHA256SUMS file; a missing one is empty.
func readSums(p string) (map[string]string, error) {
	sums := map[string]string{}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return sums, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		sum, file, ok := strings.Cut(sc.Text(), "  ")
		if !ok || len(sum) != 64 || file == "" {
			return nil, failure.Errorf(failure.Invalid, "%s:%d: not a sha256sum line", p, n)
		}
		sums[file] = sum
	}
	return sums, sc.Err()
}
