package clouds

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Bounds of what the readers accept: the page is ours, but a reader
// without bounds is a habit not to start.
const (
	maxDoc      = 1 << 20 // bytes of a Markdown document
	maxBlocks   = 200     // fenced code blocks in it
	maxDepth    = 32      // nesting of HCL blocks, strings and interpolations
	maxLineSize = 64 << 10
)

// Info string tags of the blocks the tests read.
const (
	TagSource   = "validate-source"
	TagValidate = "validate"
)

// Block is a fenced code block of a Markdown document.
type Block struct {
	// Lang is the first word of the info string ("hcl", "sh"), Tag the
	// second ("validate", "validate-source" or empty).
	Lang, Tag string
	// Line is the line of the opening fence, from 1.
	Line int
	// Text is the content, without the fence lines and without the
	// fence's indentation.
	Text string
}

// Blocks returns the fenced code blocks (```) of a Markdown document, in
// order. An opening fence may be indented (inside a list item); the lines
// of the block lose that indentation.
func Blocks(doc []byte) ([]Block, error) {
	if len(doc) > maxDoc {
		return nil, fmt.Errorf("document of %d bytes: more than %d", len(doc), maxDoc)
	}
	var (
		blocks []Block
		open   *Block
		indent string
		text   strings.Builder
	)
	sc := bufio.NewScanner(bytes.NewReader(doc))
	sc.Buffer(make([]byte, 0, 4096), maxLineSize)
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		trimmed := strings.TrimLeft(l, " \t")
		if open == nil {
			rest, ok := strings.CutPrefix(trimmed, "```")
			if !ok {
				continue
			}
			if len(blocks) == maxBlocks {
				return nil, fmt.Errorf("line %d: more than %d code blocks", n, maxBlocks)
			}
			info := strings.Fields(rest)
			open = &Block{Line: n}
			if len(info) > 0 {
				open.Lang = info[0]
			}
			if len(info) > 1 {
				open.Tag = info[1]
			}
			indent = l[:len(l)-len(trimmed)]
			text.Reset()
			continue
		}
		if strings.TrimSpace(l) == "```" {
			open.Text = text.String()
			blocks = append(blocks, *open)
			open = nil
			continue
		}
		text.WriteString(strings.TrimPrefix(l, indent))
		text.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if open != nil {
		return nil, fmt.Errorf("line %d: code block never closed", open.Line)
	}
	return blocks, nil
}

// PostProcessor is one post-processor block of a recipe.
type PostProcessor struct {
	// Type is the post-processor type: post-processor "TYPE" { ... }.
	Type string
	// Line is the line of its opening, from 1, within the block.
	Line int
	// Chain numbers the post-processors { } sequence it is in, from 0; -1
	// when it stands alone. Pos is its place in that sequence, from 0.
	Chain, Pos int
	// Attrs are its one-line arguments: name -> expression text.
	Attrs map[string]string
	// Body is the text between its braces.
	Body string
}

// HCL is what the tests need to know of an HCL file.
type HCL struct {
	// PostProcessors in the order they appear.
	PostProcessors []PostProcessor
	// Plugins are the required_plugins: local name -> source address.
	Plugins map[string]string
	// Formats are the strings of output { formats = [...] } in a nodebake
	// source.
	Formats []string
}

var (
	attrRe   = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(.*?)\s*$`)
	objectRe = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*\{$`)
	blockRe  = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_-]*)((?:\s+"[^"\\]*")*)\s*\{$`)
	labelRe  = regexp.MustCompile(`"([^"\\]*)"`)
)

