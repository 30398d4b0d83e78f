package nodebake

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/common"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"github.com/hashicorp/packer-plugin-sdk/multistep/commonsteps"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/nodebake/nodebake/plugin/embedded"
)

func testState(ui packersdk.Ui, hook packersdk.Hook) *multistep.BasicStateBag {
	state := new(multistep.BasicStateBag)
	state.Put("ui", ui)
	state.Put("hook", hook)
	state.Put("config", &Config{})
	return state
}

func TestNoMachineRefusesEverything(t *testing.T) {
	var c packersdk.Communicator = noMachine{}
	for name, err := range map[string]error{
		"Start":       c.Start(context.Background(), &packersdk.RemoteCmd{Command: "true"}),
		"Upload":      c.Upload("/x", strings.NewReader(""), nil),
		"UploadDir":   c.UploadDir("/x", "y", nil),
		"Download":    c.Download("/x", nil),
		"DownloadDir": c.DownloadDir("/x", "y", nil),
	} {
		if !errors.Is(err, ErrNoMachine) {
			t.Errorf("%s = %v, want ErrNoMachine", name, err)
		}
	}
}

func TestStepProvision(t *testing.T) {
	// provision plays the provisioners: it gets the hook's context and
	// communicator.
	type provision func(ctx context.Context, comm packersdk.Communicator) error
	tests := []struct {
		name      string
		provision provision
		want      multistep.StepAction
		wantErr   string
	}{
		{"no provisioner or a local one", func(context.Context, packersdk.Communicator) error { return nil },
			multistep.ActionContinue, ""},
		{"a provisioner that needs the machine and retries", func(ctx context.Context, comm packersdk.Communicator) error {
			// Like the shell provisioner: retry until the context ends.
			for {
				if err := comm.Upload("/tmp/script", strings.NewReader(""), nil); err == nil {
					return nil
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(10 * time.Millisecond):
				}
			}
		}, multistep.ActionHalt, "boots no machine"},
		{"a local provisioner that fails", func(context.Context, packersdk.Communicator) error { return errors.New("exit status 3") },
			multistep.ActionHalt, "provisioning: exit status 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hook := &provisionHook{provision: tt.provision}
			ui := &recordingUI{}
			state := testState(ui, hook)
			data := map[string]any{DataImagePath: "/out/worker.raw"}
			state.Put("generated_data", data)
			if got := new(stepProvision).Run(context.Background(), state); got != tt.want {
				t.Fatalf("Run = %v, want %v", got, tt.want)
			}
			if hook.name != packersdk.HookProvision {
				t.Errorf("hook %q run, want %q", hook.name, packersdk.HookProvision)
			}
			if _, ok := hook.comm.(noMachine); !ok {
				t.Errorf("communicator %T, want noMachine", hook.comm)
			}
			if gd, ok := hook.data.(map[string]any); !ok || gd[DataImagePath] != "/out/worker.raw" {
				t.Errorf("hook data %v, want the generated data", hook.data)
			}
			err, _ := state.Get("error").(error)
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("state error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// provisionHook is a provision hook that runs one provisioner function;
// the acceptance test runs the real ones through Packer.
type provisionHook struct {
	provision func(context.Context, packersdk.Communicator) error
	name      string
	comm      packersdk.Communicator
	data      any
}

func (h *provisionHook) Run(ctx context.Context, name string, _ packersdk.Ui, comm packersdk.Communicator, data any) error {
	h.name, h.comm, h.data = name, comm, data
	return h.provision(ctx, comm)
}

func TestStepBuildRefusesExistingOutputs(t *testing.T) {
	dir := t.TempDir()
	p := testPlan(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "worker.raw"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ui := &recordingUI{}
	state := testState(ui, nil)
	state.Put(statePlan, p)
	if got := new(stepBuild).Run(context.Background(), state); got != multistep.ActionHalt {
		t.Fatalf("Run = %v, want a halt", got)
	}
	err, _ := state.Get("error").(error)
	if err == nil || !strings.Contains(err.Error(), "output_directory: ") || !strings.Contains(err.Error(), "-force") {
		t.Errorf("error = %v, want one naming output_directory and -force", err)
	}
}

func TestStepBuildCleanup(t *testing.T) {
	tests := []struct {
		name      string
		mark      string
		wantFiles bool
	}{
		{"a finished build keeps its outputs", "", true},
		{"a cancelled build leaves nothing", multistep.StateCancelled, false},
		{"a halted build leaves nothing", multistep.StateHalted, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			res := testResult(t, dir)
			state := testState(&recordingUI{}, nil)
			state.Put(stateResult, res)
			if tt.mark != "" {
				state.Put(tt.mark, true)
			}
			new(stepBuild).Cleanup(state)
			for _, f := range []string{res.ImagePath, res.ManifestPath} {
				_, err := os.Stat(f)
				if exists := err == nil; exists != tt.wantFiles {
					t.Errorf("%s exists = %v, want %v", f, exists, tt.wantFiles)
				}
			}
		})
	}
}

func TestRunWithoutPrepare(t *testing.T) {
	if _, err := new(Builder).Run(context.Background(), &recordingUI{}, &packersdk.MockHook{}); err == nil {
		t.Error("Run without Prepare succeeded")
	}
}

// TestStepFirstboot: the embedded program is written to a temporary
// directory for the build and removed after it; a configured one is used
// where it is.
func TestStepFirstboot(t *testing.T) {
	dir := t.TempDir()
	p := testPlan(t, dir)
	state := testState(&recordingUI{}, nil)
	state.Put(statePlan, p)
	s := new(stepFirstboot)
	if got := s.Run(context.Background(), state); got != multistep.ActionContinue {
		t.Fatalf("Run = %v: %v", got, state.Get("error"))
	}
	path := state.Get(stateFirstboot).(string)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := embedded.Firstboot("amd64")
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if !bytes.Equal(b, want) || fi.Mode().Perm() != 0o755 || filepath.Base(path) != FirstbootName {
		t.Errorf("%s: %d bytes, mode %v; want the embedded program, 0755", path, len(b), fi.Mode())
	}
	s.Cleanup(state)
	if _, err := os.Stat(filepath.Dir(path)); !os.IsNotExist(err) {
		t.Errorf("Cleanup left %s: %v", filepath.Dir(path), err)
	}

	configured := fakeProgram(t, t.TempDir(), "fb")
	p.firstboot = firstbootProgram{path: configured}
	s = new(stepFirstboot)
	if got := s.Run(context.Background(), state); got != multistep.ActionContinue {
		t.Fatalf("Run = %v", got)
	}
	if got := state.Get(stateFirstboot).(string); got != configured {
		t.Errorf("first-boot program %q, want the configured %q", got, configured)
	}
	s.Cleanup(state)
	if _, err := os.Stat(configured); err != nil {
		t.Errorf("Cleanup removed the configured program: %v", err)
	}
}

// fakeBuild stands in for stepBuild.Run (it writes a build's files) and
// has stepBuild's Cleanup.
type fakeBuild struct {
	stepBuild
	dir string
}

func (s *fakeBuild) Run(_ context.Context, state multistep.StateBag) multistep.StepAction {
	state.Put(stateResult, testResultIn(s.dir))
	return multistep.ActionContinue
}

// failStep fails.
type failStep struct{}

func (failStep) Run(_ context.Context, state multistep.StateBag) multistep.StepAction {
	return halt(state, errors.New("a later step failed"))
}
func (failStep) Cleanup(multistep.StateBag) {}

// TestRunnerOnError: the steps run through the SDK's runner, so
// -on-error=abort keeps what a failed build wrote, the default cleans it
// up, and -debug pauses between steps.
func TestRunnerOnError(t *testing.T) {
	for _, tt := range []struct {
		onError   string
		wantFiles bool
	}{{"cleanup", false}, {"", false}, {"abort", true}} {
		t.Run("on-error="+tt.onError, func(t *testing.T) {
			dir := t.TempDir()
			ui := &recordingUI{}
			state := testState(ui, nil)
			steps := []multistep.Step{&fakeBuild{dir: dir}, failStep{}}
			cfg := common.PackerConfig{PackerOnError: tt.onError}
			commonsteps.NewRunner(steps, cfg, ui).Run(context.Background(), state)
			_, err := os.Stat(filepath.Join(dir, "worker.raw"))
			if exists := err == nil; exists != tt.wantFiles {
				t.Errorf("after a failed build the image exists = %v, want %v", exists, tt.wantFiles)
			}
		})
	}
	b := &Builder{}
	b.config.PackerDebug = true
	if _, ok := b.newRunner(nil, &recordingUI{}).(*multistep.DebugRunner); !ok {
		t.Error("with -debug the steps do not run through a debug runner")
	}
	b.config.PackerDebug = false
	if _, ok := b.newRunner(nil, &recordingUI{}).(*multistep.BasicRunner); !ok {
		t.Error("without -debug the steps do not run through a basic runner")
	}
}
