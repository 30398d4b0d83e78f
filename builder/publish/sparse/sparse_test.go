package sparse_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"

	"github.com/nodebake/nodebake/builder/publish/sparse"
	"github.com/nodebake/nodebake/builder/publish/sparse/sparsetest"
)

func TestDataCoversRegions(t *testing.T) {
	dir := t.TempDir()
	for _, im := range sparsetest.Images() {
		t.Run(im.Name, func(t *testing.T) {
			f := sparsetest.Open(t, im.Write(t, dir))
			ext, err := sparse.Data(f)
			if err != nil {
				t.Fatal(err)
			}
			for i, e := range ext {
				if e.Len <= 0 || e.End() > im.Size {
					t.Errorf("extent %d %+v out of range", i, e)
				}
				if i > 0 && ext[i-1].End() >= e.Off {
					t.Errorf("extents %d and %d overlap or touch: %+v %+v", i-1, i, ext[i-1], e)
				}
			}
			for _, r := range im.Regions {
				if r.Kind == "zero" {
					continue
				}
				covered := false
				for _, e := range ext {
					if e.Off <= r.Off && r.Off+r.Len <= e.End() {
						covered = true
					}
				}
				if !covered {
					t.Errorf("region %+v not inside a data extent %+v", r, ext)
				}
			}
		})
	}
}

func TestBlocks(t *testing.T) {
	got := sparse.Blocks([]sparse.Extent{{0, 10}, {100, 1}, {120, 200}, {1000, 100}}, 1050, 64)
	want := []sparse.BlockRange{{0, 4}, {15, 16}} // {0,0} and {1,4} touch
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	}
}

func TestIsZero(t *testing.T) {
	for _, tc := range []struct {
		b    []byte
		want bool
	}{
		{nil, true},
		{[]byte{0}, true},
		{[]byte{1}, false},
		{make([]byte, 100000), true},
		{append(make([]byte, 99999), 1), false},
		{[]byte{0, 0, 7, 0}, false},
	} {
		if got := sparse.IsZero(tc.b); got != tc.want {
			t.Errorf("IsZero(len %d) = %v, want %v", len(tc.b), got, tc.want)
		}
	}
}

// TestForEachBlock checks that the non-zero blocks, filled into a zero
// image, give back the file.
func TestForEachBlock(t *testing.T) {
	dir := t.TempDir()
	for _, im := range sparsetest.Images() {
		t.Run(im.Name, func(t *testing.T) {
			p := im.Write(t, dir)
			f := sparsetest.Open(t, p)
			ext, err := sparse.Data(f)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			const bs = 64 << 10
			got := make([]byte, im.Size)
			prev := int64(-1)
			err = sparse.ForEachBlock(context.Background(), f, im.Size, ext, bs, func(i int64, b []byte) error {
				if i <= prev {
					t.Errorf("block %d after %d", i, prev)
				}
				prev = i
				if sparse.IsZero(b) {
					t.Errorf("block %d is all zero", i)
				}
				copy(got[i*bs:], b)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatal("blocks do not give back the image")
			}
		})
	}
}

func TestForEachBlockCancelled(t *testing.T) {
	im := sparsetest.Images()[0]
	f := sparsetest.Open(t, im.Write(t, t.TempDir()))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := sparse.ForEachBlock(ctx, f, im.Size, []sparse.Extent{{0, im.Size}}, 4096, func(int64, []byte) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}
