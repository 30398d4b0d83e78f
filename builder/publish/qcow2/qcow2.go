// Package qcow2 writes a raw disk image as a QCOW2 (version 3) image with
// 64 KiB clusters, the native format of QEMU/KVM and of OpenStack Glance.
//
// Only clusters holding a non-zero byte are allocated: the data extents of
// the raw image are read and every all-zero cluster inside them is left
// out, so the result depends on the image's bytes only. Clusters are
// stored uncompressed: QEMU boots the file directly and serves reads
// without inflating anything, and a guest write to a compressed cluster
// would make QEMU allocate and copy a new one (compressed clusters are only
// worth it for transport, where the .raw.zst form already serves).
//
// Layout: the header in cluster 0, the L1 table, the refcount table, the
// data clusters in guest order, the L2 tables, then the refcount blocks.
// Every cluster has refcount 1 and every L1 and L2 entry carries the
// COPIED flag, as `qemu-img check` expects of an image without snapshots.
// The file has no identifiers or timestamps, so Options.Seed and
// Options.ModTime are unused.
package qcow2

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"time"

	"github.com/nodebake/nodebake/builder/publish/sparse"
)

// Options tunes Write.
type Options struct {
	// Seed would derive identifiers; a QCOW2 image has none.
	Seed []byte
	// ModTime would be any timestamp in the file; a QCOW2 image has none.
	ModTime time.Time
	// Workers is unused: writing is bound by reading the raw image.
	Workers int
}

const (
	clusterBits   = 16
	clusterSize   = 1 << clusterBits
	l2Entries     = clusterSize / 8
	refcountOrder = 4 // 16-bit refcounts
	refsPerBlock  = clusterSize * 8 / (1 << refcountOrder)
	rtPerCluster  = clusterSize / 8
	headerLength  = 104 // the version 3 header without optional fields
	oflagCopied   = uint64(1) << 63
	writeBuf      = 4 << 20
	magic         = "QFI\xfb"
)

