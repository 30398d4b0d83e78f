package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig/nodeconfigtest"
	"github.com/nodebake/nodebake/layers/spec"
)

// nodeConfigFile writes worker01's valid node config and returns its path.
func nodeConfigFile(t *testing.T) string {
	t.Helper()
	p, err := nodeconfigtest.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "node.yaml")
	if err := os.WriteFile(path, nodeconfigtest.YAML(p.Config()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestFlagsAfterArguments: a flag takes effect wherever it stands, before
// or after the arguments, with one dash or two.
func TestFlagsAfterArguments(t *testing.T) {
	node := nodeConfigFile(t)
	t.Run("node drive NODE.yaml -o DRIVE", func(t *testing.T) {
		for _, args := range [][]string{
			{"node", "drive", node, "-o", "DRIVE"},
			{"node", "drive", "-o", "DRIVE", node},
			{"node", "drive", node, "--output=DRIVE"},
		} {
			drive := filepath.Join(t.TempDir(), "drive.img")
			for i := range args {
				args[i] = strings.Replace(args[i], "DRIVE", drive, 1)
			}
			code, _, stderr := runCLI(t, args...)
			if code != exitOK {
				t.Fatalf("%v: exit %d: %s", args, code, stderr)
			}
			if fi, err := os.Stat(drive); err != nil || fi.Size() == 0 {
				t.Errorf("%v: no drive written: %v", args, err)
			}
		}
	})
	t.Run("image import TAR LAYOUT --arch arm64", func(t *testing.T) {
		tarPath := filepath.Join(t.TempDir(), "rootfs.tar")
		writeTar(t, tarPath, "etc/hostname")
		dir := filepath.Join(t.TempDir(), "layout")
		code, stdout, stderr := runCLI(t, "image", "import", tarPath, dir, "--arch", "arm64", "--source-date-epoch", "1700000000")
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		lp, err := layout.FromPath(dir)
		if err != nil {
			t.Fatal(err)
		}
		idx, err := lp.ImageIndex()
		if err != nil {
			t.Fatal(err)
		}
		im, err := idx.IndexManifest()
		if err != nil || len(im.Manifests) != 1 {
			t.Fatalf("index: %v, %v", im, err)
		}
		img, err := lp.Image(im.Manifests[0].Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Architecture != "arm64" || cf.Created.Unix() != 1700000000 {
			t.Errorf("the image is %s, created %s: the flags after the arguments were not read", cf.Architecture, cf.Created)
		}
		if !strings.HasPrefix(stdout, "oci:"+dir+"@sha256:") {
			t.Errorf("stdout %q", stdout)
		}
	})
	t.Run("node check NODE.yaml --spec BAD", func(t *testing.T) {
		bad := writeSpec(t, "apiVersion: nodebake.io/v1alpha1\nkind: WorkerImage\nkubernetes: {version: 1.35}\n")
		code, _, stderr := runCLI(t, "node", "check", node, "--spec", bad)
		if code != exitInvalid || !strings.Contains(stderr, "kubernetes.version") {
			t.Errorf("exit %d, stderr %q: want the spec given after the argument to be checked", code, stderr)
		}
	})
	t.Run("long flags with one dash, as before", func(t *testing.T) {
		// -offline is --offline, not -o ffline: the build fails on the
		// missing firstboot program, not later with an output dir "ffline".
		specFile := writeSpec(t, validSpec)
		dir := t.TempDir()
		code, _, stderr := runCLI(t, "build", specFile, "-firstboot", filepath.Join(dir, "no-firstboot"), "-offline", "-cache", filepath.Join(dir, "cache"))
		if code != exitInvalid || !strings.Contains(stderr, "base") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
		if _, err := os.Stat("ffline"); err == nil {
			t.Error("-offline was read as -o ffline")
		}
		code, _, stderr = runCLI(t, "build", "-format=iso", specFile)
		if code != exitInvalid || !strings.Contains(stderr, `unknown format "iso"`) {
			t.Errorf("-format=iso: exit %d, stderr %q", code, stderr)
		}
	})
}

// TestHelpCommand: `nodebake help CMD` is CMD's help, on stdout, exit 0;
// an unknown topic is a usage error.
func TestHelpCommand(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"help", "build"}, []string{"Build the worker disk image", "Usage:\n  nodebake build SPEC.yaml", "-o, --output DIR", "--format LIST", "netboot  NAME.netboot/"}},
		{[]string{"help", "node", "config"}, []string{"Usage:\n  nodebake node config", "--wg-address CIDR", "--peer PEER"}},
		{[]string{"help", "run"}, []string{"--node-config FILE", "restrict=on", "-m, --memory MiB"}},
		{[]string{"help"}, []string{"Available Commands:", "build ", "run ", "completion "}},
	} {
		code, stdout, stderr := runCLI(t, tc.args...)
		if code != exitOK {
			t.Errorf("%v: exit %d: %s", tc.args, code, stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(stdout, w) {
				t.Errorf("%v: stdout lacks %q:\n%s", tc.args, w, stdout)
			}
		}
		// The same text as CMD --help.
		if len(tc.args) > 1 {
			_, viaFlag, _ := runCLI(t, append(tc.args[1:], "--help")...)
			if viaFlag != stdout {
				t.Errorf("%v differs from %v --help:\n%s\n---\n%s", tc.args, tc.args[1:], stdout, viaFlag)
			}
		}
	}
	code, stdout, stderr := runCLI(t, "help", "frobnicate")
	if code != exitInvalid || stdout != "" || !strings.Contains(stderr, `unknown help topic "frobnicate"`) || !strings.Contains(stderr, "Usage:") {
		t.Errorf("help frobnicate: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// TestFormatHelpFromTheTable: the help lists every format of the format
// table with its summary.
func TestFormatHelpFromTheTable(t *testing.T) {
	_, build, _ := runCLI(t, "build", "--help")
	_, export, _ := runCLI(t, "export", "--help")
	for _, f := range spec.FormatTable() {
		if !strings.Contains(build, string(f.Format)) || !strings.Contains(build, f.Summary) {
			t.Errorf("build --help lacks %s (%s)", f.Format, f.Summary)
		}
		if f.Format != spec.FormatRaw && !strings.Contains(export, f.Summary) {
			t.Errorf("export --help lacks %s", f.Format)
		}
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"-v"}, {"version"}} {
		code, stdout, stderr := runCLI(t, args...)
		if code != exitOK || stdout != "nodebake "+version+"\n" || stderr != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
}

// TestCompletion: the completion scripts, and the completions they ask
// the program for (formats from the format table, subcommands).
func TestCompletion(t *testing.T) {
	for shell, want := range map[string]string{
		"bash": "# bash completion V2 for nodebake",
		"zsh":  "#compdef nodebake",
		"fish": "complete -c nodebake",
	} {
		code, stdout, stderr := runCLI(t, "completion", shell)
		if code != exitOK || !strings.Contains(stdout, want) || stderr != "" {
			t.Errorf("completion %s: exit %d, stderr %q, stdout starts %.80q", shell, code, stderr, stdout)
		}
	}
	for _, tc := range []struct {
		args []string
		want []string
		not  []string
	}{
		{[]string{"__complete", "export", "--format", "raw.zst,q"}, []string{"raw.zst,qcow2\t"}, nil},
		{[]string{"__complete", "export", "--format", ""}, []string{"netboot\t", "gce\t"}, []string{"raw\t"}},
		{[]string{"__complete", "build", "--format", "r"}, []string{"raw\t", "raw.zst\t"}, nil},
		{[]string{"__complete", "spec", ""}, []string{"print\t", "validate\t", "schema\t"}, nil},
		{[]string{"__complete", "run", "--accel", ""}, []string{"kvm", "tcg"}, nil},
	} {
		code, stdout, _ := runCLI(t, tc.args...)
		if code != exitOK {
			t.Errorf("%v: exit %d", tc.args, code)
		}
		for _, w := range tc.want {
			if !strings.Contains(stdout, w) {
				t.Errorf("%v: completions %q lack %q", tc.args, stdout, w)
			}
		}
		for _, w := range tc.not {
			if strings.Contains(stdout, w) {
				t.Errorf("%v: completions %q have %q", tc.args, stdout, w)
			}
		}
	}
}

// TestUsageErrors: an unknown command or flag, or missing and extra
// arguments, exit 2 with the error and the command's usage on stderr.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		want  string
		usage string
	}{
		{[]string{"frobnicate"}, `nodebake: unknown command "frobnicate"`, "Usage:\n  nodebake [command]"},
		{[]string{"buidl"}, "did you mean build?", "Available Commands:"},
		{[]string{"spec", "frob"}, `nodebake spec: unknown command "frob" (want print, schema, validate)`, "Usage:\n  nodebake spec [command]"},
		{[]string{"spec"}, "nodebake spec: missing command", "Usage:\n  nodebake spec [command]"},
		{[]string{"completion"}, "missing command (want bash, fish, powershell, zsh)", "Usage:"},
		{[]string{"build", "--nope", "x.yaml"}, "nodebake build: unknown flag: --nope", "Usage:\n  nodebake build SPEC.yaml [flags]"},
		{[]string{"build", "x.yaml", "-Z"}, "unknown shorthand flag: 'Z' in -Z", "Usage:\n  nodebake build"},
		{[]string{"build"}, "want exactly one spec file, got 0 arguments", "Usage:\n  nodebake build"},
		{[]string{"build", "a.yaml", "b.yaml"}, "got 2 arguments", "Usage:\n  nodebake build"},
		{[]string{"version", "extra"}, `unknown command "extra" for "nodebake version"`, "Usage:\n  nodebake version"},
		{[]string{"run"}, "want exactly one image", "Usage:\n  nodebake run IMAGE"},
		{[]string{"run", "x.raw", "--memory", "lots"}, `invalid argument "lots" for "-m, --memory"`, "Usage:\n  nodebake run"},
		{[]string{"node", "drive", "x.yaml"}, "want -o DRIVE.img", "Usage:\n  nodebake node drive"},
		{[]string{"push", "--annotation", "novalue", "a", "b"}, "want KEY=VALUE", "Usage:\n  nodebake push"},
	} {
		code, stdout, stderr := runCLI(t, tc.args...)
		if code != exitInvalid || stdout != "" {
			t.Errorf("%v: exit %d, stdout %q; want %d and nothing", tc.args, code, stdout, exitInvalid)
		}
		if !strings.Contains(stderr, tc.want) || !strings.Contains(stderr, tc.usage) {
			t.Errorf("%v: stderr lacks %q or %q:\n%s", tc.args, tc.want, tc.usage, stderr)
		}
	}
	// Errors that are not about the command line show no usage.
	code, _, stderr := runCLI(t, "spec", "validate", "/nonexistent.yaml")
	if code != exitInvalid || strings.Contains(stderr, "Usage:") {
		t.Errorf("spec validate of a missing file: exit %d, stderr %q", code, stderr)
	}
}

// TestMissingBaseHint: a spec whose base image has not been built exits 2
// and says how to build it, whichever way the flags are placed.
func TestMissingBaseHint(t *testing.T) {
	fb := filepath.Join(t.TempDir(), "nodebake-firstboot")
	if err := os.WriteFile(fb, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	specFile := writeSpec(t, strings.Replace(validSpec, "oci:base", "oci:"+filepath.Join(t.TempDir(), "trixie-amd64"), 1))
	for _, args := range [][]string{
		{"build", "--firstboot", fb, "--cache", t.TempDir(), "-o", t.TempDir(), specFile},
		{"build", specFile, "--firstboot", fb, "--cache", t.TempDir(), "-o", t.TempDir()},
	} {
		code, _, stderr := runCLI(t, args...)
		if code != exitInvalid || !strings.Contains(stderr, "base.image") || !strings.Contains(stderr, "make base") {
			t.Errorf("%v: exit %d, stderr %q; want 2 and the command that builds the base", args, code, stderr)
		}
		if strings.Contains(stderr, "Usage:") {
			t.Errorf("%v: a missing base is not a usage error: %q", args, stderr)
		}
	}
}

// TestSpecSchemaCommand: `nodebake spec schema` prints the spec's JSON
// Schema, draft 2020-12.
func TestSpecSchemaCommand(t *testing.T) {
	code, stdout, stderr := runCLI(t, "spec", "schema")
	if code != exitOK || stderr != "" {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if stdout != string(spec.Schema()) {
		t.Error("spec schema does not print spec.Schema()")
	}
	var s struct {
		Schema     string         `json:"$schema"`
		Properties map[string]any `json:"properties"`
	}
	if err := json.Unmarshal([]byte(stdout), &s); err != nil {
		t.Fatalf("spec schema printed no JSON: %v", err)
	}
	if s.Schema != "https://json-schema.org/draft/2020-12/schema" || s.Properties["kubernetes"] == nil {
		t.Errorf("schema %q with properties %v", s.Schema, s.Properties)
	}
}

// TestRunRefusesBadInput: `nodebake run` checks its image and node config
// before it starts QEMU.
func TestRunRefusesBadInput(t *testing.T) {
	// No QEMU to be found: should a check let bad input through, the
	// test fails on the missing QEMU instead of booting it.
	t.Setenv("PATH", t.TempDir())
	dir := t.TempDir()
	zst := filepath.Join(dir, "worker.raw.zst")
	if err := os.WriteFile(zst, append([]byte{0x28, 0xb5, 0x2f, 0xfd}, make([]byte, 4096)...), 0o644); err != nil {
		t.Fatal(err)
	}
	raw := filepath.Join(dir, "worker.raw")
	if err := os.WriteFile(raw, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	badNode := filepath.Join(dir, "node.yaml")
	if err := os.WriteFile(badNode, []byte("nodeName: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", filepath.Join(dir, "missing.raw")}, "missing.raw"},
		{[]string{"run", zst}, "zstd"},
		{[]string{"run", raw, "--node-config", badNode}, badNode},
		{[]string{"run", raw, "--node-config", filepath.Join(dir, "none.yaml")}, "none.yaml"},
		{[]string{"run", raw, "--accel", "hvf"}, `"hvf"`},
		{[]string{"run", raw, "--cpus", "0"}, "--cpus 0 must be positive"},
		{[]string{"run", raw, "-m", "-5"}, "--memory -5"},
		{[]string{"run", raw, "-m", "16"}, "memory 16 MiB"},
		{[]string{"run", raw, "--firmware", dir}, "--firmware"},
	} {
		code, _, stderr := runCLI(t, tc.args...)
		if code != exitInvalid || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}
