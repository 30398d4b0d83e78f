// Package bench_test compares the publish format writers with the C tools
// that make the same formats, on a real worker image. It runs only with
// NODEBAKE_BENCH=1 and NODEBAKE_BENCH_RAW=path/to/worker.raw (see
// scripts/bench-formats.sh) and prints one FIGURE line per format.
package bench_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nodebake/nodebake/builder/publish/gce"
	"github.com/nodebake/nodebake/builder/publish/qcow2"
	"github.com/nodebake/nodebake/builder/publish/rawzst"
	"github.com/nodebake/nodebake/builder/publish/sparse"
	"github.com/nodebake/nodebake/builder/publish/vhd"
	"github.com/nodebake/nodebake/builder/publish/vmdk"
)

type format struct {
	name  string
	ext   string
	write func(ctx context.Context, dst, src *os.File, seed []byte, mod time.Time) error
	// tool is the C tool's command for raw -> out (dir holds disk.raw, a
	// link to the raw image, for tar).
	tool func(raw, out, dir string) (label string, argv []string)
	// check verifies our output against the raw image.
	check func(raw, out string) [][]string
}

func formats() []format {
	return []format{
		{
			name: "rawzst", ext: ".raw.zst",
			write: func(ctx context.Context, dst, src *os.File, seed []byte, mod time.Time) error {
				return rawzst.Write(ctx, dst, src, rawzst.Options{Seed: seed, ModTime: mod})
			},
			tool: func(raw, out, _ string) (string, []string) {
				return "zstd -T0 --sparse", []string{"zstd", "-q", "-f", "-T0", "--sparse", raw, "-o", out}
			},
			check: func(raw, out string) [][]string {
				return [][]string{{"zstd", "-q", "-t", out}, {"sh", "-c", `zstd -dc "$1" | cmp - "$2"`, "sh", out, raw}}
			},
		},
		{
			name: "qcow2", ext: ".qcow2",
			write: func(ctx context.Context, dst, src *os.File, seed []byte, mod time.Time) error {
				return qcow2.Write(ctx, dst, src, qcow2.Options{Seed: seed, ModTime: mod})
			},
			tool: func(raw, out, _ string) (string, []string) {
				return "qemu-img convert -O qcow2", []string{"qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, out}
			},
			check: func(raw, out string) [][]string {
				return [][]string{{"qemu-img", "check", "-q", "-f", "qcow2", out}, {"qemu-img", "compare", "-q", "-f", "raw", "-F", "qcow2", raw, out}}
			},
		},
		{
			name: "vhd", ext: ".vhd",
			write: func(ctx context.Context, dst, src *os.File, seed []byte, mod time.Time) error {
				return vhd.Write(ctx, dst, src, vhd.Options{Seed: seed, ModTime: mod})
			},
			tool: func(raw, out, _ string) (string, []string) {
				return "qemu-img convert -O vpc -o subformat=fixed,force_size=on", []string{"qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed,force_size=on", raw, out}
			},
			check: func(raw, out string) [][]string {
				return [][]string{{"qemu-img", "compare", "-q", "-f", "raw", "-F", "vpc", raw, out}}
			},
		},
		{
			name: "vmdk", ext: ".vmdk",
			write: func(ctx context.Context, dst, src *os.File, seed []byte, mod time.Time) error {
				return vmdk.Write(ctx, dst, src, vmdk.Options{Seed: seed, ModTime: mod})
			},
			tool: func(raw, out, _ string) (string, []string) {
				return "qemu-img convert -O vmdk -o subformat=streamOptimized", []string{"qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw, out}
			},
			check: func(raw, out string) [][]string {
				return [][]string{{"qemu-img", "check", "-q", "-f", "vmdk", out}, {"qemu-img", "compare", "-q", "-f", "raw", "-F", "vmdk", raw, out}}
			},
		},
		{
			name: "gce", ext: ".tar.gz",
			write: func(ctx context.Context, dst, src *os.File, seed []byte, mod time.Time) error {
				return gce.Write(ctx, dst, src, gce.Options{Seed: seed, ModTime: mod})
			},
			tool: func(_, out, dir string) (string, []string) {
				return "tar --format=oldgnu -Sczf", []string{"tar", "--format=oldgnu", "-Sczf", out, "-C", dir, "disk.raw"}
			},
			check: func(raw, out string) [][]string {
				return [][]string{{"sh", "-c", `tar -xzOf "$1" disk.raw | cmp -n "$(stat -c %s "$2")" - "$2"`, "sh", out, raw}}
			},
		},
	}
}

// allocated is the bytes a file takes on disk and its length.
func allocated(t *testing.T, p string) (alloc, length int64) {
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512, st.Size
}

func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }

func TestBenchFormats(t *testing.T) {
	if os.Getenv("NODEBAKE_BENCH") != "1" {
		t.Skip("set NODEBAKE_BENCH=1 and NODEBAKE_BENCH_RAW=path/to/worker.raw")
	}
	raw := os.Getenv("NODEBAKE_BENCH_RAW")
	if raw == "" {
		t.Fatal("NODEBAKE_BENCH_RAW is not set")
	}
	raw, err := filepath.Abs(raw)
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(raw)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	alloc, length := allocated(t, raw)
	fmt.Printf("FIGURE raw: %s (%s allocated), GOMAXPROCS %d\n", mib(length), mib(alloc), sparse.Workers(0))

	// Warm the page cache so that neither side pays for the first read.
	ext, err := sparse.Data(src)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4<<20)
	for _, e := range ext {
		for off := e.Off; off < e.End(); off += int64(len(buf)) {
			if _, err := src.ReadAt(buf[:min(int64(len(buf)), e.End()-off)], off); err != nil {
				t.Fatal(err)
			}
		}
	}

	dir := t.TempDir()
	// disk.raw for tar: a hard link when possible, else a sparse copy.
	tarDir := filepath.Join(dir, "tar")
	if err := os.Mkdir(tarDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(raw, filepath.Join(tarDir, "disk.raw")); err != nil {
		if out, err := exec.Command("cp", "--sparse=always", raw, filepath.Join(tarDir, "disk.raw")).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v\n%s", err, out)
		}
	}

	seed := []byte("bench")
	mod := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, f := range formats() {
		ours := filepath.Join(dir, "ours"+f.ext)
		dst, err := os.OpenFile(ours, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err = f.write(context.Background(), dst, src, seed, mod)
		if err == nil {
			err = dst.Sync()
		}
		ourTime := time.Since(start)
		dst.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		oa, ol := allocated(t, ours)

		theirs := filepath.Join(dir, "theirs"+f.ext)
		label, argv := f.tool(raw, theirs, tarDir)
		start = time.Now()
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %q: %v\n%s", f.name, argv, err, out)
		}
		if out, err := exec.Command("sync", theirs).CombinedOutput(); err != nil {
			t.Fatalf("sync: %v\n%s", err, out)
		}
		theirTime := time.Since(start)
		ta, tl := allocated(t, theirs)

		verdict := "output checked"
		for _, c := range f.check(raw, ours) {
			if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
				t.Errorf("%s: check %q: %v\n%s", f.name, c, err, out)
				verdict = "CHECK FAILED"
			}
		}
		size := func(a, l int64) string {
			if l > a+(1<<20) {
				return fmt.Sprintf("%s (length %s)", mib(a), mib(l))
			}
			return mib(a)
		}
		fmt.Printf("FIGURE %s: ours %.2fs %s; %s %.2fs %s; time ratio %.2f, size ratio %.2f; %s\n",
			f.name, ourTime.Seconds(), size(oa, ol), label, theirTime.Seconds(), size(ta, tl),
			ourTime.Seconds()/theirTime.Seconds(), float64(oa)/float64(ta), verdict)
		os.Remove(ours)
		os.Remove(theirs)
	}
}
