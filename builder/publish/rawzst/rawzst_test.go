package rawzst_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/builder/publish/rawzst"
	"github.com/nodebake/nodebake/builder/publish/sparse/sparsetest"
)

var opts = rawzst.Options{Seed: []byte("test"), ModTime: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}

func write(t *testing.T, raw, dir, name string, o rawzst.Options) string {
	t.Helper()
	out := sparsetest.Output(t, dir, name+".raw.zst")
	if err := rawzst.Write(context.Background(), out, sparsetest.Open(t, raw), o); err != nil {
		t.Fatal(err)
	}
	return out.Name()
}

func TestWrite(t *testing.T) {
	zstd := sparsetest.Tool(t, "zstd")
	for _, im := range sparsetest.Images() {
		t.Run(im.Name, func(t *testing.T) {
			dir := t.TempDir()
			raw := im.Write(t, dir)
			out := write(t, raw, dir, "out", opts)
			sparsetest.Run(t, zstd, "-q", "-t", out)
			// The frame header carries the content size.
			list := sparsetest.Run(t, zstd, "-lv", out)
			if !strings.Contains(list, fmt.Sprintf("(%d B)\nRatio", im.Size)) {
				t.Errorf("zstd -lv does not show the decompressed size %d:\n%s", im.Size, list)
			}
			back := filepath.Join(dir, "back.raw")
			sparsetest.Run(t, zstd, "-q", "-d", "--sparse", "-o", back, out)
			sparsetest.SameFiles(t, raw, back)
		})
	}
}

func TestDeterministic(t *testing.T) {
	im := sparsetest.Images()[0]
	dir := t.TempDir()
	raw := im.Write(t, dir)
	a := write(t, raw, dir, "a", rawzst.Options{Seed: opts.Seed, ModTime: opts.ModTime, Workers: 1})
	b := write(t, raw, dir, "b", rawzst.Options{Seed: opts.Seed, ModTime: opts.ModTime, Workers: 4})
	c := write(t, raw, dir, "c", rawzst.Options{Seed: opts.Seed, ModTime: opts.ModTime, Workers: 4})
	sparsetest.SameFiles(t, b, c)
	sparsetest.SameFiles(t, a, b)
}

func TestCancelled(t *testing.T) {
	im := sparsetest.Images()[0]
	dir := t.TempDir()
	raw := im.Write(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := sparsetest.Output(t, dir, "out"+".raw.zst")
	if err := rawzst.Write(ctx, out, sparsetest.Open(t, raw), opts); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}
