package qcow2_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/nodebake/nodebake/builder/publish/qcow2"
	"github.com/nodebake/nodebake/builder/publish/sparse/sparsetest"
)

var opts = qcow2.Options{Seed: []byte("test"), ModTime: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}

func write(t *testing.T, raw, dir, name string) string {
	t.Helper()
	out := sparsetest.Output(t, dir, name+".qcow2")
	if err := qcow2.Write(context.Background(), out, sparsetest.Open(t, raw), opts); err != nil {
		t.Fatal(err)
	}
	return out.Name()
}

// nonZeroBytes is the guest bytes in clusters holding a non-zero byte.
func nonZeroBytes(t *testing.T, raw string) int64 {
	b, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for off := 0; off < len(b); off += 64 << 10 {
		c := b[off:min(off+64<<10, len(b))]
		if !bytes.Equal(c, make([]byte, len(c))) {
			n += int64(len(c))
		}
	}
	return n
}

func TestWrite(t *testing.T) {
	qemuImg := sparsetest.Tool(t, "qemu-img")
	for _, im := range sparsetest.Images() {
		if im.Name == "empty" {
			continue // see TestEmpty
		}
		t.Run(im.Name, func(t *testing.T) {
			dir := t.TempDir()
			raw := im.Write(t, dir)
			out := write(t, raw, dir, "out")
			sparsetest.Run(t, qemuImg, "check", "-f", "qcow2", out)
			var info struct {
				Format      string `json:"format"`
				VirtualSize int64  `json:"virtual-size"`
				ClusterSize int64  `json:"cluster-size"`
			}
			if err := json.Unmarshal([]byte(sparsetest.Run(t, qemuImg, "info", "--output=json", "-f", "qcow2", out)), &info); err != nil {
				t.Fatal(err)
			}
			if info.Format != "qcow2" || info.VirtualSize != im.Size || info.ClusterSize != 64<<10 {
				t.Errorf("qemu-img info: %+v, want qcow2, virtual size %d, 64 KiB clusters", info, im.Size)
			}
			sparsetest.Run(t, qemuImg, "compare", "-f", "raw", "-F", "qcow2", raw, out)
			var m []struct {
				Length int64 `json:"length"`
				Data   bool  `json:"data"`
			}
			if err := json.Unmarshal([]byte(sparsetest.Run(t, qemuImg, "map", "--output=json", "-f", "qcow2", out)), &m); err != nil {
				t.Fatal(err)
			}
			var data int64
			for _, e := range m {
				if e.Data {
					data += e.Length
				}
			}
			if want := nonZeroBytes(t, raw); data != want {
				t.Errorf("qemu-img map: %d bytes allocated, want %d (the non-zero clusters)", data, want)
			}
		})
	}
}

func TestEmpty(t *testing.T) {
	qemuImg := sparsetest.Tool(t, "qemu-img")
	im := sparsetest.Image{Name: "empty", Size: 16 << 20}
	dir := t.TempDir()
	raw := im.Write(t, dir)
	out := write(t, raw, dir, "out")
	sparsetest.Run(t, qemuImg, "check", "-f", "qcow2", out)
	sparsetest.Run(t, qemuImg, "compare", "-f", "raw", "-F", "qcow2", raw, out)
}

func TestDeterministic(t *testing.T) {
	im := sparsetest.Images()[0]
	dir := t.TempDir()
	raw := im.Write(t, dir)
	sparsetest.SameFiles(t, write(t, raw, dir, "a"), write(t, raw, dir, "b"))
}

func TestCancelled(t *testing.T) {
	im := sparsetest.Images()[0]
	dir := t.TempDir()
	raw := im.Write(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := sparsetest.Output(t, dir, "out"+".qcow2")
	if err := qcow2.Write(ctx, out, sparsetest.Open(t, raw), opts); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}
