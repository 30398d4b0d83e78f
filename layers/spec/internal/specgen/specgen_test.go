package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/nodebake/nodebake/layers/components"
	"github.com/nodebake/nodebake/layers/spec"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := moduleRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// TestGeneratedFilesAreFresh fails when schema.json or docs/spec.md is not
// what the spec's types and doc comments give: after a change to the spec,
// run go generate ./layers/spec.
func TestGeneratedFilesAreFresh(t *testing.T) {
	root := repoRoot(t)
	schema, ref, err := Generate(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		path string
		want []byte
	}{{SchemaFile, schema}, {DocsFile, ref}} {
		got, err := os.ReadFile(filepath.Join(root, f.path))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, f.want) {
			t.Errorf("%s is stale: run go generate ./layers/spec (first difference at line %d)", f.path, firstDiffLine(got, f.want))
		}
	}
	// The embedded copy is the file.
	if !bytes.Equal(spec.Schema(), schema) {
		t.Errorf("spec.Schema() is not %s as generated: run go generate ./layers/spec and rebuild", SchemaFile)
	}
}

func firstDiffLine(a, b []byte) int {
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return i + 1
		}
	}
	return min(len(al), len(bl)) + 1
}

// compile compiles the generated schema with a JSON Schema validator,
// which also checks it against the draft 2020-12 meta-schema.
func compile(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(spec.Schema()))
	if err != nil {
		t.Fatalf("the schema is not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("spec.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("spec.json")
	if err != nil {
		t.Fatalf("compiling the schema: %v", err)
	}
	return s
}

// yamlToJSON reads a YAML document as the JSON value a validator sees.
func yamlToJSON(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSchemaValidatesSpecs: the shipped spec and every valid spec of the
// spec package's tests validate against the schema.
func TestSchemaValidatesSpecs(t *testing.T) {
	root := repoRoot(t)
	s := compile(t)
	files := []string{"images/worker.yaml"}
	for _, n := range []string{"minimal.yaml", "worker.yaml", "effective.golden.yaml"} {
		files = append(files, filepath.Join("layers/spec/testdata", n))
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := spec.Parse(b); err != nil {
			t.Fatalf("%s does not parse as a spec: %v", f, err)
		}
		if err := s.Validate(yamlToJSON(t, b)); err != nil {
			t.Errorf("%s does not validate against the schema:\n%v", f, err)
		}
	}
}

// minimal is the smallest valid spec, as a YAML tree to edit.
func minimal(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "layers/spec/testdata/minimal.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m["images"] = []any{map[string]any{"ref": "registry.k8s.io/pause:3.10.1", "image": "oci:build/images/pause"}}
	m["files"] = []any{map[string]any{"path": "/etc/motd", "content": "hi\n", "mode": 644}}
	return m
}

// at returns the map at a dotted path ("components.runc", "files.0").
func at(m map[string]any, path string) map[string]any {
	cur := any(m)
	for _, p := range strings.Split(path, ".") {
		if p == "" {
			continue
		}
		switch c := cur.(type) {
		case map[string]any:
			cur = c[p]
		case []any:
			var i int
			fmt.Sscan(p, &i)
			cur = c[i]
		}
	}
	out, _ := cur.(map[string]any)
	return out
}

// specErr parses, defaults and validates a YAML tree as a spec.
func specErr(t *testing.T, m map[string]any) error {
	t.Helper()
	b, err := yaml.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	s, err := spec.Parse(b)
	if err != nil {
		return err
	}
	s.Default()
	return s.Validate()
}

func schemaErr(t *testing.T, s *jsonschema.Schema, m map[string]any) error {
	t.Helper()
	b, err := yaml.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return s.Validate(yamlToJSON(t, b))
}

// TestRequiredAgreesWithValidate: a field the schema requires is one
// without which Validate refuses the spec, and the edited specs below
// stay valid for both.
func TestRequiredAgreesWithValidate(t *testing.T) {
	s := compile(t)
	if err := specErr(t, minimal(t)); err != nil {
		t.Fatalf("the base spec is invalid: %v", err)
	}
	if err := schemaErr(t, s, minimal(t)); err != nil {
		t.Fatalf("the base spec does not validate: %v", err)
	}
	m, err := buildModel(newDocs(repoRoot(t)))
	if err != nil {
		t.Fatal(err)
	}
	// Where each struct type sits in the base spec.
	where := map[string]string{"Spec": "", "Base": "base", "Kubernetes": "kubernetes", "Image": "images.0", "File": "files.0"}
	checked := 0
	for _, st := range append([]*structType{m.root}, m.types...) {
		for _, f := range st.fields {
			if !f.required {
				continue
			}
			path, ok := where[st.name]
			if !ok {
				t.Errorf("%s.%s is required, but the test does not know where %s sits in a spec", st.name, f.name, st.name)
				continue
			}
			doc := minimal(t)
			delete(at(doc, path), f.name)
			if specErr(t, doc) == nil {
				t.Errorf("the schema requires %s.%s, but a spec without it is valid", st.name, f.name)
			}
			if schemaErr(t, s, doc) == nil {
				t.Errorf("a spec without %s.%s validates against the schema", st.name, f.name)
			}
			checked++
		}
	}
	// The components the catalogue always bakes: the spec lists them,
	// since only it can pin their release (or name another source).
	for _, c := range components.Catalogue() {
		doc := minimal(t)
		delete(at(doc, "components"), string(c.Key))
		wantRequired := !c.Optional
		if got := schemaErr(t, s, doc) != nil; got != wantRequired {
			t.Errorf("components.%s: schema requires it %v, want %v", c.Key, got, wantRequired)
		}
		if got := specErr(t, doc) != nil; got != wantRequired {
			t.Errorf("components.%s: Validate requires it %v, want %v", c.Key, got, wantRequired)
		}
		checked++
	}
	if checked < 10 {
		t.Errorf("only %d required fields checked", checked)
	}
}

// TestSchemaRefuses: specs that are wrong in what the schema can see are
// refused by both the schema and Validate.
func TestSchemaRefuses(t *testing.T) {
	s := compile(t)
	tests := []struct {
		name string
		edit func(m map[string]any)
	}{
		{"unknown top-level field", func(m map[string]any) { m["bogus"] = 1 }},
		{"wrong apiVersion", func(m map[string]any) { m["apiVersion"] = "nodebake.io/v1" }},
		{"wrong kind", func(m map[string]any) { m["kind"] = "Pod" }},
		{"name not a DNS label", func(m map[string]any) { m["name"] = "Worker_1" }},
		{"unknown arch", func(m map[string]any) { m["arch"] = "riscv64" }},
		{"negative epoch", func(m map[string]any) { m["sourceDateEpoch"] = -1 }},
		{"epoch past 32 bits", func(m map[string]any) { m["sourceDateEpoch"] = int64(1) << 32 }},
		{"unknown base field", func(m map[string]any) { at(m, "base")["tag"] = "x" }},
		{"bad base digest", func(m map[string]any) { at(m, "base")["digest"] = "sha256:XYZ" }},
		{"version without v", func(m map[string]any) { at(m, "kubernetes")["version"] = "1.35.4" }},
		{"unknown pod network", func(m map[string]any) { at(m, "kubernetes")["podNetwork"] = "flannel" }},
		{"unknown component", func(m map[string]any) { at(m, "components")["dockerd"] = map[string]any{"version": "v1.0.0"} }},
		{"unknown component field", func(m map[string]any) { at(m, "components.runc")["checksum"] = "x" }},
		{"unknown component source", func(m map[string]any) { at(m, "components.runc")["from"] = "apt" }},
		{"short sha256", func(m map[string]any) { at(m, "components.runc.sha256")["amd64"] = "abc" }},
		{"sha256 for an unknown arch", func(m map[string]any) {
			at(m, "components.runc")["sha256"] = map[string]any{"sparc": strings.Repeat("a", 64)}
		}},
		{"component version not semver", func(m map[string]any) { at(m, "components.runc")["version"] = "latest" }},
		{"retries out of range", func(m map[string]any) { m["sources"] = map[string]any{"retries": 11} }},
		{"retries a string", func(m map[string]any) { m["sources"] = map[string]any{"retries": "three"} }},
		{"kubelet flag with dashes", func(m map[string]any) { m["kubelet"] = map[string]any{"settings": map[string]any{"--v": "2"}} }},
		{"unknown format", func(m map[string]any) { m["output"] = map[string]any{"formats": []any{"iso"}} }},
		{"compression level 0", func(m map[string]any) { m["output"] = map[string]any{"rootCompressionLevel": 23} }},
		{"size with a decimal unit", func(m map[string]any) { m["output"] = map[string]any{"espSize": "256MB"} }},
		{"size 0", func(m map[string]any) { m["output"] = map[string]any{"varSize": 0} }},
		{"ESP below its minimum", func(m map[string]any) { m["output"] = map[string]any{"espSize": 64 << 20} }},
		{"ESP above its maximum", func(m map[string]any) { m["output"] = map[string]any{"espSize": 8 << 30} }},
		{"size not whole MiB", func(m map[string]any) { m["output"] = map[string]any{"varSize": 100<<20 + 1} }},
		{"image without ref", func(m map[string]any) { delete(at(m, "images.0"), "ref") }},
		{"file mode not octal", func(m map[string]any) { at(m, "files.0")["mode"] = "0999" }},
		{"negative uid", func(m map[string]any) { at(m, "files.0")["uid"] = -1 }},
		{"files not a list", func(m map[string]any) { m["files"] = map[string]any{"path": "/x"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := minimal(t)
			tt.edit(m)
			if err := schemaErr(t, s, m); err == nil {
				t.Error("the schema accepts it")
			}
			if err := specErr(t, m); err == nil {
				t.Error("Validate accepts it: the schema refuses what the spec takes")
			}
		})
	}
}

// TestSizePatternAgreesWithParseSize: the schema's pattern for sizes takes
// what ParseSize takes.
func TestSizePatternAgreesWithParseSize(t *testing.T) {
	re := regexp.MustCompile(spec.SizePattern)
	for _, s := range []string{"256MiB", "1GiB", "512KiB", "1TiB", "1048576", " 256 MiB ", "0", "256MB", "256mib", "-1MiB", "+1MiB", "1.5GiB", "GiB", "", "0x10", "1_000", "256 MiB MiB"} {
		_, err := spec.ParseSize(s)
		if re.MatchString(s) != (err == nil) {
			t.Errorf("%q: pattern matches %v, ParseSize error %v", s, re.MatchString(s), err)
		}
	}
}

// TestDescriptionsFromDocComments: the descriptions come from the doc
// comments, with the Go field names made YAML keys, and the enums and
// component keys from their one home.
func TestDescriptionsFromDocComments(t *testing.T) {
	var s struct {
		Properties map[string]struct {
			Description string `json:"description"`
		} `json:"properties"`
		Defs map[string]struct {
			Description string         `json:"description"`
			Enum        []string       `json:"enum"`
			Properties  map[string]any `json:"properties"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(spec.Schema(), &s); err != nil {
		t.Fatal(err)
	}
	if d := s.Properties["sourceDateEpoch"].Description; !strings.HasPrefix(d, "`sourceDateEpoch` is the fixed timestamp") {
		t.Errorf("sourceDateEpoch: %q", d)
	}
	if d := s.Defs["File"].Description; !strings.Contains(d, "Exactly one of `content`, `source`, `link` and `directory` is set") {
		t.Errorf("File: %q", d)
	}
	var formats []string
	for _, f := range spec.Formats() {
		formats = append(formats, string(f))
	}
	if got := s.Defs["Format"].Enum; strings.Join(got, ",") != strings.Join(formats, ",") {
		t.Errorf("Format enum %v, want %v", got, formats)
	}
	for _, i := range spec.FormatTable() {
		if !strings.Contains(s.Defs["Format"].Description, i.Summary) {
			t.Errorf("Format description lacks %q", i.Summary)
		}
	}
	var keys []string
	for k := range s.Defs["components"].Properties {
		keys = append(keys, k)
	}
	if len(keys) != len(components.Keys()) {
		t.Errorf("component keys %v, want %v", keys, components.Keys())
	}
	for _, k := range components.Keys() {
		if s.Defs["components"].Properties[string(k)] == nil {
			t.Errorf("the schema lacks component %s", k)
		}
	}
}

// TestGenerateNeedsTheSources: run away from the sources, the generator
// refuses rather than write a reference without descriptions.
func TestGenerateNeedsTheSources(t *testing.T) {
	_, _, err := Generate(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "doc comment") {
		t.Errorf("Generate(empty dir) = %v", err)
	}
	if errors.Is(err, os.ErrNotExist) {
		t.Log(err)
	}
}

// duration stands for a type a future spec field might bring that decodes
// its own YAML ("30s"): its Go kind (int64) would say the wrong thing.
type duration int64

func (d *duration) UnmarshalYAML(*yaml.Node) error { return nil }

// TestOwnYAMLFormsAreRefused: the generator refuses a type that decodes
// its own YAML unless it is described explicitly, rather than write a
// schema from its Go kind that refuses valid specs.
func TestOwnYAMLFormsAreRefused(t *testing.T) {
	b := &builder{enums: map[reflect.Type]*enumType{}}
	if _, err := b.shapeOf(reflect.TypeFor[duration](), "x", reflect.Value{}); err == nil || !strings.Contains(err.Error(), "decodes its own YAML") {
		t.Errorf("shapeOf(duration) = %v", err)
	}
	if _, err := b.shapeOf(reflect.TypeFor[*duration](), "x", reflect.Value{}); err == nil {
		t.Error("shapeOf(*duration) accepted it")
	}
	if s, err := b.shapeOf(reflect.TypeFor[spec.Size](), "x", reflect.Value{}); err != nil || s.kind != "size" {
		t.Errorf("shapeOf(Size) = %+v, %v; the size is described explicitly", s, err)
	}
}