// layout is the placement of the metadata that does not depend on data.
type layout struct {
	size       int64 // virtual size in bytes
	clusters   int64 // guest clusters
	l1Size     int64 // L1 entries
	l1Clusters int64
	rtClusters int64
	dataStart  int64 // first host cluster for data
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

func plan(size int64) layout {
	l := layout{size: size}
	l.clusters = ceilDiv(size, clusterSize)
	l.l1Size = ceilDiv(l.clusters, l2Entries)
	l.l1Clusters = max(1, ceilDiv(l.l1Size*8, clusterSize))
	// Size the refcount table for the worst case: every guest cluster and
	// every L2 table allocated.
	l.rtClusters = 1
	for {
		total := 1 + l.l1Clusters + l.rtClusters + l.clusters + l.l1Size
		rb := refBlocks(total)
		need := max(1, ceilDiv(rb, rtPerCluster))
		if need <= l.rtClusters {
			break
		}
		l.rtClusters = need
	}
	l.dataStart = 1 + l.l1Clusters + l.rtClusters
	return l
}

// refBlocks is the number of refcount blocks that cover n clusters plus
// the refcount blocks themselves.
func refBlocks(n int64) int64 {
	rb := ceilDiv(n, refsPerBlock)
	for ceilDiv(n+rb, refsPerBlock) > rb {
		rb++
	}
	return rb
}

// Write converts the raw image src to QCOW2 in dst.
func Write(ctx context.Context, dst *os.File, src *os.File, opts Options) error {
	size, err := sparse.Size(src)
	if err != nil {
		return fmt.Errorf("qcow2: %w", err)
	}
	if size == 0 {
		return fmt.Errorf("qcow2: %s is empty", src.Name())
	}
	ext, err := sparse.Data(src)
	if err != nil {
		return fmt.Errorf("qcow2: %w", err)
	}
	l := plan(size)
	w := &clusterWriter{f: dst, next: l.dataStart, buf: make([]byte, 0, writeBuf)}
	l2 := make(map[int64][]uint64) // L1 index -> L2 table
	err = sparse.ForEachBlock(ctx, src, size, ext, clusterSize, func(idx int64, b []byte) error {
		host, err := w.add(b)
		if err != nil {
			return err
		}
		t := l2[idx/l2Entries]
		if t == nil {
			t = make([]uint64, l2Entries)
			l2[idx/l2Entries] = t
		}
		t[idx%l2Entries] = uint64(host) | oflagCopied
		return nil
	})
	if err != nil {
		return fmt.Errorf("qcow2: copy data clusters: %w", err)
	}
	if err := w.flush(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	// L2 tables after the data, in L1 order.
	l1 := make([]uint64, l.l1Size)
	table := make([]byte, clusterSize)
	for i := int64(0); i < l.l1Size; i++ {
		t := l2[i]
		if t == nil {
			continue
		}
		for j, e := range t {
			binary.BigEndian.PutUint64(table[j*8:], e)
		}
		host, err := w.add(table)
		if err != nil {
			return err
		}
		l1[i] = uint64(host) | oflagCopied
	}
	if err := w.flush(); err != nil {
		return err
	}

	// Refcount blocks last: every cluster up to and including them is in
	// use once.
	used := w.next
	rb := refBlocks(used)
	if rb > l.rtClusters*rtPerCluster {
		return fmt.Errorf("qcow2: %d refcount blocks do not fit the refcount table of %d clusters", rb, l.rtClusters)
	}
	total := used + rb
	rt := make([]byte, l.rtClusters*clusterSize)
	for j := int64(0); j < rb; j++ {
		clear(table)
		for c := j * refsPerBlock; c < min(total, (j+1)*refsPerBlock); c++ {
			binary.BigEndian.PutUint16(table[(c-j*refsPerBlock)*2:], 1)
		}
		host, err := w.add(table)
		if err != nil {
			return err
		}
		binary.BigEndian.PutUint64(rt[j*8:], uint64(host))
	}
	if err := w.flush(); err != nil {
		return err
	}

	l1b := make([]byte, l.l1Clusters*clusterSize)
	for i, e := range l1 {
		binary.BigEndian.PutUint64(l1b[i*8:], e)
	}
	if _, err := dst.WriteAt(l1b, clusterSize); err != nil {
		return fmt.Errorf("qcow2: write L1 table to %s: %w", dst.Name(), err)
	}
	if _, err := dst.WriteAt(rt, (1+l.l1Clusters)*clusterSize); err != nil {
		return fmt.Errorf("qcow2: write refcount table to %s: %w", dst.Name(), err)
	}
	if _, err := dst.WriteAt(header(l), 0); err != nil {
		return fmt.Errorf("qcow2: write header to %s: %w", dst.Name(), err)
	}
	if err := dst.Truncate(total * clusterSize); err != nil {
		return fmt.Errorf("qcow2: set size of %s: %w", dst.Name(), err)
	}
	return nil
}

// header returns cluster 0: the version 3 header and an empty list of
// header extensions.
func header(l layout) []byte {
	h := make([]byte, clusterSize)
	be := binary.BigEndian
	copy(h[0:], magic)
	be.PutUint32(h[4:], 3)                                   // version
	be.PutUint64(h[8:], 0)                                   // backing_file_offset
	be.PutUint32(h[16:], 0)                                  // backing_file_size
	be.PutUint32(h[20:], clusterBits)                        // cluster_bits
	be.PutUint64(h[24:], uint64(l.size))                     // size
	be.PutUint32(h[32:], 0)                                  // crypt_method
	be.PutUint32(h[36:], uint32(l.l1Size))                   // l1_size
	be.PutUint64(h[40:], clusterSize)                        // l1_table_offset
	be.PutUint64(h[48:], uint64(1+l.l1Clusters)*clusterSize) // refcount_table_offset
	be.PutUint32(h[56:], uint32(l.rtClusters))               // refcount_table_clusters
	be.PutUint32(h[60:], 0)                                  // nb_snapshots
	be.PutUint64(h[64:], 0)                                  // snapshots_offset
	be.PutUint64(h[72:], 0)                                  // incompatible_features
	be.PutUint64(h[80:], 0)                                  // compatible_features
	be.PutUint64(h[88:], 0)                                  // autoclear_features
	be.PutUint32(h[96:], refcountOrder)                      // refcount_order
	be.PutUint32(h[100:], headerLength)                      // header_length
	// h[104:112] stays zero: the end-of-extensions marker (type 0, length 0).
	return h
}

// clusterWriter appends whole clusters at consecutive host offsets and
// batches them into large writes.
type clusterWriter struct {
	f    *os.File
	next int64 // next free host cluster
	buf  []byte
	at   int64 // host offset of buf[0]
}

// add appends b, zero-padded to a cluster, and returns its host offset.
func (w *clusterWriter) add(b []byte) (int64, error) {
	if len(w.buf)+clusterSize > cap(w.buf) {
		if err := w.flush(); err != nil {
			return 0, err
		}
	}
	if len(w.buf) == 0 {
		w.at = w.next * clusterSize
	}
	n := len(w.buf)
	w.buf = w.buf[:n+clusterSize]
	copy(w.buf[n:], b)
	clear(w.buf[n+len(b):])
	host := w.next * clusterSize
	w.next++
	return host, nil
}

func (w *clusterWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	if _, err := w.f.WriteAt(w.buf, w.at); err != nil {
		return fmt.Errorf("qcow2: write %d bytes at %d of %s: %w", len(w.buf), w.at, w.f.Name(), err)
	}
	w.buf = w.buf[:0]
	return nil
}
