package strictyaml

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The bounds of what Parse reads. Every collection nests one level deeper
// than the one holding it; the document's top-level collection is level 1.
const (
	// MaxSize is the largest document Parse reads, in bytes. Formats built
	// on this package set their own, lower caps (see nodeconfig.MaxSize).
	MaxSize = 4 << 20
	// MaxDepth is the deepest nesting of collections that Parse reads and
	// Marshal writes. The node config needs 5 levels and a kubeconfig 4;
	// the bound keeps the parser's recursion small on hostile input.
	MaxDepth = 32
)

// line is one line of the document; text is raw after indent columns.
type line struct {
	raw    string
	num    int
	indent int
}

func (l line) text() string { return l.raw[l.indent:] }

type parser struct {
	lines []line
	pos   int
	depth int // collections open around the current position
}

// Parse parses one document. An empty document gives a nil node. A
// document larger than MaxSize or nested deeper than MaxDepth is an error.
func Parse(data []byte) (*Node, error) {
	if len(data) > MaxSize {
		return nil, &SyntaxError{Line: 1, Msg: fmt.Sprintf("the document is %d bytes; at most %d are read", len(data), MaxSize)}
	}
	lines, err := splitLines(data)
	if err != nil {
		return nil, err
	}
	p := &parser{lines: lines}
	return p.document()
}

func splitLines(data []byte) ([]line, error) {
	s := string(data)
	s = strings.TrimPrefix(s, "\uFEFF")
	lines := make([]line, 0, strings.Count(s, "\n")+1)
	for num := 1; ; num++ {
		raw, rest, more := strings.Cut(s, "\n")
		raw = strings.TrimSuffix(raw, "\r")
		if !utf8.ValidString(raw) {
			return nil, &SyntaxError{Line: num, Msg: "not valid UTF-8"}
		}
		for _, r := range raw {
			if r != '\t' && needsEscape(r) {
				return nil, &SyntaxError{Line: num, Msg: fmt.Sprintf("character %U is not allowed here", r)}
			}
		}
		sp := len(raw) - len(strings.TrimLeft(raw, " "))
		lines = append(lines, line{raw: raw, num: num, indent: sp})
		if !more {
			return lines, nil
		}
		s = rest
	}
}

// enter opens a collection starting on line l; leave closes it.
func (p *parser) enter(l line) error {
	if p.depth >= MaxDepth {
		return errAt(l, "collections nested deeper than %d levels", MaxDepth)
	}
	p.depth++
	return nil
}

func (p *parser) leave() { p.depth-- }

func errAt(l line, format string, args ...any) error {
	return &SyntaxError{Line: l.num, Msg: fmt.Sprintf(format, args...)}
}

func isBlankOrComment(raw string) bool {
	t := strings.TrimLeft(raw, " \t")
	return t == "" || t[0] == '#'
}

// next skips blank and comment lines; it reports whether a line is left.
func (p *parser) next() bool {
	for p.pos < len(p.lines) && isBlankOrComment(p.lines[p.pos].raw) {
		p.pos++
	}
	return p.pos < len(p.lines)
}

func (p *parser) cur() line { return p.lines[p.pos] }

func marker(l line, m string) bool {
	if l.indent != 0 || !strings.HasPrefix(l.text(), m) {
		return false
	}
	rest := l.text()[len(m):]
	return rest == "" || rest[0] == ' ' || rest[0] == '\t'
}

func (p *parser) document() (*Node, error) {
	if !p.next() {
		return nil, nil
	}
	l := p.cur()
	if l.indent == 0 && strings.HasPrefix(l.text(), "%") {
		return nil, errAt(l, "directives (%%...) are not supported")
	}
	if marker(l, "---") {
		if rest := strings.TrimLeft(l.text()[3:], " \t"); rest != "" && rest[0] != '#' {
			return nil, errAt(l, "content on the '---' line is not supported")
		}
		p.pos++
		if !p.next() {
			return nil, nil
		}
		l = p.cur()
	}
	if err := p.checkStructural(l); err != nil {
		return nil, err
	}
	if !isSeqEntry(l.text()) && !isKeyLine(l.text()) {
		return nil, errAt(l, "the document must be a mapping or a sequence")
	}
	root, err := p.block(l.indent)
	if err != nil {
		return nil, err
	}
	if p.next() {
		l := p.cur()
		switch {
		case marker(l, "---"):
			return nil, errAt(l, "more than one document is not supported")
		case marker(l, "..."):
			return nil, errAt(l, "the document end marker '...' is not supported")
		default:
			return nil, errAt(l, "unexpected indentation")
		}
	}
	return root, nil
}

