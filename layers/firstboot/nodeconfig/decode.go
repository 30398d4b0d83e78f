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
	"unicode/utf8"

	"github.com/nodebake/nodebake/layers/firstboot/strictyaml"
)

// documentField names the node config as a whole in problems: its size,
// encoding and syntax.
const documentField = "config"

// MaxProblems is how many problems are reported at most; the last one then
// says how many more there were.
const MaxProblems = 100

// Parse decodes a node config: YAML in the strict subset strictyaml reads,
// or JSON when the document starts with '{'. A UTF-8 byte order mark is
// skipped. Documents larger than MaxSize, nested deeper than
// strictyaml.MaxDepth, in UTF-16 or not valid UTF-8, unknown fields,
// duplicate keys and values of the wrong type are errors. The error is
// always Problems: syntax problems name the field "config" and carry the
// line. Parse does not validate the values: see Load and Validate.
func Parse(data []byte) (*NodeConfig, error) {
	cfg, _, err := parse(data)
	return cfg, err
}

// parse is Parse that also returns the line of every field it decoded.
func parse(data []byte) (*NodeConfig, *fieldLines, error) {
	root, err := parseDocument(data, documentField, "node config")
	if err != nil {
		return nil, nil, err
	}
	var cfg NodeConfig
	d := decoder{lines: &fieldLines{fields: map[string]int{}, seqs: map[string]seqLines{}}}
	d.decode(root, reflect.ValueOf(&cfg).Elem(), "")
	if probs := d.probs.result(); len(probs) > 0 {
		return nil, nil, probs
	}
	return &cfg, d.lines, nil
}

// fieldLines is the document line of every decoded field, kept compactly:
// a sequence's items are one slice of lines, left out when they are all on
// the sequence's line (as in [a, b]), so that a long sequence costs a few
// bytes per item rather than a path each.
type fieldLines struct {
	fields map[string]int // by field path, sequence items excepted
	seqs   map[string]seqLines
}

type seqLines struct {
	len   int
	lines []int // nil: every item is on the sequence's line
}

// line returns the line of a field path, or false when the field is not
// in the document.
func (l *fieldLines) line(field string) (int, bool) {
	if l == nil {
		return 0, false
	}
	if n, ok := l.fields[field]; ok {
		return n, true
	}
	i := strings.LastIndexByte(field, '[')
	if i < 0 || !strings.HasSuffix(field, "]") {
		return 0, false
	}
	seq, ok := l.seqs[field[:i]]
	idx, err := strconv.Atoi(field[i+1 : len(field)-1])
	if !ok || err != nil || idx < 0 || idx >= seq.len {
		return 0, false
	}
	if seq.lines != nil {
		return seq.lines[idx], true
	}
	return l.fields[field[:i]], true
}

