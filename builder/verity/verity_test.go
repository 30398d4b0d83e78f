package verity

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
)

// memDevice is an in-memory io.WriterAt that grows as needed and records
// which bytes were written.
type memDevice struct {
	mu      sync.Mutex
	b       []byte
	written []bool
}

func (m *memDevice) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if end := int(off) + len(p); end > len(m.b) {
		m.b = append(m.b, make([]byte, end-len(m.b))...)
		m.written = append(m.written, make([]bool, end-len(m.written))...)
	}
	copy(m.b[off:], p)
	for i := range p {
		m.written[int(off)+i] = true
	}
	return len(p), nil
}

// vectorSalt and vectorUUID are the salt and UUID of the reference vectors.
var (
	vectorSalt = func() []byte {
		s := make([]byte, 32)
		for i := range s {
			s[i] = byte(i)
		}
		return s
	}()
	vectorUUID = uuid.MustParse("00000000-0000-4000-8000-000000000001")
)

// patternData returns n blocks, block i filled with byte i mod 256.
func patternData(n int) []byte {
	b := make([]byte, n*BlockSize)
	for i := range n {
		for j := range BlockSize {
			b[i*BlockSize+j] = byte(i)
		}
	}
	return b
}

// The reference vectors, checked against veritysetup format (cryptsetup
// 2.6.1 and 2.7.5) with --salt=000102…1f and --uuid=vectorUUID.
var vectors = []struct {
	name     string
	data     []byte
	root     string
	hashSize int64
	hashSHA  string
}{
	{"300 pattern blocks", patternData(300),
		"c382722c1ecf53fb069ad2c8daf053944e8583184cd65423f47418e4d5ab59ee", 20480,
		"c762eacff5c461685c56b6a1d884b1e470e636655b44549e321264e0b9127f28"},
	{"one zero block", make([]byte, BlockSize),
		"4ce3ecf32c133bf6321901b6092219474b6ac91a19d0304621d629e6bb9987dc", 4096,
		"8814fbf68407439fa755041ed649a5bec99c64c9e9cf7cd0c6c80f2f57196f5c"},
}

// formatters runs the same tree through Format and through Writer with a
// few write sizes and worker counts.
type formatter struct {
	name string
	run  func(t *testing.T, data []byte, dst io.WriterAt, off int64, p Params) (Tree, error)
}

var formatters = []formatter{
	{"Format", func(t *testing.T, data []byte, dst io.WriterAt, off int64, p Params) (Tree, error) {
		return Format(context.Background(), bytes.NewReader(data), int64(len(data)), dst, off, p)
	}},
	{"Format/1 worker", func(t *testing.T, data []byte, dst io.WriterAt, off int64, p Params) (Tree, error) {
		p.Workers = 1
		return Format(context.Background(), bytes.NewReader(data), int64(len(data)), dst, off, p)
	}},
	{"Format/7 workers", func(t *testing.T, data []byte, dst io.WriterAt, off int64, p Params) (Tree, error) {
		p.Workers = 7
		return Format(context.Background(), bytes.NewReader(data), int64(len(data)), dst, off, p)
	}},
	{"Writer/one write", func(t *testing.T, data []byte, dst io.WriterAt, off int64, p Params) (Tree, error) {
		return writeAll(t, data, dst, off, p, len(data))
	}},
	{"Writer/odd writes", func(t *testing.T, data []byte, dst io.WriterAt, off int64, p Params) (Tree, error) {
		p.Workers = 3
		return writeAll(t, data, dst, off, p, 999)
	}},
}

func writeAll(t *testing.T, data []byte, dst io.WriterAt, off int64, p Params, chunk int) (Tree, error) {
	t.Helper()
	w, err := NewWriter(context.Background(), dst, off, p)
	if err != nil {
		return Tree{}, err
	}
	defer w.Close()
	for rest := data; len(rest) > 0; {
		k := min(chunk, len(rest))
		n, err := w.Write(rest[:k])
		if err != nil || n != k {
			t.Fatalf("Write: %d, %v; want %d", n, err, k)
		}
		rest = rest[k:]
	}
	return w.Finish()
}

