package squashfs

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"sort"
	"strings"
)

// Maximum length of one file name, the kernel's SQUASHFS_NAME_LEN.
const maxNameLen = 256

// Maximum symlink target length the kernel accepts (it refuses > PAGE_SIZE).
const maxSymlinkLen = 4096

type nodeKind uint8

const (
	kindDir nodeKind = iota
	kindFile
	kindSymlink
	kindBlock
	kindChar
	kindFifo
)

// basicType is the inode type squashfs stores for the kind in directory
// entries and basic inodes; extended types add 7.
func (k nodeKind) basicType() uint16 {
	switch k {
	case kindDir:
		return 1
	case kindFile:
		return 2
	case kindSymlink:
		return 3
	case kindBlock:
		return 4
	case kindChar:
		return 5
	default:
		return 6
	}
}

// node is one inode of the filesystem being built.
type node struct {
	kind   nodeKind
	mode   uint16 // permission bits with setuid, setgid and sticky
	uid    uint32
	gid    uint32
	mtime  uint32
	xattrs string // encoded xattr key/value pairs, "" when none
	nxattr uint32 // number of pairs in xattrs

	file   *fileData        // kindFile
	target string           // kindSymlink
	rdev   uint32           // kindBlock, kindChar: squashfs encoding
	dir    map[string]*node // kindDir

	// Filled in while writing the tables.
	ino     uint32
	nlink   uint32
	ref     uint64 // inode reference: metadata block << 16 | offset
	written bool
}

// fileData is where a regular file's contents are. The pipeline's writer
// goroutine fills start and sizes; they are read after it finished.
type fileData struct {
	size   uint64
	start  uint64
	sizes  []uint32 // on-disk size of every full block
	frag   *fragment
	fragOf uint32 // offset of the tail end in its fragment block
	sparse uint64 // bytes saved by sparse blocks
}

// setAttrs copies the attributes (not the contents) of n.
func (d *node) setAttrs(n *node) {
	d.mode, d.uid, d.gid, d.mtime, d.xattrs, d.nxattr = n.mode, n.uid, n.gid, n.mtime, n.xattrs, n.nxattr
}

func newDir(mode uint16, uid, gid, mtime uint32) *node {
	return &node{kind: kindDir, mode: mode, uid: uid, gid: gid, mtime: mtime, dir: map[string]*node{}}
}

// ingest reads the tar stream into a tree, streaming file contents to p.
func ingest(ctx context.Context, src io.Reader, p *pipeline, opts Options) (*node, error) {
	modTime := uint32(opts.ModTime)
	root := newDir(0o755, 0, 0, modTime)
	tr := tar.NewReader(src)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := p.failed(); err != nil {
			return nil, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return root, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading tar stream: %w", err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		if err := addEntry(ctx, root, hdr, tr, p, opts); err != nil {
			var ee *EntryError
			if errors.As(err, &ee) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return nil, err
			}
			if werr := p.failed(); werr != nil && errors.Is(err, werr) {
				return nil, werr // the output failed (a full disk), not this entry
			}
			return nil, &EntryError{Entry: hdr.Name, Err: err}
		}
	}
}

// cleanName turns a tar name into a slash-separated relative path; "" is the
// root directory.
func cleanName(name string) (string, error) {
	for strings.HasPrefix(name, "./") || strings.HasPrefix(name, "/") {
		name = strings.TrimPrefix(strings.TrimPrefix(name, "/"), "./")
	}
	name = strings.TrimRight(name, "/")
	if name == "" || name == "." {
		return "", nil
	}
	for _, c := range strings.Split(name, "/") {
		switch {
		case c == "..":
			return "", errors.New(`path contains ".."`)
		case len(c) > maxNameLen:
			return "", fmt.Errorf("name %q is longer than %d bytes", c, maxNameLen)
		case strings.IndexByte(c, 0) >= 0:
			return "", errors.New("path contains a NUL byte")
		}
	}
	name = path.Clean(name)
	if name == "." {
		return "", nil
	}
	return name, nil
}

// lookupParent finds the directory that holds name, creating missing parent
// directories 0755 0:0.
func lookupParent(root *node, name string, modTime uint32) (*node, string, error) {
	dir := root
	elems := strings.Split(name, "/")
	for i, e := range elems[:len(elems)-1] {
		child, ok := dir.dir[e]
		if !ok {
			child = newDir(0o755, 0, 0, modTime)
			dir.dir[e] = child
		} else if child.kind != kindDir {
			return nil, "", fmt.Errorf("parent %q is not a directory", strings.Join(elems[:i+1], "/"))
		}
		dir = child
	}
	return dir, elems[len(elems)-1], nil
}

