package gce_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/builder/publish/gce"
	"github.com/nodebake/nodebake/builder/publish/sparse"
	"github.com/nodebake/nodebake/builder/publish/sparse/sparsetest"
)

var opts = gce.Options{Seed: []byte("test"), ModTime: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}

func write(t *testing.T, raw, dir, name string, o gce.Options) string {
	t.Helper()
	out := sparsetest.Output(t, dir, name+".tar.gz")
	if err := gce.Write(context.Background(), out, sparsetest.Open(t, raw), o); err != nil {
		t.Fatal(err)
	}
	return out.Name()
}

func TestWrite(t *testing.T) {
	tarTool := sparsetest.Tool(t, "tar")
	sparsetest.Tool(t, "gzip")
	sparsetest.Tool(t, "cmp")
	for _, im := range sparsetest.Images() {
		t.Run(im.Name, func(t *testing.T) {
			dir := t.TempDir()
			raw := im.Write(t, dir)
			out := write(t, raw, dir, "out", opts)
			padded := (im.Size + gce.Align - 1) / gce.Align * gce.Align

			sparsetest.Run(t, "gzip", "-t", out)
			list := strings.TrimSpace(sparsetest.Run(t, tarTool, "-tzvf", out))
			if strings.Contains(list, "\n") {
				t.Fatalf("more than one member:\n%s", list)
			}
			f := strings.Fields(list)
			// -rw-r--r-- root/root 1073741824 2025-01-02 03:04 disk.raw
			if len(f) != 6 || f[0] != "-rw-r--r--" || f[1] != "root/root" || f[2] != fmt.Sprint(padded) || f[5] != "disk.raw" {
				t.Errorf("tar -tzvf: %q, want -rw-r--r-- root/root %d ... disk.raw", list, padded)
			}

			x := filepath.Join(dir, "x")
			if err := os.Mkdir(x, 0o755); err != nil {
				t.Fatal(err)
			}
			sparsetest.Run(t, tarTool, "-xzf", out, "-C", x)
			got := filepath.Join(x, "disk.raw")
			fi, err := os.Stat(got)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Size() != padded {
				t.Fatalf("extracted disk.raw has %d bytes, want %d", fi.Size(), padded)
			}
			sparsetest.Run(t, "cmp", "-n", fmt.Sprint(im.Size), raw, got)
			// The padding reads as zeros: its holes do, check its data.
			g := sparsetest.Open(t, got)
			ext, err := sparse.Data(g)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ext {
				lo := max(e.Off, im.Size)
				if lo >= e.End() {
					continue
				}
				b := make([]byte, e.End()-lo)
				if _, err := g.ReadAt(b, lo); err != nil {
					t.Fatal(err)
				}
				if !sparse.IsZero(b) {
					t.Fatalf("the padding of disk.raw is not zero in %+v", e)
				}
			}
		})
	}
}

// TestHeaders checks the gzip and tar headers with the standard library.
func TestHeaders(t *testing.T) {
	im := sparsetest.Images()[0]
	dir := t.TempDir()
	out := write(t, im.Write(t, dir), dir, "out", opts)
	f := sparsetest.Open(t, out)
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || zr.Comment != "" || !zr.ModTime.Equal(opts.ModTime) {
		t.Errorf("gzip header: name %q comment %q mtime %v", zr.Name, zr.Comment, zr.ModTime)
	}
	tr := tar.NewReader(zr)
	h, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	if h.Name != "disk.raw" || h.Format != tar.FormatGNU || h.Uid != 0 || h.Gid != 0 || h.Uname != "root" || h.Gname != "root" ||
		h.Mode != 0o644 || !h.ModTime.Equal(opts.ModTime) || h.Size != gce.Align || h.Typeflag != tar.TypeGNUSparse {
		t.Errorf("tar header: %+v", h)
	}
	if _, err := io.Copy(io.Discard, tr); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Errorf("a second member: %v", err)
	}
}

func TestDeterministic(t *testing.T) {
	im := sparsetest.Images()[0]
	dir := t.TempDir()
	raw := im.Write(t, dir)
	a := write(t, raw, dir, "a", gce.Options{ModTime: opts.ModTime, Workers: 1})
	b := write(t, raw, dir, "b", gce.Options{ModTime: opts.ModTime, Workers: 4})
	sparsetest.SameFiles(t, a, b)
}

func TestCancelled(t *testing.T) {
	im := sparsetest.Images()[0]
	dir := t.TempDir()
	raw := im.Write(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := sparsetest.Output(t, dir, "out"+".tar.gz")
	if err := gce.Write(ctx, out, sparsetest.Open(t, raw), opts); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}
