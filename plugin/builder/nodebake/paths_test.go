package nodebake

import (
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hcldec"

	"github.com/nodebake/nodebake/layers/spec"
)

func TestConfigPath(t *testing.T) {
	tests := []struct{ spec, want string }{
		{"", ""},
		{"name", "name"},
		{"sourceDateEpoch", "source_date_epoch"},
		{"kubernetes.serviceCIDR", "kubernetes.service_cidr"},
		{"components.cniPlugins.sha256.amd64", "component[2].sha256.amd64"},
		{"components.kubeProxy.version", "component[0].version"},
		// A component no block sets came from the spec file.
		{"components.kubelet.version", "components.kubelet.version"},
		{"files[2].mode", "file[2].mode"},
		{"images[0].ref", "image[0].ref"},
		{"kubelet.config.authentication.anonymous.enabled", "kubelet.config_json.authentication.anonymous.enabled"},
		{"kubeProxy.config.ipvs", "kube_proxy.config_json.ipvs"},
		{"kubeProxy.settings.v", "kube_proxy.settings.v"},
		{`kubelet.settings["a b"]`, `kubelet.settings["a b"]`},
		{"output.espSize", "output.esp_size"},
		{"output.kernelArgs[1]", "output.kernel_args[1]"},
		{"containerd.systemdCgroup", "containerd.systemd_cgroup"},
		// Fields the configuration does not have stay as they are.
		{"apiVersion", "apiVersion"},
		{"bogus.field", "bogus.field"},
		{"kubernetes.bogus", "kubernetes.bogus"},
	}
	blocks := map[string]int{"kubeProxy": 0, "cniPlugins": 2}
	block := func(key string) (int, bool) { i, ok := blocks[key]; return i, ok }
	for _, tt := range tests {
		if got := configPath(tt.spec, block); got != tt.want {
			t.Errorf("configPath(%q) = %q, want %q", tt.spec, got, tt.want)
		}
	}
}

// TestEverySpecFieldInSchema walks every field of the spec and checks that
// its configuration path exists in the generated HCL2 schema: a field added
// to the spec without a configuration field fails here.
func TestEverySpecFieldInSchema(t *testing.T) {
	schema := hcldec.ObjectSpec(new(Config).FlatMapstructure().HCL2Spec())
	leaves := specLeaves(reflect.TypeFor[spec.Spec](), "")
	if len(leaves) < 40 {
		t.Fatalf("found only %d spec fields: %v", len(leaves), leaves)
	}
	for _, p := range leaves {
		if unmappedFields[p] {
			continue
		}
		cp := configPath(p, func(string) (int, bool) { return 0, true })
		if !inSchema(schema, splitPath(cp)) {
			t.Errorf("spec field %s (configuration path %s) cannot be set from HCL", p, cp)
		}
	}
}

// specLeaves lists the paths of a spec type's leaves: scalars, lists of
// scalars, maps and free-form content. List elements are [0], map keys k.
func specLeaves(t reflect.Type, path string) []string {
	t = deref(t)
	join := func(name string) string {
		if path == "" {
			return name
		}
		return path + "." + name
	}
	switch {
	case t.Kind() == reflect.Struct:
		var out []string
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			out = append(out, specLeaves(f.Type, join(name))...)
		}
		return out
	case t.Kind() == reflect.Slice && deref(t.Elem()).Kind() == reflect.Struct:
		return specLeaves(t.Elem(), path+"[0]")
	case t.Kind() == reflect.Map && deref(t.Elem()).Kind() == reflect.Struct:
		return specLeaves(t.Elem(), join("key"))
	}
	return []string{path}
}

// inSchema follows a configuration path through an HCL2 schema.
func inSchema(s hcldec.ObjectSpec, segs []pathSeg) bool {
	if len(segs) == 0 {
		return false
	}
	switch e := s[segs[0].text].(type) {
	case *hcldec.AttrSpec:
		return true // the rest is a map key, a list index or JSON content
	case *hcldec.BlockSpec:
		o, ok := e.Nested.(hcldec.ObjectSpec)
		return ok && (len(segs) == 1 || inSchema(o, segs[1:]))
	case *hcldec.BlockListSpec:
		o, ok := e.Nested.(hcldec.ObjectSpec)
		if !ok || len(segs) < 2 || !segs[1].index {
			return false
		}
		return len(segs) == 2 || inSchema(o, segs[2:])
	}
	return false
}
