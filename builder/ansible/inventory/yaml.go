package inventory

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
)

// Limits on what is read. gopkg.in/yaml.v3 bounds the nesting of what it
// parses (10000 levels) and refuses alias-heavy documents only when it
// decodes into Go values; these limits are nodebake's own and apply to the
// node tree, aliases expanded.
const (
	// MaxFileSize is the largest vars or inventory file read.
	MaxFileSize = 1 << 20
	// MaxTotalSize is the most read from all files together.
	MaxTotalSize = 16 << 20
	// MaxFiles is the most vars files read.
	MaxFiles = 4096
	// MaxDepth is the deepest nesting of mappings and lists in a value.
	MaxDepth = 64
	// MaxNodes is the most YAML nodes one file may expand to, each alias
	// counting as often as it is used.
	MaxNodes = 100_000
)

// Unsafe is a string marked !unsafe: it is never templated.
type Unsafe string

// Vault is a value encrypted with Ansible Vault (!vault); it cannot be read.
type Vault string

// Source locates a value: a file and a line.
type Source struct {
	File string
	Line int
}

func (s Source) String() string {
	if s.Line > 0 {
		return s.File + ":" + strconv.Itoa(s.Line)
	}
	return s.File
}

// FileError is a problem with an input file, at a line when known.
type FileError struct {
	Source
	Msg string
}

func (e *FileError) Error() string { return e.Source.String() + ": " + e.Msg }

func fileErrorf(file string, line int, format string, args ...any) error {
	return &FileError{Source: Source{File: file, Line: line}, Msg: fmt.Sprintf(format, args...)}
}

// budget counts what is read across files.
type budget struct {
	total int64
	files int
}

// take charges one file of n bytes to the budget.
func (b *budget) take(file string, n int64) error {
	if n > MaxFileSize {
		return fileErrorf(file, 0, "%d bytes is larger than the limit of %d", n, MaxFileSize)
	}
	b.files++
	if b.files > MaxFiles {
		return fileErrorf(file, 0, "more than %d files to read", MaxFiles)
	}
	b.total += n
	if b.total > MaxTotalSize {
		return fileErrorf(file, 0, "the inputs together are larger than the limit of %d bytes", MaxTotalSize)
	}
	return nil
}

// readFile reads the regular file at path, at most MaxFileSize bytes,
// without blocking on anything else (a named pipe, a device), and charges
// it to the budget.
func readFile(path string, b *budget) ([]byte, error) {
	data, err := nodeconfig.ReadRegularFile(path, MaxFileSize)
	var tooLarge *nodeconfig.TooLargeError
	var notRegular *nodeconfig.NotRegularError
	switch {
	case errors.As(err, &tooLarge), errors.As(err, &notRegular):
		return nil, fileErrorf(path, 0, "%v", err)
	case err != nil:
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if err := b.take(path, int64(len(data))); err != nil {
		return nil, err
	}
	return data, nil
}

// parseYAMLDoc parses data as at most one YAML document and returns its
// root node, or nil for an empty document.
func parseYAMLDoc(file string, data []byte) (*yaml.Node, error) {
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("$ANSIBLE_VAULT;")) {
		return nil, fileErrorf(file, 1, "the file is encrypted with Ansible Vault: decrypt it first (ansible-vault decrypt), nodebake does not read vaults")
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, fileErrorf(file, 0, "%s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, fileErrorf(file, 0, "%s", strings.TrimPrefix(err.Error(), "yaml: "))
	default:
		return nil, fileErrorf(file, next.Line, "a second YAML document starts here; a vars file holds one")
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil, nil
		}
		root = root.Content[0]
	}
	return root, nil
}

// converter turns YAML nodes into values: map[string]any, []any, string,
// int64, float64, bool, nil, Unsafe and Vault. Plain scalars are typed as
// Ansible's YAML 1.1 reader types them (yes/no/on/off are booleans, 0644 is
// octal).
type converter struct {
	file  string
	nodes int
}

func (c *converter) value(n *yaml.Node, depth int) (any, error) {
	if depth > MaxDepth {
		return nil, fileErrorf(c.file, n.Line, "nested more than %d levels deep", MaxDepth)
	}
	c.nodes++
	if c.nodes > MaxNodes {
		return nil, fileErrorf(c.file, n.Line, "more than %d values (aliases counted as often as they are used)", MaxNodes)
	}
	switch n.Kind {
	case yaml.AliasNode:
		if n.Alias == nil {
			return nil, fileErrorf(c.file, n.Line, "unknown alias")
		}
		return c.value(n.Alias, depth+1)
	case yaml.ScalarNode:
		return c.scalar(n)
	case yaml.SequenceNode:
		if err := c.plainTag(n, "!!seq"); err != nil {
			return nil, err
		}
		out := make([]any, 0, len(n.Content))
		for _, item := range n.Content {
			v, err := c.value(item, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		if err := c.plainTag(n, "!!map"); err != nil {
			return nil, err
		}
		return c.mapping(n, depth)
	}
	return nil, fileErrorf(c.file, n.Line, "unexpected YAML node")
}

func (c *converter) plainTag(n *yaml.Node, want string) error {
	if n.Tag != "" && n.Tag != want && n.ShortTag() != want {
		return fileErrorf(c.file, n.Line, "unsupported YAML tag %s", n.Tag)
	}
	return nil
}

// mapping converts a mapping, applying merge keys (<<) and refusing
// duplicate keys.
func (c *converter) mapping(n *yaml.Node, depth int) (map[string]any, error) {
	out := map[string]any{}
	lines := map[string]int{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		key, err := c.key(k)
		if err != nil {
			return nil, err
		}
		if first, dup := lines[key]; dup {
			return nil, fileErrorf(c.file, k.Line, "duplicate key %q (first at line %d)", key, first)
		}
		lines[key] = k.Line
		val, err := c.value(v, depth+1)
		if err != nil {
			return nil, err
		}
		out[key] = val
	}
	// Merged keys fill in what the mapping does not set; earlier merges win.
	for _, m := range merges {
		srcs := []*yaml.Node{m}
		if m.Kind == yaml.SequenceNode {
			srcs = m.Content
		}
		for _, s := range srcs {
			sv, err := c.value(s, depth+1)
			if err != nil {
				return nil, err
			}
			sm, ok := sv.(map[string]any)
			if !ok {
				return nil, fileErrorf(c.file, s.Line, "a merge key (<<) needs a mapping")
			}
			for k, v := range sm {
				if _, set := out[k]; !set {
					out[k] = v
				}
			}
		}
	}
	return out, nil
}

// key converts a mapping key; keys are scalars, taken as strings.
func (c *converter) key(k *yaml.Node) (string, error) {
	if k.Kind == yaml.AliasNode && k.Alias != nil {
		k = k.Alias
	}
	if k.Kind != yaml.ScalarNode {
		return "", fileErrorf(c.file, k.Line, "a mapping key must be a scalar")
	}
	v, err := c.scalar(k)
	if err != nil {
		return "", err
	}
	switch v := v.(type) {
	case string:
		return v, nil
	case nil:
		return "", fileErrorf(c.file, k.Line, "a mapping key must not be null")
	case Unsafe, Vault:
		return "", fileErrorf(c.file, k.Line, "a mapping key must be a plain scalar")
	default:
		return fmt.Sprint(v), nil
	}
}

func (c *converter) scalar(n *yaml.Node) (any, error) {
	switch n.Tag {
	case "!unsafe":
		return Unsafe(n.Value), nil
	case "!vault":
		return Vault(n.Value), nil
	}
	quoted := n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0
	switch n.ShortTag() {
	case "!!str":
		if quoted {
			return n.Value, nil
		}
		return c.resolve11(n)
	case "!!int", "!!float", "!!bool", "!!null":
		if quoted {
			return n.Value, nil
		}
		return c.resolve11(n)
	case "!!timestamp":
		return n.Value, nil
	}
	return nil, fileErrorf(c.file, n.Line, "unsupported YAML tag %s", n.Tag)
}

var (
	int11RE   = regexp.MustCompile(`^[-+]?(0b[01_]+|0[0-7_]+|(0|[1-9][0-9_]*)|0x[0-9a-fA-F_]+|[1-9][0-9_]*(:[0-5]?[0-9])+)$`)
	float11RE = regexp.MustCompile(`^([-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN))$`)
)

// resolve11 types a plain scalar as YAML 1.1 (PyYAML, which Ansible uses)
// does.
func (c *converter) resolve11(n *yaml.Node) (any, error) {
	s := n.Value
	switch s {
	case "", "~", "null", "Null", "NULL":
		return nil, nil
	case "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON":
		return true, nil
	case "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF":
		return false, nil
	}
	if int11RE.MatchString(s) {
		v, err := parseInt11(s)
		if err != nil {
			return nil, fileErrorf(c.file, n.Line, "integer %s: %v", s, err)
		}
		return v, nil
	}
	if float11RE.MatchString(s) && s != "." {
		return parseFloat11(s), nil
	}
	return s, nil
}

func parseInt11(s string) (int64, error) {
	t := strings.ReplaceAll(s, "_", "")
	neg := false
	if t[0] == '-' || t[0] == '+' {
		neg = t[0] == '-'
		t = t[1:]
	}
	var v int64
	var err error
	switch {
	case strings.Contains(t, ":"):
		for _, p := range strings.Split(t, ":") {
			d, perr := strconv.ParseInt(p, 10, 64)
			if perr != nil || v > (math.MaxInt64-d)/60 {
				return 0, fmt.Errorf("out of range")
			}
			v = v*60 + d
		}
	case strings.HasPrefix(t, "0b"):
		v, err = strconv.ParseInt(t[2:], 2, 64)
	case strings.HasPrefix(t, "0x"):
		v, err = strconv.ParseInt(t[2:], 16, 64)
	case len(t) > 1 && t[0] == '0':
		v, err = strconv.ParseInt(t[1:], 8, 64)
	default:
		v, err = strconv.ParseInt(t, 10, 64)
	}
	if err != nil {
		return 0, fmt.Errorf("out of range")
	}
	if neg {
		v = -v
	}
	return v, nil
}

func parseFloat11(s string) float64 {
	t := strings.ReplaceAll(s, "_", "")
	switch strings.ToLower(strings.TrimLeft(t, "+-")) {
	case ".inf":
		if strings.HasPrefix(t, "-") {
			return math.Inf(-1)
		}
		return math.Inf(1)
	case ".nan":
		return math.NaN()
	}
	if strings.Contains(t, ":") {
		neg := strings.HasPrefix(t, "-")
		t = strings.TrimLeft(t, "+-")
		var v float64
		parts := strings.Split(t, ":")
		for _, p := range parts {
			f, _ := strconv.ParseFloat(p, 64)
			v = v*60 + f
		}
		if neg {
			v = -v
		}
		return v
	}
	f, _ := strconv.ParseFloat(t, 64)
	return f
}

// DecodeYAML decodes one YAML document into a value (see converter),
// within the limits. It is how Ansible would read a YAML document a
// variable holds as text (k8s_worker_kubelet_conf_yaml). name names the
// document in errors.
func DecodeYAML(name string, data []byte) (any, error) {
	if len(data) > MaxFileSize {
		return nil, fileErrorf(name, 0, "%d bytes is larger than the limit of %d", len(data), MaxFileSize)
	}
	root, err := parseYAMLDoc(name, data)
	if err != nil || root == nil {
		return nil, err
	}
	c := &converter{file: name}
	return c.value(root, 0)
}
