package strictyaml

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Marshal writes n as a canonical document that Parse reads back as an
// equal node: two-space indentation, sequences of one-line scalars in flow
// style, multi-line strings as | or |- blocks where that represents them
// exactly, otherwise double quotes. A Plain scalar is written plain when
// that reads back the same, otherwise double-quoted. A nil or null node
// gives an empty document. An empty mapping below the top level is written
// {}. An empty top-level mapping, a top-level scalar and collections nested
// deeper than MaxDepth cannot be represented and are errors.
func Marshal(n *Node) ([]byte, error) {
	var b strings.Builder
	if n == nil || n.IsNull() {
		return nil, nil
	}
	var err error
	switch n.Kind {
	case MappingNode:
		if len(n.Content) == 0 {
			return nil, fmt.Errorf("top level: an empty mapping cannot be represented")
		}
		err = emitMapping(&b, n, 0, false, "", 1)
	case SequenceNode:
		if len(n.Content) == 0 {
			return nil, fmt.Errorf("an empty top-level sequence cannot be represented")
		}
		err = emitSequence(&b, n, 0, "", 1)
	default:
		return nil, fmt.Errorf("the top level must be a mapping or a sequence, not a %s", n.Kind)
	}
	if err != nil {
		return nil, err
	}
	return []byte(b.String()), nil
}

func pathJoin(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// tooDeep checks the nesting level of a collection about to be written.
func tooDeep(depth int, path string) error {
	if depth > MaxDepth {
		return fmt.Errorf("%s: collections nested deeper than %d levels", pathOrRoot(path), MaxDepth)
	}
	return nil
}

// emitMapping writes the entries of a non-empty m indented by ind, at
// nesting level depth; inline means the first key continues the current
// line (after "- ").
func emitMapping(b *strings.Builder, m *Node, ind int, inline bool, path string, depth int) error {
	if err := tooDeep(depth, path); err != nil {
		return err
	}
	if len(m.Content)%2 != 0 {
		return fmt.Errorf("%s: a mapping needs a value for every key", pathOrRoot(path))
	}
	seen := map[string]bool{}
	for i := 0; i < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k == nil || k.Kind != ScalarNode {
			return fmt.Errorf("%s: mapping keys must be scalars", pathOrRoot(path))
		}
		if seen[k.Value] {
			return fmt.Errorf("%s: duplicate key %q", pathOrRoot(path), k.Value)
		}
		seen[k.Value] = true
		if i > 0 || !inline {
			b.WriteString(strings.Repeat(" ", ind))
		}
		if plainProblem(k.Value, false) == "" {
			b.WriteString(k.Value)
		} else if err := writeDoubleQuoted(b, k.Value); err != nil {
			return fmt.Errorf("%s: %w", pathJoin(path, k.Value), err)
		}
		b.WriteString(":")
		if err := emitValue(b, v, ind, pathJoin(path, k.Value), depth); err != nil {
			return err
		}
	}
	return nil
}

func pathOrRoot(path string) string {
	if path == "" {
		return "top level"
	}
	return path
}

// emitValue writes v after "key:" or "-" (the line so far), belonging to a
// key or entry indented by ind inside a collection at level depth; it ends
// the line.
func emitValue(b *strings.Builder, v *Node, ind int, path string, depth int) error {
	if v == nil {
		return fmt.Errorf("%s: missing value", path)
	}
	switch v.Kind {
	case ScalarNode:
		b.WriteString(" ")
		if err := emitScalar(b, v, ind+2); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	case MappingNode:
		if len(v.Content) == 0 {
			if err := tooDeep(depth+1, path); err != nil {
				return err
			}
			b.WriteString(" {}\n")
			return nil
		}
		b.WriteString("\n")
		return emitMapping(b, v, ind+2, false, path, depth+1)
	case SequenceNode:
		if flowable(v) {
			if err := tooDeep(depth+1, path); err != nil {
				return err
			}
			b.WriteString(" ")
			return emitFlow(b, v, path)
		}
		b.WriteString("\n")
		return emitSequence(b, v, ind+2, path, depth+1)
	}
	return fmt.Errorf("%s: unknown node kind %v", path, v.Kind)
}

