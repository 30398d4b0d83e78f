package squashfs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// zstdDefaultLevel is the level squashfs-tools assumes when the compression
// options block is absent.
const zstdDefaultLevel = 15

// uncompressedBit marks a data or fragment block stored raw.
const uncompressedBit = 1 << 24

// newEncoder returns a zstd encoder for squashfs blocks: one frame per block,
// single segment (the window is the block itself, which is what the kernel's
// decompressor reserves), no checksum, no internal concurrency.
func newEncoder(opts Options) (*zstd.Encoder, error) {
	return zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(opts.Level)),
		zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderCRC(false),
		zstd.WithSingleSegment(true),
		zstd.WithWindowSize(opts.BlockSize),
	)
}

// fragment is one fragment block; the writer goroutine fills start and size.
type fragment struct {
	index uint32 // in the fragment table
	start uint64
	size  uint32
}

// block is a buffer travelling from the tar reader through a compressor to
// the writer, and back to the free list.
type block struct {
	in  []byte // uncompressed contents, cap BlockSize
	out []byte // compression buffer
	n   int    // bytes used in in

	seq  uint64
	file *fileData // data block of file, block number idx
	idx  int
	frag *fragment // or fragment block
	// or, when rewind is set, no data: the writer moves back to the start
	// of file, whose blocks duplicate an earlier file.
	rewind bool

	payload []byte // bytes to write: out, in or nothing (sparse)
	size    uint32 // on-disk size word
}

// pipeline compresses file data in parallel and writes it in read order.
type pipeline struct {
	dst       io.WriterAt
	blockSize int

	free    chan *block
	jobs    chan *block
	results chan *block
	workers sync.WaitGroup
	done    chan struct{}
	zero    []byte

	// Owned by the reading goroutine.
	seq     uint64
	frags   []*fragment
	cur     *block // fragment block being filled
	curFrag *fragment
	tail    []byte // tail end being read
	sum     hash.Hash
	files   map[contentKey]*fileData // first file with each content

	// Owned by the writer goroutine until done is closed.
	pos       uint64
	highWater uint64 // end of the furthest byte written, rewinds included
	wbuf      []byte
	wstart    uint64

	mu  sync.Mutex
	err error
}

func newPipeline(dst io.WriterAt, start int64, opts Options) (*pipeline, error) {
	nblocks := 2*opts.Workers + 4
	p := &pipeline{
		dst:       dst,
		blockSize: opts.BlockSize,
		free:      make(chan *block, nblocks),
		jobs:      make(chan *block, nblocks),
		results:   make(chan *block, nblocks),
		done:      make(chan struct{}),
		zero:      make([]byte, opts.BlockSize),
		pos:       uint64(start),
		wstart:    uint64(start),
		wbuf:      make([]byte, 0, max(1<<20, 4*opts.BlockSize)),
		tail:      make([]byte, opts.BlockSize),
		sum:       sha256.New(),
		files:     map[contentKey]*fileData{},
	}
	encs := make([]*zstd.Encoder, opts.Workers)
	for i := range encs {
		enc, err := newEncoder(opts)
		if err != nil {
			for _, e := range encs[:i] {
				e.Close()
			}
			return nil, fmt.Errorf("creating zstd encoder: %w", err)
		}
		encs[i] = enc
	}
	for range nblocks {
		p.free <- &block{
			in:  make([]byte, opts.BlockSize),
			out: make([]byte, 0, opts.BlockSize+opts.BlockSize/128+1024),
		}
	}
	p.workers.Add(len(encs))
	for _, enc := range encs {
		go p.worker(enc)
	}
	go p.writer(nblocks)
	return p, nil
}

func (p *pipeline) setErr(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.mu.Unlock()
}

// failed returns the first error of the writer, if any.
func (p *pipeline) failed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

