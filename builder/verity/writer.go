package verity

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Writer computes a hash tree from data written to it in order, hashing
// each 512 KiB group of data blocks on a pool of workers while the caller
// writes the next. Finish writes the hash device. A Writer is not safe for
// concurrent use.
type Writer struct {
	ctx  context.Context
	p    Params
	dst  io.WriterAt
	off  int64
	buf  []byte // the group being filled
	size int64  // bytes written so far

	jobs   chan writerJob
	free   chan []byte    // data buffers not in use
	groups []*writerGroup // one per group, in order
	wg     sync.WaitGroup
	closed bool
	err    error
}

type writerJob struct {
	data []byte
	g    *writerGroup
}

// writerGroup is the level-0 hash block of one group and its digest.
type writerGroup struct {
	block  [BlockSize]byte
	digest [digestSize]byte
}

// NewWriter returns a Writer that will write the hash device for the data
// written to it to dst, its first byte at offset off, when Finish is
// called. Call Finish, or Close to give up; either stops the workers.
func NewWriter(ctx context.Context, dst io.WriterAt, off int64, p Params) (*Writer, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("verity: hash device offset %d is negative", off)
	}
	w := &Writer{ctx: ctx, p: Params{Salt: bytes.Clone(p.Salt), UUID: p.UUID, Workers: p.Workers}, dst: dst, off: off}
	n := w.p.workers()
	w.jobs = make(chan writerJob)
	w.free = make(chan []byte, n+1)
	for range n + 1 {
		w.free <- make([]byte, 0, groupSize)
	}
	w.buf = <-w.free
	for range n {
		w.wg.Go(func() {
			h := newHasher(w.p.Salt)
			for j := range w.jobs {
				j.g.digest = h.hashGroup(j.g.block[:], j.data)
				w.free <- j.data[:0]
			}
		})
	}
	return w, nil
}

// Write hashes p as the next bytes of the data.
func (w *Writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errors.New("verity: write after Finish or Close")
	}
	written := 0
	for len(p) > 0 {
		if err := w.ctx.Err(); err != nil {
			return written, err
		}
		k := copy(w.buf[len(w.buf):groupSize], p)
		w.buf = w.buf[:len(w.buf)+k]
		p = p[k:]
		written += k
		w.size += int64(k)
		if len(w.buf) == groupSize {
			if err := w.dispatch(); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

// dispatch hands the current group to a worker and takes a free buffer.
func (w *Writer) dispatch() error {
	g := &writerGroup{}
	w.groups = append(w.groups, g)
	select {
	case w.jobs <- writerJob{data: w.buf, g: g}:
	case <-w.ctx.Done():
		return w.ctx.Err()
	}
	select {
	case w.buf = <-w.free:
	case <-w.ctx.Done():
		return w.ctx.Err()
	}
	return nil
}

// stop ends the workers and waits for them.
func (w *Writer) stop() {
	if !w.closed {
		w.closed = true
		close(w.jobs)
		w.wg.Wait()
	}
}

// Close stops the workers without writing anything more. It is harmless
// after Finish.
func (w *Writer) Close() error {
	w.stop()
	return nil
}

// Finish hashes the last group, writes the hash device and returns the tree.
// The data written must be a positive multiple of BlockSize bytes.
func (w *Writer) Finish() (Tree, error) {
	if w.closed {
		return Tree{}, errors.New("verity: Finish after Finish or Close")
	}
	n, err := dataBlocks(w.size)
	if err != nil {
		w.stop()
		return Tree{}, err
	}
	if len(w.buf) > 0 {
		if err := w.dispatch(); err != nil {
			w.stop()
			return Tree{}, err
		}
	}
	w.stop()
	if err := w.ctx.Err(); err != nil {
		return Tree{}, err
	}
	lv := levels(n)
	if len(lv) > maxLevels {
		return Tree{}, fmt.Errorf("verity: %d data blocks need %d hash levels, more than %d", n, len(lv), maxLevels)
	}
	var single [digestSize]byte
	digests := make([][digestSize]byte, len(w.groups))
	if len(lv) == 0 {
		copy(single[:], w.groups[0].block[:digestSize])
	} else {
		level0Off := w.off + levelOffsets(lv)[0]
		for i, g := range w.groups {
			if err := writeAt(w.dst, g.block[:], level0Off+int64(i)*BlockSize, "hash level 0"); err != nil {
				return Tree{}, err
			}
			digests[i] = g.digest
		}
	}
	w.groups = nil
	root, err := finish(w.ctx, w.p, n, digests, single, w.dst, w.off)
	if err != nil {
		return Tree{}, err
	}
	return Tree{RootHash: root, Salt: bytes.Clone(w.p.Salt), UUID: w.p.UUID, DataBlocks: n, HashSize: HashSize(n)}, nil
}
