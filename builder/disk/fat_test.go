package disk

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
)

func TestValidESPSize(t *testing.T) {
	tests := []struct {
		mib  int64
		want bool
	}{
		{32, false}, // too few clusters for FAT32
		{33, true},
		{64, false}, {129, false}, {194, false}, {259, false}, // upstream issue #418
		{505, false}, {506, false}, {507, false}, {762, false}, {1018, false}, {4096, false},
		{63, true}, {65, true}, {100, true}, {200, true}, {256, true}, {260, true}, {261, true},
		{504, true}, {508, true}, {512, true}, {1024, true}, {2048, true},
	}
	for _, tt := range tests {
		if got := ValidESPSize(tt.mib * MiB); got != tt.want {
			t.Errorf("ValidESPSize(%d MiB) = %v, want %v", tt.mib, got, tt.want)
		}
	}
	for _, bad := range []int64{0, -MiB, 100*MiB + 1, 9 << 30} {
		if ValidESPSize(bad) {
			t.Errorf("ValidESPSize(%d) = true", bad)
		}
	}
}

// TestValidESPSizeMatchesFsck is the real counterpart of ValidESPSize: it
// makes each FAT32 with go-diskfs and asks fsck.fat and mtools.
func TestValidESPSizeMatchesFsck(t *testing.T) {
	needTool(t, "fsck.fat", "mdir")
	t.Parallel()
	dir := t.TempDir()
	for _, mib := range []int64{32, 33, 63, 64, 65, 129, 200, 256, 259, 260, 261, 505, 512} {
		size := mib * MiB
		p := filepath.Join(dir, fmt.Sprintf("fat-%d.img", mib))
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		_, err = fat32.Create(file.New(f, false), size, 0, 512, "ESP", true)
		f.Close()
		if err != nil {
			t.Fatalf("fat32.Create(%d MiB): %v", mib, err)
		}
		fsckOK := exec.Command("fsck.fat", "-n", p).Run() == nil
		mtoolsOK := exec.Command("mdir", "-i", p, "::").Run() == nil
		// Valid means both accept it (fsck.fat takes 32 MiB, mtools does not).
		if want := ValidESPSize(size); (fsckOK && mtoolsOK) != want {
			t.Errorf("%d MiB: fsck.fat ok %v, mtools ok %v, ValidESPSize %v", mib, fsckOK, mtoolsOK, want)
		}
		os.Remove(p)
	}
}

// TestWriteFullSize measures an image with a default ESP, realistic kernel
// and initrd sizes and a 300 MiB root filesystem.
func TestWriteFullSize(t *testing.T) {
	if os.Getenv("NODEBAKE_SLOW") == "" {
		t.Skip("slow: set NODEBAKE_SLOW=1")
	}
	img := testImage()
	img.ESPSize = DefaultESPSize
	img.VarSize = 1024 * MiB
	img.Kernel = BytesFile("", pattern("kernel", 8<<20))
	img.Initrd = BytesFile("", pattern("initrd", 60<<20))
	root := pattern("root", 300<<20)
	img.WriteRoot = func(ctx context.Context, w io.WriterAt) (int64, error) {
		// 1 MiB writes, like a filesystem writer streaming its output.
		for off := 0; off < len(root); off += 1 << 20 {
			if _, err := w.WriteAt(root[off:off+1<<20], int64(off)); err != nil {
				return 0, err
			}
		}
		return int64(len(root)), nil
	}
	p := filepath.Join(t.TempDir(), "disk.raw")
	start := time.Now()
	res, err := Write(context.Background(), p, img)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("256 MiB ESP (8 MiB kernel, 60 MiB initrd) + 300 MiB root + 1 GiB var: %d MiB image in %v", res.Size>>20, time.Since(start))
	if _, err := exec.LookPath("fsck.fat"); err == nil {
		esp := filepath.Join(t.TempDir(), "esp.img")
		copySparse(t, esp, p, int64(res.Partitions[0].FirstLBA)*512, img.ESPSize)
		run(t, "fsck.fat", "-n", esp)
	}
}
