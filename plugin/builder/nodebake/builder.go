// Package nodebake is the nodebake Packer builder: it bakes the worker
// image a nodebake spec describes, with the builder library doing all the
// work. Its configuration mirrors the spec (see Config); its artifact is the
// image and its manifest.
package nodebake

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"github.com/hashicorp/packer-plugin-sdk/multistep/commonsteps"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"

	"github.com/nodebake/nodebake/builder/build"
	"github.com/nodebake/nodebake/layers/cache"
	"github.com/nodebake/nodebake/layers/components"
	"github.com/nodebake/nodebake/layers/spec"
)

// BuilderID identifies the artifacts of this builder.
const BuilderID = "nodebake.worker-image"

// Builder is the nodebake Packer builder.
type Builder struct {
	config Config
	// plan is what Prepare resolved: the effective spec and the programs
	// and directories the build uses.
	plan   *plan
	runner multistep.Runner
}

// plan is a prepared build.
type plan struct {
	spec      *spec.Spec
	specHash  string
	firstboot firstbootProgram
	cacheDir  string
	outputDir string
	// outputs is what the build will write, from the build library's plan.
	outputs *build.Plan
}

// ConfigSpec returns the HCL schema of the configuration.
func (b *Builder) ConfigSpec() hcldec.ObjectSpec { return b.config.FlatMapstructure().HCL2Spec() }

// Prepare decodes the configuration, fills in its defaults, and checks it
// and the spec it describes, reporting every problem at once. It returns
// the names of the generated data (see GeneratedDataKeys).
func (b *Builder) Prepare(raws ...any) ([]string, []string, error) {
	err := config.Decode(&b.config, &config.DecodeOpts{
		PluginType:         BuilderID,
		Interpolate:        true,
		InterpolateContext: &b.config.ctx,
	}, raws...)
	if err != nil {
		return nil, nil, err
	}
	workDir, err := os.Getwd()
	if err != nil {
		return nil, nil, fmt.Errorf("finding the working directory: %w", err)
	}
	p, errs := b.config.prepare(workDir)
	if len(errs) > 0 {
		return nil, nil, &packersdk.MultiError{Errors: errs}
	}
	b.plan = p
	return GeneratedDataKeys(), nil, nil
}

// prepare fills in the configuration's defaults and resolves the build
// plan, collecting every problem.
func (c *Config) prepare(workDir string) (*plan, []error) {
	var errs *packersdk.MultiError
	p := &plan{}

	if c.OutputDirectory == "" {
		name := c.PackerBuildName
		if name == "" {
			name = "nodebake"
		}
		c.OutputDirectory = "output-" + name
	}
	p.outputDir = c.OutputDirectory

	if c.CacheDir == "" {
		d, err := cache.DefaultDir()
		if err != nil {
			errs = packersdk.MultiErrorAppend(errs, fmt.Errorf("cache_dir: %w", err))
		}
		c.CacheDir = d
	}
	p.cacheDir = c.CacheDir

	s, err := c.effectiveSpec(workDir)
	if err != nil {
		errs = packersdk.MultiErrorAppend(errs, err)
		if c.FirstbootBinary != "" {
			if _, err := findFirstboot(c.FirstbootBinary, ""); err != nil {
				errs = packersdk.MultiErrorAppend(errs, err)
			}
		}
	} else {
		p.spec = s
		if p.firstboot, err = findFirstboot(c.FirstbootBinary, s.Arch); err != nil {
			errs = packersdk.MultiErrorAppend(errs, err)
		}
		if p.specHash, err = s.Hash(); err != nil {
			errs = packersdk.MultiErrorAppend(errs, err)
		}
		if p.outputs, err = build.PlanFor(s, build.Options{OutputDir: p.outputDir}); err != nil {
			errs = packersdk.MultiErrorAppend(errs, fmt.Errorf("output.formats: %w", err))
		}
	}
	if errs != nil {
		return nil, errs.Errors
	}
	return p, nil
}

// effectiveSpec returns the defaulted, validated spec of the
// configuration. It reports every problem at once, each as its own error
// naming the configuration field: values that could not be taken, and
// then whatever Validate finds in the rest.
func (c *Config) effectiveSpec(workDir string) (*spec.Spec, error) {
	s, bad, err := c.overlay(workDir)
	if err != nil {
		var ve *spec.ValidationError
		if !errors.As(err, &ve) {
			return nil, err
		}
		// The spec file itself is invalid: its problems, with its name.
		errs := make([]error, 0, len(ve.Errors))
		for _, fe := range ve.Errors {
			errs = append(errs, c.fieldError(ve.File, fe))
		}
		return nil, &packersdk.MultiError{Errors: errs}
	}
	s.Default()
	var problems []spec.FieldError
	problems = append(problems, bad...)
	if err := s.Validate(); err != nil {
		var ve *spec.ValidationError
		if !errors.As(err, &ve) {
			return nil, err
		}
		problems = append(problems, ve.Errors...)
	}
	if len(problems) == 0 {
		return s, nil
	}
	inFile := c.specFileProblems()
	errs := make([]error, 0, len(problems))
	for _, fe := range problems {
		if inFile[fe] {
			errs = append(errs, c.fieldError(c.SpecFile, fe))
			continue
		}
		errs = append(errs, c.fieldError("", fe))
	}
	return nil, &packersdk.MultiError{Errors: errs}
}

// specFileProblems returns the problems the spec file has on its own, to
// tell them from those the configuration brings.
func (c *Config) specFileProblems() map[spec.FieldError]bool {
	if c.SpecFile == "" {
		return nil
	}
	s, err := spec.Load(c.SpecFile)
	if err != nil {
		return nil
	}
	s.Default()
	var ve *spec.ValidationError
	if !errors.As(s.Validate(), &ve) {
		return nil
	}
	out := make(map[spec.FieldError]bool, len(ve.Errors))
	for _, fe := range ve.Errors {
		out[fe] = true
	}
	return out
}

// fieldError names the configuration field of a spec problem. A problem
// in the spec file also names the file and its spec path.
func (c *Config) fieldError(file string, fe spec.FieldError) error {
	if fe.Path == "" {
		if file != "" {
			return fmt.Errorf("spec_file %s: %s", file, fe.Msg)
		}
		return errors.New(fe.Msg)
	}
	p := configPath(fe.Path, c.componentBlock)
	switch {
	case file != "":
		return fmt.Errorf("spec_file %s: %s: %s", file, fe.Path, fe.Msg)
	case c.SpecFile != "" && p != fe.Path:
		return fmt.Errorf("%s: %s (spec field %s)", p, fe.Msg, fe.Path)
	}
	return fmt.Errorf("%s: %s", p, fe.Msg)
}

// Run builds the image: the steps resolve the spec, refuse provisioners
// that need a machine, run the builder library, and make the artifact.
func (b *Builder) Run(ctx context.Context, ui packersdk.Ui, hook packersdk.Hook) (packersdk.Artifact, error) {
	if b.plan == nil {
		return nil, errors.New("nodebake: Run called before a successful Prepare")
	}
	state := new(multistep.BasicStateBag)
	state.Put("config", &b.config)
	state.Put("hook", hook)
	state.Put("ui", ui)

	steps := []multistep.Step{
		&stepResolve{plan: b.plan},
		&stepProvision{},
		&stepFirstboot{},
		&stepBuild{},
		&stepOutputs{},
	}
	b.runner = b.newRunner(steps, ui)
	b.runner.Run(ctx, state)

	if err, ok := state.GetOk("error"); ok {
		return nil, err.(error)
	}
	if _, ok := state.GetOk(multistep.StateCancelled); ok {
		return nil, errors.New("build was cancelled")
	}
	if _, ok := state.GetOk(multistep.StateHalted); ok {
		return nil, errors.New("build was halted")
	}
	a, ok := state.GetOk("artifact")
	if !ok {
		return nil, errors.New("nodebake: the build made no artifact")
	}
	return a.(*Artifact), nil
}

// newRunner runs steps the way Packer's -debug and -on-error say: -debug
// pauses between the steps; -on-error=abort keeps what a failed build
// wrote, ask asks.
func (b *Builder) newRunner(steps []multistep.Step, ui packersdk.Ui) multistep.Runner {
	return commonsteps.NewRunner(steps, b.config.PackerConfig, ui)
}

// componentBlock returns the index of the component block that names the
// component with spec key key.
func (c *Config) componentBlock(key string) (int, bool) {
	for i, cc := range c.Components {
		if cat, ok := components.Find(cc.Name); ok && string(cat.Key) == key {
			return i, true
		}
	}
	return 0, false
}
