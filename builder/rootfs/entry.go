// Package rootfs composes the image's root filesystem as one canonical tar
// stream: a normalized base (the flattened base image) merged with the
// entries the components and the rendered configuration bring.
//
// Canonical means: names relative without a leading "./" or "/", the root
// directory first as "./", entries sorted byte-wise by path (so every parent
// precedes its children), every parent directory present, each hardlink
// after its target (the first path of a hardlink group in sort order holds
// the data), every mtime set to the build's fixed epoch, no user or group
// names, PAX format, xattrs kept as SCHILY.xattr records. Nothing is ever
// extracted onto the build host: file data stays in tar files (a cached,
// normalized copy of the base) and is read through section readers.
package rootfs

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

// tarName is the canonical tar name of an absolute path.
func tarName(p string, typ byte) string {
	if p == "/" {
		return "./"
	}
	name := strings.TrimPrefix(p, "/")
	if typ == tar.TypeDir {
		name += "/"
	}
	return name
}

// header builds the canonical tar header of e.
func (e *Entry) header(mtime int64) *tar.Header {
	h := &tar.Header{
		Typeflag: e.Type,
		Name:     tarName(e.Path, e.Type),
		Mode:     e.Mode,
		Uid:      e.UID,
		Gid:      e.GID,
		ModTime:  unixTime(mtime),
		Format:   tar.FormatPAX,
		Devmajor: e.Devmajor,
		Devminor: e.Devminor,
	}
	switch e.Type {
	case tar.TypeReg:
		h.Size = e.Size
	case tar.TypeSymlink:
		h.Linkname = e.Linkname
	case tar.TypeLink:
		h.Linkname = strings.TrimPrefix(e.Linkname, "/")
	}
	if len(e.Xattrs) > 0 {
		h.PAXRecords = map[string]string{}
		for k, v := range e.Xattrs {
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
	}
	return h
}

// fromHeader converts a tar header to an Entry (without content).
func fromHeader(h *tar.Header) (Entry, error) {
	p, err := CleanPath(h.Name)
	if err != nil {
		return Entry{}, err
	}
	e := Entry{
		Path: p, Type: h.Typeflag, Mode: h.Mode & 0o7777, UID: h.Uid, GID: h.Gid,
		Size: h.Size, Devmajor: h.Devmajor, Devminor: h.Devminor,
	}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeRegA:
		e.Type = tar.TypeReg
	case tar.TypeDir, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
	case tar.TypeLink:
		target, err := CleanPath(h.Linkname)
		if err != nil {
			return Entry{}, fmt.Errorf("hardlink %s: %w", h.Name, err)
		}
		e.Linkname = target
		e.Size = 0
	default:
		return Entry{}, fmt.Errorf("entry %s: unsupported tar type %q", h.Name, h.Typeflag)
	}
	if h.Typeflag == tar.TypeSymlink {
		e.Linkname = h.Linkname
		e.Mode = 0o777 // symlink permissions carry no meaning on Linux
	}
	for k, v := range h.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			if e.Xattrs == nil {
				e.Xattrs = map[string]string{}
			}
			e.Xattrs[name] = v
		}
	}
	return e, nil
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
