package verity

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"
)

// Fixed parameters of the format nodebake writes.
const (
	// BlockSize is the data block and hash block size in bytes.
	BlockSize = 4096
	// Algorithm is the hash algorithm, as named in the superblock and on
	// veritysetup's command line.
	Algorithm = "sha256"
	// HashType is the hash format: 1 is the normal format (the salt comes
	// first), 0 the Chrome OS one.
	HashType = 1
	// MaxSaltSize is the longest salt the superblock can hold.
	MaxSaltSize = 256
	// SuperblockSize is the size of the superblock at the start of the hash
	// device; the tree starts at the next block, byte BlockSize.
	SuperblockSize = 512

	digestSize     = sha256.Size
	hashesPerBlock = BlockSize / digestSize // 128
	groupSize      = hashesPerBlock * BlockSize
	maxLevels      = 63 // cryptsetup's VERITY_MAX_LEVELS
)

// Params are the caller's choices for one hash tree.
type Params struct {
	// Salt is prepended to every hashed block: 0 to MaxSaltSize bytes.
	// Derive it from the image seed for reproducible builds.
	Salt []byte
	// UUID is the hash device's UUID in the superblock, in RFC 4122 byte
	// order (the order of the string form). It must not be all zeros.
	UUID uuid.UUID
	// Workers is the number of hashing goroutines; 0 means GOMAXPROCS.
	Workers int
}

// Tree describes a written hash tree.
type Tree struct {
	// RootHash is the digest of the top hash block (of the only data
	// block when there is one): the value of roothash= and of
	// `veritysetup open ... ROOTHASH`.
	RootHash [digestSize]byte
	// Salt and UUID are the ones written into the superblock.
	Salt []byte
	UUID uuid.UUID
	// DataBlocks is the number of 4096-byte data blocks covered.
	DataBlocks uint64
	// HashSize is the size of the hash device in bytes: the superblock's
	// block and the tree.
	HashSize int64
}

// RootHashHex is the root hash in lower-case hexadecimal.
func (t Tree) RootHashHex() string { return hex.EncodeToString(t.RootHash[:]) }

// PartitionUUIDs returns the GPT partition UUIDs that systemd expects for
// the data and the hash partitions when only roothash= is given: the first
// and the last 16 bytes of the root hash, read as UUIDs in string order
// (systemd-veritysetup-generator; the Discoverable Partitions
// Specification recommends the same).
func (t Tree) PartitionUUIDs() (data, hash uuid.UUID) {
	copy(data[:], t.RootHash[:16])
	copy(hash[:], t.RootHash[digestSize-16:])
	return data, hash
}

// levels returns the number of blocks of each hash level for n data blocks,
// level 0 (the one hashing the data) first. One data block needs no level.
func levels(n uint64) []uint64 {
	var out []uint64
	for blocks := n; blocks > 1; {
		blocks = (blocks + hashesPerBlock - 1) / hashesPerBlock
		out = append(out, blocks)
	}
	return out
}

// HashSize returns the size in bytes of the hash device for dataBlocks
// blocks of data (dataBlocks ≥ 1).
func HashSize(dataBlocks uint64) int64 {
	total := uint64(1) // the superblock's block
	for _, b := range levels(dataBlocks) {
		total += b
	}
	return int64(total) * BlockSize
}

// levelOffsets returns the offset of each level on the hash device. Levels
// are stored top-down from byte BlockSize, so level 0 comes last.
func levelOffsets(lv []uint64) []int64 {
	offs := make([]int64, len(lv))
	off := int64(BlockSize)
	for i := len(lv) - 1; i >= 0; i-- {
		offs[i] = off
		off += int64(lv[i]) * BlockSize
	}
	return offs
}

func (p Params) check() error {
	if len(p.Salt) > MaxSaltSize {
		return fmt.Errorf("verity: salt is %d bytes, at most %d are allowed", len(p.Salt), MaxSaltSize)
	}
	if p.UUID == (uuid.UUID{}) {
		return errors.New("verity: the hash device UUID is all zeros; set Params.UUID (derive it from the image seed)")
	}
	if p.Workers < 0 {
		return fmt.Errorf("verity: workers is %d, want 0 (GOMAXPROCS) or more", p.Workers)
	}
	return nil
}

func (p Params) workers() int {
	if p.Workers > 0 {
		return p.Workers
	}
	return runtime.GOMAXPROCS(0)
}

// dataBlocks checks a data size and returns its number of blocks.
func dataBlocks(size int64) (uint64, error) {
	if size <= 0 {
		return 0, fmt.Errorf("verity: data size is %d bytes, want at least one %d-byte block", size, BlockSize)
	}
	if size%BlockSize != 0 {
		return 0, fmt.Errorf("verity: data size %d is not a multiple of %d bytes (pad the data with zeros to the next block)", size, BlockSize)
	}
	return uint64(size / BlockSize), nil
}

// superblock returns the first block of the hash device.
func superblock(p Params, n uint64) []byte {
	b := make([]byte, BlockSize)
	copy(b[0:8], "verity\x00\x00")
	binary.LittleEndian.PutUint32(b[8:], 1) // superblock version
	binary.LittleEndian.PutUint32(b[12:], HashType)
	copy(b[16:32], p.UUID[:])
	copy(b[32:64], Algorithm)
	binary.LittleEndian.PutUint32(b[64:], BlockSize)
	binary.LittleEndian.PutUint32(b[68:], BlockSize)
	binary.LittleEndian.PutUint64(b[72:], n)
	binary.LittleEndian.PutUint16(b[80:], uint16(len(p.Salt)))
	copy(b[88:88+MaxSaltSize], p.Salt)
	return b
}