func TestVectors(t *testing.T) {
	for _, v := range vectors {
		for _, f := range formatters {
			t.Run(v.name+"/"+f.name, func(t *testing.T) {
				for _, off := range []int64{0, 12345} {
					dev := &memDevice{}
					tree, err := f.run(t, v.data, dev, off, Params{Salt: vectorSalt, UUID: vectorUUID})
					if err != nil {
						t.Fatal(err)
					}
					if got := tree.RootHashHex(); got != v.root {
						t.Errorf("root hash %s, want %s", got, v.root)
					}
					if tree.HashSize != v.hashSize || HashSize(tree.DataBlocks) != v.hashSize {
						t.Errorf("hash size %d (HashSize %d), want %d", tree.HashSize, HashSize(tree.DataBlocks), v.hashSize)
					}
					if want := uint64(len(v.data) / BlockSize); tree.DataBlocks != want {
						t.Errorf("data blocks %d, want %d", tree.DataBlocks, want)
					}
					if int64(len(dev.b)) != off+v.hashSize {
						t.Fatalf("wrote up to byte %d, want %d", len(dev.b), off+v.hashSize)
					}
					for i := off; i < off+v.hashSize; i++ {
						if !dev.written[i] {
							t.Fatalf("hash device byte %d was never written", i-off)
						}
					}
					for i := range off {
						if dev.written[i] {
							t.Fatalf("byte %d before the offset was written", i)
						}
					}
					if sum := sha256.Sum256(dev.b[off:]); hex.EncodeToString(sum[:]) != v.hashSHA {
						t.Errorf("hash device sha256 %x, want %s", sum, v.hashSHA)
					}
				}
			})
		}
	}
}

func TestSuperblockFields(t *testing.T) {
	salt := []byte{0xaa, 0xbb, 0xcc}
	id := uuid.MustParse("12345678-9abc-4def-8123-456789abcdef")
	dev := &memDevice{}
	if _, err := Format(context.Background(), bytes.NewReader(make([]byte, 3*BlockSize)), 3*BlockSize, dev, 0, Params{Salt: salt, UUID: id}); err != nil {
		t.Fatal(err)
	}
	sb := dev.b[:BlockSize]
	want := map[string][]byte{
		"signature":   []byte("verity\x00\x00"),
		"version":     {1, 0, 0, 0},
		"hash type":   {1, 0, 0, 0},
		"uuid":        {0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0x4d, 0xef, 0x81, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef},
		"algorithm":   append([]byte("sha256"), make([]byte, 26)...),
		"block sizes": {0, 0x10, 0, 0, 0, 0x10, 0, 0},
		"data blocks": {3, 0, 0, 0, 0, 0, 0, 0},
		"salt size":   {3, 0, 0, 0, 0, 0, 0, 0},
		"salt":        append([]byte{0xaa, 0xbb, 0xcc}, make([]byte, 253)...),
		"padding":     make([]byte, BlockSize-344),
	}
	at := map[string]int{"signature": 0, "version": 8, "hash type": 12, "uuid": 16, "algorithm": 32, "block sizes": 64,
		"data blocks": 72, "salt size": 80, "salt": 88, "padding": 344}
	for name, w := range want {
		if got := sb[at[name] : at[name]+len(w)]; !bytes.Equal(got, w) {
			t.Errorf("superblock %s at %d = %x, want %x", name, at[name], got, w)
		}
	}
}

func TestLevels(t *testing.T) {
	tests := []struct {
		n      uint64
		levels []uint64
		size   int64
	}{
		{1, nil, 4096},
		{2, []uint64{1}, 2 * 4096},
		{128, []uint64{1}, 2 * 4096},
		{129, []uint64{2, 1}, 4 * 4096},
		{16384, []uint64{128, 1}, 130 * 4096},
		{16385, []uint64{129, 2, 1}, 133 * 4096},
		{262144, []uint64{2048, 16, 1}, 8462336}, // 1 GiB, the example of the reference
	}
	for _, tc := range tests {
		if got := levels(tc.n); fmt.Sprint(got) != fmt.Sprint(tc.levels) {
			t.Errorf("levels(%d) = %v, want %v", tc.n, got, tc.levels)
		}
		if got := HashSize(tc.n); got != tc.size {
			t.Errorf("HashSize(%d) = %d, want %d", tc.n, got, tc.size)
		}
	}
}

func TestPartitionUUIDs(t *testing.T) {
	// The example of systemd-veritysetup-generator(8).
	root, _ := hex.DecodeString("ac2792526b542f59d5fe0c27199886c7" + "ba32c2abff9567b4075d0584fea04789")
	var tree Tree
	copy(tree.RootHash[:], root)
	data, hash := tree.PartitionUUIDs()
	if data.String() != "ac279252-6b54-2f59-d5fe-0c27199886c7" || hash.String() != "ba32c2ab-ff95-67b4-075d-0584fea04789" {
		t.Errorf("PartitionUUIDs = %s, %s", data, hash)
	}
}

