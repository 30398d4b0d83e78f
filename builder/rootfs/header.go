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
	"fmt"
	"strings"

	"github.com/nodebake/nodebake/layers/entry"
)

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
func header(e *entry.Entry, mtime int64) *tar.Header {
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
func fromHeader(h *tar.Header) (entry.Entry, error) {
	p, err := entry.CleanPath(h.Name)
	if err != nil {
		return entry.Entry{}, err
	}
	e := entry.Entry{
		Path: p, Type: h.Typeflag, Mode: h.Mode & 0o7777, UID: h.Uid, GID: h.Gid,
		Size: h.Size, Devmajor: h.Devmajor, Devminor: h.Devminor,
	}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeRegA:
		e.Type = tar.TypeReg
	case tar.TypeDir, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
	case tar.TypeLink:
		target, err := entry.CleanPath(h.Linkname)
		if err != nil {
			return entry.Entry{}, fmt.Errorf("hardlink %s: %w", h.Name, err)
		}
		e.Linkname = target
		e.Size = 0
	default:
		return entry.Entry{}, fmt.Errorf("entry %s: unsupported tar type %q", h.Name, h.Typeflag)
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
