package inventory

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Var is one variable as a file or an inventory line sets it.
type Var struct {
	Name   string
	Value  any
	Source Source
}

// VarsFile is a group_vars or host_vars file: the variables it sets, in the
// file's order.
type VarsFile struct {
	// Target is the group or host the file is for.
	Target string
	Path   string
	Vars   []Var
}

// Ignored is a file in a vars directory that Ansible does not read.
type Ignored struct {
	Path   string
	Reason string
}

// VarsDir is what a group_vars or host_vars location holds: files by target,
// in the order Ansible applies them.
type VarsDir struct {
	Files   []VarsFile
	Ignored []Ignored
}

// For returns the files for a target, in the order they apply.
func (d *VarsDir) For(target string) []VarsFile {
	var out []VarsFile
	for _, f := range d.Files {
		if f.Target == target {
			out = append(out, f)
		}
	}
	return out
}

// Targets returns every target that has a file, sorted.
func (d *VarsDir) Targets() []string {
	seen := map[string]bool{}
	var out []string
	for _, f := range d.Files {
		if !seen[f.Target] {
			seen[f.Target] = true
			out = append(out, f.Target)
		}
	}
	sort.Strings(out)
	return out
}

// varExts are the extensions Ansible reads vars files with ("" is none).
func isVarsExt(ext string) bool {
	switch ext {
	case "", ".yml", ".yaml", ".json":
		return true
	}
	return false
}

var varNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Loader reads vars files and inventories within the limits; one Loader
// shares its byte budget across everything it reads.
type Loader struct {
	b budget
}

// LoadVars reads a group_vars or host_vars location: a directory of
// TARGET.yml (.yaml, .json or no extension) files and TARGET/ directories
// whose files apply in name order, or a single TARGET.yml file.
func (l *Loader) LoadVars(path string) (*VarsDir, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading vars: %w", err)
	}
	d := &VarsDir{}
	if !fi.IsDir() {
		if !fi.Mode().IsRegular() {
			return nil, fileErrorf(path, 0, "not a regular file or a directory")
		}
		f, err := l.loadVarsFile(path, targetOf(filepath.Base(path)))
		if err != nil {
			return nil, err
		}
		d.Files = append(d.Files, f)
		return d, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("reading vars: %w", err)
	}
	for _, e := range entries { // sorted by name
		p := filepath.Join(path, e.Name())
		if strings.HasPrefix(e.Name(), ".") {
			d.Ignored = append(d.Ignored, Ignored{p, "hidden"})
			continue
		}
		fi, err := os.Stat(p) // follows symbolic links
		if err != nil {
			return nil, fmt.Errorf("reading vars: %w", err)
		}
		switch {
		case fi.IsDir():
			if err := l.loadTargetDir(d, p, e.Name()); err != nil {
				return nil, err
			}
		case fi.Mode().IsRegular():
			if !isVarsExt(filepath.Ext(e.Name())) {
				d.Ignored = append(d.Ignored, Ignored{p, "not a vars file (Ansible reads .yml, .yaml, .json and files without an extension)"})
				continue
			}
			f, err := l.loadVarsFile(p, targetOf(e.Name()))
			if err != nil {
				return nil, err
			}
			d.Files = append(d.Files, f)
		default:
			d.Ignored = append(d.Ignored, Ignored{p, "not a regular file"})
		}
	}
	return d, nil
}

// loadTargetDir reads the files of a TARGET/ directory, recursively, in
// name order.
func (l *Loader) loadTargetDir(d *VarsDir, dir, target string) error {
	return filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("reading vars: %w", err)
		}
		if p == dir {
			return nil
		}
		if strings.HasPrefix(e.Name(), ".") {
			d.Ignored = append(d.Ignored, Ignored{p, "hidden"})
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if e.IsDir() {
			if rel, _ := filepath.Rel(dir, p); strings.Count(rel, string(filepath.Separator)) >= 8 {
				return fileErrorf(p, 0, "vars directories nested too deeply")
			}
			return nil
		}
		fi, err := os.Stat(p) // follows symbolic links
		if err != nil {
			return fmt.Errorf("reading vars: %w", err)
		}
		if !fi.Mode().IsRegular() || !isVarsExt(filepath.Ext(e.Name())) {
			d.Ignored = append(d.Ignored, Ignored{p, "not a vars file (Ansible reads .yml, .yaml, .json and files without an extension)"})
			return nil
		}
		f, err := l.loadVarsFile(p, target)
		if err != nil {
			return err
		}
		d.Files = append(d.Files, f)
		return nil
	})
}

func targetOf(name string) string {
	if ext := filepath.Ext(name); isVarsExt(ext) {
		return strings.TrimSuffix(name, ext)
	}
	return name
}

// loadVarsFile reads one vars file: a mapping of variable names to values.
func (l *Loader) loadVarsFile(path, target string) (VarsFile, error) {
	data, err := readFile(path, &l.b)
	if err != nil {
		return VarsFile{}, err
	}
	vars, err := decodeVars(path, data)
	if err != nil {
		return VarsFile{}, err
	}
	return VarsFile{Target: target, Path: path, Vars: vars}, nil
}

// decodeVars decodes a vars document: a mapping (or nothing) whose keys are
// variable names.
func decodeVars(file string, data []byte) ([]Var, error) {
	root, err := parseYAMLDoc(file, data)
	if err != nil || root == nil {
		return nil, err
	}
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, fileErrorf(file, root.Line, "a vars file must hold a mapping of variable names to values")
	}
	c := &converter{file: file}
	// The mapping itself, merge keys and duplicates included.
	m, err := c.mapping(root, 0)
	if err != nil {
		return nil, err
	}
	var out []Var
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k := root.Content[i]
		if k.ShortTag() == "!!merge" {
			continue
		}
		name, _ := c.key(k)
		if !varNameRE.MatchString(name) {
			return nil, fileErrorf(file, k.Line, "%q is not a valid variable name (letters, digits and _, not starting with a digit)", name)
		}
		seen[name] = true
		out = append(out, Var{Name: name, Value: m[name], Source: Source{File: file, Line: k.Line}})
	}
	// Variables that only merge keys brought in, in name order.
	var merged []string
	for name := range m {
		if !seen[name] {
			merged = append(merged, name)
		}
	}
	sort.Strings(merged)
	for _, name := range merged {
		if !varNameRE.MatchString(name) {
			return nil, fileErrorf(file, root.Line, "%q is not a valid variable name", name)
		}
		out = append(out, Var{Name: name, Value: m[name], Source: Source{File: file, Line: root.Line}})
	}
	return out, nil
}