func TestInvalid(t *testing.T) {
	good := Params{Salt: vectorSalt, UUID: vectorUUID}
	tests := []struct {
		name string
		size int64
		p    Params
		off  int64
		want string
	}{
		{"empty data", 0, good, 0, "at least one 4096-byte block"},
		{"partial block", BlockSize + 1, good, 0, "not a multiple of 4096"},
		{"negative size", -BlockSize, good, 0, "at least one"},
		{"long salt", BlockSize, Params{Salt: make([]byte, 257), UUID: vectorUUID}, 0, "salt is 257 bytes"},
		{"zero uuid", BlockSize, Params{Salt: vectorSalt}, 0, "UUID is all zeros"},
		{"negative workers", BlockSize, Params{Salt: vectorSalt, UUID: vectorUUID, Workers: -1}, 0, "workers is -1"},
		{"negative offset", BlockSize, good, -1, "offset -1 is negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := make([]byte, max(tc.size, 0))
			_, err := Format(context.Background(), bytes.NewReader(data), tc.size, &memDevice{}, tc.off, tc.p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Format: %v, want an error containing %q", err, tc.want)
			}
			if tc.size < 0 {
				return
			}
			w, err := NewWriter(context.Background(), &memDevice{}, tc.off, tc.p)
			if err == nil {
				w.Write(data)
				_, err = w.Finish()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Writer: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// shortReader returns fewer bytes than asked past limit.
type shortReader struct {
	r     io.ReaderAt
	limit int64
}

func (s shortReader) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > s.limit {
		n, _ := s.r.ReadAt(p[:max(s.limit-off, 0)], off)
		return n, io.EOF
	}
	return s.r.ReadAt(p, off)
}

type failWriter struct{}

var errDisk = errors.New("disk full")

func (failWriter) WriteAt(p []byte, off int64) (int, error) { return 0, errDisk }

func TestErrors(t *testing.T) {
	data := make([]byte, 300*BlockSize)
	p := Params{Salt: vectorSalt, UUID: vectorUUID}
	_, err := Format(context.Background(), shortReader{bytes.NewReader(data), 200 * BlockSize}, int64(len(data)), &memDevice{}, 0, p)
	if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), "reading data") {
		t.Errorf("short data: %v, want an unexpected EOF while reading data", err)
	}
	if _, err := Format(context.Background(), bytes.NewReader(data), int64(len(data)), failWriter{}, 0, p); !errors.Is(err, errDisk) {
		t.Errorf("failing hash device: %v, want %v", err, errDisk)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Format(ctx, bytes.NewReader(data), int64(len(data)), &memDevice{}, 0, p); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v, want %v", err, context.Canceled)
	}
	w, err := NewWriter(context.Background(), failWriter{}, 0, p)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if _, err := w.Finish(); !errors.Is(err, errDisk) {
		t.Errorf("Writer with a failing hash device: %v, want %v", err, errDisk)
	}
	if _, err := w.Write(data[:1]); err == nil {
		t.Error("Write after Finish succeeded")
	}
}

// TestSameTree checks every formatter against the others on sizes around
// the level boundaries, with random data and salts.
func TestSameTree(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 127, 128, 129, 255, 256, 257, 16384, 16385} {
		data := make([]byte, n*BlockSize)
		for i := 0; i < len(data); i += 8 {
			binary.LittleEndian.PutUint64(data[i:], rng.Uint64())
		}
		salt := make([]byte, rng.IntN(MaxSaltSize+1))
		for i := range salt {
			salt[i] = byte(rng.Uint32())
		}
		p := Params{Salt: salt, UUID: vectorUUID}
		var first []byte
		var firstRoot string
		for _, f := range formatters {
			dev := &memDevice{}
			tree, err := f.run(t, data, dev, 0, p)
			if err != nil {
				t.Fatalf("%d blocks, %s: %v", n, f.name, err)
			}
			if first == nil {
				first, firstRoot = dev.b, tree.RootHashHex()
				continue
			}
			if !bytes.Equal(dev.b, first) || tree.RootHashHex() != firstRoot {
				t.Errorf("%d blocks: %s gives another tree than %s", n, f.name, formatters[0].name)
			}
		}
	}
}
