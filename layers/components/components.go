package components

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
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
// release artifact, of size bytes, which open reads (a verifying cache
// read: an error it returns at the end or from Close is the cause). A
// binary is read when the image is composed; a tarball's members are read
// now, and the whole artifact with them.
func (c Component) FromRelease(open func() (io.ReadCloser, error), size int64) ([]entry.Entry, error) {
	switch c.Artifact {
	case Binary:
		return []entry.Entry{exe(c.Files[0].To, size, open)}, nil
	case TarGz:
		members, err := readTarGz(open, c.members())
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

// FromBuild returns the image entries of the component from its binaries
// built from source, by name in fsys (a cache entry's files, which verify
// while they are read).
func (c Component) FromBuild(fsys fs.FS) ([]entry.Entry, error) {
	var out []entry.Entry
	for _, f := range c.Files {
		fi, err := fs.Stat(fsys, f.Name)
		if err != nil {
			return nil, fmt.Errorf("%s: built binary %s: %w", c.Name, f.Name, err)
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: built binary %s is not a regular file", c.Name, f.Name)
		}
		name := f.Name
		out = append(out, exe(f.To, fi.Size(), func() (io.ReadCloser, error) { return fsys.Open(name) }))
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

// readTarGz reads the wanted members of the gzip'd tar open reads, then
// the rest of it, so that a verifying reader reaches its verdict. A read
// error of the artifact itself (a corrupt cache entry) is the cause, and
// comes before the gzip or tar error it leads to.
func readTarGz(open func() (io.ReadCloser, error), want map[string]bool) (map[string][]byte, error) {
	rc, err := open()
	if err != nil {
		return nil, err
	}
	src := &errReader{r: rc}
	var members map[string][]byte
	zr, err := gzip.NewReader(src)
	if err == nil {
		members, err = readMembers(tar.NewReader(zr), want)
	}
	if src.err == nil {
		_, src.err = io.Copy(io.Discard, onlyReader{src})
	}
	if cerr := rc.Close(); src.err == nil {
		src.err = cerr
	}
	if src.err != nil {
		return nil, src.err
	}
	return members, err
}

// errReader remembers the first error of the reader it wraps other than
// io.EOF.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

// onlyReader hides every method but Read.
type onlyReader struct{ io.Reader }

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
