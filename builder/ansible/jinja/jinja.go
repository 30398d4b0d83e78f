// Package jinja evaluates the subset of Jinja2 that Ansible variables of
// the seed's roles use: text with {{ expression }} parts and {# comments #}.
// An expression is a string, number or boolean literal, a variable, an
// attribute (.name) or item ([key]) of one, string concatenation (~, and +
// on two strings), and filters the caller registers. Statement blocks
// ({% %}), tests (is), conditions, comparisons, arithmetic other than +,
// function calls and unknown filters are errors that say what was found.
//
// Values are nil, bool, int64, float64, string, Str (a string with
// placeholders for what is known only later, such as a node's address),
// []any, map[string]any and Object.
package jinja

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Limits.
const (
	// MaxLength bounds a rendered string, in bytes.
	MaxLength = 1 << 20
	// MaxNesting bounds the nesting of parentheses and brackets.
	MaxNesting = 64
	// MaxTemplateSize bounds a template's source.
	MaxTemplateSize = 1 << 20
	// MaxExprNodes bounds the parts of one expression (names, operators,
	// attributes, filters).
	MaxExprNodes = 10_000
)

// Placeholder names a value that is not known when the template is
// evaluated (e.g. "the node's wg0 address").
type Placeholder string

// Part is a piece of a Str: text, or a placeholder.
type Part struct {
	Text        string
	Placeholder Placeholder
}

// Str is a string made of text and placeholders.
type Str []Part

