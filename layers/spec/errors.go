package spec

import (
	"fmt"
	"strconv"
	"strings"

	names "github.com/nodebake/nodebake/layers/suggest"
)

// FieldError is one problem with a spec, located by its field path
// ("components.kubelet.sha256.amd64", "files[2].mode"). Path is empty for a
// problem with the document as a whole (a YAML syntax error).
type FieldError struct {
	Path string
	Msg  string
}

// Error returns "path: msg", or msg alone when the path is empty.
func (e FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// ValidationError lists every problem found in a spec.
type ValidationError struct {
	// File is the spec file, when known; it prefixes every line.
	File   string
	Errors []FieldError
}

// Error lists the problems, one per line ("path: msg").
func (e *ValidationError) Error() string {
	var b strings.Builder
	for i, fe := range e.Errors {
		if i > 0 {
			b.WriteByte('\n')
		}
		if e.File != "" {
			b.WriteString(e.File + ": ")
		}
		b.WriteString(fe.Error())
	}
	return b.String()
}

// Has reports whether a problem is recorded for path.
func (e *ValidationError) Has(path string) bool {
	for _, fe := range e.Errors {
		if fe.Path == path {
			return true
		}
	}
	return false
}

// errorList collects field errors.
type errorList []FieldError

func (l *errorList) add(path, format string, args ...any) {
	*l = append(*l, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// err returns nil or a *ValidationError.
func (l errorList) err() error {
	if len(l) == 0 {
		return nil
	}
	return &ValidationError{Errors: l}
}

// field appends a map key or field name to a path; keys that would make
// the path ambiguous are quoted in brackets.
func field(path, key string) string {
	if key == "" || strings.ContainsAny(key, ".[]\"' \t\n") {
		return path + "[" + strconv.Quote(key) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// index appends a list index to a path.
func index(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// suggest returns " (did you mean X?)" when a known name is close to name.
func suggest(name string, known []string) string {
	if best := names.Closest(name, known); best != "" {
		return " (did you mean " + best + "?)"
	}
	return ""
}
