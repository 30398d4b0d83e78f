package main

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/nodebake/nodebake/layers/components"
	"github.com/nodebake/nodebake/layers/spec"
)

// The model: every struct type of the spec with its fields, each field with
// what the schema and the reference say about it. Both outputs are written
// from it.

// model is the spec's types.
type model struct {
	// root is the Spec type; types are the other struct types, in the
	// order they are first reached.
	root  *structType
	types []*structType
	enums []*enumType
	// components describes the catalogue's components (the keys of
	// components).
	components []componentInfo
}

type structType struct {
	name string // Go name: Base
	doc  string
	// path is where the type first appears in a spec ("base",
	// "components.<key>", "files[]"), for the reference.
	path   string
	fields []*field
}

// field is one YAML key of a struct.
type field struct {
	goName, name string
	goType       reflect.Type
	doc          string
	required     bool
	shape        *shape
	// note is what the reference adds to the doc comment: a limit Validate
	// checks that the schema cannot say.
	note string
	// def is the default, rendered as it is written in YAML; "" for none.
	def string
	// defJSON is the default for the schema; nil for none.
	defJSON any
}

// shape is a field's value: what JSON Schema says about it.
type shape struct {
	kind     string // "string", "integer", "boolean", "array", "object", "any", "size", "struct", "enum", "components"
	nullable bool
	// ref names the struct type (kind "struct") or enum (kind "enum").
	ref string
	// items is an array's element; values a map's; keys a map's key
	// (an enum, or a pattern).
	items, values *shape
	keyEnum       string
	keyPattern    string
	pattern       string
	constant      string
	min, max      *int64
	// multipleOf, when not 0, is what an integer must be a multiple of
	// (a size: whole MiB).
	multipleOf int64
	// octal, for a string, also takes a YAML integer written in octal
	// digits (mode: 644).
	octal bool
}

type enumType struct {
	name   string
	doc    string
	values []enumValue
}

type enumValue struct {
	value, doc string
}

type componentInfo struct {
	key, name, description string
	versionRequired        bool
	followsKubernetes      bool
	optional               bool
	major, majorReason     string
}

// rules are what the Go types do not say but Validate checks: required
// fields, patterns, ranges and constants, by TYPE.field (the YAML name).
// Each is checked against the types (a rule naming no field is an error)
// and, for required fields, against Validate (see the tests).
func rules() map[string]func(*field) {
	pattern := func(p string) func(*field) { return func(f *field) { f.shape.pattern = p } }
	required := func(f *field) { f.required = true }
	both := func(a, b func(*field)) func(*field) { return func(f *field) { a(f); b(f) } }
	rng := func(lo, hi int64) func(*field) {
		return func(f *field) {
			f.shape.min = &lo
			if hi >= lo {
				f.shape.max = &hi
			}
		}
	}
	// sizeRange is a size from lo to hi in whole MiB.
	sizeRange := func(lo, hi spec.Size) func(*field) {
		return both(rng(int64(lo), int64(hi)), func(f *field) { f.shape.multipleOf = int64(spec.MiB) })
	}
	values := func(p string) func(*field) { return func(f *field) { f.shape.values.pattern = p } }
	keys := func(p string) func(*field) { return func(f *field) { f.shape.keyPattern = p } }
	constant := func(v string) func(*field) { return func(f *field) { f.shape.constant = v } }
	note := func(format string, args ...any) func(*field) {
		return func(f *field) { f.note = fmt.Sprintf(format, args...) }
	}
	return map[string]func(*field){
		"Spec.apiVersion":             both(required, constant(spec.APIVersion)),
		"Spec.kind":                   both(required, constant(spec.Kind)),
		"Spec.name":                   pattern(spec.NamePattern),
		"Spec.sourceDateEpoch":        rng(0, spec.MaxSourceDateEpoch),
		"Spec.base":                   required,
		"Spec.kubernetes":             required,
		"Spec.components":             required,
		"Base.image":                  required,
		"Base.digest":                 pattern(spec.DigestPattern),
		"Kubernetes.version":          both(required, pattern(spec.VersionPattern)),
		"Component.version":           pattern(spec.VersionPattern),
		"Component.sha256":            values(spec.ChecksumPattern(64)),
		"Component.sha512":            values(spec.ChecksumPattern(128)),
		"Sources.retries":             rng(0, spec.MaxRetries),
		"KubeletSpec.settings":        keys(spec.FlagPattern),
		"KubeProxySpec.settings":      keys(spec.FlagPattern),
		"Image.ref":                   required,
		"Image.image":                 required,
		"Image.digest":                pattern(spec.DigestPattern),
		"File.path":                   required,
		"File.mode":                   both(pattern(spec.ModePattern), func(f *field) { f.shape.octal = true }),
		"File.uid":                    rng(0, spec.MaxID),
		"File.gid":                    rng(0, spec.MaxID),
		"Output.rootCompressionLevel": rng(spec.MinCompressionLvl, spec.MaxCompressionLvl),
		"Output.espSize":              sizeRange(spec.MinESPSize, spec.MaxESPSize),
		"Output.varSize":              sizeRange(spec.MinVarSize, spec.MaxVarSize),
		"Output.diskSize":             sizeRange(spec.MinDiskSize, spec.MaxDiskSize),
		"Output.kernelArgs":           note("Joined by spaces, at most %d bytes.", spec.MaxKernelArgsLength),
	}
}

