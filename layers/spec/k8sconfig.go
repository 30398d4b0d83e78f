package spec

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	kubeproxyv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
)

// KubeletConfigJSON returns the effective KubeletConfiguration (defaults
// merged with the spec, removed keys dropped) as indented JSON with sorted
// keys. It does not validate; see Validate.
func (s *Spec) KubeletConfigJSON() ([]byte, error) {
	d := s.defaulted()
	return configJSON(d.Kubelet.Config)
}

// KubeProxyConfigJSON returns the effective KubeProxyConfiguration like
// KubeletConfigJSON.
func (s *Spec) KubeProxyConfigJSON() ([]byte, error) {
	d := s.defaulted()
	return configJSON(d.KubeProxy.Config)
}

func configJSON(m map[string]any) ([]byte, error) {
	b, err := json.MarshalIndent(effectiveConfig(m), "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding configuration: %w", err)
	}
	return append(b, '\n'), nil
}

// KubeletFlags returns the effective kubelet flags, sorted, as
// "--name=value".
func (s *Spec) KubeletFlags() []string {
	return flags(s.defaulted().Kubelet.Settings)
}

// KubeProxyFlags returns the effective kube-proxy flags like KubeletFlags.
func (s *Spec) KubeProxyFlags() []string {
	return flags(s.defaulted().KubeProxy.Settings)
}

func flags(settings map[string]*string) []string {
	out := make([]string, 0, len(settings))
	for k, v := range settings {
		if v != nil {
			out = append(out, "--"+k+"="+*v)
		}
	}
	sort.Strings(out)
	return out
}

// checkKubeletConfig checks an effective KubeletConfiguration map against
// the upstream type.
func checkKubeletConfig(errs *errorList, path string, m map[string]any) {
	checkConfigType(errs, path, m, reflect.TypeFor[kubeletv1beta1.KubeletConfiguration]())
}

// checkKubeProxyConfig checks an effective KubeProxyConfiguration map.
func checkKubeProxyConfig(errs *errorList, path string, m map[string]any) {
	checkConfigType(errs, path, m, reflect.TypeFor[kubeproxyv1alpha1.KubeProxyConfiguration]())
}

// checkConfigType reports every field of m (after a JSON round trip) that
// the Go type t does not know or cannot decode, with its path, then decodes
// the whole document strictly as a final check.
func checkConfigType(errs *errorList, path string, m map[string]any, t reflect.Type) {
	b, err := json.Marshal(m)
	if err != nil {
		errs.add(path, "cannot encode as JSON: %v", err)
		return
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		errs.add(path, "cannot decode JSON: %v", err)
		return
	}
	n := len(*errs)
	checkJSON(errs, path, v, t)
	if len(*errs) > n {
		return
	}
	dec = json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(reflect.New(t).Interface()); err != nil {
		errs.add(path, "invalid %s: %v", t.Name(), err)
	}
}

var (
	jsonUnmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// checkJSON walks a decoded JSON value against a Go type by its json tags.
func checkJSON(errs *errorList, path string, v any, t reflect.Type) {
	if v == nil {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	pt := reflect.PointerTo(t)
	if pt.Implements(jsonUnmarshalerType) || pt.Implements(textUnmarshalerType) {
		decodeJSONLeaf(errs, path, v, t)
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			errs.add(path, "expected an object, got %s", describeJSON(v))
			return
		}
		fields, names := jsonFields(t)
		for _, k := range sortedKeys(m) {
			ft, ok := fields[k]
			if !ok {
				errs.add(field(path, k), "unknown field%s", suggest(k, names))
				continue
			}
			checkJSON(errs, field(path, k), m[k], ft)
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			errs.add(path, "expected an object, got %s", describeJSON(v))
			return
		}
		for _, k := range sortedKeys(m) {
			checkJSON(errs, field(path, k), m[k], t.Elem())
		}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			decodeJSONLeaf(errs, path, v, t)
			return
		}
		l, ok := v.([]any)
		if !ok {
			errs.add(path, "expected a list, got %s", describeJSON(v))
			return
		}
		for i, e := range l {
			checkJSON(errs, index(path, i), e, t.Elem())
		}
	default:
		decodeJSONLeaf(errs, path, v, t)
	}
}

// decodeJSONLeaf decodes v into a new value of type t.
func decodeJSONLeaf(errs *errorList, path string, v any, t reflect.Type) {
	b, err := json.Marshal(v)
	if err != nil {
		errs.add(path, "cannot encode as JSON: %v", err)
		return
	}
	err = json.Unmarshal(b, reflect.New(t).Interface())
	if err == nil {
		return
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		errs.add(path, "expected %s, got %s", describeType(te.Type), describeJSON(v))
		return
	}
	errs.add(path, "%s", strings.TrimPrefix(err.Error(), "json: "))
}

// jsonFields maps the json names of a struct's fields, including those of
// embedded structs without a name, to their types.
func jsonFields(t reflect.Type) (map[string]reflect.Type, []string) {
	fields := map[string]reflect.Type{}
	var names []string
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			if f.Anonymous && name == "" {
				ft := f.Type
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if ft.Kind() == reflect.Struct {
					walk(ft)
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if _, dup := fields[name]; !dup {
				names = append(names, name)
			}
			fields[name] = f.Type
		}
	}
	walk(t)
	sort.Strings(names)
	return fields, names
}

// describeJSON names what a decoded JSON value is.
func describeJSON(v any) string {
	switch v := v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case string:
		return fmt.Sprintf("string %q", v)
	case json.Number:
		return "number " + v.String()
	case bool:
		return fmt.Sprintf("boolean %v", v)
	}
	return fmt.Sprintf("%v", v)
}

func sortedKeys[K ~string, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