// String writes the placeholders as <name>.
func (s Str) String() string {
	var b strings.Builder
	for _, p := range s {
		if p.Placeholder != "" {
			b.WriteString("<" + string(p.Placeholder) + ">")
		} else {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

// Replace renders s with each placeholder replaced by what f returns.
func (s Str) Replace(f func(Placeholder) string) string {
	var b strings.Builder
	for _, p := range s {
		if p.Placeholder != "" {
			b.WriteString(f(p.Placeholder))
		} else {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

// Placeholders returns the placeholders of s, in order.
func (s Str) Placeholders() []Placeholder {
	var out []Placeholder
	for _, p := range s {
		if p.Placeholder != "" {
			out = append(out, p.Placeholder)
		}
	}
	return out
}

// Object is a value with attributes (hostvars, a host's facts). Item
// access obj[key] with a string key is Attr(key), unless the object is an
// Indexer.
type Object interface {
	Attr(name string) (any, error)
}

// Indexer is an Object that takes any key, a Str included.
type Indexer interface {
	Index(key any) (any, error)
}

// Filter is a filter: in | name(args...).
type Filter func(in any, args []any) (any, error)

// Env is what a template is evaluated in.
type Env struct {
	// Lookup returns a variable's value, or an error when it is undefined.
	Lookup func(name string) (any, error)
	// Filters are the filters a template may use, by name.
	Filters map[string]Filter
}

// HasTemplate reports whether s holds Jinja syntax ({{, {% or {#).
func HasTemplate(s string) bool {
	return strings.Contains(s, "{{") || strings.Contains(s, "{%") || strings.Contains(s, "{#")
}

// Template is a parsed template.
type Template struct {
	nodes []tnode
}

type tnode struct {
	text string
	expr expr // nil for text
}

// Parse parses a template.
func Parse(src string) (*Template, error) {
	if len(src) > MaxTemplateSize {
		return nil, fmt.Errorf("the template is %d bytes, more than the limit of %d", len(src), MaxTemplateSize)
	}
	t := &Template{}
	i := 0
	trimNext := false
	for i < len(src) {
		j := indexOpen(src, i)
		text := src[i:]
		if j >= 0 {
			text = src[i:j]
		}
		if trimNext {
			text = strings.TrimLeft(text, " \t\r\n")
			trimNext = false
		}
		if j < 0 {
			t.addText(text)
			break
		}
		open := src[j : j+2]
		k := j + 2
		if k < len(src) && src[k] == '-' {
			text = strings.TrimRight(text, " \t\r\n")
			k++
		} else if k < len(src) && src[k] == '+' {
			k++
		}
		t.addText(text)
		switch open {
		case "{%":
			return nil, fmt.Errorf("statement blocks ({%% ... %%}) are not supported: %q", snippet(src[j:]))
		case "{#":
			end := strings.Index(src[k:], "#}")
			if end < 0 {
				return nil, fmt.Errorf("unclosed comment {#")
			}
			if end > 0 && src[k+end-1] == '-' {
				trimNext = true
			}
			i = k + end + 2
		default: // {{
			p := &parser{src: src, pos: k}
			e, err := p.expression(0)
			if err != nil {
				return nil, fmt.Errorf("%w in %q", err, snippet(src[j:]))
			}
			end, trim, err := p.close()
			if err != nil {
				return nil, fmt.Errorf("%w in %q", err, snippet(src[j:]))
			}
			trimNext = trim
			t.nodes = append(t.nodes, tnode{expr: e})
			i = end
		}
	}
	return t, nil
}

// indexOpen finds the next {{, {% or {#.
func indexOpen(s string, from int) int {
	for i := from; i+1 < len(s); i++ {
		if s[i] == '{' && (s[i+1] == '{' || s[i+1] == '%' || s[i+1] == '#') {
			return i
		}
	}
	return -1
}

func snippet(s string) string {
	if end := strings.Index(s, "}}"); end >= 0 && end < 120 {
		return s[:end+2]
	}
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

func (t *Template) addText(s string) {
	if s != "" {
		t.nodes = append(t.nodes, tnode{text: s})
	}
}

// Eval evaluates the template. A template that is one expression and
// nothing else gives the expression's value as it is (a list stays a
// list), as Ansible does; otherwise the result is a string, or a Str when
// placeholders are part of it.
func (t *Template) Eval(env *Env) (any, error) {
	if len(t.nodes) == 1 && t.nodes[0].expr != nil {
		return t.nodes[0].expr.eval(env)
	}
	var out Str
	for _, n := range t.nodes {
		if n.expr == nil {
			out = appendText(out, n.text)
			continue
		}
		v, err := n.expr.eval(env)
		if err != nil {
			return nil, err
		}
		s, err := toStr(v)
		if err != nil {
			return nil, err
		}
		out = appendStr(out, s)
		if err := checkLength(out); err != nil {
			return nil, err
		}
	}
	return normalize(out), nil
}

// Render parses and evaluates src.
func Render(src string, env *Env) (any, error) {
	t, err := Parse(src)
	if err != nil {
		return nil, err
	}
	return t.Eval(env)
}

func appendText(s Str, text string) Str {
	if text == "" {
		return s
	}
	if n := len(s); n > 0 && s[n-1].Placeholder == "" {
		s[n-1].Text += text
		return s
	}
	return append(s, Part{Text: text})
}

func appendStr(s, t Str) Str {
	for _, p := range t {
		if p.Placeholder != "" {
			s = append(s, p)
		} else {
			s = appendText(s, p.Text)
		}
	}
	return s
}

// normalize returns a plain string when s has no placeholders.
func normalize(s Str) any {
	switch {
	case len(s) == 0:
		return ""
	case len(s) == 1 && s[0].Placeholder == "":
		return s[0].Text
	}
	return s
}

func checkLength(s Str) error {
	n := 0
	for _, p := range s {
		n += len(p.Text) + len(p.Placeholder)
	}
	if n > MaxLength {
		return fmt.Errorf("the result is longer than %d bytes", MaxLength)
	}
	return nil
}

// toStr converts a value for use inside a string, as Jinja (Python's str)
// writes it.
func toStr(v any) (Str, error) {
	switch v := v.(type) {
	case string:
		return Str{{Text: v}}, nil
	case Str:
		return v, nil
	case nil:
		return Str{{Text: "None"}}, nil
	case bool:
		if v {
			return Str{{Text: "True"}}, nil
		}
		return Str{{Text: "False"}}, nil
	case int64:
		return Str{{Text: strconv.FormatInt(v, 10)}}, nil
	case float64:
		return Str{{Text: pyFloat(v)}}, nil
	}
	return nil, fmt.Errorf("%s cannot be part of a string", Describe(v))
}

func pyFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	}
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eEn") {
		s += ".0"
	}
	return s
}

// Describe names a value's kind for an error message.
func Describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return fmt.Sprintf("the boolean %v", v)
	case int64:
		return fmt.Sprintf("the number %d", v)
	case float64:
		return "the number " + pyFloat(v)
	case string:
		return fmt.Sprintf("the string %q", v)
	case Str:
		return fmt.Sprintf("the string %q", v.String())
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	case Object:
		return "an object"
	}
	return fmt.Sprintf("a %T", v)
}

// --- expressions ---

type expr interface {
	eval(env *Env) (any, error)
}

type literal struct{ v any }

func (l literal) eval(*Env) (any, error) { return l.v, nil }

type variable struct{ name string }

func (v variable) eval(env *Env) (any, error) {
	if env == nil || env.Lookup == nil {
		return nil, fmt.Errorf("%s is undefined", v.name)
	}
	return env.Lookup(v.name)
}

type attribute struct {
	x    expr
	name string
}

func (a attribute) eval(env *Env) (any, error) {
	x, err := a.x.eval(env)
	if err != nil {
		return nil, err
	}
	return getItem(x, a.name, "."+a.name)
}

type item struct {
	x, key expr
}

func (it item) eval(env *Env) (any, error) {
	x, err := it.x.eval(env)
	if err != nil {
		return nil, err
	}
	k, err := it.key.eval(env)
	if err != nil {
		return nil, err
	}
	if ix, ok := x.(Indexer); ok {
		return ix.Index(k)
	}
	switch k := k.(type) {
	case string:
		return getItem(x, k, fmt.Sprintf("[%q]", k))
	case int64:
		l, ok := x.([]any)
		if !ok {
			return nil, fmt.Errorf("cannot take item %d of %s", k, Describe(x))
		}
		i := k
		if i < 0 {
			i += int64(len(l))
		}
		if i < 0 || i >= int64(len(l)) {
			return nil, fmt.Errorf("item %d is out of range: the list has %d items", k, len(l))
		}
		return l[i], nil
	}
	return nil, fmt.Errorf("%s cannot be a key", Describe(k))
}

// getItem is x.name or x["name"].
func getItem(x any, name, how string) (any, error) {
	switch x := x.(type) {
	case map[string]any:
		v, ok := x[name]
		if !ok {
			return nil, fmt.Errorf("the mapping has no key %q (keys: %s)", name, keyList(x))
		}
		return v, nil
	case Object:
		return x.Attr(name)
	case string, Str:
		return nil, fmt.Errorf("%s of a string: string methods are not supported", how)
	}
	return nil, fmt.Errorf("%s of %s", how, Describe(x))
}

func keyList(m map[string]any) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) > 10 {
		keys = append(keys[:10], "...")
	}
	return strings.Join(keys, ", ")
}

