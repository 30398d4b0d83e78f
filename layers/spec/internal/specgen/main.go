// Command specgen writes the spec's JSON Schema (layers/spec/schema.json,
// which `nodebake spec schema` prints) and its reference (docs/spec.md)
// from the spec's Go types and their doc comments. It runs as
// `go generate ./layers/spec`; its test fails when either file is stale.
//
// The types give the structure (fields, YAML keys, types, lists, maps),
// the doc comments the descriptions, the spec package the enums (formats,
// architectures, component sources, pod networks), patterns and limits
// that Validate uses, the component catalogue the keys of components, and
// a defaulted spec the defaults. What Validate checks beyond what the Go
// types say (required fields, patterns, ranges) is listed once, in rules.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

// The generated files, relative to the module root.
const (
	SchemaFile = "layers/spec/schema.json"
	DocsFile   = "docs/spec.md"
)

// Generate returns the schema and the reference for the sources under root.
func Generate(root string) (schema, reference []byte, err error) {
	d := newDocs(root)
	if err := d.check(); err != nil {
		return nil, nil, err
	}
	m, err := buildModel(d)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the spec's types: %w", err)
	}
	schema, err = schemaJSON(m)
	if err != nil {
		return nil, nil, fmt.Errorf("writing the schema: %w", err)
	}
	return schema, markdown(m), nil
}

// moduleRoot returns the directory holding go.mod, from dir upwards.
func moduleRoot(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("no go.mod above " + dir)
		}
	}
}

// writeAtomic writes data to a temporary file beside path and renames it.
func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr, os.Chmod(tmp, 0o644)); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

func main() {
	flag.Parse()
	wd, err := os.Getwd()
	if err == nil {
		var root string
		if root, err = moduleRoot(wd); err == nil {
			var schema, ref []byte
			if schema, ref, err = Generate(root); err == nil {
				err = errors.Join(
					writeAtomic(filepath.Join(root, SchemaFile), schema),
					writeAtomic(filepath.Join(root, DocsFile), ref))
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "specgen:", err)
		os.Exit(1)
	}
}
