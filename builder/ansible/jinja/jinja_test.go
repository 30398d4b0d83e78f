package jinja

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// obj is a test Object: hostvars-like, it takes a Str key.
type obj map[string]any

func (o obj) Attr(name string) (any, error) {
	v, ok := o[name]
	if !ok {
		return nil, fmt.Errorf("no %s", name)
	}
	return v, nil
}

func (o obj) Index(k any) (any, error) {
	switch k := k.(type) {
	case Str:
		return o.Attr("<" + string(k.Placeholders()[0]) + ">")
	case string:
		return o.Attr(k)
	}
	return nil, fmt.Errorf("bad key")
}

func testEnv() *Env {
	vars := map[string]any{
		"dir":   "/var/lib/kubelet",
		"iface": "wg0",
		"port":  int64(6443),
		"list":  []any{"a", "b"},
		"m":     map[string]any{"k": "v", "nested": map[string]any{"x": int64(1)}},
		"node":  Str{{Placeholder: "node name"}},
		"flag":  true,
		"hv": obj{
			"<node name>": obj{"ansible_wg0": map[string]any{"ipv4": map[string]any{"address": Str{{Placeholder: "ip"}}}}},
			"other":       obj{"x": "y"},
		},
	}
	return &Env{
		Lookup: func(name string) (any, error) {
			v, ok := vars[name]
			if !ok {
				return nil, fmt.Errorf("%s is undefined", name)
			}
			return v, nil
		},
		Filters: map[string]Filter{
			"upper": func(in any, args []any) (any, error) { return strings.ToUpper(in.(string)), nil },
		},
	}
}

func TestRender(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want any
	}{
		{"plain text", "plain text"},
		{"{{dir}}/kubelet-config.yaml", "/var/lib/kubelet/kubelet-config.yaml"},
		{"{{ dir }}", "/var/lib/kubelet"},
		{"{{ port }}", int64(6443)},     // one expression keeps its type
		{"{{ list }}", []any{"a", "b"}}, // a list stays a list
		{"https://h:{{ port }}", "https://h:6443"},
		{"{{ 'ansible_' + iface }}", "ansible_wg0"},
		{"{{ 'a' ~ port ~ 'b' }}", "a6443b"},
		{"{{ port + 1 }}", int64(6444)},
		{"{{ m.k }}-{{ m['k'] }}-{{ m.nested.x }}", "v-v-1"},
		{"{{ list[1] }}{{ list.0 }}", "ba"},
		{"{{ flag }}", true},
		{"x{{ flag }}", "xTrue"},
		{"{{ none }}", nil},
		{"x{{ none }}", "xNone"},
		{"{{ 'a\\'b' }}", "a'b"},
		{"{{ \"}}\" }}", "}}"},
		{"{{ iface | upper }}", "WG0"},
		{"a {# comment #}b", "a b"},
		{"a   {{- iface -}}   b", "awg0b"},
		{"{{ (iface ~ '0') }}", "wg00"},
		{"cert-{{ node }}.pem", Str{{Text: "cert-"}, {Placeholder: "node name"}, {Text: ".pem"}}},
		{"{{ hv[node]['ansible_' + iface].ipv4.address }}", Str{{Placeholder: "ip"}}},
		{"{{ hv[node]['ansible_' + iface].ipv4.address }}:10256", Str{{Placeholder: "ip"}, {Text: ":10256"}}},
		{"{{ hv['other'].x }}", "y"},
	} {
		got, err := Render(tc.src, testEnv())
		if err != nil {
			t.Errorf("%q: %v", tc.src, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q = %#v, want %#v", tc.src, got, tc.want)
		}
	}
}

