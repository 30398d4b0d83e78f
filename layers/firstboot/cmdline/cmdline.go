// Package cmdline reads name=value parameters from the kernel command line,
// split the way the kernel splits it: on blanks, with double quotes
// grouping, and nothing after a lone "--" (that part is for init).
// Standard library only.
package cmdline

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Path is where the kernel shows its command line.
const Path = "/proc/cmdline"

// MaxSize bounds what Read reads: the kernel's own limit
// (COMMAND_LINE_SIZE) is at most a few KiB on every architecture.
const MaxSize = 64 << 10

// Params is a parsed kernel command line.
type Params struct {
	fields []string
}

// Parse splits a kernel command line into its parameters.
func Parse(s string) Params {
	var fields []string
	var cur strings.Builder
	quoted, in := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, in = !quoted, true
		case !quoted && (r == ' ' || r == '\t' || r == '\n'):
			if in {
				fields = append(fields, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		fields = append(fields, cur.String())
	}
	for i, f := range fields {
		if f == "--" {
			fields = fields[:i]
			break
		}
	}
	return Params{fields: fields}
}

// Read reads and parses root/proc/cmdline. A missing file (as in tests
// with a bare root) is an empty command line.
func Read(root string) (Params, error) {
	// Non-blocking, so that a named pipe in its place cannot stall the
	// boot; anything but a regular file is refused.
	f, err := os.OpenFile(filepath.Join(root, Path), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) {
		return Params{}, nil
	}
	if err != nil {
		return Params{}, fmt.Errorf("reading the kernel command line: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return Params{}, fmt.Errorf("reading the kernel command line: %w", err)
	} else if !fi.Mode().IsRegular() {
		return Params{}, fmt.Errorf("reading the kernel command line: %s is not a regular file", Path)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return Params{}, fmt.Errorf("reading the kernel command line: %w", err)
	}
	if len(b) > MaxSize {
		return Params{}, fmt.Errorf("reading the kernel command line: longer than %d bytes", MaxSize)
	}
	return Parse(string(b)), nil
}

// Get returns the value of name=value. When name appears several times the
// last one wins, as in the kernel. A bare "name" without "=" is not a
// value and is not returned.
func (p Params) Get(name string) (string, bool) {
	value, found := "", false
	for _, f := range p.fields {
		if v, ok := strings.CutPrefix(f, name+"="); ok {
			value, found = v, true
		}
	}
	return value, found
}

// Fields returns the parameters in order (without the part after "--").
func (p Params) Fields() []string {
	return append([]string(nil), p.fields...)
}