// checkStructural rejects what may not start a structural line.
func (p *parser) checkStructural(l line) error {
	if strings.HasPrefix(l.text(), "\t") {
		return errAt(l, "tabs are not allowed in indentation")
	}
	if marker(l, "---") || marker(l, "...") {
		if l.text()[0] == '-' {
			return errAt(l, "more than one document is not supported")
		}
		return errAt(l, "the document end marker '...' is not supported")
	}
	return nil
}

func isSeqEntry(t string) bool {
	return t == "-" || strings.HasPrefix(t, "- ") || strings.HasPrefix(t, "-\t")
}

// block parses the mapping or sequence whose first line is the current one,
// indented by ind.
func (p *parser) block(ind int) (*Node, error) {
	if isSeqEntry(p.cur().text()) {
		return p.sequence(ind)
	}
	return p.mapping(ind)
}

func (p *parser) mapping(ind int) (*Node, error) {
	if err := p.enter(p.cur()); err != nil {
		return nil, err
	}
	defer p.leave()
	m := &Node{Kind: MappingNode, Line: p.cur().num}
	seen := map[string]int{}
	for p.next() {
		l := p.cur()
		if l.indent < ind || marker(l, "---") || marker(l, "...") {
			break
		}
		if l.indent > ind {
			return nil, errAt(l, "unexpected indentation (multi-line plain scalars are not supported)")
		}
		if err := p.checkStructural(l); err != nil {
			return nil, err
		}
		if isSeqEntry(l.text()) {
			return nil, errAt(l, "a sequence entry where a mapping key was expected")
		}
		key, rest, err := splitKey(l)
		if err != nil {
			return nil, err
		}
		if first, dup := seen[key.Value]; dup {
			return nil, errAt(l, "duplicate key %q (first on line %d)", key.Value, first)
		}
		seen[key.Value] = l.num
		p.pos++
		val, err := p.value(rest, l, ind, true)
		if err != nil {
			return nil, err
		}
		m.Content = append(m.Content, key, val)
	}
	return m, nil
}

// splitKey parses "key: rest" and returns the key and what follows the colon.
func splitKey(l line) (*Node, string, error) {
	t := l.text()
	if t != "" && (t[0] == '"' || t[0] == '\'') {
		v, style, after, err := quoted(t, l)
		if err != nil {
			return nil, "", err
		}
		if !strings.HasPrefix(after, ":") || (len(after) > 1 && after[1] != ' ' && after[1] != '\t') {
			return nil, "", errAt(l, "expected ':' after the quoted key")
		}
		return &Node{Kind: ScalarNode, Style: style, Value: v, Line: l.num}, after[1:], nil
	}
	i := keyColon(t)
	if i < 0 {
		return nil, "", errAt(l, "expected a mapping key (key: value); multi-line plain scalars are not supported")
	}
	k := strings.TrimRight(t[:i], " \t")
	if k == "" {
		return nil, "", errAt(l, "empty mapping key")
	}
	if msg := plainProblem(k, false); msg != "" {
		return nil, "", errAt(l, "key %q: %s", k, msg)
	}
	return &Node{Kind: ScalarNode, Style: Plain, Value: k, Line: l.num}, t[i+1:], nil
}

// keyColon returns the index of the colon ending a plain key, or -1.
func keyColon(t string) int {
	for i := 0; i < len(t); i++ {
		switch t[i] {
		case '#':
			if i == 0 || t[i-1] == ' ' || t[i-1] == '\t' {
				return -1
			}
		case ':':
			if i+1 == len(t) || t[i+1] == ' ' || t[i+1] == '\t' {
				return i
			}
		}
	}
	return -1
}

