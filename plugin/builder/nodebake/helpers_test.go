package nodebake

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// decodeHCL decodes the body of a nodebake source block the way Packer
// does: through the generated HCL2 schema of Config. jsonencode is the one
// function offered.
func decodeHCL(t *testing.T, name, src string) cty.Value {
	t.Helper()
	f, diags := hclparse.NewParser().ParseHCL([]byte(src), name)
	if diags.HasErrors() {
		t.Fatalf("parsing %s: %v", name, diags)
	}
	ctx := &hcl.EvalContext{Functions: map[string]function.Function{"jsonencode": stdlib.JSONEncodeFunc}}
	v, diags := hcldec.Decode(f.Body, hcldec.ObjectSpec(new(Config).FlatMapstructure().HCL2Spec()), ctx)
	if diags.HasErrors() {
		t.Fatalf("decoding %s: %v", name, diags)
	}
	return v
}

// decodeHCLFile decodes testdata/NAME.
func decodeHCLFile(t *testing.T, name string) cty.Value {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return decodeHCL(t, name, string(b))
}

// builderVars are the variables Packer passes to Prepare besides the
// source's body.
func builderVars(buildName string) map[string]any {
	return map[string]any{
		"packer_build_name":   buildName,
		"packer_builder_type": "nodebake",
		"packer_core_version": "1.15.0",
		"packer_debug":        "false",
		"packer_force":        "false",
		"packer_on_error":     "cleanup",
	}
}

// fakeProgram writes an executable file and returns its path.
func fakeProgram(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}
