package nodebake

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/nodebake/nodebake/builder/build"
	"github.com/nodebake/nodebake/layers/cache"
	"github.com/nodebake/nodebake/layers/gosource"
)

// State bag keys.
const (
	statePlan      = "nodebake_plan"
	stateResult    = "nodebake_result"
	stateFirstboot = "nodebake_firstboot"
)

// halt records err in the state bag, says it, and halts the run.
func halt(state multistep.StateBag, err error) multistep.StepAction {
	state.Put("error", err)
	state.Get("ui").(packersdk.Ui).Error(err.Error())
	return multistep.ActionHalt
}

// stepResolve puts the prepared plan in the state bag and says what will
// be built.
type stepResolve struct {
	plan *plan
}

func (s *stepResolve) Run(_ context.Context, state multistep.StateBag) multistep.StepAction {
	ui := state.Get("ui").(packersdk.Ui)
	p := s.plan
	ui.Say(fmt.Sprintf("Resolving the spec: %s (%s), Kubernetes %s, spec hash %s",
		p.spec.Name, p.spec.Arch, p.spec.Kubernetes.Version, p.specHash))
	for _, c := range p.spec.NamedComponents() {
		ui.Say(fmt.Sprintf("%s%s %s (from %s)", detailIndent, c.Name, c.Version, c.From))
	}
	ui.Say(detailIndent + "first-boot program: " + p.firstboot.String())
	ui.Say(detailIndent + "cache: " + p.cacheDir)
	state.Put(statePlan, p)
	state.Put("generated_data", plannedData(p))
	return multistep.ActionContinue
}

func (s *stepResolve) Cleanup(multistep.StateBag) {}

// stepProvision runs the provision hook with a communicator that refuses
// every operation, since there is no machine: provisioners that run on the
// Packer host (shell-local, breakpoint) work, and the others fail here,
// before any work is done, with ErrNoMachine. They see the generated data
// known before the build (paths, versions). The first refusal cancels the
// hook: provisioners retry a failed upload for minutes
// (start_retry_timeout), and no retry can succeed.
type stepProvision struct{}

func (s *stepProvision) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	hook := state.Get("hook").(packersdk.Hook)
	ui := state.Get("ui").(packersdk.Ui)
	data := state.Get("generated_data")

	hookCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var refused atomic.Bool
	comm := noMachine{refused: func() {
		refused.Store(true)
		cancel()
	}}
	err := hook.Run(hookCtx, packersdk.HookProvision, ui, comm, data)
	if refused.Load() {
		return halt(state, fmt.Errorf("provisioning: %w", ErrNoMachine))
	}
	if err != nil {
		return halt(state, fmt.Errorf("provisioning: %w", err))
	}
	return multistep.ActionContinue
}

func (s *stepProvision) Cleanup(multistep.StateBag) {}

// stepFirstboot makes the first-boot program a file the build can read:
// the configured one, or the embedded one written to a temporary
// directory, removed in Cleanup.
type stepFirstboot struct {
	dir string
}

func (s *stepFirstboot) Run(_ context.Context, state multistep.StateBag) multistep.StepAction {
	p := state.Get(statePlan).(*plan)
	if p.firstboot.path == "" {
		dir, err := os.MkdirTemp("", "nodebake-firstboot-")
		if err != nil {
			return halt(state, fmt.Errorf("writing the embedded %s: %w", FirstbootName, err))
		}
		s.dir = dir
	}
	path, err := p.firstboot.writeTo(s.dir)
	if err != nil {
		return halt(state, err)
	}
	state.Put(stateFirstboot, path)
	return multistep.ActionContinue
}

func (s *stepFirstboot) Cleanup(multistep.StateBag) {
	if s.dir != "" {
		os.RemoveAll(s.dir)
		s.dir = ""
	}
}

// stepBuild runs the builder library's pipeline (resolve, fetch, compose,
// disk, output), forwarding its progress to Packer's UI.
type stepBuild struct{}

func (s *stepBuild) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	ui := state.Get("ui").(packersdk.Ui)
	cfg := state.Get("config").(*Config)
	p := state.Get(statePlan).(*plan)

	if !cfg.PackerForce {
		for _, f := range p.outputs.Paths() {
			if _, err := os.Stat(f); err == nil {
				return halt(state, fmt.Errorf("output_directory: %s already exists: remove it or run packer build -force", f))
			}
		}
	}
	fb, ok := state.Get(stateFirstboot).(string)
	if !ok {
		return halt(state, fmt.Errorf("nodebake: no first-boot program in the state"))
	}
	c, err := cache.Open(p.cacheDir)
	if err != nil {
		return halt(state, fmt.Errorf("cache_dir: %w", err))
	}
	pr := newProgress(ui)
	defer pr.close()
	res, err := build.Build(ctx, p.spec, build.Options{
		OutputDir:       p.outputDir,
		Cache:           c,
		FirstbootBinary: fb,
		Offline:         cfg.Offline,
		Go:              gosource.Builder{Log: pr.writer("go: ")},
		Progress:        pr.event,
		NetbootURL:      cfg.NetbootURL,
	})
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("build cancelled: %w", err)
		}
		return halt(state, err)
	}
	state.Put(stateResult, res)
	return multistep.ActionContinue
}

// Cleanup removes the outputs of a build that was cancelled or halted after
// it wrote them. A failed build.Build leaves nothing itself.
func (s *stepBuild) Cleanup(state multistep.StateBag) {
	_, cancelled := state.GetOk(multistep.StateCancelled)
	_, halted := state.GetOk(multistep.StateHalted)
	if !cancelled && !halted {
		return
	}
	r, ok := state.GetOk(stateResult)
	if !ok {
		return
	}
	res := r.(*build.Result)
	ui := state.Get("ui").(packersdk.Ui)
	if err := removeOutputs(res); err != nil {
		ui.Error(err.Error())
	}
	state.Remove(stateResult)
}

// stepOutputs makes the artifact of a finished build.
type stepOutputs struct{}

func (s *stepOutputs) Run(_ context.Context, state multistep.StateBag) multistep.StepAction {
	ui := state.Get("ui").(packersdk.Ui)
	p := state.Get(statePlan).(*plan)
	res := state.Get(stateResult).(*build.Result)
	a := newArtifact(p, res)
	state.Put("generated_data", a.generated)
	state.Put("artifact", a)
	ui.Say(fmt.Sprintf("Built %s (sha256 %s)", a.ImagePath, a.SHA256))
	return multistep.ActionContinue
}

func (s *stepOutputs) Cleanup(multistep.StateBag) {}