// isKeyLine reports whether t starts a mapping entry.
func isKeyLine(t string) bool {
	if t == "" {
		return false
	}
	if t[0] == '"' || t[0] == '\'' {
		_, _, after, err := quoted(t, line{})
		return err == nil && strings.HasPrefix(after, ":")
	}
	switch t[0] {
	case '[', '{', '|', '>', '&', '*', '!', '#':
		return false
	}
	return keyColon(t) >= 0
}

// value parses what follows "key:" (rest) on line l, whose key is indented
// by ind; inMapping allows a sequence at the key's own indentation.
func (p *parser) value(rest string, l line, ind int, inMapping bool) (*Node, error) {
	r := strings.TrimLeft(rest, " \t")
	if r != "" && r[0] != '#' {
		return p.inline(r, l, ind)
	}
	if r != "" && r == rest {
		return nil, errAt(l, "a comment needs a space before '#'")
	}
	null := &Node{Kind: ScalarNode, Line: l.num}
	if !p.next() {
		return null, nil
	}
	nl := p.cur()
	switch {
	case nl.indent > ind:
		if err := p.checkStructural(nl); err != nil {
			return nil, err
		}
		return p.block(nl.indent)
	case inMapping && nl.indent == ind && isSeqEntry(nl.text()):
		return p.sequence(ind)
	}
	return null, nil
}

// inline parses a scalar or flow sequence r that starts on line l; ind is
// the indentation of the key or sequence entry it belongs to.
func (p *parser) inline(r string, l line, ind int) (*Node, error) {
	switch r[0] {
	case '|':
		return p.literal(r, l, ind)
	case '[':
		if p.depth >= MaxDepth {
			return nil, errAt(l, "collections nested deeper than %d levels", MaxDepth)
		}
		return flowSequence(r, l)
	case '{':
		// The empty mapping {} is the one flow mapping read (kubectl
		// writes "preferences: {}").
		if after, ok := strings.CutPrefix(r, "{}"); ok {
			if p.depth >= MaxDepth {
				return nil, errAt(l, "collections nested deeper than %d levels", MaxDepth)
			}
			if err := trailing(after, l); err != nil {
				return nil, err
			}
			return &Node{Kind: MappingNode, Line: l.num}, nil
		}
	case '"', '\'':
		v, style, after, err := quoted(r, l)
		if err != nil {
			return nil, err
		}
		if err := trailing(after, l); err != nil {
			return nil, err
		}
		return &Node{Kind: ScalarNode, Style: style, Value: v, Line: l.num}, nil
	case '-':
		if isSeqEntry(r) {
			return nil, errAt(l, "a block sequence cannot start on the line of its key")
		}
	}
	v := r
	if i := commentStart(v); i >= 0 {
		v = v[:i]
	}
	v = strings.TrimRight(v, " \t")
	if msg := plainProblem(v, false); msg != "" {
		return nil, errAt(l, "%s", msg)
	}
	if isNullWord(v) {
		v = ""
	}
	return &Node{Kind: ScalarNode, Style: Plain, Value: v, Line: l.num}, nil
}

// commentStart returns the index of a " #" comment in a plain scalar, or -1.
func commentStart(s string) int {
	for i := 1; i < len(s); i++ {
		if s[i] == '#' && (s[i-1] == ' ' || s[i-1] == '\t') {
			return i
		}
	}
	return -1
}

// trailing checks what follows a quoted scalar or flow sequence on its line.
func trailing(after string, l line) error {
	if after == "" {
		return nil
	}
	t := strings.TrimLeft(after, " \t")
	if t == after || (t != "" && t[0] != '#') {
		if strings.HasPrefix(t, ":") {
			return errAt(l, "mapping values are not allowed here")
		}
		return errAt(l, "unexpected text %q after the value", t)
	}
	return nil
}

func isNullWord(s string) bool {
	switch s {
	case "~", "null", "Null", "NULL":
		return true
	}
	return false
}

