package squashfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

const (
	superblockSize  = 96
	compOptionsSize = 6 // 16 bit metadata header + 32 bit zstd level
	padTo           = 4096

	magic          = 0x73717368
	zstdID         = 6
	flagDuplicates = 0x0040
	flagNoXattrs   = 0x0200
	flagCompOpts   = 0x0400
	invalidFrag    = 0xffffffff
	invalidXattr   = 0xffffffff
	invalidTable   = math.MaxUint64
	extendedOffset = 7 // extended inode type = basic type + 7

	dirHeaderMax = 256 // entries per directory header
)

// tableWriter builds the inode, directory, id and xattr tables.
type tableWriter struct {
	inodes *metaWriter
	dirs   *metaWriter
	ids    []uint32
	idIdx  map[uint32]uint16
	xattrs []*node // first node with each distinct xattr set, by xattr id
	xIdx   map[string]uint32
	count  uint32 // inodes
	names  map[*node][]string
	err    error
}

// writeTables writes the metadata tables after the data area, then the
// superblock, and returns the padded filesystem size. The padding also covers
// whatever was written up to highWater (blocks of a duplicate file written
// and taken back at the end of the data), so nothing stale is left behind.
func writeTables(dst io.WriterAt, root *node, frags []*fragment, dataEnd, highWater uint64, opts Options) (int64, error) {
	enc, err := newEncoder(opts)
	if err != nil {
		return 0, fmt.Errorf("creating zstd encoder: %w", err)
	}
	defer enc.Close()

	t := &tableWriter{
		inodes: newMetaWriter(enc),
		dirs:   newMetaWriter(enc),
		idIdx:  map[uint32]uint16{},
		xIdx:   map[string]uint32{},
		names:  map[*node][]string{},
	}
	t.number(root)
	t.writeDir(root, t.count+1)
	if t.err != nil {
		return 0, t.err
	}
	rootRef := root.ref

	// Tables, in the order the kernel expects them.
	var buf []byte
	inodeStart := dataEnd
	buf = append(buf, t.inodes.bytes()...)
	dirStart := dataEnd + uint64(len(buf))
	buf = append(buf, t.dirs.bytes()...)

	fragEntries := make([]byte, 0, 16*len(frags))
	for _, f := range frags {
		fragEntries = binary.LittleEndian.AppendUint64(fragEntries, f.start)
		fragEntries = binary.LittleEndian.AppendUint32(fragEntries, f.size)
		fragEntries = binary.LittleEndian.AppendUint32(fragEntries, 0)
	}
	var fragStart, idStart uint64
	buf, fragStart = appendLookupTable(buf, dataEnd, enc, fragEntries)

	idEntries := make([]byte, 0, 4*len(t.ids))
	for _, id := range t.ids {
		idEntries = binary.LittleEndian.AppendUint32(idEntries, id)
	}
	buf, idStart = appendLookupTable(buf, dataEnd, enc, idEntries)

	xattrStart := uint64(invalidTable)
	if len(t.xattrs) > 0 {
		kvStart := dataEnd + uint64(len(buf))
		kv := newMetaWriter(enc)
		ids := make([]byte, 0, 16*len(t.xattrs))
		for _, n := range t.xattrs {
			ids = binary.LittleEndian.AppendUint64(ids, kv.ref())
			ids = binary.LittleEndian.AppendUint32(ids, n.nxattr)
			ids = binary.LittleEndian.AppendUint32(ids, uint32(len(n.xattrs)))
			kv.write([]byte(n.xattrs))
		}
		buf = append(buf, kv.bytes()...)
		var idList uint64
		buf, idList = appendLookupTable(buf, dataEnd, enc, ids)
		// The lookup table's block list is preceded by the xattr id table
		// header: move the list behind it.
		list := append([]byte(nil), buf[idList-dataEnd:]...)
		buf = buf[:idList-dataEnd]
		xattrStart = dataEnd + uint64(len(buf))
		buf = binary.LittleEndian.AppendUint64(buf, kvStart)
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(t.xattrs)))
		buf = binary.LittleEndian.AppendUint32(buf, 0)
		buf = append(buf, list...)
	}
	bytesUsed := dataEnd + uint64(len(buf))
	size := (max(bytesUsed, highWater) + padTo - 1) / padTo * padTo
	buf = append(buf, make([]byte, min(size-bytesUsed, 1<<20))...)
	if _, err := dst.WriteAt(buf, int64(dataEnd)); err != nil {
		return 0, fmt.Errorf("writing metadata tables at offset %d: %w", dataEnd, err)
	}
	zeros := buf[len(buf)-int(min(size-bytesUsed, 1<<20)):]
	for off := dataEnd + uint64(len(buf)); off < size; off += uint64(len(zeros)) {
		if _, err := dst.WriteAt(zeros[:min(uint64(len(zeros)), size-off)], int64(off)); err != nil {
			return 0, fmt.Errorf("writing padding at offset %d: %w", off, err)
		}
	}

	// Superblock and compression options.
	flags := uint16(flagDuplicates)
	if len(t.xattrs) == 0 {
		flags |= flagNoXattrs
	}
	head := make([]byte, 0, superblockSize+compOptionsSize)
	le := binary.LittleEndian
	head = le.AppendUint32(head, magic)
	head = le.AppendUint32(head, t.count)
	head = le.AppendUint32(head, uint32(opts.ModTime))
	head = le.AppendUint32(head, uint32(opts.BlockSize))
	head = le.AppendUint32(head, uint32(len(frags)))
	head = le.AppendUint16(head, zstdID)
	blockLog := 0
	for 1<<blockLog < opts.BlockSize {
		blockLog++
	}
	head = le.AppendUint16(head, uint16(blockLog))
	if opts.Level != zstdDefaultLevel {
		flags |= flagCompOpts
	}
	head = le.AppendUint16(head, flags)
	head = le.AppendUint16(head, uint16(len(t.ids)))
	head = le.AppendUint16(head, 4) // major
	head = le.AppendUint16(head, 0) // minor
	head = le.AppendUint64(head, rootRef)
	head = le.AppendUint64(head, bytesUsed)
	head = le.AppendUint64(head, idStart)
	head = le.AppendUint64(head, xattrStart)
	head = le.AppendUint64(head, inodeStart)
	head = le.AppendUint64(head, dirStart)
	head = le.AppendUint64(head, fragStart)
	head = le.AppendUint64(head, invalidTable) // no export table
	if opts.Level != zstdDefaultLevel {
		head = le.AppendUint16(head, 4|metaUncompressed)
		head = le.AppendUint32(head, uint32(opts.Level))
	}
	if _, err := dst.WriteAt(head, 0); err != nil {
		return 0, fmt.Errorf("writing superblock: %w", err)
	}
	return int64(size), nil
}

