package build

import (
	"fmt"
	"path/filepath"
	"slices"

	"github.com/nodebake/nodebake/builder/publish"
	"github.com/nodebake/nodebake/builder/publish/netboot"
	"github.com/nodebake/nodebake/layers/failure"
	"github.com/nodebake/nodebake/layers/spec"
)

// Plan is what a build writes, known before any work: every output's path.
// Build, Export, the CLI and the Packer plugin all take their paths from a
// Plan.
type Plan struct {
	// Dir is the output directory and Name the image name every output is
	// named after.
	Dir, Name string
	// Formats are the formats written, as asked for.
	Formats []spec.Format
	// Image is where the raw image is written. Every other format is
	// converted from it; it is kept only when KeepImage.
	Image     string
	KeepImage bool
	// Manifest, SBOM and Sums are written by every build, beside the
	// formats: the manifest, the SPDX SBOM and the SHA256SUMS file.
	Manifest, SBOM, Sums string
	// Outputs are the formats' outputs, in the order of Formats.
	Outputs []PlannedOutput
}

// PlannedOutput is one format's output.
type PlannedOutput struct {
	spec.FormatInfo
	// Path is the output: a file, or the directory of a directory format.
	Path string
	// Files are the output's files: Path itself, or each file of the
	// directory. The update's files are named after the root hash, known
	// once the image is built: they are not listed (the Result's Outputs
	// are).
	Files []string
}

// PlanOutputs returns the plan of writing the image called name into dir
// in formats (raw when there are none). An unknown or repeated format is
// invalid input.
func PlanOutputs(dir, name string, formats []spec.Format) (*Plan, error) {
	if len(formats) == 0 {
		formats = []spec.Format{spec.FormatRaw}
	}
	p := &Plan{
		Dir: dir, Name: name, Formats: slices.Clone(formats),
		Image:     filepath.Join(dir, name+".raw"),
		KeepImage: slices.Contains(formats, spec.FormatRaw),
		Manifest:  filepath.Join(dir, name+".manifest.json"),
		SBOM:      filepath.Join(dir, name+".spdx.json"),
		Sums:      filepath.Join(dir, name+".SHA256SUMS"),
	}
	for i, f := range formats {
		info, ok := f.Info()
		if !ok {
			return nil, failure.Errorf(failure.Invalid, "unknown format %q (known: %s)", f, spec.FormatNames())
		}
		if slices.Contains(formats[:i], f) {
			return nil, failure.Errorf(failure.Invalid, "format %s is listed twice", f)
		}
		o := PlannedOutput{FormatInfo: info, Path: filepath.Join(dir, name+info.Extension)}
		switch {
		case f == spec.FormatNetboot:
			for _, n := range netboot.Files() {
				o.Files = append(o.Files, filepath.Join(o.Path, n))
			}
		case f == spec.FormatUpdate:
		case info.Directory:
			return nil, fmt.Errorf("format %s: a directory format without a file list", f)
		default:
			o.Files = []string{o.Path}
		}
		p.Outputs = append(p.Outputs, o)
	}
	return p, nil
}

// PlanFor returns the plan of Build(ctx, s, opts): the formats of
// opts.Formats, else the spec's output.formats, into opts.OutputDir.
func PlanFor(s *spec.Spec, opts Options) (*Plan, error) {
	formats := opts.Formats
	if formats == nil {
		formats = s.Output.Formats
	}
	return PlanOutputs(opts.OutputDir, s.Name, formats)
}

// Output returns the output of format f, if the plan writes it.
func (p *Plan) Output(f spec.Format) (PlannedOutput, bool) {
	for _, o := range p.Outputs {
		if o.Format == f {
			return o, true
		}
	}
	return PlannedOutput{}, false
}

// Paths returns every path the build leaves: each output (a directory
// format as its directory), then the manifest, the SBOM and the sums.
func (p *Plan) Paths() []string {
	var out []string
	for _, o := range p.Outputs {
		out = append(out, o.Path)
	}
	return append(out, p.Manifest, p.SBOM, p.Sums)
}

// Files returns every file the build leaves that is known before it runs:
// each output's files (but the update's), then the manifest, the SBOM and
// the sums.
func (p *Plan) Files() []string {
	var out []string
	for _, o := range p.Outputs {
		out = append(out, o.Files...)
	}
	return append(out, p.Manifest, p.SBOM, p.Sums)
}

// targets are the outputs the publisher converts (raw is written by the
// build itself).
func (p *Plan) targets() []publish.Target {
	var out []publish.Target
	for _, o := range p.Outputs {
		if o.Format != spec.FormatRaw {
			out = append(out, publish.Target{Format: o.Format, Path: o.Path})
		}
	}
	return out
}

// partial is the temporary name a file is written under beside path.
func partial(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".partial")
}