// lookup finds an existing node by cleaned path.
func lookup(root *node, name string) *node {
	if name == "" {
		return root
	}
	n := root
	for _, e := range strings.Split(name, "/") {
		if n.kind != kindDir {
			return nil
		}
		if n = n.dir[e]; n == nil {
			return nil
		}
	}
	return n
}

func clampTime(t int64) uint32 {
	switch {
	case t < 0:
		return 0
	case t > math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(t)
}

func addEntry(ctx context.Context, root *node, hdr *tar.Header, tr io.Reader, p *pipeline, opts Options) error {
	modTime := uint32(opts.ModTime)
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if hdr.Uid < 0 || int64(hdr.Uid) > math.MaxUint32 || hdr.Gid < 0 || int64(hdr.Gid) > math.MaxUint32 {
		return fmt.Errorf("uid %d or gid %d out of range", hdr.Uid, hdr.Gid)
	}
	n := &node{
		mode:  uint16(hdr.Mode & 0o7777),
		uid:   uint32(hdr.Uid),
		gid:   uint32(hdr.Gid),
		mtime: clampTime(hdr.ModTime.Unix()),
	}
	dropped := func(name string) {
		if opts.DroppedXattr != nil {
			opts.DroppedXattr(hdr.Name, name)
		}
	}
	if n.xattrs, n.nxattr, err = encodeXattrs(hdr.PAXRecords, dropped); err != nil {
		return err
	}

	if name == "" {
		if hdr.Typeflag != tar.TypeDir {
			return errors.New("the root must be a directory")
		}
		root.setAttrs(n)
		return nil
	}
	parent, base, err := lookupParent(root, name, modTime)
	if err != nil {
		return err
	}
	old := parent.dir[base]

	switch hdr.Typeflag {
	case tar.TypeDir:
		if old != nil && old.kind == kindDir {
			old.setAttrs(n)
			return nil
		}
		n.kind = kindDir
		n.dir = map[string]*node{}
	case tar.TypeReg, '\x00', tar.TypeGNUSparse, tar.TypeCont:
		if hdr.Size < 0 {
			return fmt.Errorf("negative size %d", hdr.Size)
		}
		n.kind = kindFile
		if n.file, err = p.addFile(ctx, &fileData{size: uint64(hdr.Size)}, tr); err != nil {
			return err
		}
	case tar.TypeSymlink:
		if hdr.Linkname == "" {
			return errors.New("empty symlink target")
		}
		if len(hdr.Linkname) > maxSymlinkLen {
			return fmt.Errorf("symlink target longer than %d bytes", maxSymlinkLen)
		}
		n.kind = kindSymlink
		n.target = hdr.Linkname
	case tar.TypeLink:
		target, err := cleanName(hdr.Linkname)
		if err != nil {
			return fmt.Errorf("hardlink target %q: %w", hdr.Linkname, err)
		}
		t := lookup(root, target)
		switch {
		case t == nil:
			return fmt.Errorf("hardlink target %q does not exist (a hardlink must come after its target)", hdr.Linkname)
		case t.kind == kindDir:
			return fmt.Errorf("hardlink target %q is a directory", hdr.Linkname)
		}
		if t == old {
			return nil // a link to itself changes nothing
		}
		n = t
	case tar.TypeChar, tar.TypeBlock:
		if hdr.Devmajor < 0 || hdr.Devmajor > 0xfff || hdr.Devminor < 0 || hdr.Devminor > 0xfffff {
			return fmt.Errorf("device number %d:%d out of range (major <= 4095, minor <= 1048575)", hdr.Devmajor, hdr.Devminor)
		}
		n.kind = kindChar
		if hdr.Typeflag == tar.TypeBlock {
			n.kind = kindBlock
		}
		major, minor := uint32(hdr.Devmajor), uint32(hdr.Devminor)
		n.rdev = major<<8 | minor&0xff | (minor&^0xff)<<12
	case tar.TypeFifo:
		n.kind = kindFifo
	default:
		return fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
	}
	parent.dir[base] = n
	return nil
}

// sortedNames returns the names of a directory in strcmp order.
func sortedNames(d *node) []string {
	names := make([]string, 0, len(d.dir))
	for name := range d.dir {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
