package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"github.com/nodebake/nodebake/layers/components"
	"github.com/nodebake/nodebake/layers/failure"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
	"gopkg.in/yaml.v3"
)

// Load reads and parses the spec file at path and sets Dir to the file's
// directory. Like Parse it does not apply defaults; see LoadAndValidate.
// Problems with the content are reported as a *ValidationError whose File
// is path. Every error is of kind failure.Invalid.
func Load(path string) (*Spec, error) {
	s, err := load(path)
	return s, failure.New(failure.Invalid, err)
}

// MaxSize is the largest spec file read: a spec is a page of settings; a
// large file belongs in files[].source.
const MaxSize = 4 << 20

// readSpec reads a spec file: a regular file (not a pipe, which would
// block, nor a device) of at most MaxSize bytes.
func readSpec(path string) ([]byte, error) {
	data, err := nodeconfig.ReadRegularFile(path, MaxSize)
	if err != nil {
		return nil, fmt.Errorf("reading spec: %s: %w", path, err)
	}
	return data, nil
}

func load(path string) (*Spec, error) {
	data, err := readSpec(path)
	if err != nil {
		return nil, err
	}
	s, err := Parse(data)
	if err != nil {
		var ve *ValidationError
		if errors.As(err, &ve) {
			ve.File = path
			return nil, ve
		}
		return nil, fmt.Errorf("parsing spec %s: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("locating spec %s: %w", path, err)
	}
	s.Dir = filepath.Dir(abs)
	return s, nil
}

// LoadAndValidate loads the spec at path, fills in its defaults and
// validates it: the result is the effective spec, ready to build.
//
// Every problem is reported at once: structural ones (unknown fields,
// wrong types) together with those validation finds in the rest. Every
// error is of kind failure.Invalid.
func LoadAndValidate(path string) (*Spec, error) {
	s, err := loadAndValidate(path)
	return s, failure.New(failure.Invalid, err)
}

func loadAndValidate(path string) (*Spec, error) {
	data, err := readSpec(path)
	if err != nil {
		return nil, err
	}
	s, perr := parse(data)
	if s == nil {
		var ve *ValidationError
		if errors.As(perr, &ve) {
			ve.File = path
		}
		return nil, perr
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("locating spec %s: %w", path, err)
	}
	s.Dir = filepath.Dir(abs)
	s.Default()
	verr := s.Validate()
	if perr == nil && verr == nil {
		return s, nil
	}
	merged := &ValidationError{File: path}
	seen := map[FieldError]bool{}
	for _, e := range []error{perr, verr} {
		var ve *ValidationError
		if errors.As(e, &ve) {
			for _, fe := range ve.Errors {
				if !seen[fe] {
					seen[fe] = true
					merged.Errors = append(merged.Errors, fe)
				}
			}
		} else if e != nil {
			return nil, e
		}
	}
	return nil, merged
}

// Parse decodes a spec strictly: unknown fields, duplicate keys and values
// of the wrong type are errors, reported all at once as a *ValidationError
// naming each field path and line (of kind failure.Invalid). It does not
// apply defaults.
func Parse(data []byte) (*Spec, error) {
	s, err := parse(data)
	if err != nil {
		return nil, failure.New(failure.Invalid, err)
	}
	return s, nil
}

// parse is Parse, but on structural errors (unknown fields, wrong types) it
// also returns a leniently decoded spec when one can be had.
func parse(data []byte) (*Spec, error) {
	if len(data) > MaxSize {
		return nil, &ValidationError{Errors: []FieldError{{Msg: fmt.Sprintf("spec is %d bytes; the limit is %d", len(data), MaxSize)}}}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ValidationError{Errors: []FieldError{{Msg: "spec is empty"}}}
		}
		return nil, &ValidationError{Errors: []FieldError{{Msg: err.Error()}}}
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, &ValidationError{Errors: []FieldError{{Msg: err.Error()}}}
	default:
		return nil, &ValidationError{Errors: []FieldError{{
			Msg: fmt.Sprintf("spec must be a single YAML document (another one starts at line %d)", next.Line),
		}}}
	}
	var errs errorList
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if n := expandedSize(root, maxNodes); n > maxNodes {
		return nil, &ValidationError{Errors: []FieldError{{Msg: fmt.Sprintf("spec expands to more than %d YAML nodes (through aliases); the limit is %d", maxNodes, maxNodes)}}}
	}
	checkNode(&errs, "", root, reflect.TypeFor[Spec](), 0)
	if len(errs) > 0 {
		// Decode what can be decoded, so the caller can report the
		// problems of the rest (see LoadAndValidate) along with these.
		var lenient Spec
		if yaml.Unmarshal(data, &lenient) != nil {
			return nil, errs.err()
		}
		// Unknown components are reported here already.
		for k := range lenient.Components {
			if _, ok := components.Lookup(k); !ok {
				delete(lenient.Components, k)
			}
		}
		return &lenient, errs.err()
	}

	var s Spec
	dec = yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		// checkNode should have caught it; keep yaml's message and lines.
		return nil, &ValidationError{Errors: []FieldError{{Msg: err.Error()}}}
	}
	if s.Kubelet.Config != nil {
		s.Kubelet.Config = deepCopy(s.Kubelet.Config).(map[string]any)
	}
	if s.KubeProxy.Config != nil {
		s.KubeProxy.Config = deepCopy(s.KubeProxy.Config).(map[string]any)
	}
	return &s, nil
}