// parseDocument reads a YAML or JSON document within the bounds; problems
// name field, the document's what ("node config").
func parseDocument(data []byte, field, what string) (*strictyaml.Node, error) {
	fail := func(line int, format string, args ...any) error {
		return Problems{{Field: field, Message: fmt.Sprintf(format, args...), Line: line}}
	}
	if len(data) > MaxSize {
		return nil, fail(0, "the %s is %d bytes, larger than the limit of %d bytes", what, len(data), MaxSize)
	}
	if bytes.HasPrefix(data, []byte{0xFE, 0xFF}) || bytes.HasPrefix(data, []byte{0xFF, 0xFE}) {
		return nil, fail(0, "the %s is UTF-16 (or UTF-32) text; write it in UTF-8", what)
	}
	data = bytes.TrimPrefix(data, []byte("\uFEFF"))
	if !utf8.Valid(data) {
		off := 0
		for off < len(data) {
			r, n := utf8.DecodeRune(data[off:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			off += n
		}
		return nil, fail(1+bytes.Count(data[:off], []byte("\n")), "not valid UTF-8")
	}
	var root *strictyaml.Node
	var err error
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		root, err = jsonNode(data)
	} else {
		root, err = strictyaml.Parse(data)
	}
	var se *strictyaml.SyntaxError
	if errors.As(err, &se) {
		return nil, fail(se.Line, "%s", se.Msg)
	}
	if err != nil {
		return nil, fail(0, "%v", err)
	}
	if root == nil {
		return nil, fail(0, "the %s is empty", what)
	}
	return root, nil
}

// collector keeps the first MaxProblems-1 problems (in document order when
// ordered, else as added) and counts the rest, holding at most twice that
// many at any time.
type collector struct {
	ordered bool
	probs   Problems
	dropped int
}

func (c *collector) add(p Problem) {
	c.probs = append(c.probs, p)
	if len(c.probs) >= 2*MaxProblems {
		c.trim()
	}
}

func (c *collector) trim() {
	if c.ordered {
		sortProblems(c.probs)
	}
	if keep := MaxProblems - 1; len(c.probs) > keep {
		c.dropped += len(c.probs) - keep
		c.probs = c.probs[:keep]
	}
}

// result returns the problems, the last one counting those left out; nil
// when there are none.
func (c *collector) result() Problems {
	if len(c.probs) > MaxProblems || c.dropped > 0 {
		c.trim()
	} else if c.ordered {
		sortProblems(c.probs)
	}
	if c.dropped == 0 {
		return c.probs
	}
	return append(c.probs, Problem{Message: fmt.Sprintf("%d more problems not shown", c.dropped)})
}

// decoder sets Go values from node trees, collecting problems and the line
// of every field.
type decoder struct {
	probs collector
	lines *fieldLines // nil: not recorded
	// unsupported explains known fields that are refused, by field name.
	unsupported map[string]string
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var intRE = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)

// decode sets v from n, adding a problem for each mismatch. The recursion
// follows the Go type, whose depth is fixed; the node tree is not followed
// further than the type goes.
func (d *decoder) decode(n *strictyaml.Node, v reflect.Value, path string) {
	field := path
	if field == "" {
		field = documentField
	}
	add := func(format string, args ...any) {
		d.probs.add(Problem{Field: field, Message: fmt.Sprintf(format, args...), Line: n.Line})
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
				msg := "unknown field"
				if why, ok := d.unsupported[k.Value]; ok {
					msg = "not supported: " + why
				}
				d.probs.add(Problem{Field: join(path, k.Value), Message: msg, Line: k.Line})
				continue
			}
			if d.lines != nil {
				d.lines.fields[join(path, k.Value)] = k.Line
			}
			d.decode(n.Content[i+1], v.Field(fi), join(path, k.Value))
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
			if item.Kind == strictyaml.ScalarNode && s.Index(i).Kind() == reflect.String {
				s.Index(i).SetString(item.Value) // no path to make: nothing can be wrong
				continue
			}
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
		if d.lines != nil {
			seq := seqLines{len: len(n.Content)}
			for i, item := range n.Content {
				if item.Line != n.Line && seq.lines == nil {
					seq.lines = make([]int, len(n.Content))
					for j := range i {
						seq.lines[j] = n.Content[j].Line
					}
				}
				if seq.lines != nil {
					seq.lines[i] = item.Line
				}
			}
			d.lines.seqs[path] = seq
		}
	default:
		add("unsupported field type %s", v.Type())
	}
}

// lineCounter turns byte offsets into line numbers, counting each newline
// once when offsets only grow (as a decoder's do).
type lineCounter struct {
	data []byte
	off  int
	line int
}

func (c *lineCounter) at(off int) int {
	off = min(max(off, 0), len(c.data))
	if off < c.off {
		c.off, c.line = 0, 0
	}
	c.line += bytes.Count(c.data[c.off:off], []byte("\n"))
	c.off = off
	return c.line + 1
}

// jsonNode reads a JSON document into a node tree, so that JSON gets the
// same strictness (unknown fields, types, duplicate keys), field paths and
// depth bound as YAML. Strings become double-quoted scalars; numbers,
// booleans and null plain ones. The tokenizer does not recurse; this
// function recurses once per collection, at most strictyaml.MaxDepth deep.
func jsonNode(data []byte) (*strictyaml.Node, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	lines := lineCounter{data: data}
	lineAt := func(off int64) int {
		o := min(int(off), len(data))
		for o < len(data) && bytes.IndexByte([]byte(" \t\r\n,:"), data[o]) >= 0 {
			o++
		}
		return lines.at(o)
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
	var value func(depth int) (*strictyaml.Node, error)
	value = func(depth int) (*strictyaml.Node, error) {
		line := lineAt(dec.InputOffset())
		tok, err := dec.Token()
		if err != nil {
			return nil, fail(err)
		}
		switch t := tok.(type) {
		case json.Delim:
			if depth >= strictyaml.MaxDepth {
				return nil, &strictyaml.SyntaxError{Line: line, Msg: fmt.Sprintf("collections nested deeper than %d levels", strictyaml.MaxDepth)}
			}
			if t == '[' {
				seq := &strictyaml.Node{Kind: strictyaml.SequenceNode, Line: line}
				for dec.More() {
					item, err := value(depth + 1)
					if err != nil {
						return nil, err
					}
					seq.Content = append(seq.Content, item)
				}
				if _, err := dec.Token(); err != nil {
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
				k, ok := ktok.(string)
				if !ok {
					return nil, &strictyaml.SyntaxError{Line: kline, Msg: fmt.Sprintf("unexpected JSON token %v where a key was expected", ktok)}
				}
				if first, dup := seen[k]; dup {
					return nil, &strictyaml.SyntaxError{Line: kline, Msg: fmt.Sprintf("duplicate key %q (first on line %d)", k, first)}
				}
				seen[k] = kline
				v, err := value(depth + 1)
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
	root, err := value(0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &strictyaml.SyntaxError{Line: lineAt(dec.InputOffset()), Msg: "unexpected data after the JSON document"}
	}
	return root, nil
}