// plainProblem says why s cannot be a plain scalar, or returns "".
// flow adds the restrictions of a flow sequence.
func plainProblem(s string, flow bool) string {
	if s == "" {
		return "empty plain scalar"
	}
	switch s[0] {
	case '&':
		return "anchors (&) are not supported"
	case '*':
		return "aliases (*) are not supported"
	case '!':
		return "tags (!) are not supported"
	case '{':
		return "flow mappings ({...}) are not supported"
	case '[':
		return "nested flow sequences are not supported"
	case '>':
		return "folded block scalars (>) are not supported; use |"
	case '|':
		return "a block scalar (|) must end its line"
	case '?':
		return "complex keys (?) are not supported"
	case ',', ']', '}', '#', '%', '@', '`', '"', '\'', ':':
		return fmt.Sprintf("a plain scalar cannot start with %q; quote it", s[0])
	case '-':
		if len(s) == 1 || s[1] == ' ' || s[1] == '\t' {
			return "a plain scalar cannot be '-'; quote it"
		}
		if strings.HasPrefix(s, "---") {
			return "a plain scalar cannot start with '---'; quote it"
		}
	case '.':
		if strings.HasPrefix(s, "...") {
			return "a plain scalar cannot start with '...'; quote it"
		}
	case ' ':
		return "a plain scalar cannot start with a space; quote it"
	}
	if s[len(s)-1] == ' ' {
		return "a plain scalar cannot end with a space; quote it"
	}
	if strings.HasSuffix(s, ":") || strings.Contains(s, ": ") || strings.Contains(s, ":\t") {
		return "mapping values are not allowed here; quote the value"
	}
	if strings.Contains(s, " #") || strings.Contains(s, "\t#") {
		return "' #' starts a comment; quote the value"
	}
	if strings.ContainsAny(s, "\t\n") {
		return "tabs and line breaks in plain scalars are not supported; quote the value"
	}
	if flow && strings.ContainsAny(s, ",[]{}") {
		return "',', '[', ']', '{' and '}' are not allowed in a plain scalar in a flow sequence; quote it"
	}
	for _, r := range s {
		if needsEscape(r) {
			return fmt.Sprintf("character %U must be escaped in a double-quoted scalar", r)
		}
	}
	return ""
}

// needsEscape reports whether r cannot appear raw in a document.
func needsEscape(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7F && r <= 0x9F:
		return true
	case r == 0x2028, r == 0x2029, r == 0xFEFF, r == 0xFFFE, r == 0xFFFF, r == utf8.RuneError:
		return true
	}
	return false
}

// quoted parses a one-line quoted scalar at the start of t and returns the
// value, its style and what follows the closing quote.
func quoted(t string, l line) (string, Style, string, error) {
	q := t[0]
	var b strings.Builder
	for i := 1; i < len(t); {
		c := t[i]
		switch {
		case c == q && q == '\'':
			if i+1 < len(t) && t[i+1] == '\'' {
				b.WriteByte('\'')
				i += 2
				continue
			}
			return b.String(), SingleQuoted, t[i+1:], nil
		case c == q:
			return b.String(), DoubleQuoted, t[i+1:], nil
		case c == '\\' && q == '"':
			n, err := escape(t[i:], &b)
			if err != nil {
				return "", 0, "", errAt(l, "%v", err)
			}
			i += n
		default:
			b.WriteByte(c)
			i++
		}
	}
	return "", 0, "", errAt(l, "unterminated quoted scalar (multi-line quoted scalars are not supported)")
}

