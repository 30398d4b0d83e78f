package verity

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
)

// discardAt is an io.WriterAt that drops everything.
type discardAt struct{}

func (discardAt) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }

func BenchmarkFormat(b *testing.B) {
	const n = 16 << 10 // 64 MiB
	data := make([]byte, n*BlockSize)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	p := Params{Salt: make([]byte, 32), UUID: uuid.MustParse("00000000-0000-4000-8000-000000000001")}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Format(context.Background(), bytesReaderAt(data), int64(len(data)), discardAt{}, 0, p); err != nil {
			b.Fatal(err)
		}
	}
}

type bytesReaderAt []byte

func (r bytesReaderAt) ReadAt(p []byte, off int64) (int, error) { return copy(p, r[off:]), nil }

// TestBenchVeritysetup times Format against `veritysetup format` on the
// same data file (NODEBAKE_BENCH_VERITY_MIB MiB of random data, default
// 200, in the page cache), best of five runs each, both writing their
// hash device to a file, and prints one FIGURE line. It asserts only that
// both give the same root hash. Run it with scripts/bench-verity.sh.
func TestBenchVeritysetup(t *testing.T) {
	if os.Getenv("NODEBAKE_BENCH") != "1" {
		t.Skip("benchmark: set NODEBAKE_BENCH=1 (scripts/bench-verity.sh)")
	}
	bin := requireTool(t, "veritysetup")
	mib := 200
	if s := os.Getenv("NODEBAKE_BENCH_VERITY_MIB"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			t.Fatalf("NODEBAKE_BENCH_VERITY_MIB=%q: want a positive number of MiB", s)
		}
		mib = v
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	writeRandomFile(t, data, mib<<20/BlockSize, rand.New(rand.NewPCG(5, 6)))
	salt := make([]byte, 32)
	id := uuid.MustParse("00000000-0000-4000-8000-000000000001")

	best := func(run func() string) (time.Duration, string) {
		var bestD time.Duration
		var root string
		for i := range 5 {
			start := time.Now()
			root = run()
			if d := time.Since(start); i == 0 || d < bestD {
				bestD = d
			}
		}
		return bestD, root
	}
	theirs, theirRoot := best(func() string {
		return veritysetupFormat(t, bin, data, filepath.Join(dir, "hash.ref"), salt, id)
	})
	format := func(workers int) func() string {
		return func() string {
			f, err := os.Open(data)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			out, err := os.Create(filepath.Join(dir, "hash.ours"))
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			tree, err := Format(context.Background(), f, int64(mib)<<20, out, 0, Params{Salt: salt, UUID: id, Workers: workers})
			if err != nil {
				t.Fatal(err)
			}
			return tree.RootHashHex()
		}
	}
	ours, ourRoot := best(format(0))
	one, oneRoot := best(format(1))
	if ourRoot != theirRoot || oneRoot != theirRoot {
		t.Fatalf("root hash %s, veritysetup says %s", ourRoot, theirRoot)
	}
	fmt.Printf("FIGURE verity: %d MiB: nodebake %.3fs (%d workers), %.3fs (1 worker); veritysetup format %.3fs; time ratio nodebake/veritysetup %.2f (1 worker: %.2f)\n",
		mib, ours.Seconds(), runtime.GOMAXPROCS(0), one.Seconds(), theirs.Seconds(), ours.Seconds()/theirs.Seconds(), one.Seconds()/theirs.Seconds())
}
