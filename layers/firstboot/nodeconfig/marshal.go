package nodeconfig

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/nodebake/nodebake/layers/firstboot/strictyaml"
)

// Marshal writes cfg as canonical YAML: fields in the order of the format,
// empty fields left out, PEM as | blocks, strings that other YAML readers
// could take for a number, boolean or null quoted. Parse reads it back to
// an equal config.
func Marshal(cfg *NodeConfig) ([]byte, error) {
	n := encode(reflect.ValueOf(cfg).Elem())
	if n == nil {
		return nil, fmt.Errorf("marshalling the node config: it is empty")
	}
	out, err := strictyaml.Marshal(n)
	if err != nil {
		return nil, fmt.Errorf("marshalling the node config: %w", err)
	}
	return out, nil
}

// encode returns the node for v, or nil when v is empty.
func encode(v reflect.Value) *strictyaml.Node {
	switch v.Kind() {
	case reflect.Struct:
		m := &strictyaml.Node{Kind: strictyaml.MappingNode}
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			if c := encode(v.Field(i)); c != nil {
				m.Content = append(m.Content, strictyaml.Scalar(name, strictyaml.Plain), c)
			}
		}
		if len(m.Content) == 0 {
			return nil
		}
		return m
	case reflect.String:
		if v.String() == "" {
			return nil
		}
		return stringNode(v.String())
	case reflect.Int:
		if v.Int() == 0 {
			return nil
		}
		return strictyaml.Scalar(strconv.FormatInt(v.Int(), 10), strictyaml.Plain)
	case reflect.Slice:
		if v.Len() == 0 {
			return nil
		}
		s := &strictyaml.Node{Kind: strictyaml.SequenceNode}
		for i := 0; i < v.Len(); i++ {
			item := encode(v.Index(i))
			if item == nil {
				if v.Index(i).Kind() == reflect.String {
					item = strictyaml.Scalar("", strictyaml.DoubleQuoted)
				} else {
					item = strictyaml.Scalar("", strictyaml.Plain) // null: the zero value
				}
			}
			s.Content = append(s.Content, item)
		}
		return s
	}
	return nil
}

// stringNode picks the style of a string value.
func stringNode(s string) *strictyaml.Node {
	switch {
	case strings.Contains(s, "\n"):
		return strictyaml.Scalar(s, strictyaml.Literal)
	case looksTyped(s):
		return strictyaml.Scalar(s, strictyaml.DoubleQuoted)
	}
	// Marshal falls back to double quotes when s cannot be plain.
	return strictyaml.Scalar(s, strictyaml.Plain)
}

// looksTyped reports whether a YAML 1.1 or 1.2 reader would take the plain
// scalar s for something other than a string.
func looksTyped(s string) bool {
	switch strings.ToLower(s) {
	case "", "~", "null", "true", "false", "yes", "no", "y", "n", "on", "off",
		".inf", "-.inf", "+.inf", ".nan":
		return true
	}
	u := strings.ReplaceAll(s, "_", "")
	if _, err := strconv.ParseFloat(u, 64); err == nil {
		return true
	}
	if _, err := strconv.ParseInt(u, 0, 64); err == nil {
		return true
	}
	// Dates (YAML 1.1 timestamps) and sexagesimal numbers.
	if len(s) >= 8 && s[0] >= '0' && s[0] <= '9' && s[4] == '-' && strings.Trim(s[:4], "0123456789") == "" {
		return true
	}
	if strings.Trim(s, "0123456789:.+-") == "" && strings.Contains(s, ":") && !strings.Contains(s, ".") {
		return true
	}
	return false
}