func emitSequence(b *strings.Builder, s *Node, ind int, path string, depth int) error {
	if err := tooDeep(depth, path); err != nil {
		return err
	}
	for i, item := range s.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		b.WriteString(strings.Repeat(" ", ind))
		b.WriteString("-")
		if item != nil && item.Kind == MappingNode && len(item.Content) > 0 {
			b.WriteString(" ")
			if err := emitMapping(b, item, ind+2, true, p, depth+1); err != nil {
				return err
			}
			continue
		}
		if err := emitValue(b, item, ind, p, depth); err != nil {
			return err
		}
	}
	return nil
}

// flowable reports whether a sequence is written as [a, b].
func flowable(s *Node) bool {
	for _, item := range s.Content {
		if item == nil || item.Kind != ScalarNode || strings.Contains(item.Value, "\n") {
			return false
		}
		if item.Style == Plain && item.Value != "" && plainProblem(item.Value, true) != "" {
			return false
		}
	}
	return true
}

func emitFlow(b *strings.Builder, s *Node, path string) error {
	b.WriteString("[")
	for i, item := range s.Content {
		if i > 0 {
			b.WriteString(", ")
		}
		switch {
		case item.IsNull():
			b.WriteString("null")
		case item.Style == Plain:
			b.WriteString(item.Value)
		default:
			if err := writeDoubleQuoted(b, item.Value); err != nil {
				return fmt.Errorf("%s[%d]: %w", path, i, err)
			}
		}
	}
	b.WriteString("]\n")
	return nil
}

// emitScalar writes a scalar whose block content (if any) is indented by
// ind, and ends the line.
func emitScalar(b *strings.Builder, v *Node, ind int) error {
	switch {
	case v.IsNull():
		b.WriteString("null\n")
		return nil
	case v.Style == Plain && plainProblem(v.Value, false) == "" && !isNullWord(v.Value):
		b.WriteString(v.Value)
		b.WriteString("\n")
		return nil
	case literalOK(v.Value):
		lines := strings.Split(strings.TrimSuffix(v.Value, "\n"), "\n")
		if strings.HasSuffix(v.Value, "\n") {
			b.WriteString("|\n")
		} else {
			b.WriteString("|-\n")
		}
		pad := strings.Repeat(" ", ind)
		for _, l := range lines {
			if l != "" {
				b.WriteString(pad)
				b.WriteString(l)
			}
			b.WriteString("\n")
		}
		return nil
	}
	if err := writeDoubleQuoted(b, v.Value); err != nil {
		return err
	}
	b.WriteString("\n")
	return nil
}

// literalOK reports whether s is a multi-line string that a | or |- block
// represents exactly.
func literalOK(s string) bool {
	if !strings.Contains(s, "\n") || strings.HasSuffix(s, "\n\n") || !utf8.ValidString(s) {
		return false
	}
	first := true
	for _, l := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		if l == "" {
			continue
		}
		if strings.Trim(l, " \t") == "" {
			return false // whitespace-only lines
		}
		if l[0] == '\t' || (first && l[0] == ' ') {
			return false // would change the detected indentation
		}
		first = false
		for _, r := range l {
			if r != '\t' && needsEscape(r) {
				return false
			}
		}
	}
	return !first
}

func writeDoubleQuoted(b *strings.Builder, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("string %q is not valid UTF-8", s)
	}
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		case 0:
			b.WriteString(`\0`)
		default:
			switch {
			case r < 0x20 || (r >= 0x7F && r <= 0xFF && needsEscape(r)):
				fmt.Fprintf(b, `\x%02X`, r)
			case needsEscape(r):
				fmt.Fprintf(b, `\u%04X`, r)
			default:
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return nil
}