// enums are the named string types whose values are a closed set, with
// their values and what each means.
func enums(d *docs) map[reflect.Type]*enumType {
	constDoc := func(tn string) func(string) string {
		return func(v string) string { return d.constDoc(tn, v) }
	}
	mk := func(t reflect.Type, vals []string, describe func(string) string) *enumType {
		e := &enumType{name: t.Name(), doc: d.typeDoc(t)}
		for _, v := range vals {
			e.values = append(e.values, enumValue{value: v, doc: describe(v)})
		}
		return e
	}
	str := func(vs ...any) []string {
		var out []string
		for _, v := range vs {
			out = append(out, fmt.Sprint(v))
		}
		return out
	}
	var formats, arches, sources, pods []any
	for _, f := range spec.Formats() {
		formats = append(formats, f)
	}
	for _, a := range spec.Arches() {
		arches = append(arches, a)
	}
	for _, s := range spec.ComponentSources() {
		sources = append(sources, s)
	}
	for _, p := range spec.PodNetworks() {
		pods = append(pods, p)
	}
	formatDoc := func(v string) string {
		i, _ := spec.Format(v).Info()
		name := "NAME" + i.Extension
		if i.Directory {
			name += "/"
		}
		return i.Summary + ": `" + name + "`"
	}
	return map[reflect.Type]*enumType{
		reflect.TypeFor[spec.Format]():          mk(reflect.TypeFor[spec.Format](), str(formats...), formatDoc),
		reflect.TypeFor[spec.Arch]():            mk(reflect.TypeFor[spec.Arch](), str(arches...), constDoc("Arch")),
		reflect.TypeFor[spec.ComponentSource](): mk(reflect.TypeFor[spec.ComponentSource](), str(sources...), constDoc("ComponentSource")),
		reflect.TypeFor[spec.PodNetwork]():      mk(reflect.TypeFor[spec.PodNetwork](), str(pods...), constDoc("PodNetwork")),
	}
}

// builder walks the spec's types.
type builder struct {
	docs     *docs
	rules    map[string]func(*field)
	used     map[string]bool
	enums    map[reflect.Type]*enumType
	seen     map[reflect.Type]*structType
	m        *model
	defaults reflect.Value
}

// buildModel reads the spec's types, with the doc comments of the Go
// sources under root (the module's directory).
func buildModel(d *docs) (*model, error) {
	b := &builder{docs: d, rules: rules(), used: map[string]bool{}, enums: enums(d),
		seen: map[reflect.Type]*structType{}, m: &model{}}
	def := &spec.Spec{}
	def.Default()
	b.defaults = reflect.ValueOf(def).Elem()
	root, err := b.structOf(reflect.TypeFor[spec.Spec](), "", b.defaults)
	if err != nil {
		return nil, err
	}
	b.m.root = root
	for k := range b.rules {
		if !b.used[k] {
			return nil, fmt.Errorf("rule %s names no field of the spec's types", k)
		}
	}
	for _, t := range []reflect.Type{reflect.TypeFor[spec.Format](), reflect.TypeFor[spec.Arch](), reflect.TypeFor[spec.ComponentSource](), reflect.TypeFor[spec.PodNetwork]()} {
		b.m.enums = append(b.m.enums, b.enums[t])
	}
	for _, c := range components.Catalogue() {
		b.m.components = append(b.m.components, componentInfo{
			key: string(c.Key), name: c.Name, description: c.Description,
			versionRequired:   c.Version == components.VersionRequired,
			followsKubernetes: c.Version == components.VersionKubernetes,
			optional:          c.Optional, major: c.Major, majorReason: c.MajorReason,
		})
	}
	return b.m, nil
}

// yamlName returns the YAML key of a struct field, "" when it is not
// serialized.
func yamlName(sf reflect.StructField) (string, error) {
	tag, ok := sf.Tag.Lookup("yaml")
	if !ok {
		return "", fmt.Errorf("field %s has no yaml tag", sf.Name)
	}
	name, opts, _ := strings.Cut(tag, ",")
	if name == "-" {
		return "", nil
	}
	if slices.Contains(strings.Split(opts, ","), "inline") {
		return "", fmt.Errorf("field %s: inline fields are not supported", sf.Name)
	}
	if name == "" {
		return "", fmt.Errorf("field %s: empty yaml name", sf.Name)
	}
	return name, nil
}

