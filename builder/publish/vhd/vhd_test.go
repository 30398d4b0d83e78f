package vhd_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/nodebake/nodebake/builder/publish/sparse/sparsetest"
	"github.com/nodebake/nodebake/builder/publish/vhd"
)

var opts = vhd.Options{Seed: []byte("test"), ModTime: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}

// qemuFooters are the first 96 bytes of footers written by `qemu-img
// create -f vpc -o subformat=fixed` (the rest is zero): an independent
// implementation of the geometry algorithm and the checksum. The sizes are
// 40M, 1G, 127G and 1497M rounded up by qemu-img to whole geometries.
var qemuFooters = []string{
	"636f6e65637469780000000200010000ffffffffffffffff329a470771656d75000500035769326b0000000002802800000000000280280003c4051100000002ffffe8ab030a158b98d1486a887f5712bf7a1b06000000000000000000000000",
	"636f6e65637469780000000200010000ffffffffffffffff329a470771656d75000500035769326b000000004003e000000000004003e0000821103f00000002ffffe6370711e36492e44608ad14f64bcb76a96a000000000000000000000000",
	"636f6e65637469780000000200010000ffffffffffffffff329a470771656d75000500035769326b0000001fc00020000000001fc0002000feff10ff00000002ffffe1998f0af3c4a3ce463696d18ab9f7a973d1000000000000000000000000",
	"636f6e65637469780000000200010000ffffffffffffffff329a470771656d75000500035769326b000000005d93c000000000005d93c0000be2103f00000002ffffe5175adbf66d7e4b450892f6141f2bae5326000000000000000000000000",
}

func TestQEMUFooters(t *testing.T) {
	for i, h := range qemuFooters {
		b, err := hex.DecodeString(h)
		if err != nil {
			t.Fatal(err)
		}
		f := make([]byte, vhd.FooterSize)
		copy(f, b)
		if got, want := vhd.Checksum(f), binary.BigEndian.Uint32(f[64:]); got != want {
			t.Errorf("footer %d: checksum %#x, want %#x", i, got, want)
		}
		size := int64(binary.BigEndian.Uint64(f[48:]))
		c, hd, s := vhd.Geometry(size / 512)
		if wc, wh, ws := binary.BigEndian.Uint16(f[56:]), f[58], f[59]; c != wc || hd != wh || s != ws {
			t.Errorf("footer %d: size %d: geometry %d/%d/%d, want %d/%d/%d", i, size, c, hd, s, wc, wh, ws)
		}
	}
}

func TestGeometry(t *testing.T) {
	for _, tc := range []struct {
		sectors int64
		c       uint16
		h, s    uint8
	}{
		{81940, 964, 5, 17},               // 40 MiB, rounded up by qemu-img
		{2097152, 2080, 16, 63},           // 1 GiB
		{65535*16*63 - 1, 65534, 16, 63},  // the last size with 63 sectors per track
		{65535 * 16 * 63, 16191, 16, 255}, // the first size with 255
		{65535*16*255 + 1000, 65535, 16, 255},
		{8 * 1024 * 1024 * 1024 * 2, 65535, 16, 255}, // 8 TiB, capped
		{1000, 14, 4, 17},                            // tiny: at least 4 heads
	} {
		c, h, s := vhd.Geometry(tc.sectors)
		if c != tc.c || h != tc.h || s != tc.s {
			t.Errorf("Geometry(%d) = %d/%d/%d, want %d/%d/%d", tc.sectors, c, h, s, tc.c, tc.h, tc.s)
		}
	}
}

func TestFooter(t *testing.T) {
	f, err := vhd.Footer(9<<20, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f[:8], []byte("conectix")) || binary.BigEndian.Uint32(f[60:]) != 2 {
		t.Fatalf("not a fixed VHD footer: %x", f[:96])
	}
	if got, want := binary.BigEndian.Uint32(f[24:]), uint32(opts.ModTime.Unix()-946684800); got != want {
		t.Errorf("timestamp %d, want %d", got, want)
	}
	if vhd.Checksum(f) != binary.BigEndian.Uint32(f[64:]) {
		t.Error("bad checksum")
	}
	g, _ := vhd.Footer(9<<20, vhd.Options{Seed: []byte("other"), ModTime: opts.ModTime})
	if bytes.Equal(f[68:84], g[68:84]) {
		t.Error("unique id does not depend on the seed")
	}
	if old, err := vhd.Footer(9<<20, vhd.Options{Seed: opts.Seed, ModTime: time.Unix(0, 0)}); err != nil || binary.BigEndian.Uint32(old[24:]) != 0 {
		t.Errorf("a ModTime before 2000 (SOURCE_DATE_EPOCH=0): %v; want the timestamp 0 (2000-01-01)", err)
	}
	if _, err := vhd.Footer(9<<20, vhd.Options{Seed: opts.Seed, ModTime: time.Date(2137, 1, 1, 0, 0, 0, 0, time.UTC)}); err == nil {
		t.Error("a ModTime after 2136 was accepted")
	}
	if _, err := vhd.Footer(9<<20, vhd.Options{ModTime: opts.ModTime}); err == nil {
		t.Error("an empty Seed was accepted")
	}
}

func write(t *testing.T, raw, dir, name string) string {
	t.Helper()
	out := sparsetest.Output(t, dir, name+".vhd")
	if err := vhd.Write(context.Background(), out, sparsetest.Open(t, raw), opts); err != nil {
		t.Fatal(err)
	}
	return out.Name()
}

func TestWrite(t *testing.T) {
	qemuImg := sparsetest.Tool(t, "qemu-img")
	for _, im := range sparsetest.Images() {
		t.Run(im.Name, func(t *testing.T) {
			dir := t.TempDir()
			raw := im.Write(t, dir)
			out := write(t, raw, dir, "out")
			padded := (im.Size + vhd.Align - 1) / vhd.Align * vhd.Align
			fi, err := os.Stat(out)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Size() != padded+vhd.FooterSize {
				t.Errorf("file size %d, want %d", fi.Size(), padded+vhd.FooterSize)
			}
			var info struct {
				Format      string `json:"format"`
				VirtualSize int64  `json:"virtual-size"`
			}
			if err := json.Unmarshal([]byte(sparsetest.Run(t, qemuImg, "info", "--output=json", "-f", "vpc", out)), &info); err != nil {
				t.Fatal(err)
			}
			if info.Format != "vpc" || info.VirtualSize != padded {
				t.Errorf("qemu-img info: %+v, want vpc, virtual size %d", info, padded)
			}
			// Up to the raw size the images are equal, and qemu-img
			// compare checks that the padding beyond it reads as zero.
			sparsetest.Run(t, qemuImg, "compare", "-f", "raw", "-F", "vpc", raw, out)
		})
	}
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
	out := sparsetest.Output(t, dir, "out"+".vhd")
	if err := vhd.Write(ctx, out, sparsetest.Open(t, raw), opts); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}
