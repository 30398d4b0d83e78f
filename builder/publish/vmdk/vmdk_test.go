package vmdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/builder/publish/sparse/sparsetest"
	"github.com/nodebake/nodebake/builder/publish/vmdk"
)

var opts = vmdk.Options{Seed: []byte("test"), ModTime: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}

func write(t *testing.T, raw, dir string, o vmdk.Options) string {
	t.Helper()
	out := sparsetest.Output(t, dir, "disk"+".vmdk")
	if err := vmdk.Write(context.Background(), out, sparsetest.Open(t, raw), o); err != nil {
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
			out := write(t, raw, dir, opts)
			sparsetest.Run(t, qemuImg, "check", "-f", "vmdk", out)
			var info struct {
				Format         string `json:"format"`
				VirtualSize    int64  `json:"virtual-size"`
				FormatSpecific struct {
					Data struct {
						CreateType string `json:"create-type"`
						CID        int64  `json:"cid"`
						ParentCID  int64  `json:"parent-cid"`
					} `json:"data"`
				} `json:"format-specific"`
			}
			if err := json.Unmarshal([]byte(sparsetest.Run(t, qemuImg, "info", "--output=json", "-f", "vmdk", out)), &info); err != nil {
				t.Fatal(err)
			}
			if info.Format != "vmdk" || info.VirtualSize != im.Size || info.FormatSpecific.Data.CreateType != "streamOptimized" {
				t.Errorf("qemu-img info: %+v, want vmdk, virtual size %d, streamOptimized", info, im.Size)
			}
			text := sparsetest.Run(t, qemuImg, "info", "-f", "vmdk", out)
			if !strings.Contains(text, "create type: streamOptimized") {
				t.Errorf("qemu-img info does not say create type: streamOptimized:\n%s", text)
			}
			sparsetest.Run(t, qemuImg, "compare", "-f", "raw", "-F", "vmdk", raw, out)
		})
	}
}

func TestDescriptor(t *testing.T) {
	im := sparsetest.Images()[0]
	dir := t.TempDir()
	raw := im.Write(t, dir)
	b, err := os.ReadFile(write(t, raw, dir, opts))
	if err != nil {
		t.Fatal(err)
	}
	desc := string(b[512 : 512*21])
	for _, want := range []string{
		"createType=\"streamOptimized\"\n",
		"parentCID=ffffffff\n",
		"RW 49152 SPARSE \"disk.vmdk\"\n",
		"ddb.adapterType = \"lsilogic\"\n",
		"ddb.virtualHWVersion = \"4\"\n",
		"ddb.geometry.heads = \"255\"\n",
		"ddb.uuid = \"",
	} {
		if !strings.Contains(desc, want) {
			t.Errorf("descriptor lacks %q:\n%s", want, desc)
		}
	}
	other := t.TempDir()
	c, err := os.ReadFile(write(t, raw, other, vmdk.Options{Seed: []byte("other")}))
	if err != nil {
		t.Fatal(err)
	}
	if string(c[512:512*21]) == desc {
		t.Error("the descriptor does not depend on the seed")
	}
}

func TestDeterministic(t *testing.T) {
	im := sparsetest.Images()[0]
	raw := im.Write(t, t.TempDir())
	a := write(t, raw, t.TempDir(), vmdk.Options{Seed: opts.Seed, Workers: 1})
	b := write(t, raw, t.TempDir(), vmdk.Options{Seed: opts.Seed, Workers: 3})
	sparsetest.SameFiles(t, a, b)
}

func TestCancelled(t *testing.T) {
	im := sparsetest.Images()[0]
	dir := t.TempDir()
	raw := im.Write(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := sparsetest.Output(t, dir, "out"+".vmdk")
	if err := vmdk.Write(ctx, out, sparsetest.Open(t, raw), opts); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}
