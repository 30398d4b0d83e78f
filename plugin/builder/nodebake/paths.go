package nodebake

import (
	"reflect"
	"strconv"
	"strings"

	"github.com/nodebake/nodebake/layers/spec"
)

// The configuration mirrors the spec: a spec field and the configuration
// field it is set from have the same Go name, except for these.
var renamedFields = map[string]string{
	"Config": "ConfigJSON", // kubelet.config, kubeProxy.config: a JSON string
}

// unmappedFields are spec fields with no configuration field: the document
// header of a YAML spec, which the plugin fills in itself.
var unmappedFields = map[string]bool{"apiVersion": true, "kind": true}

// configPath translates a spec field path ("kubernetes.serviceCIDR",
// "files[2].mode", "components.cniPlugins.sha256.amd64") into the path of
// the configuration field that sets it ("kubernetes.service_cidr",
// "file[2].mode", "component[1].sha256.amd64"), walking the spec and
// configuration types side by side. A spec map whose entries are a list of
// named blocks in the configuration (the components) is translated through
// block, which returns the index of the block naming a key; a key no block
// names came from the spec file, and its spec path is kept whole. Map
// keys, list indexes and the content of free-form configuration stay as
// they are; a segment it cannot follow ends the translation and the rest
// is kept.
func configPath(specPath string, block func(key string) (int, bool)) string {
	segs := splitPath(specPath)
	st, ct := reflect.TypeFor[spec.Spec](), reflect.TypeFor[Config]()
	out := make([]string, 0, len(segs))
	for i, seg := range segs {
		st, ct = deref(st), deref(ct)
		switch {
		case seg.index:
			if st.Kind() != reflect.Slice || ct == nil || ct.Kind() != reflect.Slice {
				return joinPath(append(out, rawSegs(segs[i:])...))
			}
			out = append(out, seg.text)
			st, ct = st.Elem(), ct.Elem()
		case st.Kind() == reflect.Struct && ct != nil && ct.Kind() == reflect.Struct:
			sf, ok := yamlField(st, seg.text)
			if !ok {
				return joinPath(append(out, rawSegs(segs[i:])...))
			}
			cf, ok := configField(ct, sf.Name)
			if !ok {
				return joinPath(append(out, rawSegs(segs[i:])...))
			}
			out = append(out, mapstructureName(cf))
			st, ct = sf.Type, cf.Type
		case st.Kind() == reflect.Map && ct != nil && ct.Kind() == reflect.Slice:
			i, ok := block(seg.text)
			if !ok {
				return specPath
			}
			out = append(out, "["+strconv.Itoa(i)+"]")
			st, ct = st.Elem(), ct.Elem()
		case st.Kind() == reflect.Map:
			out = append(out, rawSegs([]pathSeg{seg})...)
			st = st.Elem()
			if ct != nil && ct.Kind() == reflect.Map {
				ct = ct.Elem()
			} else {
				ct = nil
			}
		default:
			// Free-form content (kubelet.config_json) or a leaf.
			return joinPath(append(out, rawSegs(segs[i:])...))
		}
	}
	return joinPath(out)
}

func deref(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// yamlField finds the field of a spec struct with a yaml name.
func yamlField(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		n, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if n == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// configField finds the configuration field set from the spec field with
// Go name goName.
func configField(t reflect.Type, goName string) (reflect.StructField, bool) {
	if n, ok := renamedFields[goName]; ok {
		goName = n
	}
	f, ok := t.FieldByName(goName)
	if !ok || mapstructureName(f) == "" {
		return reflect.StructField{}, false
	}
	return f, true
}

func mapstructureName(f reflect.StructField) string {
	n, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
	return n
}

type pathSeg struct {
	text  string // a name, or "[3]" / `["key"]` for an index
	index bool   // a list index
}

// splitPath splits a spec path into its segments: names, [N] and ["key"].
func splitPath(p string) []pathSeg {
	var segs []pathSeg
	for len(p) > 0 {
		switch p[0] {
		case '.':
			p = p[1:]
		case '[':
			end := strings.IndexByte(p, ']')
			if len(p) > 1 && p[1] == '"' {
				if q, err := strconv.QuotedPrefix(p[1:]); err == nil && len(p) > len(q)+1 && p[1+len(q)] == ']' {
					k, _ := strconv.Unquote(q)
					segs = append(segs, pathSeg{text: k})
					p = p[len(q)+2:]
					continue
				}
			}
			if end < 0 {
				return append(segs, pathSeg{text: p})
			}
			segs = append(segs, pathSeg{text: p[:end+1], index: true})
			p = p[end+1:]
		default:
			end := strings.IndexAny(p, ".[")
			if end < 0 {
				end = len(p)
			}
			segs = append(segs, pathSeg{text: p[:end]})
			p = p[end:]
		}
	}
	return segs
}

func rawSegs(segs []pathSeg) []string {
	out := make([]string, len(segs))
	for i, s := range segs {
		out[i] = s.text
		if !s.index && (s.text == "" || strings.ContainsAny(s.text, ".[]\"' \t\n")) {
			out[i] = "[" + strconv.Quote(s.text) + "]"
		}
	}
	return out
}

func joinPath(segs []string) string {
	var b strings.Builder
	for i, s := range segs {
		if i > 0 && !strings.HasPrefix(s, "[") {
			b.WriteByte('.')
		}
		b.WriteString(s)
	}
	return b.String()
}