// ParseHCL reads the structure of an HCL file written one block opening
// or closing per line, as Packer templates are: blocks and their labels,
// one-line arguments, required_plugins, post-processors and their chains.
// Strings, interpolations and comments are scanned properly; heredocs are
// refused. It is no HCL parser: Packer itself is the authority, in the
// slow tier.
func ParseHCL(src string) (*HCL, error) {
	lines, err := scanLines(src)
	if err != nil {
		return nil, err
	}
	type frame struct {
		name   string
		labels []string
		line   int
		index  int // in lines
		pp     *PostProcessor
		chain  int
	}
	var (
		h      = &HCL{Plugins: map[string]string{}}
		stack  []frame
		chains = -1
	)
	path := func() []string {
		p := make([]string, len(stack))
		for i, f := range stack {
			p[i] = f.name
		}
		return p
	}
	for k, l := range lines {
		t := strings.TrimSpace(l.text)
		switch {
		case l.end == l.start:
			m := attrRe.FindStringSubmatch(t)
			if m == nil {
				continue
			}
			name, value := m[1], m[2]
			p := path()
			if len(stack) > 0 && stack[len(stack)-1].pp != nil {
				stack[len(stack)-1].pp.Attrs[name] = value
			}
			if len(p) == 3 && p[0] == "packer" && p[1] == "required_plugins" && name == "source" {
				if s := labelRe.FindStringSubmatch(value); s != nil {
					h.Plugins[p[2]] = s[1]
				}
			}
			if len(p) == 2 && p[0] == "source" && stack[0].labels[0] == "nodebake" && p[1] == "output" && name == "formats" {
				for _, s := range labelRe.FindAllStringSubmatch(value, -1) {
					h.Formats = append(h.Formats, s[1])
				}
			}
		case l.end == l.start+1:
			f := frame{line: l.n, index: k, chain: -1}
			if m := objectRe.FindStringSubmatch(t); m != nil {
				f.name = m[1]
			} else if m := blockRe.FindStringSubmatch(t); m != nil {
				f.name = m[1]
				for _, s := range labelRe.FindAllStringSubmatch(m[2], -1) {
					f.labels = append(f.labels, s[1])
				}
			} else {
				return nil, fmt.Errorf("line %d: %q: want one block opening (NAME \"LABEL\" {) per line", l.n, t)
			}
			if len(stack) > 0 {
				f.chain = stack[len(stack)-1].chain
			}
			switch f.name {
			case "post-processors":
				chains++
				f.chain = chains
			case "post-processor":
				if len(f.labels) != 1 {
					return nil, fmt.Errorf("line %d: post-processor with %d labels, want its type", l.n, len(f.labels))
				}
				pp := PostProcessor{Type: f.labels[0], Line: l.n, Chain: f.chain, Attrs: map[string]string{}}
				if f.chain >= 0 {
					for _, q := range h.PostProcessors {
						if q.Chain == f.chain {
							pp.Pos++
						}
					}
				}
				f.pp = &pp
			case "source":
				if len(f.labels) != 2 {
					return nil, fmt.Errorf("line %d: source with %d labels, want a type and a name", l.n, len(f.labels))
				}
			}
			stack = append(stack, f)
		case l.end == l.start-1 && t == "}":
			top := stack[len(stack)-1]
			if top.pp != nil {
				var body strings.Builder
				for _, b := range lines[top.index+1 : k] {
					body.WriteString(b.text)
					body.WriteByte('\n')
				}
				top.pp.Body = body.String()
				h.PostProcessors = append(h.PostProcessors, *top.pp)
			}
			stack = stack[:len(stack)-1]
		default:
			return nil, fmt.Errorf("line %d: %q: want one block opening or closing per line", l.n, t)
		}
	}
	if len(stack) > 0 {
		return nil, fmt.Errorf("line %d: block %s never closed", stack[len(stack)-1].line, stack[len(stack)-1].name)
	}
	return h, nil
}

// line is a line of HCL with the depth of block braces at its start and
// its end.
type line struct {
	n          int
	text       string
	start, end int
}

// scanLines splits src into lines and counts block braces outside strings,
// interpolations and comments.
func scanLines(src string) ([]line, error) {
	if len(src) > maxDoc {
		return nil, fmt.Errorf("%d bytes: more than %d", len(src), maxDoc)
	}
	const (
		code = iota
		str
		interp
	)
	type frame struct{ kind, braces int }
	var (
		lines   []line
		stack   = []frame{{kind: code}}
		depth   int
		comment bool // inside /* */
	)
	for i, text := range strings.Split(strings.TrimSuffix(src, "\n"), "\n") {
		n := i + 1
		l := line{n: n, text: text, start: depth}
	chars:
		for j := 0; j < len(text); j++ {
			c := text[j]
			next := byte(0)
			if j+1 < len(text) {
				next = text[j+1]
			}
			if comment {
				if c == '*' && next == '/' {
					comment = false
					j++
				}
				continue
			}
			top := &stack[len(stack)-1]
			switch top.kind {
			case code, interp:
				switch {
				case c == '#' || c == '/' && next == '/':
					break chars
				case c == '/' && next == '*':
					comment = true
					j++
				case c == '<' && next == '<' && top.kind == code:
					return nil, fmt.Errorf("line %d: heredocs are not supported here", n)
				case c == '"':
					stack = append(stack, frame{kind: str})
				case c == '{' && top.kind == interp:
					top.braces++
				case c == '}' && top.kind == interp:
					top.braces--
					if top.braces == 0 {
						stack = stack[:len(stack)-1]
					}
				case c == '{':
					depth++
				case c == '}':
					depth--
					if depth < 0 {
						return nil, fmt.Errorf("line %d: } without its {", n)
					}
				}
			case str:
				switch {
				case c == '\\':
					j++
				case c == '"':
					stack = stack[:len(stack)-1]
				case (c == '$' || c == '%') && next == '{':
					stack = append(stack, frame{kind: interp, braces: 1})
					j++
				}
			}
			if len(stack) > maxDepth || depth > maxDepth {
				return nil, fmt.Errorf("line %d: nested more than %d deep", n, maxDepth)
			}
		}
		if len(stack) > 1 {
			return nil, fmt.Errorf("line %d: string or interpolation not closed on its line", n)
		}
		l.end = depth
		lines = append(lines, l)
	}
	if comment {
		return nil, errors.New("comment /* never closed")
	}
	if depth != 0 {
		return nil, fmt.Errorf("%d block(s) never closed", depth)
	}
	return lines, nil
}

// Logical returns the commands of a shell block: its lines with
// backslash-continued lines joined, comments left as they are.
func Logical(text string) []string {
	var (
		out []string
		cur strings.Builder
	)
	for _, l := range strings.Split(text, "\n") {
		if s, ok := strings.CutSuffix(l, "\\"); ok {
			cur.WriteString(s)
			continue
		}
		cur.WriteString(l)
		out = append(out, cur.String())
		cur.Reset()
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}