// escape decodes the escape sequence at the start of s into b and returns
// its length.
func escape(s string, b *strings.Builder) (int, error) {
	if len(s) < 2 {
		return 0, fmt.Errorf("unterminated escape sequence")
	}
	if v := simpleEscape(s[1]); v != "" {
		b.WriteString(v)
		return 2, nil
	}
	var width int
	switch s[1] {
	case 'x':
		width = 2
	case 'u':
		width = 4
	case 'U':
		width = 8
	default:
		return 0, fmt.Errorf("unknown escape sequence %q", s[:2])
	}
	if len(s) < 2+width {
		return 0, fmt.Errorf("short escape sequence %q", s)
	}
	hex := s[2 : 2+width]
	for i := 0; i < len(hex); i++ {
		if !strings.ContainsRune("0123456789abcdefABCDEF", rune(hex[i])) {
			return 0, fmt.Errorf("bad escape sequence %q", s[:2+width])
		}
	}
	v, err := strconv.ParseUint(hex, 16, 32)
	if err != nil || !utf8.ValidRune(rune(v)) {
		return 0, fmt.Errorf("bad escape sequence %q", s[:2+width])
	}
	b.WriteRune(rune(v))
	return 2 + width, nil
}

// simpleEscape returns what the one-character escape \c stands for, or "".
func simpleEscape(c byte) string {
	switch c {
	case '0':
		return "\x00"
	case 'a':
		return "\a"
	case 'b':
		return "\b"
	case 't', '\t':
		return "\t"
	case 'n':
		return "\n"
	case 'v':
		return "\v"
	case 'f':
		return "\f"
	case 'r':
		return "\r"
	case 'e':
		return "\x1b"
	case ' ':
		return " "
	case '"':
		return "\""
	case '/':
		return "/"
	case '\\':
		return "\\"
	case 'N':
		return "\u0085"
	case '_':
		return "\u00a0"
	case 'L':
		return "\u2028"
	case 'P':
		return "\u2029"
	}
	return ""
}

// flowSequence parses a one-line flow sequence of scalars. Its items are
// allocated together: a long sequence costs its nodes and nothing more.
func flowSequence(t string, l line) (*Node, error) {
	most := strings.Count(t, ",") + 1 // at least the number of items
	seq := &Node{Kind: SequenceNode, Line: l.num, Content: make([]*Node, 0, most)}
	items := make([]Node, 0, most)
	item := func(n Node) *Node {
		items = append(items, n)
		return &items[len(items)-1]
	}
	i := 1
	skip := func() {
		for i < len(t) && (t[i] == ' ' || t[i] == '\t') {
			i++
		}
	}
	skip()
	if i < len(t) && t[i] == ']' {
		return seq, trailing(t[i+1:], l)
	}
	for {
		skip()
		if i >= len(t) {
			return nil, errAt(l, "unterminated flow sequence (multi-line flow sequences are not supported)")
		}
		switch c := t[i]; c {
		case '[', '{':
			return nil, errAt(l, "nested flow collections are not supported")
		case ',', ']':
			return nil, errAt(l, "empty entry in a flow sequence")
		case '"', '\'':
			v, style, after, err := quoted(t[i:], l)
			if err != nil {
				return nil, err
			}
			seq.Content = append(seq.Content, item(Node{Kind: ScalarNode, Style: style, Value: v, Line: l.num}))
			i = len(t) - len(after)
		default:
			j := i
			for j < len(t) && t[j] != ',' && t[j] != ']' && (t[j] != '#' || (t[j-1] != ' ' && t[j-1] != '\t')) {
				j++
			}
			v := strings.TrimRight(t[i:j], " \t")
			if msg := plainProblem(v, true); msg != "" {
				return nil, errAt(l, "%s", msg)
			}
			if isNullWord(v) {
				v = ""
			}
			seq.Content = append(seq.Content, item(Node{Kind: ScalarNode, Style: Plain, Value: v, Line: l.num}))
			i = j
		}
		skip()
		if i >= len(t) || t[i] == '#' {
			return nil, errAt(l, "unterminated flow sequence (multi-line flow sequences are not supported)")
		}
		switch t[i] {
		case ',':
			i++
			skip()
			if i < len(t) && t[i] == ']' {
				return nil, errAt(l, "trailing comma in a flow sequence")
			}
		case ']':
			return seq, trailing(t[i+1:], l)
		default:
			return nil, errAt(l, "expected ',' or ']' in a flow sequence")
		}
	}
}