// number assigns inode numbers in the order writeDir writes the inodes
// (depth first, entries in strcmp order, children before their directory)
// and counts links.
func (t *tableWriter) number(d *node) {
	names := sortedNames(d)
	t.names[d] = names
	subdirs := uint32(0)
	for _, name := range names {
		c := d.dir[name]
		if c.kind == kindDir {
			t.number(c)
			subdirs++
			continue
		}
		c.nlink++
		if c.ino == 0 {
			t.count++
			c.ino = t.count
		}
	}
	d.nlink = 2 + subdirs
	t.count++
	d.ino = t.count
}

type dirEntry struct {
	name string
	ref  uint64
	ino  uint32
	typ  uint16
}

type dirIndex struct {
	index uint32 // offset of the header in the listing
	start uint32 // directory table block holding the header
	name  string // first entry after the header
}

// writeDir writes the inodes below d, d's listing and then d's inode.
func (t *tableWriter) writeDir(d *node, parent uint32) {
	names := t.names[d]
	ents := make([]dirEntry, 0, len(names))
	for _, name := range names {
		c := d.dir[name]
		if c.kind == kindDir {
			t.writeDir(c, d.ino)
		} else if !c.written {
			t.writeInode(c)
		}
		if c.ref>>16 > math.MaxUint32 {
			t.fail(errors.New("inode table larger than 4 GiB"))
			return
		}
		ents = append(ents, dirEntry{name: name, ref: c.ref, ino: c.ino, typ: c.kind.basicType()})
	}
	delete(t.names, d)
	listing, index := buildListing(ents)

	block, offset := t.dirs.pos()
	prev := uint32(0)
	for i := range index {
		t.dirs.write(listing[prev:index[i].index])
		b, _ := t.dirs.pos()
		if b > math.MaxUint32 {
			t.fail(errors.New("directory table larger than 4 GiB"))
			return
		}
		index[i].start = uint32(b)
		prev = index[i].index
	}
	t.dirs.write(listing[prev:])
	if block > math.MaxUint32 || len(listing)+3 > math.MaxUint32 || len(index) > math.MaxUint16 {
		t.fail(errors.New("directory too large"))
		return
	}
	t.writeDirInode(d, parent, uint32(block), offset, uint32(len(listing)+3), index)
}

