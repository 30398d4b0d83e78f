package nodebake

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/packer-plugin-sdk/template/config"

	"github.com/nodebake/nodebake/layers/spec"
)

// configFromHCL decodes an HCL source body into a Config the way Prepare
// does.
func configFromHCL(t *testing.T, name, src string) *Config {
	t.Helper()
	var c Config
	if err := config.Decode(&c, &config.DecodeOpts{PluginType: BuilderID}, decodeHCL(t, name, src)); err != nil {
		t.Fatalf("decoding %s: %v", name, err)
	}
	return &c
}

func dump(t *testing.T, s *spec.Spec) string {
	t.Helper()
	d := s.Clone()
	d.Default()
	b, err := d.Dump()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustParse(t *testing.T, yaml string) *spec.Spec {
	t.Helper()
	s, err := spec.Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("parsing the YAML spec: %v", err)
	}
	return s
}

const header = "apiVersion: nodebake.io/v1alpha1\nkind: WorkerImage\n"

func TestSpecFromHCL(t *testing.T) {
	tests := []struct {
		name string
		hcl  string
		yaml string // the equivalent spec, without its header
	}{{
		name: "empty source is the empty spec",
		hcl:  ``,
		yaml: ``,
	}, {
		name: "scalars and blocks",
		hcl: `name = "w1"
base { image = "oci:base" }
kubernetes {
  version     = "v1.35.4"
  pod_network = "bridge"
}
component {
  name = "kube-proxy"
  from = "go"
}`,
		yaml: `name: w1
base: {image: "oci:base"}
kubernetes: {version: v1.35.4, podNetwork: bridge}
components: {kubeProxy: {from: go}}`,
	}, {
		name: "zero values that are set count",
		hcl: `source_date_epoch = 0
sources { retries = 0 }
containerd { systemd_cgroup = false }
file {
  path    = "/etc/empty"
  content = ""
}`,
		yaml: `sourceDateEpoch: 0
sources: {retries: 0}
containerd: {systemdCgroup: false}
files: [{path: /etc/empty, content: ""}]`,
	}, {
		name: "settings and removed settings",
		hcl: `kubelet {
  settings        = { v = "2" }
  remove_settings = ["register-node"]
}`,
		yaml: `kubelet: {settings: {v: "2", register-node: null}}`,
	}, {
		name: "config JSON keeps integers, nulls and nesting",
		hcl: `kube_proxy {
  config_json = jsonencode({ ipvs = null, conntrack = { maxPerCore = 0, min = 131072 }, mode = "ipvs" })
}`,
		yaml: `kubeProxy: {config: {ipvs: null, conntrack: {maxPerCore: 0, min: 131072}, mode: ipvs}}`,
	}, {
		name: "sizes with and without units",
		hcl: `output {
  esp_size = "268435456"
  var_size = "3GiB"
}`,
		yaml: `output: {espSize: 256MiB, varSize: 3GiB}`,
	}, {
		name: "disk size",
		hcl:  `output { disk_size = "8GiB" }`,
		yaml: `output: {diskSize: 8GiB}`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := configFromHCL(t, "source.pkr.hcl", tt.hcl)
			got, err := c.Spec("/work")
			if err != nil {
				t.Fatalf("Spec: %v", err)
			}
			if got.Dir != "/work" {
				t.Errorf("Dir = %q, want the working directory", got.Dir)
			}
			want := mustParse(t, header+tt.yaml)
			if d := cmp.Diff(dump(t, want), dump(t, got)); d != "" {
				t.Errorf("spec from HCL differs from the YAML spec (-yaml +hcl):\n%s", d)
			}
		})
	}
}

