package netboot

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// cpioEntry is one member of a newc archive.
type cpioEntry struct {
	name string // relative, no leading "/": "scripts/nodebake-http"
	mode uint32 // permission bits; the type comes from dir
	dir  bool
	size int64
	// open returns the content of a regular file (size bytes).
	open func() (io.ReadCloser, error)
}

const (
	cpioTypeDir = 0o040000
	cpioTypeReg = 0o100000
	cpioTrailer = "TRAILER!!!"
)

// writeCpio writes entries as an uncompressed newc ("070701") archive,
// owned by root, every mtime mtime, inode numbers counting from 1, then
// the trailer. Its length is a multiple of 4 (each header, name and file
// is padded), so that further archives may follow.
func writeCpio(w io.Writer, entries []cpioEntry, mtime time.Time) (int64, error) {
	cw := &countWriter{w: w}
	mt := mtime.Unix()
	if mt < 0 || mt > 0xffffffff {
		return 0, fmt.Errorf("cpio: modification time %s does not fit newc's 32 bits", mtime.UTC())
	}
	for i, e := range entries {
		if e.name == "" || strings.HasPrefix(e.name, "/") || e.name == cpioTrailer {
			return cw.n, fmt.Errorf("cpio: entry %d: bad name %q", i, e.name)
		}
		mode, size := cpioTypeReg|e.mode&0o7777, e.size
		if e.dir {
			mode, size = cpioTypeDir|e.mode&0o7777, 0
		}
		if size < 0 || size > 0xffffffff {
			return cw.n, fmt.Errorf("cpio: %s: size %d does not fit newc's 32 bits", e.name, size)
		}
		if err := cpioHeader(cw, uint32(i+1), mode, uint32(mt), 1+boolInt(e.dir), uint32(size), e.name); err != nil {
			return cw.n, err
		}
		if e.dir || size == 0 {
			continue
		}
		r, err := e.open()
		if err != nil {
			return cw.n, fmt.Errorf("cpio: %s: %w", e.name, err)
		}
		n, err := io.Copy(cw, io.LimitReader(r, size))
		r.Close()
		if err != nil {
			return cw.n, fmt.Errorf("cpio: %s: %w", e.name, err)
		}
		if n != size {
			return cw.n, fmt.Errorf("cpio: %s: read %d bytes, want %d", e.name, n, size)
		}
		if err := pad4(cw); err != nil {
			return cw.n, err
		}
	}
	if err := cpioHeader(cw, 0, 0, 0, 1, 0, cpioTrailer); err != nil {
		return cw.n, err
	}
	return cw.n, nil
}

func boolInt(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// cpioHeader writes a newc header, the name and its padding.
func cpioHeader(cw *countWriter, ino, mode, mtime, nlink, size uint32, name string) error {
	// magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
	// devminor, rdevmajor, rdevminor, namesize, check
	h := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, 0, 0, nlink, mtime, size, 0, 0, 0, 0, len(name)+1, 0)
	if _, err := io.WriteString(cw, h+name+"\x00"); err != nil {
		return fmt.Errorf("cpio: writing header of %s: %w", name, err)
	}
	return pad4(cw)
}

func pad4(cw *countWriter) error {
	if r := cw.n % 4; r != 0 {
		if _, err := cw.Write(make([]byte, 4-r)); err != nil {
			return fmt.Errorf("cpio: padding: %w", err)
		}
	}
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