// hasher computes salted block digests.
type hasher struct {
	h    hash.Hash
	salt []byte
}

func newHasher(salt []byte) *hasher { return &hasher{h: sha256.New(), salt: salt} }

// sum writes SHA-256(salt ‖ block) to dst[:32].
func (h *hasher) sum(dst, block []byte) {
	h.h.Reset()
	h.h.Write(h.salt)
	h.h.Write(block)
	h.h.Sum(dst[:0])
}

// hashGroup fills the hash block out (BlockSize bytes) with the digests of
// the data blocks in data (a whole number of blocks, at most 128), zero
// padded, and returns the digest of out.
func (h *hasher) hashGroup(out, data []byte) [digestSize]byte {
	n := len(data) / BlockSize
	for i := range n {
		h.sum(out[i*digestSize:], data[i*BlockSize:(i+1)*BlockSize])
	}
	clear(out[n*digestSize:])
	var d [digestSize]byte
	h.sum(d[:], out)
	return d
}

// writeAt writes b at off of w, reporting which part of the hash device it
// was.
func writeAt(w io.WriterAt, b []byte, off int64, what string) error {
	if _, err := w.WriteAt(b, off); err != nil {
		return fmt.Errorf("verity: writing the %s at hash device offset %d: %w", what, off, err)
	}
	return nil
}

// finish writes the superblock and the levels above level 0, given the
// digests of the level-0 blocks (level0Digests) or, for a single data block,
// that block's digest, and returns the root hash.
func finish(ctx context.Context, p Params, n uint64, level0Digests [][digestSize]byte, single [digestSize]byte, dst io.WriterAt, off int64) ([digestSize]byte, error) {
	if err := writeAt(dst, superblock(p, n), off, "superblock"); err != nil {
		return [digestSize]byte{}, err
	}
	lv := levels(n)
	if len(lv) == 0 {
		return single, nil
	}
	offs := levelOffsets(lv)
	h := newHasher(p.Salt)
	cur := level0Digests
	block := make([]byte, BlockSize)
	for level := 1; level < len(lv); level++ {
		if err := ctx.Err(); err != nil {
			return [digestSize]byte{}, err
		}
		next := make([][digestSize]byte, 0, lv[level])
		for b := uint64(0); b < lv[level]; b++ {
			clear(block)
			start := b * hashesPerBlock
			end := min(start+hashesPerBlock, uint64(len(cur)))
			for i, d := range cur[start:end] {
				copy(block[i*digestSize:], d[:])
			}
			if err := writeAt(dst, block, off+offs[level]+int64(b)*BlockSize, fmt.Sprintf("hash level %d", level)); err != nil {
				return [digestSize]byte{}, err
			}
			var d [digestSize]byte
			h.sum(d[:], block)
			next = append(next, d)
		}
		cur = next
	}
	return cur[0], nil
}

// Format computes the hash tree of the dataSize bytes of data (a positive
// multiple of BlockSize) and writes the hash device (superblock and tree,
// HashSize(dataSize/BlockSize) bytes) to dst, its first byte at offset off.
// The groups of data blocks are hashed on p.Workers goroutines, which call
// dst.WriteAt concurrently on disjoint ranges.
func Format(ctx context.Context, data io.ReaderAt, dataSize int64, dst io.WriterAt, off int64, p Params) (Tree, error) {
	if err := p.check(); err != nil {
		return Tree{}, err
	}
	n, err := dataBlocks(dataSize)
	if err != nil {
		return Tree{}, err
	}
	if off < 0 {
		return Tree{}, fmt.Errorf("verity: hash device offset %d is negative", off)
	}
	lv := levels(n)
	if len(lv) > maxLevels {
		return Tree{}, fmt.Errorf("verity: %d data blocks need %d hash levels, more than %d", n, len(lv), maxLevels)
	}
	groups := (n + hashesPerBlock - 1) / hashesPerBlock
	var level0Off int64
	if len(lv) > 0 {
		level0Off = off + levelOffsets(lv)[0]
	}
	digests := make([][digestSize]byte, groups)
	var single [digestSize]byte

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Uint64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	workers := min(p.workers(), int(min(groups, 1<<16)))
	for range workers {
		wg.Go(func() {
			h := newHasher(p.Salt)
			buf := make([]byte, groupSize)
			out := make([]byte, BlockSize)
			for {
				g := next.Add(1) - 1
				if g >= groups || ctx.Err() != nil {
					return
				}
				start := int64(g) * groupSize
				chunk := buf[:min(int64(groupSize), dataSize-start)]
				if rn, err := data.ReadAt(chunk, start); rn < len(chunk) {
					if err == nil || errors.Is(err, io.EOF) {
						err = io.ErrUnexpectedEOF
					}
					fail(fmt.Errorf("verity: reading data at offset %d: %w", start+int64(rn), err))
					return
				}
				digests[g] = h.hashGroup(out, chunk)
				if len(lv) == 0 {
					// A single data block: its digest is the root hash,
					// and there is no level 0 to write.
					copy(single[:], out[:digestSize])
					continue
				}
				if err := writeAt(dst, out, level0Off+int64(g)*BlockSize, "hash level 0"); err != nil {
					fail(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return Tree{}, firstErr
	}
	if err := ctx.Err(); err != nil {
		return Tree{}, err
	}
	root, err := finish(ctx, p, n, digests, single, dst, off)
	if err != nil {
		return Tree{}, err
	}
	return Tree{RootHash: root, Salt: bytes.Clone(p.Salt), UUID: p.UUID, DataBlocks: n, HashSize: HashSize(n)}, nil
}