func TestRenderRefuses(t *testing.T) {
	for _, tc := range []struct {
		src, want string
	}{
		{"{% if x %}a{% endif %}", "statement blocks"},
		{"{{ x is defined }}", `"is"`},
		{"{{ dir if flag else 'x' }}", `"if"`},
		{"{{ dir == 'x' }}", `"=="`},
		{"{{ port - 1 }}", `"-"`},
		{"{{ port * 2 }}", `"*"`},
		{"{{ dir | default('x') }}", `unknown filter "default"`},
		{"{{ dir | to_yaml }}", `unknown filter "to_yaml"`},
		{"{{ lookup('env', 'HOME') }}", "function calls"},
		{"{{ dir.split('/') }}", "method calls"},
		{"{{ dir.upper }}", "string methods"},
		{"{{ missing }}", "missing is undefined"},
		{"{{ dir", "unclosed {{"},
		{"{{ 'abc }}", "unclosed string"},
		{"{# never closed", "unclosed comment"},
		{"{{ [1, 2] }}", "list literals"},
		{"{{ {'a': 1} }}", "mapping literals"},
		{"{{ list[0:1] }}", "unsupported syntax"},
		{"{{ m.nokey }}", `no key "nokey"`},
		{"{{ list[5] }}", "out of range"},
		{"x{{ list }}", "a list cannot be part of a string"},
		{"{{ port + 'a' }}", "cannot add"},
		{"{{ dir dir }}", `unexpected "dir"`},
		{"{{ }}", "incomplete expression"},
		{strings.Repeat("{{ (", 1) + strings.Repeat("(", 100) + "dir" + strings.Repeat(")", 101) + " }}", "nested more than"},
		{"{{ " + strings.Repeat("dir[", 100) + "'x'" + strings.Repeat("]", 100) + " }}", "nested more than"},
		{"{{ m" + strings.Repeat(".k", 20000) + " }}", "more than 10000 parts"},
		{"{{ dir" + strings.Repeat(" ~ dir", 20000) + " }}", "more than 10000 parts"},
	} {
		_, err := Render(tc.src, testEnv())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error with %q", tc.src, err, tc.want)
		}
	}
}

func TestLengthBound(t *testing.T) {
	env := testEnv()
	big := strings.Repeat("x", MaxLength/2+1)
	inner := env.Lookup
	env.Lookup = func(name string) (any, error) {
		if name == "big" {
			return big, nil
		}
		return inner(name)
	}
	if _, err := Render("{{ big ~ big }}", env); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("a doubled large string: got %v, want the length bound", err)
	}
	if _, err := Render("{{ big }}{{ big }}", env); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("two large parts: got %v, want the length bound", err)
	}
	if _, err := Parse(strings.Repeat("x", MaxTemplateSize+1)); err == nil {
		t.Error("a template over the size bound parsed")
	}
}

func TestHasTemplate(t *testing.T) {
	for s, want := range map[string]bool{"a": false, "{{x}}": true, "{% x %}": true, "{# c #}": true, "{ x }": false} {
		if HasTemplate(s) != want {
			t.Errorf("HasTemplate(%q) = %v", s, !want)
		}
	}
}

func TestStr(t *testing.T) {
	s := Str{{Text: "cert-"}, {Placeholder: "node name"}, {Text: ".pem"}}
	if got := s.String(); got != "cert-<node name>.pem" {
		t.Errorf("String() = %q", got)
	}
	if got := s.Replace(func(p Placeholder) string { return "w1" }); got != "cert-w1.pem" {
		t.Errorf("Replace = %q", got)
	}
}

func TestQuotedString(t *testing.T) {
	for _, tc := range []struct {
		in    string
		value string
		n     int
		ok    bool
	}{
		{`'abc' rest`, "abc", 5, true},
		{`"a\"b"`, `a"b`, 6, true},
		{`'a\nb\tc\rd\\e\'f'`, "a\nb\tc\rd\\e'f", 18, true},
		{`"it's"`, "it's", 6, true},
		{`''`, "", 2, true},
		{`'unclosed`, "", 0, false},
		{`'ends in a backslash\`, "", 0, false},
		{`abc`, "", 0, false},
		{``, "", 0, false},
	} {
		v, n, ok := QuotedString(tc.in)
		if v != tc.value || n != tc.n || ok != tc.ok {
			t.Errorf("QuotedString(%q) = %q, %d, %v; want %q, %d, %v", tc.in, v, n, ok, tc.value, tc.n, tc.ok)
		}
	}
}
