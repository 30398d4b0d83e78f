// Package sbom describes a built image as an SPDX 2.3 JSON document: the
// image itself, the Debian packages of its base, every baked component with
// its pinned checksum and installed files, and the preloaded container
// images.
//
// The document is written by hand with encoding/json and is a pure function
// of its input: the same build gives the same bytes.
package sbom

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Package is an installed Debian package, from dpkg's status database.
type Package struct {
	Name         string
	Version      string
	Architecture string
	// SourceName and SourceVersion name the source package it was built
	// from, when dpkg records one (the Source field); SourceVersion is empty
	// when it equals Version.
	SourceName    string
	SourceVersion string
}

// ParseDpkgStatus reads a dpkg status file (/var/lib/dpkg/status) and
// returns its installed packages sorted by name, architecture and version.
// Paragraphs whose Status is not "... installed" (removed packages that
// left their configuration files, half-installed ones) are skipped; a
// paragraph without a Status field counts as installed. A paragraph without
// Package or Version is an error naming it.
func ParseDpkgStatus(r io.Reader) ([]Package, error) {
	var pkgs []Package
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var (
		fields    map[string]string
		last      string // lower-cased name of the last field, for continuations
		start     int    // line number of the paragraph's first line
		paragraph int
		line      int
	)
	flush := func() error {
		if fields == nil {
			return nil
		}
		defer func() { fields, last = nil, "" }()
		paragraph++
		p, ok, err := fromFields(fields)
		if err != nil {
			return fmt.Errorf("dpkg status: paragraph %d (line %d): %w", paragraph, start, err)
		}
		if ok {
			pkgs = append(pkgs, p)
		}
		return nil
	}
	for sc.Scan() {
		line++
		l := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(l) == "" {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		if l[0] == ' ' || l[0] == '\t' {
			if last == "" {
				return nil, fmt.Errorf("dpkg status: line %d: continuation line outside a field", line)
			}
			fields[last] += "\n" + strings.TrimSpace(l)
			continue
		}
		if strings.HasPrefix(l, "#") {
			continue
		}
		name, value, ok := strings.Cut(l, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return nil, fmt.Errorf("dpkg status: line %d: not a field: %q", line, l)
		}
		if fields == nil {
			fields, start = map[string]string{}, line
		}
		last = strings.ToLower(name)
		fields[last] = strings.TrimSpace(value)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("dpkg status: %w", err)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	sort.Slice(pkgs, func(i, j int) bool {
		a, b := pkgs[i], pkgs[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if a.Architecture != b.Architecture {
			return a.Architecture < b.Architecture
		}
		return a.Version < b.Version
	})
	return pkgs, nil
}

// fromFields turns one paragraph into a package; ok is false for a package
// that is not installed.
func fromFields(f map[string]string) (Package, bool, error) {
	name := f["package"]
	if name == "" {
		return Package{}, false, fmt.Errorf("no Package field")
	}
	if st, ok := f["status"]; ok {
		words := strings.Fields(st)
		if len(words) != 3 {
			return Package{}, false, fmt.Errorf("package %s: malformed Status %q", name, st)
		}
		if words[2] != "installed" {
			return Package{}, false, nil
		}
	}
	p := Package{Name: name, Version: f["version"], Architecture: f["architecture"]}
	if p.Version == "" {
		return Package{}, false, fmt.Errorf("package %s: no Version field", name)
	}
	if src := f["source"]; src != "" {
		n, v, _ := strings.Cut(src, " ")
		p.SourceName = n
		v = strings.TrimSpace(v)
		if v != "" {
			if !strings.HasPrefix(v, "(") || !strings.HasSuffix(v, ")") {
				return Package{}, false, fmt.Errorf("package %s: malformed Source %q", name, src)
			}
			p.SourceVersion = strings.TrimSpace(v[1 : len(v)-1])
		}
	}
	return p, true, nil
}

// ParseOSRelease returns the purl distro qualifier of an os-release file
// ("debian-13"), the ID and VERSION_ID joined, or the ID and
// VERSION_CODENAME when there is no VERSION_ID (testing, sid); empty when
// the file names no ID.
func ParseOSRelease(b []byte) string {
	vals := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		vals[k] = strings.Trim(v, `"'`)
	}
	id := vals["ID"]
	if id == "" {
		return ""
	}
	if v := vals["VERSION_ID"]; v != "" {
		return id + "-" + v
	}
	if v := vals["VERSION_CODENAME"]; v != "" {
		return id + "-" + v
	}
	return id
}