func (t *tableWriter) fail(err error) {
	if t.err == nil {
		t.err = err
	}
}

// buildListing encodes a sorted directory listing: runs of entries that
// share an inode metadata block, each behind a header, and the directory
// index (a new run every time about 8 KiB of listing was written since the
// last index point, like mksquashfs).
func buildListing(ents []dirEntry) ([]byte, []dirIndex) {
	le := binary.LittleEndian
	var (
		b          []byte
		index      []dirIndex
		hdrAt      = -1
		count      uint32
		hdrBlock   uint32
		hdrIno     uint32
		lastIndex  int
		closeRunAt = func() {
			if hdrAt >= 0 {
				le.PutUint32(b[hdrAt:], count-1)
			}
		}
	)
	for _, e := range ents {
		block := uint32(e.ref >> 16)
		entSize := 8 + len(e.name)
		diff := int64(e.ino) - int64(hdrIno)
		overIndex := hdrAt >= 0 && len(b)+entSize-lastIndex > metadataSize
		if hdrAt < 0 || count == dirHeaderMax || block != hdrBlock || diff > math.MaxInt16 || diff < math.MinInt16 || overIndex {
			closeRunAt()
			if overIndex {
				index = append(index, dirIndex{index: uint32(len(b)), name: e.name})
				lastIndex = len(b)
			}
			hdrAt, count, hdrBlock, hdrIno = len(b), 0, block, e.ino
			b = le.AppendUint32(b, 0) // count, set when the run ends
			b = le.AppendUint32(b, block)
			b = le.AppendUint32(b, e.ino)
			diff = 0
		}
		b = le.AppendUint16(b, uint16(e.ref&0xffff))
		b = le.AppendUint16(b, uint16(int16(diff)))
		b = le.AppendUint16(b, e.typ)
		b = le.AppendUint16(b, uint16(len(e.name)-1))
		b = append(b, e.name...)
		count++
	}
	closeRunAt()
	return b, index
}

func (t *tableWriter) id(v uint32) uint16 {
	if i, ok := t.idIdx[v]; ok {
		return i
	}
	if len(t.ids) > math.MaxUint16 {
		t.fail(errors.New("more than 65536 distinct uids and gids"))
		return 0
	}
	i := uint16(len(t.ids))
	t.ids = append(t.ids, v)
	t.idIdx[v] = i
	return i
}

func (t *tableWriter) xattrID(n *node) uint32 {
	if n.xattrs == "" {
		return invalidXattr
	}
	if i, ok := t.xIdx[n.xattrs]; ok {
		return i
	}
	i := uint32(len(t.xattrs))
	t.xattrs = append(t.xattrs, n)
	t.xIdx[n.xattrs] = i
	return i
}

// header returns the common inode header.
func (t *tableWriter) header(n *node, typ uint16) []byte {
	le := binary.LittleEndian
	b := make([]byte, 0, 64)
	b = le.AppendUint16(b, typ)
	b = le.AppendUint16(b, n.mode)
	b = le.AppendUint16(b, t.id(n.uid))
	b = le.AppendUint16(b, t.id(n.gid))
	b = le.AppendUint32(b, n.mtime)
	b = le.AppendUint32(b, n.ino)
	return b
}

