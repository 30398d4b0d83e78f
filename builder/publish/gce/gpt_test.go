package gce_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/builder/publish/gce"
	"github.com/nodebake/nodebake/builder/publish/sparse"
	"github.com/nodebake/nodebake/builder/publish/sparse/sparsetest"
)

// gptImage makes a GPT disk image as nodebake's disk writer lays it out
// (an ESP, a root and a var partition, the backup GPT in the last MiB) of
// size bytes with sgdisk, with data at the start of each partition and at
// the end of the last, and returns its path.
func gptImage(t *testing.T, dir string, size int64) string {
	t.Helper()
	p := filepath.Join(dir, "gpt.raw")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	last := size/512 - 2048 - 1
	sparsetest.Run(t, "sgdisk", "-U", "A1B2C3D4-0000-4000-8000-000000000001",
		"-n", "1:2048:+100M", "-t", "1:C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "-c", "1:esp",
		"-n", "2:0:+64M", "-t", "2:4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", "-c", "2:root",
		"-n", fmt.Sprintf("3:0:%d", last), "-t", "3:4D21B016-B534-45C2-A9FB-5C16E091FD2D", "-c", "3:var", p)
	f, err = os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, off := range []int64{2048 * 512, (2048 + 100*2048) * 512, (last+1)*512 - 4096} {
		if _, err := f.WriteAt(bytes.Repeat([]byte("nodebake"), 512), off); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// A GPT image padded to a whole GiB keeps its partitions and data, and
// has its backup header and partition array at the new end: sgdisk -v
// finds the extracted disk.raw clean.
func TestWriteMovesBackupGPT(t *testing.T) {
	sparsetest.Tool(t, "sgdisk")
	tarTool := sparsetest.Tool(t, "tar")
	for _, size := range []int64{1536 << 20, 1<<30 + 1<<20, 2047 << 20} {
		t.Run(fmt.Sprint(size>>20, "MiB"), func(t *testing.T) {
			dir := t.TempDir()
			raw := gptImage(t, dir, size)
			before := sparsetest.Run(t, "sgdisk", "-p", raw)
			out := write(t, raw, dir, "out", opts)
			x := filepath.Join(dir, "x")
			if err := os.Mkdir(x, 0o755); err != nil {
				t.Fatal(err)
			}
			sparsetest.Run(t, tarTool, "-xzf", out, "-C", x)
			got := filepath.Join(x, gce.MemberName)
			fi, err := os.Stat(got)
			if err != nil || fi.Size() != 2<<30 {
				t.Fatalf("disk.raw: %v, %v; want 2 GiB", fi, err)
			}
			if v := sparsetest.Run(t, "sgdisk", "-v", got); !strings.Contains(v, "No problems found") {
				t.Errorf("sgdisk -v disk.raw:\n%s", v)
			}
			after := sparsetest.Run(t, "sgdisk", "-p", got)
			// The same partitions; only the disk's size and free space differ.
			if part := func(s string) string { return s[strings.Index(s, "Number  Start"):] }; part(before) != part(after) {
				t.Errorf("partitions differ:\n%s\n---\n%s", before, after)
			}
			if !strings.Contains(after, "Disk identifier (GUID): A1B2C3D4-0000-4000-8000-000000000001") || !strings.Contains(after, "last usable sector is 4194270") {
				t.Errorf("sgdisk -p disk.raw:\n%s", after)
			}
			// Everything from the first partition to the end of the last is
			// the image's, byte for byte (its data extents; the rest reads
			// as zeros on both sides).
			a, b := sparsetest.Open(t, raw), sparsetest.Open(t, got)
			ext, err := sparse.Data(a)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ext {
				lo, hi := max(e.Off, 2048*512), min(e.End(), size-(1<<20))
				if lo >= hi {
					continue
				}
				x, y := make([]byte, hi-lo), make([]byte, hi-lo)
				a.ReadAt(x, lo)
				b.ReadAt(y, lo)
				if !bytes.Equal(x, y) {
					t.Fatalf("disk.raw differs from the image at %d..%d", lo, hi)
				}
			}
		})
	}
}

// A damaged GPT is not papered over.
func TestWriteDamagedGPT(t *testing.T) {
	sparsetest.Tool(t, "sgdisk")
	dir := t.TempDir()
	raw := gptImage(t, dir, 1536<<20)
	f, err := os.OpenFile(raw, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0xff}, 512+40) // the first usable LBA, under the CRC
	f.Close()
	out := sparsetest.Output(t, dir, "out.tar.gz")
	err = gce.Write(t.Context(), out, sparsetest.Open(t, raw), opts)
	if err == nil || !strings.Contains(err.Error(), "GPT header at LBA 1: CRC ") {
		t.Errorf("Write: %v, want the damaged header named", err)
	}
}
