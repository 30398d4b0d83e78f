package nodeconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/nodebake/nodebake/layers/firstboot/strictyaml"
)

// Parse decodes a node config: YAML in the strict subset strictyaml reads,
// or JSON when the document starts with '{'. Unknown fields, duplicate keys
// and values of the wrong type are errors. A syntax error is a
// *strictyaml.SyntaxError; field errors are Problems naming every field at
// once. Parse does not validate the values: see Validate.
func Parse(data []byte) (*NodeConfig, error) {
	var root *strictyaml.Node
	var err error
	if t := bytes.TrimLeft(data, " \t\r\n\uFEFF"); len(t) > 0 && t[0] == '{' {
		root, err = jsonNode(data)
	} else {
		root, err = strictyaml.Parse(data)
	}
	if err != nil {
		return nil, err
	}
	if root == nil {
		return nil, Problems{{Message: "the node config is empty"}}
	}
	var cfg NodeConfig
	var probs Problems
	decode(root, reflect.ValueOf(&cfg).Elem(), "", &probs)
	if len(probs) > 0 {
		return nil, probs
	}
	return &cfg, nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var intRE = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)

// decode sets v from n, adding a problem for each mismatch.
func decode(n *strictyaml.Node, v reflect.Value, path string, probs *Problems) {
	add := func(format string, args ...any) {
		*probs = append(*probs, Problem{Field: path, Message: fmt.Sprintf(format, args...), Line: n.Line})
	}
	if n.IsNull() {
		return // the zero value
	}
	switch v.Kind() {
	case reflect.Struct:
		if n.Kind != strictyaml.MappingNode {
			add("must be a mapping, not a %s", n.Kind)
			return
		}
		fields := map[string]int{}
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			fields[name] = i
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			fi, ok := fields[k.Value]
			if !ok {
				*probs = append(*probs, Problem{Field: join(path, k.Value), Message: "unknown field", Line: k.Line})
				continue
			}
			decode(n.Content[i+1], v.Field(fi), join(path, k.Value), probs)
		}
	case reflect.String:
		if n.Kind != strictyaml.ScalarNode {
			add("must be a string, not a %s", n.Kind)
			return
		}
		v.SetString(n.Value)
	case reflect.Int:
		if n.Kind != strictyaml.ScalarNode || n.Quoted() || !intRE.MatchString(n.Value) {
			add("must be an integer")
			return
		}
		i, err := strconv.ParseInt(n.Value, 10, 32)
		if err != nil {
			add("integer out of range")
			return
		}
		v.SetInt(i)
	case reflect.Slice:
		if n.Kind != strictyaml.SequenceNode {
			add("must be a list, not a %s", n.Kind)
			return
		}
		if len(n.Content) == 0 {
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i), probs)
		}
		v.Set(s)
	default:
		add("unsupported field type %s", v.Type())
	}
}

// jsonNode reads a JSON document into a node tree, so that JSON gets the
// same strictness (unknown fields, types, duplicate keys) and field paths
// as YAML. Strings become double-quoted scalars; numbers, booleans and null
// plain ones.
func jsonNode(data []byte) (*strictyaml.Node, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	lineAt := func(off int64) int {
		o := min(int(off), len(data))
		for o < len(data) && bytes.IndexByte([]byte(" \t\r\n,:"), data[o]) >= 0 {
			o++
		}
		return 1 + bytes.Count(data[:o], []byte("\n"))
	}
	fail := func(err error) error {
		off := dec.InputOffset()
		var se *json.SyntaxError
		if errors.As(err, &se) {
			off = se.Offset
		}
		msg := strings.TrimPrefix(err.Error(), "json: ")
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			msg = "unexpected end of JSON input"
		}
		return &strictyaml.SyntaxError{Line: lineAt(off), Msg: msg}
	}
	var value func() (*strictyaml.Node, error)
	value = func() (*strictyaml.Node, error) {
		line := lineAt(dec.InputOffset())
		tok, err := dec.Token()
		if err != nil {
			return nil, fail(err)
		}
		switch t := tok.(type) {
		case json.Delim:
			if t == '[' {
				seq := &strictyaml.Node{Kind: strictyaml.SequenceNode, Line: line}
				for dec.More() {
					item, err := value()
					if err != nil {
						return nil, err
					}
					seq.Content = append(seq.Content, item)
				}
				_, err := dec.Token()
				if err != nil {
					return nil, fail(err)
				}
				return seq, nil
			}
			m := &strictyaml.Node{Kind: strictyaml.MappingNode, Line: line}
			seen := map[string]int{}
			for dec.More() {
				kline := lineAt(dec.InputOffset())
				ktok, err := dec.Token()
				if err != nil {
					return nil, fail(err)
				}
				k := ktok.(string) // the decoder only yields strings as keys
				if first, dup := seen[k]; dup {
					return nil, &strictyaml.SyntaxError{Line: kline, Msg: fmt.Sprintf("duplicate key %q (first on line %d)", k, first)}
				}
				seen[k] = kline
				v, err := value()
				if err != nil {
					return nil, err
				}
				m.Content = append(m.Content, &strictyaml.Node{Kind: strictyaml.ScalarNode, Style: strictyaml.DoubleQuoted, Value: k, Line: kline}, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, fail(err)
			}
			return m, nil
		case string:
			return &strictyaml.Node{Kind: strictyaml.ScalarNode, Style: strictyaml.DoubleQuoted, Value: t, Line: line}, nil
		case json.Number:
			return &strictyaml.Node{Kind: strictyaml.ScalarNode, Value: t.String(), Line: line}, nil
		case bool:
			return &strictyaml.Node{Kind: strictyaml.ScalarNode, Value: strconv.FormatBool(t), Line: line}, nil
		case nil:
			return &strictyaml.Node{Kind: strictyaml.ScalarNode, Line: line}, nil
		}
		return nil, &strictyaml.SyntaxError{Line: line, Msg: fmt.Sprintf("unexpected JSON token %v", tok)}
	}
	root, err := value()
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &strictyaml.SyntaxError{Line: lineAt(dec.InputOffset()), Msg: "unexpected data after the JSON document"}
	}
	return root, nil
}
