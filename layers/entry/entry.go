// Package entry defines one entry of an image's root filesystem (a file,
// directory, link or device, with its owner, mode and extended attributes)
// as every layer produces it and the root filesystem composer consumes it.
// It is the one tar entry type shared by layers/ (which produce entries)
// and builder/rootfs (which writes them as a canonical tar stream).
package entry

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
)

// Entry is one file, directory, link or device of the root filesystem.
type Entry struct {
	// Path is absolute and clean: "/usr/local/bin/kubelet".
	Path string
	// Type is a tar type flag: tar.TypeReg, TypeDir, TypeSymlink, TypeLink,
	// TypeChar, TypeBlock or TypeFifo.
	Type byte
	// Mode holds the permission bits plus setuid, setgid and sticky
	// (as in tar: 04000, 02000, 01000).
	Mode     int64
	UID, GID int
	// Linkname is the target of a symlink, or the absolute path of the
	// hardlink target.
	Linkname string
	// Size and Open give a regular file's content.
	Size int64
	Open func() (io.ReadCloser, error)
	// Devmajor and Devminor for device nodes.
	Devmajor, Devminor int64
	// Xattrs maps an extended attribute name (e.g. security.capability) to
	// its raw value.
	Xattrs map[string]string
}

// File returns a regular file entry with the given content.
func File(p string, mode int64, content []byte) Entry {
	return Entry{
		Path: p, Type: tar.TypeReg, Mode: mode, Size: int64(len(content)),
		Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(content)), nil },
	}
}

// Dir returns a directory entry.
func Dir(p string, mode int64) Entry { return Entry{Path: p, Type: tar.TypeDir, Mode: mode} }

// Symlink returns a symbolic link entry.
func Symlink(p, target string) Entry {
	return Entry{Path: p, Type: tar.TypeSymlink, Mode: 0o777, Linkname: target}
}

// CleanPath turns a tar name or a path into the absolute clean form used as
// an entry's Path. It rejects names that climb out of the root.
func CleanPath(name string) (string, error) {
	if strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("path %q contains a NUL byte", name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", fmt.Errorf("path %q climbs out of the root", name)
		}
	}
	return path.Clean("/" + name), nil
}

// FileMode reports e's mode as an fs.FileMode, for messages and checks.
func (e *Entry) FileMode() fs.FileMode {
	m := fs.FileMode(e.Mode & 0o777)
	if e.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if e.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if e.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	switch e.Type {
	case tar.TypeDir:
		m |= fs.ModeDir
	case tar.TypeSymlink:
		m |= fs.ModeSymlink
	case tar.TypeChar:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case tar.TypeBlock:
		m |= fs.ModeDevice
	case tar.TypeFifo:
		m |= fs.ModeNamedPipe
	}
	return m
}
