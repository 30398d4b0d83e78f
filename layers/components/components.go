package components

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/nodebake/nodebake/layers/entry"
)

// MaxBinarySize bounds one binary read from a release tarball or an OCI
// image: the largest upstream binary (kube-apiserver) is about 100 MiB.
const MaxBinarySize = 1 << 30

func exe(to string, size int64, open func() (io.ReadCloser, error)) entry.Entry {
	return entry.Entry{Path: to, Type: tar.TypeReg, Mode: 0o755, Size: size, Open: open}
}

// FromRelease returns the image entries of the component from its
// verified release artifact at artifactPath.
func (c Component) FromRelease(artifactPath string) ([]entry.Entry, error) {
	switch c.Artifact {
	case Binary:
		fi, err := os.Stat(artifactPath)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Name, err)
		}
		return []entry.Entry{exe(c.Files[0].To, fi.Size(), func() (io.ReadCloser, error) { return os.Open(artifactPath) })}, nil
	case TarGz:
		members, err := readTarGz(artifactPath, c.members())
		if err != nil {
			return nil, fmt.Errorf("%s: reading release artifact: %w", c.Name, err)
		}
		var out []entry.Entry
		for _, f := range c.Files {
			data, ok := members[cleanMember(f.Member)]
			if !ok {
				return nil, fmt.Errorf("%s: release artifact has no %s", c.Name, f.Member)
			}
			out = append(out, entry.File(f.To, 0o755, data))
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: unknown artifact kind", c.Name)
}

// FromBuild returns the image entries of the component from a directory
// of binaries built from source.
func (c Component) FromBuild(dir string) ([]entry.Entry, error) {
	var out []entry.Entry
	for _, f := range c.Files {
		p := filepath.Join(dir, f.Name)
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("%s: built binary %s: %w", c.Name, f.Name, err)
		}
		out = append(out, exe(f.To, fi.Size(), func() (io.ReadCloser, error) { return os.Open(p) }))
	}
	return out, nil
}

// FromFilesystem returns the image entries of the component from a
// flattened image filesystem (an OCI image holding the files at their
// image paths).
func (c Component) FromFilesystem(fs io.Reader) ([]entry.Entry, error) {
	want := map[string]bool{}
	for _, f := range c.Files {
		want[strings.TrimPrefix(f.To, "/")] = true
	}
	found, err := readMembers(tar.NewReader(fs), want)
	if err != nil {
		return nil, fmt.Errorf("%s: reading image: %w", c.Name, err)
	}
	var out []entry.Entry
	for _, f := range c.Files {
		b, ok := found[strings.TrimPrefix(f.To, "/")]
		if !ok {
			return nil, fmt.Errorf("%s: image has no %s", c.Name, f.To)
		}
		out = append(out, entry.File(f.To, 0o755, b))
	}
	return out, nil
}

func (c Component) members() map[string]bool {
	m := map[string]bool{}
	for _, f := range c.Files {
		m[cleanMember(f.Member)] = true
	}
	return m
}

func cleanMember(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

func readTarGz(p string, want map[string]bool) (map[string][]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	return readMembers(tar.NewReader(zr), want)
}

// readMembers reads the regular files of a tar stream whose cleaned names
// are wanted, each at most MaxBinarySize.
func readMembers(tr *tar.Reader, want map[string]bool) (map[string][]byte, error) {
	out := map[string][]byte{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		name := cleanMember(h.Name)
		if !want[name] || (h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeRegA) {
			continue
		}
		if h.Size > MaxBinarySize {
			return nil, fmt.Errorf("%s: %d bytes, more than %d", name, h.Size, MaxBinarySize)
		}
		b, err := io.ReadAll(io.LimitReader(tr, MaxBinarySize+1))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if int64(len(b)) > MaxBinarySize {
			return nil, fmt.Errorf("%s: more than %d bytes", name, MaxBinarySize)
		}
		out[name] = b
	}
}
