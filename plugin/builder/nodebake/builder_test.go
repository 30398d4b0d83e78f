package nodebake

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/nodebake/nodebake/layers/spec"
)

// validHCL is the smallest valid source body: components built from
// source need no checksums.
const validHCL = `
base { image = "oci:base" }
kubernetes { version = "v1.35.4" }
component {
  name    = "containerd"
  version = "v2.2.0"
  from    = "go"
}
component {
  name    = "runc"
  version = "v1.3.4"
  from    = "go"
}
component {
  name    = "cniPlugins"
  version = "v1.8.0"
  from    = "go"
}
component {
  name = "kubelet"
  from = "go"
}
component {
  name = "kubeProxy"
  from = "go"
}
component {
  name = "kubectl"
  from = "go"
}
`

func TestPrepareDefaults(t *testing.T) {
	cacheDir := filepath.Join(t.TempDir(), "cache")
	t.Setenv("NODEBAKE_CACHE", cacheDir)

	b := new(Builder)
	generated, warnings, err := b.Prepare(builderVars("worker"), decodeHCL(t, "source.pkr.hcl", validHCL))
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if len(warnings) > 0 {
		t.Errorf("warnings: %v", warnings)
	}
	if !slices.Equal(generated, GeneratedDataKeys()) {
		t.Errorf("generated data keys = %v, want %v", generated, GeneratedDataKeys())
	}
	c, p := b.config, b.plan
	for _, chk := range []struct{ field, got, want string }{
		{"output_directory", c.OutputDirectory, "output-worker"},
		{"cache_dir", c.CacheDir, cacheDir},
		{"plan output directory", p.outputDir, "output-worker"},
		{"plan cache", p.cacheDir, cacheDir},
		{"plan first-boot program", p.firstboot.path, ""},
		{"plan first-boot architecture", string(p.firstboot.arch), "amd64"},
		{"spec name", p.spec.Name, "worker"},
		{"spec arch", string(p.spec.Arch), "amd64"},
		{"kubelet version", p.spec.Components["kubelet"].Version, "v1.35.4"},
		{"service CIDR", p.spec.Kubernetes.ServiceCIDR, "10.32.0.0/16"},
		{"esp size", p.spec.Output.ESPSize.String(), "256MiB"},
	} {
		if chk.got != chk.want {
			t.Errorf("%s = %q, want %q", chk.field, chk.got, chk.want)
		}
	}
	if len(p.specHash) != 64 {
		t.Errorf("spec hash %q", p.specHash)
	}
	wd, _ := os.Getwd()
	if p.spec.Dir != wd {
		t.Errorf("spec Dir = %q, want the working directory %q", p.spec.Dir, wd)
	}
}

func TestPrepareDefaultCacheDir(t *testing.T) {
	t.Setenv("NODEBAKE_CACHE", "")
	home := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", home)
	b := new(Builder)
	if _, _, err := b.Prepare(builderVars(""), decodeHCL(t, "source.pkr.hcl", validHCL)); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if want := filepath.Join(home, "nodebake"); b.config.CacheDir != want {
		t.Errorf("cache_dir = %q, want %q", b.config.CacheDir, want)
	}
	if b.config.OutputDirectory != "output-nodebake" {
		t.Errorf("output_directory without a build name = %q", b.config.OutputDirectory)
	}
}

func TestPrepareKeepsSetValues(t *testing.T) {
	dir := t.TempDir()
	fb := fakeProgram(t, dir, "my-firstboot")
	b := new(Builder)
	hcl := validHCL + `
output_directory = "` + filepath.Join(dir, "out") + `"
cache_dir        = "` + filepath.Join(dir, "cache") + `"
firstboot_binary = "` + fb + `"
offline          = true
`
	if _, _, err := b.Prepare(builderVars("worker"), decodeHCL(t, "source.pkr.hcl", hcl)); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	p := b.plan
	if p.outputDir != filepath.Join(dir, "out") || p.cacheDir != filepath.Join(dir, "cache") || p.firstboot.path != fb || !b.config.Offline {
		t.Errorf("set values not kept: %+v offline=%v", p, b.config.Offline)
	}
}

// TestPrepareReportsEveryError checks that one Prepare reports every
// problem, each naming its configuration field.
func TestPrepareReportsEveryError(t *testing.T) {
	t.Setenv("NODEBAKE_CACHE", t.TempDir())
	b := new(Builder)
	hcl := validHCL + `
firstboot_binary = "/nonexistent/nodebake-firstboot"
name = "Not_A_Label"
kubernetes { service_cidr = "nonsense" }
kubelet {
  config_json = jsonencode({ maxPods = "many", bogus = 1 })
}
kube_proxy { config_json = "not json" }
output {
  esp_size               = "huge"
  root_compression_level = 99
}
file {
  path    = "relative/path"
  content = "x"
}
component {
  name = "etcd"
}
component {
  name    = "kube-proxy"
  version = "v1.99.0"
}
`
	// kubernetes appears twice: the second block must be refused by HCL,
	// so merge it into the first instead.
	hcl = strings.Replace(hcl, `kubernetes { version = "v1.35.4" }`, `kubernetes {
  version      = "v1.35.4"
  service_cidr = "nonsense"
}`, 1)
	hcl = strings.Replace(hcl, "kubernetes { service_cidr = \"nonsense\" }\n", "", 1)

	_, _, err := b.Prepare(builderVars("worker"), decodeHCL(t, "source.pkr.hcl", hcl))
	var me *packersdk.MultiError
	if !errors.As(err, &me) {
		t.Fatalf("Prepare error = %v, want a *packer.MultiError", err)
	}
	want := []string{
		"firstboot_binary: ",
		"name: invalid name",
		"kubernetes.service_cidr: ",
		"kubelet.config_json.maxPods: ",
		"kubelet.config_json.bogus: unknown field",
		"kube_proxy.config_json: invalid JSON",
		"output.esp_size: invalid size",
		"output.root_compression_level: ",
		"file[0].path: ",
		`component[6].name: unknown component "etcd" (known: containerd, runc`,
		"component[7].name: kubeProxy is already set by component[4]",
	}
	var got []string
	for _, e := range me.Errors {
		got = append(got, e.Error())
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g string) bool { return strings.HasPrefix(g, w) }) {
			t.Errorf("no error starting with %q", w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d errors, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	if b.plan != nil {
		t.Error("a failed Prepare left a plan")
	}
}

func TestPrepareSpecFile(t *testing.T) {
	t.Setenv("NODEBAKE_CACHE", t.TempDir())
	specFile := filepath.Join("testdata", "full.yaml")
	tests := []struct {
		name    string
		hcl     string
		wantErr []string
	}{{
		name: "valid file",
		hcl:  `spec_file = "` + specFile + `"`,
	}, {
		name:    "an override the file's values do not allow",
		hcl:     `spec_file = "` + specFile + "\"\nkubernetes { cluster_cidr = \"10.96.0.0/16\" }",
		wantErr: []string{"kubernetes.cluster_cidr: ", "(spec field kubernetes.clusterCIDR)"},
	}, {
		name:    "a missing file",
		hcl:     `spec_file = "testdata/missing.yaml"`,
		wantErr: []string{"spec_file: reading spec: ", "missing.yaml"},
	}, {
		name:    "an invalid file names the file and the spec field",
		hcl:     `spec_file = "testdata/invalid.yaml"`,
		wantErr: []string{"spec_file testdata/invalid.yaml: kubernetes.serviceCIDR: "},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := new(Builder)
			_, _, err := b.Prepare(builderVars("worker"), decodeHCL(t, "source.pkr.hcl", tt.hcl))
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Prepare: %v", err)
				}
				if b.plan.spec.Name != "worker-arm" {
					t.Errorf("name = %q, want the file's", b.plan.spec.Name)
				}
				return
			}
			if err == nil {
				t.Fatal("Prepare succeeded")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestFindFirstboot: the configured program wins; else the one the
// plugin embeds for the image's architecture.
func TestFindFirstboot(t *testing.T) {
	other := t.TempDir()
	configured := fakeProgram(t, other, "fb")
	notExec := filepath.Join(other, "not-exec")
	if err := os.WriteFile(notExec, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		configured string
		arch       spec.Arch
		want       firstbootProgram
		wantErr    string
	}{
		{"configured wins", configured, "amd64", firstbootProgram{path: configured}, ""},
		{"embedded for amd64", "", "amd64", firstbootProgram{arch: "amd64"}, ""},
		{"embedded for arm64", "", "arm64", firstbootProgram{arch: "arm64"}, ""},
		{"no embedded program for the architecture", "", "riscv64", firstbootProgram{}, "no embedded nodebake-firstboot for riscv64 images (it has amd64, arm64): set firstboot_binary"},
		{"configured but missing", filepath.Join(other, "nope"), "amd64", firstbootProgram{}, "firstboot_binary: stat "},
		{"configured but not executable", notExec, "amd64", firstbootProgram{}, "is not executable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := findFirstboot(tt.configured, tt.arch)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("findFirstboot = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// TestComponentErrorsNameTheBlock checks that a problem with a component
// set in HCL names its component block.
func TestComponentErrorsNameTheBlock(t *testing.T) {
	t.Setenv("NODEBAKE_CACHE", t.TempDir())
	hcl := strings.Replace(validHCL, "name = \"kubelet\"\n  from = \"go\"", "name = \"kubelet\"\n  from = \"go\"\n  version = \"v1.99.0\"", 1)
	_, _, err := new(Builder).Prepare(builderVars("worker"), decodeHCL(t, "source.pkr.hcl", hcl))
	if err == nil || !strings.Contains(err.Error(), "component[3].version: v1.99.0 is newer than kubernetes.version v1.35.4") {
		t.Errorf("Prepare error = %v, want it to name component[3].version", err)
	}
}