func (t *tableWriter) writeInode(n *node) {
	le := binary.LittleEndian
	n.ref = t.inodes.ref()
	n.written = true
	xattr := t.xattrID(n)
	typ := n.kind.basicType()
	ext := xattr != invalidXattr
	var b []byte
	switch n.kind {
	case kindFile:
		f := n.file
		frag, fragOf := uint32(invalidFrag), uint32(0)
		if f.frag != nil {
			frag, fragOf = f.frag.index, f.fragOf
		}
		if ext || n.nlink > 1 || f.sparse > 0 || f.size > math.MaxUint32 || f.start > math.MaxUint32 {
			sparse := f.sparse
			if sparse > 0 && sparse >= f.size {
				sparse = f.size - 1
			}
			b = t.header(n, typ+extendedOffset)
			b = le.AppendUint64(b, f.start)
			b = le.AppendUint64(b, f.size)
			b = le.AppendUint64(b, sparse)
			b = le.AppendUint32(b, n.nlink)
			b = le.AppendUint32(b, frag)
			b = le.AppendUint32(b, fragOf)
			b = le.AppendUint32(b, xattr)
		} else {
			b = t.header(n, typ)
			b = le.AppendUint32(b, uint32(f.start))
			b = le.AppendUint32(b, frag)
			b = le.AppendUint32(b, fragOf)
			b = le.AppendUint32(b, uint32(f.size))
		}
		for _, s := range f.sizes {
			b = le.AppendUint32(b, s)
		}
	case kindSymlink:
		if ext {
			typ += extendedOffset
		}
		b = t.header(n, typ)
		b = le.AppendUint32(b, n.nlink)
		b = le.AppendUint32(b, uint32(len(n.target)))
		b = append(b, n.target...)
		if ext {
			b = le.AppendUint32(b, xattr)
		}
	case kindBlock, kindChar:
		if ext {
			typ += extendedOffset
		}
		b = t.header(n, typ)
		b = le.AppendUint32(b, n.nlink)
		b = le.AppendUint32(b, n.rdev)
		if ext {
			b = le.AppendUint32(b, xattr)
		}
	case kindFifo:
		if ext {
			typ += extendedOffset
		}
		b = t.header(n, typ)
		b = le.AppendUint32(b, n.nlink)
		if ext {
			b = le.AppendUint32(b, xattr)
		}
	default:
		t.fail(fmt.Errorf("internal error: unexpected inode kind %d", n.kind))
		return
	}
	t.inodes.write(b)
}

func (t *tableWriter) writeDirInode(d *node, parent, block uint32, offset uint16, size uint32, index []dirIndex) {
	le := binary.LittleEndian
	d.ref = t.inodes.ref()
	d.written = true
	xattr := t.xattrID(d)
	var b []byte
	if xattr == invalidXattr && len(index) == 0 && size <= math.MaxUint16 {
		b = t.header(d, 1)
		b = le.AppendUint32(b, block)
		b = le.AppendUint32(b, d.nlink)
		b = le.AppendUint16(b, uint16(size))
		b = le.AppendUint16(b, offset)
		b = le.AppendUint32(b, parent)
	} else {
		b = t.header(d, 1+extendedOffset)
		b = le.AppendUint32(b, d.nlink)
		b = le.AppendUint32(b, size)
		b = le.AppendUint32(b, block)
		b = le.AppendUint32(b, parent)
		b = le.AppendUint16(b, uint16(len(index)))
		b = le.AppendUint16(b, offset)
		b = le.AppendUint32(b, xattr)
		for _, ix := range index {
			b = le.AppendUint32(b, ix.index)
			b = le.AppendUint32(b, ix.start)
			b = le.AppendUint32(b, uint32(len(ix.name)-1))
			b = append(b, ix.name...)
		}
	}
	t.inodes.write(b)
}
