package inventory

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/nodebake/nodebake/builder/ansible/jinja"
)

// parseINI reads an INI inventory:
//
//	host1 ansible_host=192.0.2.1            # before any section: ungrouped
//	[vpn]
//	worker0[1:3].example wireguard_port=51820
//	[k8s:children]
//	k8s_worker
//	[k8s_worker:vars]
//	k8s_interface=wg0
//
// Inline host variables are Python literals after shell-style quoting
// (port=22 is a number, addr=10.8.0.1/24 a string); [GROUP:vars] values are
// strings.
func parseINI(file string, data []byte) (*Inventory, error) {
	inv := newInventory(file)
	budget := MaxHosts
	section, kind := "ungrouped", "hosts"
	for i, raw := range strings.Split(string(data), "\n") {
		line := i + 1
		t := strings.TrimSpace(strings.TrimSuffix(raw, "\r"))
		if t == "" || t[0] == '#' || t[0] == ';' {
			continue
		}
		if t[0] == '[' {
			if !strings.HasSuffix(t, "]") {
				return nil, fileErrorf(file, line, "%q: a section header is [NAME], [NAME:vars] or [NAME:children]", t)
			}
			name := t[1 : len(t)-1]
			kind = "hosts"
			if g, k, ok := strings.Cut(name, ":"); ok {
				name, kind = g, k
				if kind != "vars" && kind != "children" {
					return nil, fileErrorf(file, line, "%q: unknown section kind %q (want vars or children)", t, kind)
				}
			}
			if _, err := inv.group(name, Source{file, line}); err != nil {
				return nil, err
			}
			section = name
			continue
		}
		g := inv.groups[section]
		switch kind {
		case "children":
			child := strings.Fields(t)
			if len(child) != 1 {
				return nil, fileErrorf(file, line, "%q: a [%s:children] line names one group", t, section)
			}
			if child[0] == "all" {
				return nil, fileErrorf(file, line, "the group all cannot be a child")
			}
			if _, err := inv.group(child[0], Source{file, line}); err != nil {
				return nil, err
			}
			if !contains(g.Children, child[0]) {
				g.Children = append(g.Children, child[0])
			}
		case "vars":
			k, v, ok := strings.Cut(t, "=")
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if !ok || !varNameRE.MatchString(k) {
				return nil, fileErrorf(file, line, "%q: a [%s:vars] line is NAME=VALUE with a valid variable name", t, section)
			}
			g.Vars = append(g.Vars, Var{Name: k, Value: v, Source: Source{file, line}})
		default:
			words, err := shellSplit(t)
			if err != nil {
				return nil, fileErrorf(file, line, "%v", err)
			}
			if len(words) == 0 {
				continue
			}
			pattern, port := splitPort(words[0])
			hosts, err := expandHosts(file, line, pattern, &budget)
			if err != nil {
				return nil, err
			}
			var vars []Var
			if port != "" {
				n, err := strconv.Atoi(port)
				if err != nil || n < 1 || n > 65535 {
					return nil, fileErrorf(file, line, "%q: port %q is not 1-65535", words[0], port)
				}
				vars = append(vars, Var{Name: "ansible_port", Value: int64(n), Source: Source{file, line}})
			}
			for _, w := range words[1:] {
				k, v, ok := strings.Cut(w, "=")
				if !ok || !varNameRE.MatchString(k) {
					return nil, fileErrorf(file, line, "%q: host variables are NAME=VALUE with a valid variable name", w)
				}
				vars = append(vars, Var{Name: k, Value: pythonLiteral(v), Source: Source{file, line}})
			}
			for _, h := range hosts {
				if err := inv.addHost(h, Source{file, line}); err != nil {
					return nil, err
				}
				if !contains(g.Hosts, h) {
					g.Hosts = append(g.Hosts, h)
				}
				inv.hostVars[h] = append(inv.hostVars[h], vars...)
			}
		}
	}
	return inv, nil
}

// splitPort splits host:port. Colons inside range brackets do not count,
// and an IPv6 address (several colons) has no port.
func splitPort(s string) (host, port string) {
	depth, colons, last := 0, 0, -1
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[':
			depth++
		case ']':
			depth--
		case ':':
			if depth == 0 {
				colons++
				last = i
			}
		}
	}
	if colons != 1 {
		return s, ""
	}
	return s[:last], s[last+1:]
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// shellSplit splits a line as Python's shlex.split(line, comments=True)
// does: whitespace separates words, quotes group, backslash escapes outside
// single quotes, and # starts a comment outside quotes.
func shellSplit(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '#':
			if inWord {
				words = append(words, cur.String())
			}
			return words, nil
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\\':
			if i+1 < len(s) {
				i++
				cur.WriteByte(s[i])
			}
			inWord = true
		case c == '\'' || c == '"':
			j := i + 1
			for ; j < len(s) && s[j] != c; j++ {
				if c == '"' && s[j] == '\\' && j+1 < len(s) && strings.IndexByte("\\\"$`", s[j+1]) >= 0 {
					j++
				}
				cur.WriteByte(s[j])
			}
			if j >= len(s) {
				return nil, errorString("unclosed quote")
			}
			i = j
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

type errorString string

func (e errorString) Error() string { return string(e) }

var (
	pyIntRE   = regexp.MustCompile(`^[-+]?(0|[1-9][0-9_]*)$`)
	pyFloatRE = regexp.MustCompile(`^[-+]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$`)
)

// pythonLiteral reads a value as Ansible reads an inline INI host
// variable: a Python literal (numbers, True, False, None, quoted strings,
// lists of them) if it is one, else the string itself.
func pythonLiteral(s string) any {
	if v, rest, ok := pyValue(s, 0); ok && strings.TrimSpace(rest) == "" {
		return v
	}
	return s
}

func pyValue(s string, depth int) (any, string, bool) {
	s = strings.TrimLeft(s, " \t")
	if s == "" || depth > MaxDepth {
		return nil, s, false
	}
	switch s[0] {
	case '\'', '"':
		v, n, ok := jinja.QuotedString(s)
		if !ok {
			return nil, s, false
		}
		return v, s[n:], true
	case '[', '(':
		closing := byte(']')
		if s[0] == '(' {
			closing = ')'
		}
		rest := strings.TrimLeft(s[1:], " \t")
		list := []any{}
		for {
			if rest != "" && rest[0] == closing {
				return list, rest[1:], true
			}
			v, r, ok := pyValue(rest, depth+1)
			if !ok {
				return nil, s, false
			}
			list = append(list, v)
			r = strings.TrimLeft(r, " \t")
			switch {
			case r != "" && r[0] == ',':
				rest = strings.TrimLeft(r[1:], " \t")
			case r != "" && r[0] == closing:
				return list, r[1:], true
			default:
				return nil, s, false
			}
		}
	}
	end := strings.IndexAny(s, ",])")
	tok := s
	if end >= 0 {
		tok = s[:end]
	}
	rest := s[len(tok):]
	tok = strings.TrimSpace(tok)
	switch tok {
	case "True":
		return true, rest, true
	case "False":
		return false, rest, true
	case "None":
		return nil, rest, true
	}
	if pyIntRE.MatchString(tok) {
		if n, err := strconv.ParseInt(strings.ReplaceAll(tok, "_", ""), 10, 64); err == nil {
			return n, rest, true
		}
	}
	if pyFloatRE.MatchString(tok) {
		if f, err := strconv.ParseFloat(tok, 64); err == nil {
			return f, rest, true
		}
	}
	return nil, s, false
}