// structOf describes a struct type, first reached at path; def is its
// defaulted value when it has one (not inside a list or map).
func (b *builder) structOf(t reflect.Type, path string, def reflect.Value) (*structType, error) {
	if st, ok := b.seen[t]; ok {
		return st, nil
	}
	st := &structType{name: t.Name(), doc: yamlNames(t, b.docs.typeDoc(t)), path: path}
	b.seen[t] = st
	if t != reflect.TypeFor[spec.Spec]() {
		b.m.types = append(b.m.types, st)
	}
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, err := yamlName(sf)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.Name(), err)
		}
		if name == "" {
			continue
		}
		f := &field{goName: sf.Name, name: name, goType: sf.Type}
		f.doc = b.docs.fieldDoc(t, sf)
		sub := joinPath(path, name)
		var fdef reflect.Value
		if def.IsValid() {
			fdef = def.Field(i)
		}
		if f.shape, err = b.shapeOf(sf.Type, sub, fdef); err != nil {
			return nil, fmt.Errorf("%s.%s: %w", t.Name(), sf.Name, err)
		}
		if fdef.IsValid() {
			f.def, f.defJSON = defaultOf(fdef)
		}
		key := t.Name() + "." + name
		if r, ok := b.rules[key]; ok {
			r(f)
			b.used[key] = true
		}
		st.fields = append(st.fields, f)
	}
	return st, nil
}

func joinPath(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

// shapeOf describes a value of type t at path.
func (b *builder) shapeOf(t reflect.Type, path string, def reflect.Value) (*shape, error) {
	if e, ok := b.enums[t]; ok {
		return &shape{kind: "enum", ref: e.name}, nil
	}
	switch t {
	case reflect.TypeFor[spec.Size]():
		return &shape{kind: "size"}, nil
	case reflect.TypeFor[spec.ComponentSet]():
		c, err := b.structOf(reflect.TypeFor[spec.Component](), path+".<key>", reflect.Value{})
		if err != nil {
			return nil, err
		}
		return &shape{kind: "components", ref: c.name}, nil
	}
	if t.Kind() != reflect.Pointer && (t.Implements(yamlUnmarshaler()) || reflect.PointerTo(t).Implements(yamlUnmarshaler())) {
		// Its YAML form is its own, not what its Go type says.
		return nil, fmt.Errorf("type %s decodes its own YAML: describe it in specgen (shapeOf)", t)
	}
	switch t.Kind() {
	case reflect.Pointer:
		var inner reflect.Value
		if def.IsValid() && !def.IsNil() {
			inner = def.Elem()
		}
		s, err := b.shapeOf(t.Elem(), path, inner)
		if err != nil {
			return nil, err
		}
		s.nullable = true
		return s, nil
	case reflect.String:
		return &shape{kind: "string"}, nil
	case reflect.Bool:
		return &shape{kind: "boolean"}, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return &shape{kind: "integer"}, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		zero := int64(0)
		return &shape{kind: "integer", min: &zero}, nil
	case reflect.Interface:
		return &shape{kind: "any"}, nil
	case reflect.Slice:
		items, err := b.shapeOf(t.Elem(), path+"[]", reflect.Value{})
		if err != nil {
			return nil, err
		}
		return &shape{kind: "array", items: items}, nil
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return nil, fmt.Errorf("map key %s is not a string", t.Key())
		}
		values, err := b.shapeOf(t.Elem(), path+".<key>", reflect.Value{})
		if err != nil {
			return nil, err
		}
		s := &shape{kind: "object", values: values}
		if e, ok := b.enums[t.Key()]; ok {
			s.keyEnum = e.name
		}
		return s, nil
	case reflect.Struct:
		st, err := b.structOf(t, path, def)
		if err != nil {
			return nil, err
		}
		return &shape{kind: "struct", ref: st.name}, nil
	}
	return nil, fmt.Errorf("type %s (%s) has no schema", t, t.Kind())
}

// yamlUnmarshaler is the interface of types that decode their own YAML.
func yamlUnmarshaler() reflect.Type { return reflect.TypeFor[yaml.Unmarshaler]() }

// defaultOf renders a defaulted scalar (or list of scalars) as YAML would
// show it and as JSON; maps, structs and zero values have none here.
func defaultOf(v reflect.Value) (string, any) {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return "", nil
		}
		v = v.Elem()
	}
	if v.Type() == reflect.TypeFor[spec.Size]() {
		s := spec.Size(v.Int())
		if s == 0 {
			return "", nil
		}
		return s.String(), s.String()
	}
	switch v.Kind() {
	case reflect.String:
		if v.String() == "" {
			return "", nil
		}
		return v.String(), v.String()
	case reflect.Bool:
		return fmt.Sprint(v.Bool()), v.Bool()
	case reflect.Int, reflect.Int64, reflect.Int32:
		if v.Int() == 0 {
			return "", nil
		}
		return fmt.Sprint(v.Int()), v.Int()
	case reflect.Slice:
		if v.Len() == 0 || v.Type().Elem().Kind() != reflect.String {
			return "", nil
		}
		var s []string
		var j []any
		for i := range v.Len() {
			s = append(s, v.Index(i).String())
			j = append(j, v.Index(i).String())
		}
		return "[" + strings.Join(s, ", ") + "]", j
	}
	return "", nil
}