var (
	yamlUnmarshaler  = reflect.TypeFor[yaml.Unmarshaler]()
	componentSetType = reflect.TypeFor[ComponentSet]()
)

// maxDepth bounds the walk through aliases.
const maxDepth = 64

// maxNodes bounds the nodes of a spec with its aliases expanded: every
// walk of the document visits each alias's target again.
const maxNodes = 1 << 20

// expandedSize counts the nodes of n with aliases expanded, up to just
// past limit, without recursion.
func expandedSize(n *yaml.Node, limit int) int {
	count := 0
	stack := []*yaml.Node{n}
	for len(stack) > 0 && count <= limit {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		count++
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			stack = append(stack, n.Alias)
			continue
		}
		stack = append(stack, n.Content...)
	}
	return count
}

// checkNode checks a YAML node against the Go type it will decode into:
// unknown fields, duplicate keys, and scalars that do not fit.
func checkNode(errs *errorList, path string, n *yaml.Node, t reflect.Type, depth int) {
	if depth > maxDepth {
		errs.add(path, "nested too deeply (line %d)", n.Line)
		return
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		checkNode(errs, path, n.Alias, t, depth+1)
		return
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return
	}
	if t.Kind() == reflect.Pointer {
		checkNode(errs, path, n, t.Elem(), depth+1)
		return
	}
	if reflect.PointerTo(t).Implements(yamlUnmarshaler) {
		decodeLeaf(errs, path, n, t)
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			errs.add(path, "expected a mapping, got %s (line %d)", describeNode(n), n.Line)
			return
		}
		fields, names := yamlFields(t)
		walkMapping(errs, path, n, func(key string, k, v *yaml.Node) {
			ft, ok := fields[key]
			if !ok {
				errs.add(field(path, key), "unknown field%s (line %d)", suggest(key, names), k.Line)
				return
			}
			checkNode(errs, field(path, key), v, ft, depth+1)
		})
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			errs.add(path, "expected a mapping, got %s (line %d)", describeNode(n), n.Line)
			return
		}
		walkMapping(errs, path, n, func(key string, k, v *yaml.Node) {
			if t == componentSetType {
				if _, ok := components.Lookup(ComponentName(key)); !ok {
					errs.add(field(path, key), "unknown component%s (line %d; known: %s)", suggest(key, componentKeys()), k.Line, components.KnownKeys())
					return
				}
			}
			checkNode(errs, field(path, key), v, t.Elem(), depth+1)
		})
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			errs.add(path, "expected a list, got %s (line %d)", describeNode(n), n.Line)
			return
		}
		for i, item := range n.Content {
			checkNode(errs, index(path, i), item, t.Elem(), depth+1)
		}
	case reflect.Interface:
		checkAny(errs, path, n, depth+1)
	default:
		decodeLeaf(errs, path, n, t)
	}
}

