package squashfs

import (
	"encoding/binary"

	"github.com/klauspost/compress/zstd"
)

// metadataSize is the uncompressed size of a metadata block.
const metadataSize = 8192

// metaUncompressed marks a metadata block stored raw in its 16 bit header.
const metaUncompressed = 0x8000

// metaWriter packs a stream of records into compressed metadata blocks.
type metaWriter struct {
	enc     *zstd.Encoder
	pending []byte // uncompressed bytes of the block being filled
	out     []byte // finished blocks, each with its 16 bit header
	scratch []byte
}

func newMetaWriter(enc *zstd.Encoder) *metaWriter {
	return &metaWriter{enc: enc, pending: make([]byte, 0, metadataSize)}
}

// pos returns where the next byte goes: the offset of its metadata block from
// the start of the table and the offset inside the uncompressed block. A full
// block is always flushed at once, so the offset is below metadataSize.
func (m *metaWriter) pos() (uint64, uint16) {
	return uint64(len(m.out)), uint16(len(m.pending))
}

// ref returns pos as a squashfs metadata reference (block << 16 | offset).
func (m *metaWriter) ref() uint64 {
	b, o := m.pos()
	return b<<16 | uint64(o)
}

func (m *metaWriter) write(p []byte) {
	for len(p) > 0 {
		n := copy(m.pending[len(m.pending):metadataSize], p)
		m.pending = m.pending[:len(m.pending)+n]
		p = p[n:]
		if len(m.pending) == metadataSize {
			m.flush()
		}
	}
}

func (m *metaWriter) flush() {
	if len(m.pending) == 0 {
		return
	}
	m.out = appendMetaBlock(m.out, m.enc, m.pending, &m.scratch)
	m.pending = m.pending[:0]
}

// bytes flushes the last partial block and returns the table.
func (m *metaWriter) bytes() []byte {
	m.flush()
	return m.out
}

// appendMetaBlock appends one metadata block holding data (at most 8 KiB),
// compressed unless that does not make it smaller.
func appendMetaBlock(dst []byte, enc *zstd.Encoder, data []byte, scratch *[]byte) []byte {
	c := enc.EncodeAll(data, (*scratch)[:0])
	*scratch = c
	if len(c) < len(data) {
		dst = binary.LittleEndian.AppendUint16(dst, uint16(len(c)))
		return append(dst, c...)
	}
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(data))|metaUncompressed)
	return append(dst, data...)
}

// appendLookupTable appends a lookup table (fragment, id or xattr id table)
// to dst, whose first byte is at absolute offset at: the entries packed in metadata
// blocks, then the uncompressed list of the blocks' absolute offsets. It
// returns the extended buffer and the absolute offset of that list, which is
// what the superblock points to.
func appendLookupTable(dst []byte, at uint64, enc *zstd.Encoder, entries []byte) ([]byte, uint64) {
	var locs []uint64
	var scratch []byte
	for len(entries) > 0 {
		n := min(len(entries), metadataSize)
		locs = append(locs, at+uint64(len(dst)))
		dst = appendMetaBlock(dst, enc, entries[:n], &scratch)
		entries = entries[n:]
	}
	listAt := at + uint64(len(dst))
	for _, l := range locs {
		dst = binary.LittleEndian.AppendUint64(dst, l)
	}
	return dst, listAt
}
