package main

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/nodebake/nodebake/layers/spec"
)

// jsonSchema is a JSON Schema (draft 2020-12) node; the fields are in the
// order they are written.
type jsonSchema struct {
	Schema               string        `json:"$schema,omitempty"`
	Title                string        `json:"title,omitempty"`
	Ref                  string        `json:"$ref,omitempty"`
	Description          string        `json:"description,omitempty"`
	Type                 any           `json:"type,omitempty"`
	Const                *string       `json:"const,omitempty"`
	Enum                 []any         `json:"enum,omitempty"`
	Pattern              string        `json:"pattern,omitempty"`
	Minimum              *int64        `json:"minimum,omitempty"`
	Maximum              *int64        `json:"maximum,omitempty"`
	MultipleOf           int64         `json:"multipleOf,omitempty"`
	Default              any           `json:"default,omitempty"`
	Items                *jsonSchema   `json:"items,omitempty"`
	Properties           *props        `json:"properties,omitempty"`
	PropertyNames        *jsonSchema   `json:"propertyNames,omitempty"`
	AdditionalProperties any           `json:"additionalProperties,omitempty"`
	Required             []string      `json:"required,omitempty"`
	AnyOf                []*jsonSchema `json:"anyOf,omitempty"`
	Defs                 *props        `json:"$defs,omitempty"`
}

// props is a JSON object whose keys keep their order.
type props struct {
	keys []string
	vals map[string]*jsonSchema
}

func (p *props) add(k string, v *jsonSchema) {
	if p.vals == nil {
		p.vals = map[string]*jsonSchema{}
	}
	p.keys = append(p.keys, k)
	p.vals[k] = v
}

func (p *props) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range p.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		b.Write(kb)
		b.WriteByte(':')
		vb, err := marshal(p.vals[k])
		if err != nil {
			return nil, err
		}
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// marshal encodes v without HTML escaping (descriptions hold "<name>").
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// schemaJSON writes the model as a JSON Schema, indented, ending in a
// newline.
func schemaJSON(m *model) ([]byte, error) {
	root := structSchema(m.root)
	root.Schema = "https://json-schema.org/draft/2020-12/schema"
	root.Title = "nodebake worker image spec (" + spec.APIVersion + " " + spec.Kind + ")"
	root.Defs = &props{}
	for _, t := range m.types {
		root.Defs.add(t.name, structSchema(t))
	}
	for _, e := range m.enums {
		var vals []any
		for _, v := range e.values {
			vals = append(vals, v.value)
		}
		root.Defs.add(e.name, &jsonSchema{Description: enumDescription(e), Type: "string", Enum: vals})
	}
	root.Defs.add("components", componentsSchema(m))
	b, err := marshal(root)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

func enumDescription(e *enumType) string {
	var b strings.Builder
	b.WriteString(e.doc)
	for _, v := range e.values {
		b.WriteString("\n- " + valueLine("`"+v.value+"`", v.doc))
	}
	return strings.TrimSpace(b.String())
}

// structSchema is a struct type as an object that takes its fields only.
func structSchema(t *structType) *jsonSchema {
	s := &jsonSchema{Description: t.doc, Type: "object", Properties: &props{}, AdditionalProperties: false}
	for _, f := range t.fields {
		n := shapeSchema(f.shape)
		n.Description = strings.TrimSpace(f.doc + " " + f.note)
		n.Default = f.defJSON
		s.Properties.add(f.name, n)
		if f.required {
			s.Required = append(s.Required, f.name)
		}
	}
	return s
}

func ref(name string) string { return "#/$defs/" + name }

func shapeSchema(s *shape) *jsonSchema {
	var n *jsonSchema
	switch s.kind {
	case "string", "integer", "boolean":
		n = &jsonSchema{Type: s.kind, Pattern: s.pattern, Minimum: s.min, Maximum: s.max}
		if s.constant != "" {
			c := s.constant
			n.Const = &c
		}
		if s.octal {
			// YAML reads mode: 644 as the integer 644.
			zero, most := int64(0), int64(7777)
			n = &jsonSchema{AnyOf: []*jsonSchema{n, {Type: "integer", Minimum: &zero, Maximum: &most}}}
		}
	case "any":
		n = &jsonSchema{}
	case "enum", "struct":
		n = &jsonSchema{Ref: ref(s.ref)}
	case "components":
		n = &jsonSchema{Ref: ref("components")}
	case "size":
		// A size of 0 is refused (a field left out gets its default). A
		// string's range is checked by Validate only.
		one := int64(1)
		minimum := &one
		if s.min != nil {
			minimum = s.min
		}
		n = &jsonSchema{AnyOf: []*jsonSchema{
			{Type: "integer", Minimum: minimum, Maximum: s.max, MultipleOf: s.multipleOf},
			{Type: "string", Pattern: spec.SizePattern},
		}}
	case "array":
		n = &jsonSchema{Type: "array", Items: shapeSchema(s.items)}
	case "object":
		n = &jsonSchema{Type: "object", AdditionalProperties: shapeSchema(s.values)}
		switch {
		case s.keyEnum != "":
			n.PropertyNames = &jsonSchema{Ref: ref(s.keyEnum)}
		case s.keyPattern != "":
			n.PropertyNames = &jsonSchema{Pattern: s.keyPattern}
		}
		if s.values.kind == "any" {
			n.AdditionalProperties = nil // any value: the default
		}
	}
	if s.nullable {
		if t, ok := n.Type.(string); ok {
			n.Type = []string{t, "null"}
		} else {
			n = &jsonSchema{AnyOf: []*jsonSchema{n, {Type: "null"}}}
		}
	}
	return n
}

// componentsSchema is the components map: one key per component of the
// catalogue.
func componentsSchema(m *model) *jsonSchema {
	s := &jsonSchema{
		Description: "The components baked into the image, by their key in the component catalogue. " +
			"Every component that is not optional is baked, and so listed (with its checksum, or another source).",
		Type: "object", Properties: &props{}, AdditionalProperties: false,
	}
	for _, c := range m.components {
		n := &jsonSchema{Ref: ref("Component"), Description: componentSummary(c)}
		if c.versionRequired {
			n.Required = []string{"version"}
		}
		// Default bakes it from its release, which needs a checksum only
		// the spec can give: so the spec lists it.
		if !c.optional {
			s.Required = append(s.Required, c.key)
		}
		s.Properties.add(c.key, n)
	}
	return s
}

// componentSummary says what a component is and how its version is
// chosen.
func componentSummary(c componentInfo) string {
	s := c.name + ": " + c.description + "."
	switch {
	case c.followsKubernetes:
		s += " The version defaults to kubernetes.version."
	case c.versionRequired:
		s += " The version is required."
	}
	if c.major != "" {
		s += " Only " + c.major + ".x: " + c.majorReason + "."
	}
	if c.optional {
		s += " Optional: baked only when listed."
	}
	return s
}