type concat struct {
	l, r expr
	op   byte
}

func (c concat) eval(env *Env) (any, error) {
	l, err := c.l.eval(env)
	if err != nil {
		return nil, err
	}
	r, err := c.r.eval(env)
	if err != nil {
		return nil, err
	}
	if c.op == '+' {
		li, lok := l.(int64)
		ri, rok := r.(int64)
		switch {
		case lok && rok:
			s := li + ri
			if (s > li) != (ri > 0) {
				return nil, fmt.Errorf("%d + %d overflows", li, ri)
			}
			return s, nil
		case !isString(l) || !isString(r):
			return nil, fmt.Errorf("cannot add %s and %s (+ joins two strings; ~ joins anything)", Describe(l), Describe(r))
		}
	}
	ls, err := toStr(l)
	if err != nil {
		return nil, err
	}
	rs, err := toStr(r)
	if err != nil {
		return nil, err
	}
	out := appendStr(appendStr(nil, ls), rs)
	if err := checkLength(out); err != nil {
		return nil, err
	}
	return normalize(out), nil
}

func isString(v any) bool {
	switch v.(type) {
	case string, Str:
		return true
	}
	return false
}

type filter struct {
	x    expr
	name string
	args []expr
}

func (f filter) eval(env *Env) (any, error) {
	fn := env.Filters[f.name]
	if fn == nil {
		return nil, fmt.Errorf("unknown filter %q (nodebake evaluates only: %s)", f.name, filterList(env))
	}
	x, err := f.x.eval(env)
	if err != nil {
		return nil, err
	}
	args := make([]any, len(f.args))
	for i, a := range f.args {
		if args[i], err = a.eval(env); err != nil {
			return nil, err
		}
	}
	return fn(x, args)
}

