// Package strictyaml parses and emits a small, strict subset of YAML: block
// mappings, block sequences, one-line flow sequences of scalars ([a, b]),
// the empty mapping {}, plain, single- and double-quoted one-line scalars,
// | and |- literal block scalars, comments and an optional leading "---".
// Everything else (anchors, aliases, tags, other flow mappings, folded
// scalars, multi-line plain or quoted scalars, several documents, duplicate
// keys, tabs in indentation) is rejected with a line number.
//
// Parsing is bounded: documents larger than MaxSize and collections nested
// deeper than MaxDepth are errors, and nothing recurses deeper than
// MaxDepth, whatever the input. Without anchors and aliases, the parsed
// tree is never larger than the document.
//
// It uses the standard library only, so that the first-boot program stays a
// small static binary.
package strictyaml

import "fmt"

// Kind is the kind of a Node.
type Kind uint8

// The kinds of node.
const (
	ScalarNode Kind = iota + 1
	MappingNode
	SequenceNode
)

func (k Kind) String() string {
	switch k {
	case ScalarNode:
		return "scalar"
	case MappingNode:
		return "mapping"
	case SequenceNode:
		return "sequence"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Style is how a scalar was (or is to be) written.
type Style uint8

// The scalar styles.
const (
	Plain Style = iota
	SingleQuoted
	DoubleQuoted
	Literal
)

// Node is one node of a parsed document.
type Node struct {
	Kind Kind
	// Style and Value are set for scalars. A null (empty plain value, ~ or
	// null) is a plain scalar with an empty Value.
	Style Style
	Value string
	// Line is the 1-based line the node starts on (0 for built nodes).
	Line int
	// Content holds a sequence's items, or a mapping's keys and values
	// alternately (key0, value0, key1, value1, ...). Keys are scalars.
	Content []*Node
}

// IsNull reports whether n is the null scalar.
func (n *Node) IsNull() bool {
	return n != nil && n.Kind == ScalarNode && n.Style == Plain && n.Value == ""
}

// Quoted reports whether a scalar was written in a quoted or block style,
// so it is a string whatever it looks like.
func (n *Node) Quoted() bool { return n.Style != Plain }

// Scalar returns a scalar node.
func Scalar(value string, style Style) *Node {
	return &Node{Kind: ScalarNode, Style: style, Value: value}
}

// Equal reports whether a and b are the same value: same kinds, scalar
// values, quotedness and content, ignoring lines and the kind of quoting
// (mapping keys compare by value only).
// It walks the trees with an explicit stack, so any depth is safe.
func Equal(a, b *Node) bool {
	type pair struct{ a, b *Node }
	stack := []pair{{a, b}}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		a, b := p.a, p.b
		if a == nil || b == nil {
			if a != b {
				return false
			}
			continue
		}
		if a.Kind != b.Kind || len(a.Content) != len(b.Content) {
			return false
		}
		if a.Kind == ScalarNode && (a.Value != b.Value || a.Quoted() != b.Quoted()) {
			return false
		}
		for i := range a.Content {
			if a.Kind == MappingNode && i%2 == 0 {
				// Keys are strings however they are written.
				if a.Content[i] == nil || b.Content[i] == nil || a.Content[i].Value != b.Content[i].Value {
					return false
				}
				continue
			}
			stack = append(stack, pair{a.Content[i], b.Content[i]})
		}
	}
	return true
}

// SyntaxError is a document that is not in the supported subset.
type SyntaxError struct {
	Line int
	Msg  string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }
