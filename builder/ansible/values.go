package ansible

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/nodebake/nodebake/builder/ansible/inventory"
	"github.com/nodebake/nodebake/builder/ansible/jinja"
)

// Sentinels stand for placeholders while a rendered YAML document is
// parsed; they are valid plain scalars and cannot occur in the input (it
// is checked).
const sentinelPrefix = "nodebake-placeholder-"

func sentinel(p jinja.Placeholder) string {
	return sentinelPrefix + strings.ReplaceAll(string(p), " ", "-") + "-x"
}

func placeholders() []jinja.Placeholder { return []jinja.Placeholder{phNodeName, phNodeIP} }

// decodeYAMLText parses a YAML document that a variable holds as text
// (after templating), keeping the placeholders: strings holding them
// become jinja.Str values.
func decodeYAMLText(name string, v any) (map[string]any, error) {
	var text string
	switch t := v.(type) {
	case string:
		text = t
	case jinja.Str:
		for _, p := range t {
			if strings.Contains(p.Text, sentinelPrefix) {
				return nil, fmt.Errorf("the text holds %q, which nodebake reserves", sentinelPrefix)
			}
		}
		text = t.Replace(sentinel)
	default:
		return nil, fmt.Errorf("want a YAML document as text (%s: |), got %s", name, jinja.Describe(v))
	}
	if s, ok := v.(string); ok && strings.Contains(s, sentinelPrefix) {
		return nil, fmt.Errorf("the text holds %q, which nodebake reserves", sentinelPrefix)
	}
	doc, err := inventory.DecodeYAML(name, []byte(text))
	if err != nil {
		return nil, fmt.Errorf("the YAML document it holds: %w", err)
	}
	m, ok := doc.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("the YAML document it holds is %s, not a mapping", jinja.Describe(doc))
	}
	out, err := restorePlaceholders(m, 0)
	if err != nil {
		return nil, err
	}
	return out.(map[string]any), nil
}