func filterList(env *Env) string {
	var names []string
	for n := range env.Filters {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "no filters"
	}
	return strings.Join(names, ", ")
}

// --- parser ---

type parser struct {
	src   string
	pos   int
	nodes int
}

// node counts one more part of the expression.
func (p *parser) node() error {
	p.nodes++
	if p.nodes > MaxExprNodes {
		return fmt.Errorf("the expression has more than %d parts", MaxExprNodes)
	}
	return nil
}

type token struct {
	kind byte // 'n' name, 's' string, 'i' int, 'f' float, 'o' operator, 'e' end }}, 0 end of input
	text string
	val  any
}

func (p *parser) skipSpace() {
	for p.pos < len(p.src) && strings.IndexByte(" \t\r\n", p.src[p.pos]) >= 0 {
		p.pos++
	}
}

// peek returns the next token without consuming it.
func (p *parser) peek() (token, error) {
	save := p.pos
	t, err := p.next()
	p.pos = save
	return t, err
}

func (p *parser) next() (token, error) {
	p.skipSpace()
	if p.pos >= len(p.src) {
		return token{}, nil
	}
	s := p.src[p.pos:]
	c := s[0]
	switch {
	case strings.HasPrefix(s, "}}"), strings.HasPrefix(s, "-}}"), strings.HasPrefix(s, "+}}"):
		return token{kind: 'e', text: "}}"}, nil
	case c == '_' || isAlpha(c):
		n := 1
		for n < len(s) && (s[n] == '_' || isAlpha(s[n]) || isDigit(s[n])) {
			n++
		}
		p.pos += n
		return token{kind: 'n', text: s[:n]}, nil
	case isDigit(c):
		n := 1
		for n < len(s) && (isDigit(s[n]) || s[n] == '_') {
			n++
		}
		if n+1 < len(s) && s[n] == '.' && isDigit(s[n+1]) {
			n++
			for n < len(s) && isDigit(s[n]) {
				n++
			}
			f, err := strconv.ParseFloat(strings.ReplaceAll(s[:n], "_", ""), 64)
			if err != nil {
				return token{}, fmt.Errorf("invalid number %q", s[:n])
			}
			p.pos += n
			return token{kind: 'f', text: s[:n], val: f}, nil
		}
		v, err := strconv.ParseInt(strings.ReplaceAll(s[:n], "_", ""), 10, 64)
		if err != nil {
			return token{}, fmt.Errorf("number %q is out of range", s[:n])
		}
		p.pos += n
		return token{kind: 'i', text: s[:n], val: v}, nil
	case c == '\'' || c == '"':
		v, n, ok := QuotedString(s)
		if !ok {
			return token{}, fmt.Errorf("unclosed string literal")
		}
		p.pos += n
		return token{kind: 's', text: s[:n], val: v}, nil
	case strings.IndexByte("~+|.[](),", c) >= 0:
		p.pos++
		return token{kind: 'o', text: string(c)}, nil
	}
	return token{}, unsupportedOperator(s)
}

