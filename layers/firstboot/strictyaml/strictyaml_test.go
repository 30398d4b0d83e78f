package strictyaml

import (
	"fmt"
	"strings"
	"testing"
)

// dump renders a node compactly for comparisons: scalars as %q (quoted
// ones prefixed with '), null as ~.
func dump(n *Node) string {
	if n == nil {
		return "<nil>"
	}
	switch n.Kind {
	case ScalarNode:
		if n.IsNull() {
			return "~"
		}
		if n.Quoted() {
			return "'" + fmt.Sprintf("%q", n.Value)
		}
		return fmt.Sprintf("%q", n.Value)
	case MappingNode:
		var parts []string
		for i := 0; i < len(n.Content); i += 2 {
			parts = append(parts, dump(n.Content[i])+":"+dump(n.Content[i+1]))
		}
		return "{" + strings.Join(parts, ",") + "}"
	case SequenceNode:
		var parts []string
		for _, c := range n.Content {
			parts = append(parts, dump(c))
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	return "?"
}

func TestParse(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "<nil>"},
		{"comments only", "# a\n\n  # b\n", "<nil>"},
		{"doc start", "--- # c\na: b\n", `{"a":"b"}`},
		{"plain values", "a: b c\nd: http://x:1/y\ne: 10.8.0.1/24 # comment\nf:\n", `{"a":"b c","d":"http://x:1/y","e":"10.8.0.1/24","f":~}`},
		{"nulls", "a: ~\nb: null\nc: NULL\nd: 'null'\n", `{"a":~,"b":~,"c":~,"d":'"null"}`},
		{"quoted", `a: 'it''s'` + "\n" + `b: "x\ty\u00e9\"\\"` + "\n", `{"a":'"it's","b":'"x\tyé\"\\"}`},
		{"quoted keys", `"a b": 1` + "\n'c': 2\n", `{'"a b":"1",'"c":"2"}`},
		{"nested", "a:\n  b:\n    c: d\n  e: f\n", `{"a":{"b":{"c":"d"},"e":"f"}}`},
		{"sequence", "a:\n  - x\n  - y\n", `{"a":["x","y"]}`},
		{"same-indent sequence", "a:\n- x\n- y\nb: z\n", `{"a":["x","y"],"b":"z"}`},
		{"compact mappings", "peers:\n  - k: v\n    l: [a, 'b', \"c\"]\n  -   m: n\n", `{"peers":[{"k":"v","l":["a",'"b",'"c"]},{"m":"n"}]}`},
		{"nested sequence", "- - a\n  - b\n- c\n", `[["a","b"],"c"]`},
		{"block item", "-\n  a: b\n-\n", `[{"a":"b"},~]`},
		{"flow", "a: []\nb: [ x , y ] # c\nc: [null, '']\n", `{"a":[],"b":["x","y"],"c":[~,'""]}`},
		{"literal", "a: |\n  l1\n\n   l2\n\n\nb: |-\n  x\n  y\nc: |\n\nd: x\n", `{"a":'"l1\n\n l2\n","b":'"x\ny","c":'"","d":"x"}`},
		{"literal in sequence", "- |\n  pem\n- k: |\n    v\n", `['"pem\n",{"k":'"v\n"}]`},
		{"literal keeps comments", "a: |\n  # not a comment\n  x\n", `{"a":'"# not a comment\nx\n"}`},
		{"crlf", "a: b\r\nc: d\r\n", `{"a":"b","c":"d"}`},
		{"indented root", "  a: b\n  c: d\n", `{"a":"b","c":"d"}`},
		{"empty mapping", "a: {}\nb:\n  - {} # c\n", `{"a":{},"b":[{}]}`},
		{"bom", "\uFEFFa: b\n", `{"a":"b"}`},
		{"deepest compact sequence", strings.Repeat("- ", MaxDepth) + "x\n", strings.Repeat("[", MaxDepth) + `"x"` + strings.Repeat("]", MaxDepth)},
		{"deepest flow sequence", strings.Repeat("- ", MaxDepth-1) + "[x]\n", strings.Repeat("[", MaxDepth) + `"x"` + strings.Repeat("]", MaxDepth)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := Parse([]byte(tt.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := dump(n); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			roundTrip(t, []byte(tt.in))
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, in string
		line     int
		want     string
	}{
		{"anchor", "a: &x b\n", 1, "anchors"},
		{"alias", "a: b\nc: *x\n", 2, "aliases"},
		{"tag", "a: !!str b\n", 1, "tags"},
		{"flow mapping", "a: {b: c}\n", 1, "flow mappings"},
		{"folded", "a: >\n  b\n", 1, "folded"},
		{"duplicate", "a: 1\nb: 2\na: 3\n", 3, `duplicate key "a" (first on line 1)`},
		{"tab indent", "a:\n\tb: c\n", 2, "tabs are not allowed in indentation"},
		{"tab indent in sequence", "a:\n  -\tb\n", 2, "tabs"},
		{"multi-line plain", "a: b\n  c\n", 2, "multi-line plain"},
		{"nested mapping on one line", "a: b: c\n", 1, "mapping values are not allowed"},
		{"two documents", "a: b\n---\nc: d\n", 2, "more than one document"},
		{"document end", "a: b\n...\n", 2, "'...'"},
		{"directive", "%YAML 1.2\n---\na: b\n", 1, "directives"},
		{"scalar document", "just text\n", 1, "must be a mapping or a sequence"},
		{"sequence on key line", "a: - b\n", 1, "cannot start on the line"},
		{"unterminated quote", "a: 'b\n  c'\n", 1, "unterminated quoted scalar"},
		{"unterminated flow", "a: [b,\n  c]\n", 1, "unterminated flow sequence"},
		{"nested flow", "a: [[b]]\n", 1, "nested flow"},
		{"trailing comma", "a: [b, ]\n", 1, "trailing comma"},
		{"bad escape", `a: "\q"` + "\n", 1, "unknown escape"},
		{"keep chomping", "a: |+\n  b\n", 1, "only the | and |- block scalar headers"},
		{"indentation indicator", "a: |2\n  b\n", 1, "only the | and |- block scalar headers"},
		{"complex key", "? a\n: b\n", 1, "must be a mapping or a sequence"},
		{"complex key later", "x: y\n? a\n", 2, "expected a mapping key"},
		{"unexpected indentation", "a: b\n   c: d\n", 2, "unexpected indentation"},
		{"bad dedent", "a:\n    b: c\n  d: e\n", 3, "unexpected indentation"},
		{"sequence in mapping", "a: b\n- c\n", 2, "sequence entry where a mapping key"},
		{"control character", "a: b\x01\n", 1, "not allowed"},
		{"invalid utf-8", "a: \xff\n", 1, "UTF-8"},
		{"text after quote", "a: 'b' c\n", 1, "unexpected text"},
		{"leading spaces in literal", "a: |\n\n      \n  b\n", 4, "leading empty line"},
		{"comment without space", "a: 'b'#c\n", 1, "unexpected text"},
		{"flow mapping with content", "a: {b}\n", 1, "flow mappings"},
		{"text after empty mapping", "a: {} b\n", 1, "unexpected text"},
		{"nested compact sequences", strings.Repeat("- ", MaxDepth+1) + "x\n", 1, "nested deeper than 32 levels"},
		{"nested flow sequence", strings.Repeat("- ", MaxDepth) + "[x]\n", 1, "nested deeper than 32 levels"},
		{"nested empty mapping", strings.Repeat("- ", MaxDepth) + "{}\n", 1, "nested deeper than 32 levels"},
		{"nested block mappings", deepMapping(MaxDepth + 1), MaxDepth + 1, "nested deeper than 32 levels"},
		{"hostile nesting", strings.Repeat("- ", 1<<20) + "x\n", 1, "nested deeper than 32 levels"},
		{"too large", "a: " + strings.Repeat("x", MaxSize) + "\n", 1, "at most 4194304 are read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := Parse([]byte(tt.in))
			if err == nil {
				t.Fatalf("Parse succeeded: %s", dump(n))
			}
			se, ok := err.(*SyntaxError)
			if !ok {
				t.Fatalf("error %T %v, want *SyntaxError", err, err)
			}
			if se.Line != tt.line || !strings.Contains(se.Msg, tt.want) {
				t.Errorf("got %v, want line %d containing %q", err, tt.line, tt.want)
			}
		})
	}
}

// deepMapping returns n block mappings nested by indentation.
func deepMapping(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString(strings.Repeat(" ", i) + "k:\n")
	}
	b.WriteString(strings.Repeat(" ", n) + "k: v\n")
	return b.String()
}

// nest returns n sequences nested in each other around a scalar.
func nest(n int) *Node {
	x := Scalar("x", Plain)
	for i := 0; i < n; i++ {
		x = &Node{Kind: SequenceNode, Content: []*Node{x, Scalar("y", Plain)}}
	}
	return x
}

func TestEqualDeep(t *testing.T) {
	// Equal walks without recursion: trees far deeper than MaxDepth (built
	// by hand; Parse never makes them) compare without exhausting the stack.
	a, b := nest(100_000), nest(100_000)
	if !Equal(a, b) {
		t.Error("equal deep trees compare unequal")
	}
	b.Content[0].Content[1].Value = "z"
	if Equal(a, b) {
		t.Error("different deep trees compare equal")
	}
}

func TestMarshalDeepest(t *testing.T) {
	out, err := Marshal(nest(MaxDepth))
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(out)
	if err != nil || !Equal(back, nest(MaxDepth)) {
		t.Fatalf("round trip of the deepest tree: %v\n%s", err, out)
	}
}

func TestMarshal(t *testing.T) {
	pem := "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
	n := &Node{Kind: MappingNode, Content: []*Node{
		Scalar("name", Plain), Scalar("worker01", Plain),
		Scalar("port", Plain), Scalar("51820", Plain),
		Scalar("quoted", Plain), Scalar("51820", DoubleQuoted),
		Scalar("needs quotes", Plain), Scalar("a: b # c", DoubleQuoted),
		Scalar("plain fallback", Plain), Scalar("-", Plain),
		Scalar("pem", Plain), Scalar(pem, Literal),
		Scalar("nonl", Plain), Scalar("a\nb", Literal),
		Scalar("ips", Plain), {Kind: SequenceNode, Content: []*Node{Scalar("10.0.0.1/32", Plain), Scalar("x,y", DoubleQuoted)}},
		Scalar("none", Plain), {Kind: SequenceNode},
		Scalar("nomap", Plain), {Kind: MappingNode},
		Scalar("peers", Plain), {Kind: SequenceNode, Content: []*Node{
			{Kind: MappingNode, Content: []*Node{Scalar("k", Plain), Scalar("v", Plain), Scalar("l", Plain), Scalar("w", Plain)}},
			Scalar("", Plain),
		}},
		Scalar("weird", Plain), Scalar(" lead\n", Literal),
	}}
	got, err := Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	want := `name: worker01
port: 51820
quoted: "51820"
needs quotes: "a: b # c"
plain fallback: "-"
pem: |
  -----BEGIN CERTIFICATE-----
  MIIB
  -----END CERTIFICATE-----
nonl: |-
  a
  b
ips: [10.0.0.1/32, "x,y"]
none: []
nomap: {}
peers:
  - k: v
    l: w
  - null
weird: " lead\n"
`
	if string(got) != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	back, err := Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	n.Content[9].Style = DoubleQuoted // a plain "-" had to be quoted
	if !Equal(back, n) {
		t.Errorf("round trip:\n%s\n%s", dump(back), dump(n))
	}
}

func TestMarshalErrors(t *testing.T) {
	tests := []struct {
		name string
		n    *Node
		want string
	}{
		{"scalar root", Scalar("x", Plain), "top level must be"},
		{"empty top-level mapping", &Node{Kind: MappingNode}, "top level: an empty mapping"},
		{"too deep", nest(MaxDepth + 1), "collections nested deeper than 32 levels"},
		{"duplicate", &Node{Kind: MappingNode, Content: []*Node{Scalar("a", Plain), Scalar("1", Plain), Scalar("a", Plain), Scalar("2", Plain)}}, "duplicate key"},
		{"invalid utf-8", &Node{Kind: MappingNode, Content: []*Node{Scalar("a", Plain), Scalar("\xff", DoubleQuoted)}}, "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Marshal(tt.n)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}
}

func roundTrip(t *testing.T, data []byte) {
	t.Helper()
	n, err := Parse(data)
	if err != nil {
		return
	}
	out, err := Marshal(n)
	if err != nil {
		// Only empty top-level sequences cannot be written back.
		if n.Kind == SequenceNode && len(n.Content) == 0 {
			return
		}
		t.Fatalf("Marshal of %s: %v", dump(n), err)
	}
	back, err := Parse(out)
	if err != nil {
		t.Fatalf("re-parse of\n%s\nfailed: %v (from %s)", out, err, dump(n))
	}
	if !Equal(n, back) {
		t.Fatalf("round trip changed the value:\n%s\n%s\nemitted:\n%s", dump(n), dump(back), out)
	}
	again, err := Marshal(back)
	if err != nil || string(again) != string(out) {
		t.Fatalf("emitting is not stable:\n%s\n%s", out, again)
	}
}

func FuzzParse(f *testing.F) {
	seeds := []string{
		"a: b\n",
		"apiVersion: nodebake.io/v1alpha1\nkind: NodeConfig\nwireguard:\n  peers:\n    - publicKey: x\n      allowedIPs: [10.0.0.1/32, 10.200.1.0/24]\n",
		"a: |\n  x\n\n  y\nb: |-\n  z\n",
		"- - a\n  - 'b'\n- \"c\\x01\"\n",
		"a:\n- x\n-\n  b: ~\n",
		"\"k\": [null, '', \"\\u2028\"]\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip(t, data)
	})
}

// depth returns the nesting level of n's deepest collection, without
// recursion.
func depth(n *Node) int {
	type item struct {
		n *Node
		d int
	}
	deepest := 0
	stack := []item{{n, 0}}
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if it.n == nil || it.n.Kind == ScalarNode {
			continue
		}
		deepest = max(deepest, it.d+1)
		for _, c := range it.n.Content {
			stack = append(stack, item{c, it.d + 1})
		}
	}
	return deepest
}

// nested returns a document of levels collections nested in the given
// shape, with tail as the innermost value. Documents with indentation grow
// as levels squared: those stop just past MaxSize, which Parse refuses.
func nested(levels int, shape byte, tail string) string {
	var b strings.Builder
	levels = max(levels, 1)
	if shape%5 == 1 || shape%5 == 2 || shape%5 == 4 {
		for levels*levels/2 > 2*MaxSize {
			levels /= 2
		}
	}
	switch shape % 5 {
	case 0: // compact sequences on one line
		b.WriteString(strings.Repeat("- ", levels) + tail + "\n")
	case 1: // block mappings by indentation
		for i := 0; i < levels-1; i++ {
			b.WriteString(strings.Repeat(" ", i) + "k:\n")
		}
		b.WriteString(strings.Repeat(" ", levels-1) + "k: " + tail + "\n")
	case 2: // compact mappings in sequences
		for i := 0; i < levels/2; i++ {
			b.WriteString(strings.Repeat(" ", 2*i) + "- k:\n")
		}
		b.WriteString(strings.Repeat(" ", levels/2*2) + "- " + tail + "\n")
	case 3: // compact sequences ending in a flow sequence
		b.WriteString(strings.Repeat("- ", max(levels-1, 0)) + "[" + tail + "]\n")
	case 4: // block sequences by indentation
		for i := 0; i < levels; i++ {
			b.WriteString(strings.Repeat(" ", i) + "-\n")
		}
		b.WriteString(strings.Repeat(" ", levels) + tail + "\n")
	}
	return b.String()
}

// FuzzParseNested generates deep and long documents: the parser refuses
// nesting beyond MaxDepth with a syntax error, never crashes, and what it
// accepts is within the bound and round-trips.
func FuzzParseNested(f *testing.F) {
	for _, s := range []struct {
		levels uint32
		shape  byte
		tail   string
	}{
		{MaxDepth, 0, "x"}, {MaxDepth + 1, 0, "x"}, {1 << 20, 0, "x"},
		{MaxDepth, 1, "v"}, {MaxDepth + 1, 1, "v"}, {5000, 1, "v"},
		{MaxDepth, 2, "'q'"}, {MaxDepth + 2, 2, "|\n x"}, {3, 2, "{}"},
		{MaxDepth, 3, "a, b"}, {MaxDepth + 1, 3, "a"},
		{MaxDepth, 4, "x"}, {MaxDepth + 1, 4, "[a]"}, {1 << 16, 4, "x"},
		{1, 0, strings.Repeat("a", 1<<20)}, {2, 3, strings.Repeat("a, ", 1<<18) + "a"},
	} {
		f.Add(s.levels, s.shape, s.tail)
	}
	f.Fuzz(func(t *testing.T, levels uint32, shape byte, tail string) {
		levels %= 1 << 16
		doc := nested(int(levels), shape, tail)
		n, err := Parse([]byte(doc))
		if err != nil {
			if _, ok := err.(*SyntaxError); !ok {
				t.Fatalf("error %T %v, want *SyntaxError", err, err)
			}
			return
		}
		if d := depth(n); d > MaxDepth {
			t.Fatalf("parsed a tree %d levels deep", d)
		}
		roundTrip(t, []byte(doc))
	})
}