// TestEveryFieldFromHCL checks that full.pkr.hcl and full.yaml describe
// the same spec, and that full.yaml sets every spec field: so every field
// of the spec can be set from HCL.
func TestEveryFieldFromHCL(t *testing.T) {
	want, err := spec.Load(filepath.Join("testdata", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// output.diskSize excludes output.varSize, which full.yaml sets; the
	// "disk size" case of TestSpecFromHCL sets it from HCL.
	exclusive := map[string]bool{"output.diskSize": true}
	for _, p := range unsetFields(reflect.ValueOf(want).Elem(), "") {
		if exclusive[p] {
			continue
		}
		t.Errorf("testdata/full.yaml does not set spec field %s: add it there and to full.pkr.hcl", p)
	}

	var c Config
	if err := config.Decode(&c, &config.DecodeOpts{PluginType: BuilderID}, decodeHCLFile(t, "full.pkr.hcl")); err != nil {
		t.Fatal(err)
	}
	got, err := c.Spec("testdata")
	if err != nil {
		t.Fatalf("Spec: %v", err)
	}
	if d := cmp.Diff(dump(t, want), dump(t, got)); d != "" {
		t.Errorf("full.pkr.hcl and full.yaml differ (-yaml +hcl):\n%s", d)
	}
	wh, err := want.Hash()
	if err != nil {
		t.Fatal(err)
	}
	gh, err := got.Hash()
	if err != nil {
		t.Fatal(err)
	}
	if wh != gh {
		t.Errorf("spec hash from HCL %s, from YAML %s", gh, wh)
	}
}

// unsetFields lists the struct fields (by yaml path) that are zero
// everywhere in v; a list counts as set when one element sets the field.
func unsetFields(v reflect.Value, path string) []string {
	var out []string
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		p := name
		if path != "" {
			p = path + "." + name
		}
		fv := v.Field(i)
		switch {
		case fv.Kind() == reflect.Map && f.Type.Elem().Kind() == reflect.Struct:
			// Named values of one type (the components): like a list,
			// one of them setting a field is enough.
			if fv.Len() == 0 {
				out = append(out, p)
				continue
			}
			missing := map[string]int{}
			for _, k := range fv.MapKeys() {
				for _, m := range unsetFields(fv.MapIndex(k), p+".*") {
					missing[m]++
				}
			}
			for m, n := range missing {
				if n == fv.Len() {
					out = append(out, m)
				}
			}
		case fv.Kind() == reflect.Struct:
			out = append(out, unsetFields(fv, p)...)
		case fv.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			if fv.Len() == 0 {
				out = append(out, p)
				continue
			}
			// A field is set when any element sets it.
			missing := map[string]int{}
			for j := range fv.Len() {
				for _, m := range unsetFields(fv.Index(j), p+"[]") {
					missing[m]++
				}
			}
			for m, n := range missing {
				if n == fv.Len() {
					out = append(out, m)
				}
			}
		case fv.IsZero():
			out = append(out, p)
		}
	}
	return out
}

func TestSpecFileOverrides(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "worker.yaml")
	err := os.WriteFile(file, []byte(header+`name: from-file
base: {image: "oci:base"}
kubernetes: {version: v1.34.0, serviceCIDR: 10.96.0.0/16}
components:
  kubelet: {from: go}
  containerd: {version: v2.2.0, sha256: {amd64: "1111111111111111111111111111111111111111111111111111111111111111"}}
kubelet:
  settings: {v: "2"}
  config: {maxPods: 100, authentication: {webhook: {enabled: true}}}
files: [{path: /etc/a, content: a}]
output: {kernelArgs: [quiet]}
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	c := configFromHCL(t, "source.pkr.hcl", `spec_file = "`+file+`"
kubernetes { version = "v1.35.4" }
component {
  name   = "containerd"
  sha256 = { arm64 = "2222222222222222222222222222222222222222222222222222222222222222" }
}
kubelet {
  settings    = { "register-node" = "false" }
  config_json = jsonencode({ maxPods = 50, authentication = { anonymous = { enabled = false } } })
}
file {
  path    = "/etc/b"
  content = "b"
}
output { kernel_args = ["loglevel=3"] }
`)
	got, err := c.Spec("/elsewhere")
	if err != nil {
		t.Fatalf("Spec: %v", err)
	}
	if got.Dir != dir {
		t.Errorf("Dir = %q, want the spec file's directory %q", got.Dir, dir)
	}
	want := mustParse(t, header+`name: from-file
base: {image: "oci:base"}
kubernetes: {version: v1.35.4, serviceCIDR: 10.96.0.0/16}
components:
  kubelet: {from: go}
  containerd:
    version: v2.2.0
    sha256:
      amd64: "1111111111111111111111111111111111111111111111111111111111111111"
      arm64: "2222222222222222222222222222222222222222222222222222222222222222"
kubelet:
  settings: {v: "2", register-node: "false"}
  config: {maxPods: 50, authentication: {webhook: {enabled: true}, anonymous: {enabled: false}}}
files: [{path: /etc/a, content: a}, {path: /etc/b, content: b}]
output: {kernelArgs: ["loglevel=3"]}
`)
	if d := cmp.Diff(dump(t, want), dump(t, got)); d != "" {
		t.Errorf("spec_file with overrides (-want +got):\n%s", d)
	}
}

func TestSpecErrors(t *testing.T) {
	tests := []struct {
		name string
		hcl  string
		want []string // "path: message fragment"
	}{{
		name: "config JSON that is not JSON",
		hcl:  `kubelet { config_json = "{maxPods: 1}" }`,
		want: []string{"kubelet.config_json: invalid JSON"},
	}, {
		name: "config JSON that is not an object",
		hcl:  `kube_proxy { config_json = "[1]" }`,
		want: []string{"kube_proxy.config_json: want a JSON object, got a list"},
	}, {
		name: "sizes, all reported",
		hcl: `output {
  esp_size = "big"
  var_size = "-1"
}`,
		want: []string{"output.esp_size: invalid size", "output.var_size: invalid size"},
	}, {
		name: "every problem at once",
		hcl: `kubelet { config_json = "1" }
kube_proxy { config_json = "x" }
output { esp_size = "1XB" }`,
		want: []string{"kubelet.config_json: ", "kube_proxy.config_json: ", "output.esp_size: "},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := configFromHCL(t, "source.pkr.hcl", tt.hcl)
			_, err := c.Spec("/work")
			var ve *spec.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Spec error = %v, want a *spec.ValidationError", err)
			}
			if len(ve.Errors) != len(tt.want) {
				t.Errorf("got %d errors, want %d:\n%v", len(ve.Errors), len(tt.want), err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestSpecFileMissing(t *testing.T) {
	c := &Config{SpecFile: filepath.Join(t.TempDir(), "nope.yaml")}
	_, err := c.Spec("/work")
	if err == nil || !strings.Contains(err.Error(), "spec_file") || !strings.Contains(err.Error(), "nope.yaml") {
		t.Errorf("Spec error = %v, want one naming spec_file and the file", err)
	}
}

// TestOverlayConfigUsesTheSpecMerge checks that config_json merges like the
// spec merges over its defaults (maps key by key, null kept as a removal)
// and leaves the spec file's configuration as it was.
func TestOverlayConfigUsesTheSpecMerge(t *testing.T) {
	dst := map[string]any{"authentication": map[string]any{"webhook": map[string]any{"enabled": true}}, "maxPods": 50}
	got, err := overlayConfig(dst, `{"authentication": {"webhook": {"cacheTTL": "30s"}}, "maxPods": null}`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"authentication": map[string]any{"webhook": map[string]any{"enabled": true, "cacheTTL": "30s"}}, "maxPods": nil}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("merged config (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]any{"authentication": map[string]any{"webhook": map[string]any{"enabled": true}}, "maxPods": 50}, dst); diff != "" {
		t.Errorf("the spec file's config was modified (-want +got):\n%s", diff)
	}
	got["authentication"].(map[string]any)["webhook"].(map[string]any)["enabled"] = false
	if dst["authentication"].(map[string]any)["webhook"].(map[string]any)["enabled"] != true {
		t.Error("the merged config shares maps with the spec file's")
	}
	if diff := cmp.Diff(spec.MergeConfig(dst, map[string]any{"authentication": map[string]any{"webhook": map[string]any{"cacheTTL": "30s"}}, "maxPods": nil}), want); diff != "" {
		t.Errorf("the plugin's merge differs from the spec's (-spec +plugin):\n%s", diff)
	}
}

// disk_size and var_size exclude each other: the one the configuration
// sets replaces the other from the spec file.
func TestSpecFileDiskSizeOverride(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "worker.yaml")
	if err := os.WriteFile(file, []byte(header+"output: {varSize: 2GiB}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := configFromHCL(t, "source.pkr.hcl", `spec_file = "`+file+`"
output { disk_size = "8GiB" }
`).Spec("/elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	if got.Output.DiskSize != 8*spec.GiB || got.Output.VarSize != 0 {
		t.Errorf("output %+v, want diskSize 8GiB and no varSize", got.Output)
	}
	if err := os.WriteFile(file, []byte(header+"output: {diskSize: 8GiB}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err = configFromHCL(t, "source.pkr.hcl", `spec_file = "`+file+`"
output { var_size = "2GiB" }
`).Spec("/elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	if got.Output.VarSize != 2*spec.GiB || got.Output.DiskSize != 0 {
		t.Errorf("output %+v, want varSize 2GiB and no diskSize", got.Output)
	}
}