func (p *pipeline) get(ctx context.Context) (*block, error) {
	select {
	case b := <-p.free:
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *pipeline) submit(b *block) {
	b.seq = p.seq
	p.seq++
	p.jobs <- b
}

// contentKey identifies file contents for duplicate detection.
type contentKey struct {
	size uint64
	sum  [sha256.Size]byte
}

// addFile reads the contents of f from r: full blocks go to the compressors,
// the tail end into the current fragment block. When an earlier file had the
// same contents it returns that file's data (the blocks just written are
// taken back), otherwise f.
func (p *pipeline) addFile(ctx context.Context, f *fileData, r io.Reader) (*fileData, error) {
	if f.size == 0 {
		return f, nil
	}
	bs := uint64(p.blockSize)
	nfull := f.size / bs
	tail := int(f.size % bs)
	f.sizes = make([]uint32, nfull)
	p.sum.Reset()
	for i := range int(nfull) {
		if err := p.failed(); err != nil {
			return nil, err
		}
		b, err := p.get(ctx)
		if err != nil {
			return nil, err
		}
		if _, err := io.ReadFull(r, b.in); err != nil {
			p.free <- b
			return nil, fmt.Errorf("reading file contents: %w", truncated(err))
		}
		p.sum.Write(b.in)
		b.n, b.file, b.idx, b.frag, b.rewind = len(b.in), f, i, nil, false
		p.submit(b)
	}
	if _, err := io.ReadFull(r, p.tail[:tail]); err != nil {
		return nil, fmt.Errorf("reading file contents: %w", truncated(err))
	}
	p.sum.Write(p.tail[:tail])
	key := contentKey{size: f.size}
	p.sum.Sum(key.sum[:0])
	if orig, ok := p.files[key]; ok {
		if nfull > 0 {
			b, err := p.get(ctx)
			if err != nil {
				return nil, err
			}
			b.n, b.file, b.frag, b.rewind = 0, f, nil, true
			p.submit(b)
		}
		return orig, nil
	}
	p.files[key] = f
	if tail == 0 {
		return f, nil
	}
	if p.cur != nil && p.cur.n+tail > p.blockSize {
		p.flushFragment()
	}
	if p.cur == nil {
		b, err := p.get(ctx)
		if err != nil {
			return nil, err
		}
		p.cur, p.curFrag = b, &fragment{index: uint32(len(p.frags))}
		b.n, b.file, b.frag, b.rewind = 0, nil, p.curFrag, false
		p.frags = append(p.frags, p.curFrag)
	}
	copy(p.cur.in[p.cur.n:], p.tail[:tail])
	f.frag, f.fragOf = p.curFrag, uint32(p.cur.n)
	p.cur.n += tail
	return f, nil
}

func truncated(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// flushFragment sends the fragment block being filled to the compressors.
func (p *pipeline) flushFragment() {
	if p.cur == nil {
		return
	}
	p.submit(p.cur)
	p.cur, p.curFrag = nil, nil
}

// finish flushes the last fragment block (when ok), waits for every block to
// be written and returns the end of the data area.
func (p *pipeline) finish(ok bool) (uint64, error) {
	if p.cur != nil {
		if ok {
			p.flushFragment()
		} else {
			p.free <- p.cur
			p.cur = nil
		}
	}
	close(p.jobs)
	p.workers.Wait()
	close(p.results)
	<-p.done
	p.highWater = max(p.highWater, p.pos)
	return p.pos, p.failed()
}

func (p *pipeline) worker(enc *zstd.Encoder) {
	defer p.workers.Done()
	defer enc.Close()
	for b := range p.jobs {
		data := b.in[:b.n]
		switch {
		case b.rewind:
		case b.frag == nil && bytes.Equal(data, p.zero[:b.n]):
			b.payload, b.size = nil, 0
		default:
			out := enc.EncodeAll(data, b.out[:0])
			if len(out) < len(data) {
				b.payload, b.size = out, uint32(len(out))
			} else {
				b.payload, b.size = data, uint32(len(data))|uncompressedBit
			}
			b.out = out[:0]
		}
		p.results <- b
	}
}

// writer places blocks in sequence order.
func (p *pipeline) writer(ring int) {
	defer close(p.done)
	pending := make([]*block, ring)
	var next uint64
	for b := range p.results {
		pending[b.seq%uint64(ring)] = b
		for {
			i := next % uint64(ring)
			b := pending[i]
			if b == nil || b.seq != next {
				break
			}
			pending[i] = nil
			p.place(b)
			next++
		}
	}
	p.flush()
	for _, b := range pending {
		if b != nil {
			p.setErr(errors.New("internal error: data block never written"))
		}
	}
}

func (p *pipeline) place(b *block) {
	switch {
	case b.rewind:
		// The blocks of b.file, the last ones placed, duplicate an
		// earlier file: write the next blocks over them.
		p.highWater = max(p.highWater, p.pos)
		start := b.file.start
		if start >= p.wstart {
			p.wbuf = p.wbuf[:start-p.wstart]
		} else {
			p.wbuf, p.wstart = p.wbuf[:0], start
		}
		p.pos = start
	case b.frag != nil:
		b.frag.start, b.frag.size = p.pos, b.size
	default:
		if b.idx == 0 {
			b.file.start = p.pos
		}
		b.file.sizes[b.idx] = b.size
		if b.size == 0 {
			b.file.sparse += uint64(b.n)
		}
	}
	if len(b.payload) > 0 {
		if len(p.wbuf)+len(b.payload) > cap(p.wbuf) {
			p.flush()
		}
		p.wbuf = append(p.wbuf, b.payload...)
		p.pos += uint64(len(b.payload))
	}
	b.payload, b.file, b.frag, b.n, b.rewind = nil, nil, nil, 0, false
	p.free <- b
}

func (p *pipeline) flush() {
	if len(p.wbuf) == 0 {
		return
	}
	if p.failed() == nil {
		if _, err := p.dst.WriteAt(p.wbuf, int64(p.wstart)); err != nil {
			p.setErr(fmt.Errorf("writing data blocks at offset %d: %w", p.wstart, err))
		}
	}
	p.wstart += uint64(len(p.wbuf))
	p.wbuf = p.wbuf[:0]
}