// QuotedString reads the Python string literal that s starts with, quoted
// with ' or " (as Jinja and Ansible's inline INI values write them): its
// value, with the escapes \n, \t and \r and any other escaped character
// taken as itself, and the length of the literal in s. ok is false when s
// does not start with a quote or the literal is not closed.
func QuotedString(s string) (value string, n int, ok bool) {
	if s == "" || s[0] != '\'' && s[0] != '"' {
		return "", 0, false
	}
	q := s[0]
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s):
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			default:
				b.WriteByte(s[i])
			}
		case s[i] == q:
			return b.String(), i + 1, true
		default:
			b.WriteByte(s[i])
		}
	}
	return "", 0, false
}

func unsupportedOperator(s string) error {
	for _, op := range []string{"==", "!=", "<=", ">=", "//", "**"} {
		if strings.HasPrefix(s, op) {
			return fmt.Errorf("unsupported operator %q (comparisons and arithmetic other than + are not evaluated)", op)
		}
	}
	switch s[0] {
	case '<', '>':
		return fmt.Errorf("unsupported operator %q (comparisons are not evaluated)", s[:1])
	case '-', '*', '/', '%':
		return fmt.Errorf("unsupported operator %q (arithmetic other than + is not evaluated)", s[:1])
	case '{', ':':
		return fmt.Errorf("unsupported syntax %q (mapping literals are not evaluated)", s[:1])
	}
	return fmt.Errorf("unsupported syntax %q", s[:1])
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// close consumes the closing }} and returns the position after it and
// whether it was -}} (trim what follows).
func (p *parser) close() (int, bool, error) {
	t, err := p.next()
	if err != nil {
		return 0, false, err
	}
	switch t.kind {
	case 'e':
		trim := p.src[p.pos] == '-'
		if p.src[p.pos] != '}' {
			p.pos++
		}
		return p.pos + 2, trim, nil
	case 0:
		return 0, false, fmt.Errorf("unclosed {{")
	}
	return 0, false, unexpected(t)
}

func unexpected(t token) error {
	switch t.text {
	case "if", "else", "and", "or", "not", "is", "in", "for", "recursive":
		return fmt.Errorf("unsupported Jinja %q (conditions, tests and loops are not evaluated)", t.text)
	}
	if t.kind == 0 || t.kind == 'e' {
		return fmt.Errorf("incomplete expression")
	}
	return fmt.Errorf("unexpected %q", t.text)
}

// expression: filtered (('~' | '+') filtered)*
func (p *parser) expression(depth int) (expr, error) {
	if depth > MaxNesting {
		return nil, fmt.Errorf("nested more than %d levels deep", MaxNesting)
	}
	l, err := p.filtered(depth)
	if err != nil {
		return nil, err
	}
	for {
		t, err := p.peek()
		if err != nil {
			return nil, err
		}
		if t.kind != 'o' || (t.text != "~" && t.text != "+") {
			return l, nil
		}
		p.next()
		if err := p.node(); err != nil {
			return nil, err
		}
		r, err := p.filtered(depth)
		if err != nil {
			return nil, err
		}
		l = concat{l: l, r: r, op: t.text[0]}
	}
}

// filtered: postfix ('|' NAME ('(' args ')')?)*
func (p *parser) filtered(depth int) (expr, error) {
	x, err := p.postfix(depth)
	if err != nil {
		return nil, err
	}
	for {
		t, err := p.peek()
		if err != nil {
			return nil, err
		}
		if t.kind != 'o' || t.text != "|" {
			return x, nil
		}
		p.next()
		if err := p.node(); err != nil {
			return nil, err
		}
		name, err := p.next()
		if err != nil {
			return nil, err
		}
		if name.kind != 'n' {
			return nil, fmt.Errorf("a filter name must follow |")
		}
		f := filter{x: x, name: name.text}
		if t, _ := p.peek(); t.kind == 'o' && t.text == "(" {
			p.next()
			if f.args, err = p.args(depth + 1); err != nil {
				return nil, err
			}
		}
		x = f
	}
}

func (p *parser) args(depth int) ([]expr, error) {
	var out []expr
	for {
		t, err := p.peek()
		if err != nil {
			return nil, err
		}
		if t.kind == 'o' && t.text == ")" {
			p.next()
			return out, nil
		}
		a, err := p.expression(depth + 1)
		if err != nil {
			return nil, err
		}
		if t, _ := p.peek(); t.kind == 'o' && t.text == "=" {
			return nil, fmt.Errorf("keyword arguments are not supported")
		}
		out = append(out, a)
		t, err = p.next()
		if err != nil {
			return nil, err
		}
		switch {
		case t.kind == 'o' && t.text == ")":
			return out, nil
		case t.kind == 'o' && t.text == ",":
		default:
			return nil, unexpected(t)
		}
	}
}

// postfix: primary ('.' NAME | '[' expression ']')*
func (p *parser) postfix(depth int) (expr, error) {
	x, err := p.primary(depth)
	if err != nil {
		return nil, err
	}
	for {
		t, err := p.peek()
		if err != nil {
			return nil, err
		}
		if t.kind != 'o' {
			return x, nil
		}
		if t.text == "." || t.text == "[" {
			if err := p.node(); err != nil {
				return nil, err
			}
		}
		switch t.text {
		case ".":
			p.next()
			n, err := p.next()
			if err != nil {
				return nil, err
			}
			switch n.kind {
			case 'n':
				x = attribute{x: x, name: n.text}
			case 'i':
				x = item{x: x, key: literal{n.val}}
			default:
				return nil, fmt.Errorf("a name must follow .")
			}
		case "[":
			p.next()
			k, err := p.expression(depth + 1)
			if err != nil {
				return nil, err
			}
			t, err := p.next()
			if err != nil {
				return nil, err
			}
			if t.kind != 'o' || t.text != "]" {
				if t.kind == 'o' && t.text == ":" {
					return nil, fmt.Errorf("slices are not supported")
				}
				return nil, fmt.Errorf("want ] after an item key, got %q", t.text)
			}
			x = item{x: x, key: k}
		case "(":
			return nil, fmt.Errorf("function and method calls are not supported")
		default:
			return x, nil
		}
	}
}

func (p *parser) primary(depth int) (expr, error) {
	if err := p.node(); err != nil {
		return nil, err
	}
	t, err := p.next()
	if err != nil {
		return nil, err
	}
	switch t.kind {
	case 's', 'i', 'f':
		return literal{t.val}, nil
	case 'n':
		switch t.text {
		case "true", "True":
			return literal{true}, nil
		case "false", "False":
			return literal{false}, nil
		case "none", "None":
			return literal{nil}, nil
		case "if", "else", "and", "or", "not", "is", "in", "for", "recursive":
			return nil, unexpected(t)
		}
		if n, _ := p.peek(); n.kind == 'o' && n.text == "(" {
			return nil, fmt.Errorf("function calls are not supported: %s(...)", t.text)
		}
		return variable{t.text}, nil
	case 'o':
		switch t.text {
		case "(":
			if depth+1 > MaxNesting {
				return nil, fmt.Errorf("nested more than %d levels deep", MaxNesting)
			}
			x, err := p.expression(depth + 1)
			if err != nil {
				return nil, err
			}
			c, err := p.next()
			if err != nil {
				return nil, err
			}
			if c.kind != 'o' || c.text != ")" {
				return nil, fmt.Errorf("want ), got %q", c.text)
			}
			return x, nil
		case "[":
			return nil, fmt.Errorf("list literals are not supported")
		}
	}
	return nil, unexpected(t)
}