func restorePlaceholders(v any, depth int) (any, error) {
	switch v := v.(type) {
	case string:
		if !strings.Contains(v, sentinelPrefix) {
			return v, nil
		}
		var s jinja.Str
		rest := v
		for rest != "" {
			i := strings.Index(rest, sentinelPrefix)
			if i < 0 {
				s = append(s, jinja.Part{Text: rest})
				break
			}
			if i > 0 {
				s = append(s, jinja.Part{Text: rest[:i]})
			}
			found := false
			for _, p := range placeholders() {
				if strings.HasPrefix(rest[i:], sentinel(p)) {
					s = append(s, jinja.Part{Placeholder: p})
					rest = rest[i+len(sentinel(p)):]
					found = true
					break
				}
			}
			if !found {
				return nil, fmt.Errorf("the text holds %q, which nodebake reserves", sentinelPrefix)
			}
		}
		return s, nil
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			x, err := restorePlaceholders(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			if strings.Contains(k, sentinelPrefix) {
				return nil, fmt.Errorf("a per-node value cannot be a key (%s)", k)
			}
			x, err := restorePlaceholders(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[k] = x
		}
		return out, nil
	}
	return v, nil
}

// hasPlaceholder reports whether a value holds a placeholder anywhere.
func hasPlaceholder(v any) bool {
	switch v := v.(type) {
	case jinja.Str:
		return len(v.Placeholders()) > 0
	case []any:
		for _, e := range v {
			if hasPlaceholder(e) {
				return true
			}
		}
	case map[string]any:
		for _, e := range v {
			if hasPlaceholder(e) {
				return true
			}
		}
	}
	return false
}

// isPlaceholder reports whether v is exactly the placeholder p.
func isPlaceholder(v any, p jinja.Placeholder) bool {
	s, ok := v.(jinja.Str)
	return ok && len(s) == 1 && s[0].Placeholder == p
}

// strMatches reports whether v, a Str or string, reads want when each
// placeholder is written as its sentinel.
func strMatches(v any, want string) bool {
	switch s := v.(type) {
	case string:
		return s == want
	case jinja.Str:
		return s.Replace(sentinel) == want
	}
	return false
}

// show writes a value for the report: strings plain when they are simple,
// placeholders as <name>, everything else as compact JSON-like text.
func show(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		if len(v) > 200 {
			return strconv.Quote(v[:120]) + fmt.Sprintf("... (%d bytes)", len(v))
		}
		if v == "" || looksTyped(v) || strings.ContainsAny(v, " \t\n\"'{}[],#") ||
			strings.Contains(v, ":") && !strings.HasPrefix(v, "/") && !strings.Contains(v, "://") && !isHostPort(v) {
			return strconv.Quote(v)
		}
		return v
	case jinja.Str:
		if s := v.String(); len(s) > 200 {
			return strconv.Quote(s[:120]) + fmt.Sprintf("... (%d bytes)", len(s))
		}
		return v.String()
	case bool, int64, float64:
		return fmt.Sprint(v)
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = show(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		parts := make([]string, 0, len(v))
		for _, k := range sortedKeys(v) {
			parts = append(parts, k+": "+show(v[k]))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return fmt.Sprint(v)
}

// looksTyped reports whether a plain YAML reader would take s for a
// number, boolean or null.
func looksTyped(s string) bool {
	switch strings.ToLower(s) {
	case "true", "false", "yes", "no", "on", "off", "null", "~":
		return true
	}
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

// isHostPort reports whether s is an IPv4 address or name with a port.
func isHostPort(s string) bool {
	host, port, ok := strings.Cut(s, ":")
	_, err := strconv.Atoi(port)
	return ok && err == nil && host != "" && !strings.Contains(port, ":")
}

// plainString returns the value as a flag value: strings as they are,
// numbers and booleans written out. ok is false for anything else.
func plainString(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case int64:
		return strconv.FormatInt(v, 10), true
	case bool:
		return strconv.FormatBool(v), true
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), true
	}
	return "", false
}

// jsonNorm returns v as it reads back from JSON (numbers as json.Number),
// so values decoded from YAML and from JSON compare equal.
func jsonNorm(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return v
	}
	return out
}

func sameValue(a, b any) bool { return reflect.DeepEqual(jsonNorm(a), jsonNorm(b)) }

// leaf is one value in a nested mapping, by dotted path.
type leaf struct {
	path  string
	value any
}

// leaves flattens a mapping: a value that is not a mapping is a leaf (lists
// are leaves).
func leaves(m map[string]any, prefix string) []leaf {
	var out []leaf
	for _, k := range sortedKeys(m) {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		if sub, ok := m[k].(map[string]any); ok && len(sub) > 0 {
			out = append(out, leaves(sub, p)...)
			continue
		}
		out = append(out, leaf{p, m[k]})
	}
	return out
}

// lookupPath returns the value at a dotted path of a nested mapping.
func lookupPath(m map[string]any, path string) (any, bool) {
	var cur any = m
	for _, k := range strings.Split(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = mm[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// deletePath removes the value at a dotted path, and mappings left empty.
func deletePath(m map[string]any, path string) {
	keys := strings.Split(path, ".")
	if len(keys) == 1 {
		delete(m, keys[0])
		return
	}
	sub, ok := m[keys[0]].(map[string]any)
	if !ok {
		return
	}
	deletePath(sub, strings.Join(keys[1:], "."))
	if len(sub) == 0 {
		delete(m, keys[0])
	}
}

// mergeInto deep-merges over onto base (maps merge, the rest replaces).
func mergeInto(base, over map[string]any) map[string]any {
	if base == nil {
		base = map[string]any{}
	}
	for k, v := range over {
		if vm, ok := v.(map[string]any); ok {
			if bm, ok := base[k].(map[string]any); ok {
				base[k] = mergeInto(bm, vm)
				continue
			}
		}
		base[k] = v
	}
	return base
}

// sortedStrings returns the sorted keys of a set.
func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