// walkMapping calls fn for every key of a mapping, reporting non-scalar and
// duplicate keys. Merge keys (<<) are left to the decoder.
func walkMapping(errs *errorList, path string, n *yaml.Node, fn func(key string, k, v *yaml.Node)) {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			errs.add(path, "mapping key must be a scalar, got %s (line %d)", describeNode(k), k.Line)
			continue
		}
		if k.ShortTag() == "!!merge" {
			continue
		}
		if first, dup := seen[k.Value]; dup {
			errs.add(field(path, k.Value), "duplicate key (first at line %d, again at line %d)", first, k.Line)
			continue
		}
		seen[k.Value] = k.Line
		fn(k.Value, k, v)
	}
}

// checkAny walks free-form content (kubelet.config, kubeProxy.config) for
// duplicate and non-scalar keys; its fields are checked by Validate.
func checkAny(errs *errorList, path string, n *yaml.Node, depth int) {
	if depth > maxDepth {
		errs.add(path, "nested too deeply (line %d)", n.Line)
		return
	}
	switch n.Kind {
	case yaml.AliasNode:
		if n.Alias != nil {
			checkAny(errs, path, n.Alias, depth+1)
		}
	case yaml.MappingNode:
		walkMapping(errs, path, n, func(key string, _, v *yaml.Node) {
			checkAny(errs, field(path, key), v, depth+1)
		})
	case yaml.SequenceNode:
		for i, item := range n.Content {
			checkAny(errs, index(path, i), item, depth+1)
		}
	}
}

var yamlLineRE = regexp.MustCompile(`^line \d+: `)

// decodeLeaf decodes a scalar into a new value of type t and reports why
// it does not fit.
func decodeLeaf(errs *errorList, path string, n *yaml.Node, t reflect.Type) {
	custom := reflect.PointerTo(t).Implements(yamlUnmarshaler)
	if !custom && n.Kind != yaml.ScalarNode {
		errs.add(path, "expected %s, got %s (line %d)", describeType(t), describeNode(n), n.Line)
		return
	}
	err := n.Decode(reflect.New(t).Interface())
	if err == nil {
		return
	}
	var te *yaml.TypeError
	switch {
	case custom && errors.As(err, &te):
		msgs := make([]string, len(te.Errors))
		for i, m := range te.Errors {
			msgs[i] = yamlLineRE.ReplaceAllString(m, "")
		}
		errs.add(path, "%s (line %d)", strings.Join(msgs, "; "), n.Line)
	case custom:
		errs.add(path, "%s (line %d)", strings.TrimPrefix(err.Error(), "yaml: "), n.Line)
	default:
		errs.add(path, "expected %s, got %s (line %d)", describeType(t), describeNode(n), n.Line)
	}
}

// yamlFields maps the yaml names of a struct's fields to their types.
func yamlFields(t reflect.Type) (map[string]reflect.Type, []string) {
	fields := map[string]reflect.Type{}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
		names = append(names, name)
	}
	sort.Strings(names)
	return fields, names
}

// describeNode names what a YAML node holds.
func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	switch n.ShortTag() {
	case "!!str":
		return fmt.Sprintf("string %q", n.Value)
	case "!!int":
		return "integer " + n.Value
	case "!!float":
		return "number " + n.Value
	case "!!bool":
		return "boolean " + n.Value
	}
	return fmt.Sprintf("%q", n.Value)
}

// describeType names a Go type for an error message.
func describeType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return t.String()
}