// literal parses a | or |- block scalar whose header r is on line l; its
// content must be indented more than ind.
func (p *parser) literal(r string, l line, ind int) (*Node, error) {
	h := r[1:]
	strip := false
	if strings.HasPrefix(h, "-") {
		strip, h = true, h[1:]
	}
	if h != "" {
		if h[0] != ' ' && h[0] != '\t' {
			return nil, errAt(l, "only the | and |- block scalar headers are supported")
		}
		if t := strings.TrimLeft(h, " \t"); t != "" && t[0] != '#' {
			return nil, errAt(l, "unexpected text %q after the block scalar header", t)
		}
	}
	n := -1 // content indentation
	maxLeading := 0
	var lines []string // content lines; "" for an empty line
	lastLine := -1     // index of the last non-empty content line
	for ; p.pos < len(p.lines); p.pos++ {
		ln := p.lines[p.pos]
		if strings.Trim(ln.raw, " ") == "" {
			if n < 0 {
				maxLeading = max(maxLeading, len(ln.raw))
				lines = append(lines, "")
			} else if len(ln.raw) > n {
				lines = append(lines, ln.raw[n:])
				lastLine = p.pos
			} else {
				lines = append(lines, "")
			}
			continue
		}
		if n < 0 {
			if ln.indent <= ind {
				break
			}
			if maxLeading > ln.indent {
				return nil, errAt(ln, "a leading empty line of the block scalar is indented more than its content")
			}
			n = ln.indent
		}
		if ln.indent < n {
			break
		}
		if strings.Trim(ln.raw, " \t") == "" {
			return nil, errAt(ln, "whitespace-only lines with tabs are not supported in block scalars")
		}
		if ln.raw[n] == '\t' {
			return nil, errAt(ln, "block scalar lines starting with a tab are not supported")
		}
		lines = append(lines, ln.raw[n:])
		lastLine = p.pos
	}
	last := -1
	for i, s := range lines {
		if s != "" {
			last = i
		}
	}
	v := ""
	if last >= 0 {
		v = strings.Join(lines[:last+1], "\n")
		// Clip keeps the last line break, if the document has one.
		if !strip && lastLine < len(p.lines)-1 {
			v += "\n"
		}
	}
	return &Node{Kind: ScalarNode, Style: Literal, Value: v, Line: l.num}, nil
}

func (p *parser) sequence(ind int) (*Node, error) {
	if err := p.enter(p.cur()); err != nil {
		return nil, err
	}
	defer p.leave()
	seq := &Node{Kind: SequenceNode, Line: p.cur().num}
	for p.next() {
		l := p.cur()
		if l.indent < ind || marker(l, "---") || marker(l, "...") {
			break
		}
		if l.indent > ind {
			return nil, errAt(l, "unexpected indentation (multi-line plain scalars are not supported)")
		}
		if err := p.checkStructural(l); err != nil {
			return nil, err
		}
		if !isSeqEntry(l.text()) {
			break
		}
		after := l.text()[1:]
		sp := len(after) - len(strings.TrimLeft(after, " "))
		r := after[sp:]
		if strings.HasPrefix(r, "\t") {
			return nil, errAt(l, "tabs are not allowed in indentation")
		}
		var item *Node
		var err error
		switch {
		case r == "" || r[0] == '#':
			if r != "" && sp == 0 {
				return nil, errAt(l, "a comment needs a space before '#'")
			}
			p.pos++
			item = &Node{Kind: ScalarNode, Line: l.num}
			if p.next() && p.cur().indent > ind {
				if err := p.checkStructural(p.cur()); err != nil {
					return nil, err
				}
				item, err = p.block(p.cur().indent)
			}
		case isSeqEntry(r) || isKeyLine(r):
			// A compact nested collection: re-read this line as if it
			// started at the column after "- ".
			p.lines[p.pos].indent = ind + 1 + sp // so that text() is r
			item, err = p.block(ind + 1 + sp)
		default:
			p.pos++
			item, err = p.inline(r, l, ind)
		}
		if err != nil {
			return nil, err
		}
		seq.Content = append(seq.Content, item)
	}
	return seq, nil
}
