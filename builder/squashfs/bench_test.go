package squashfs

import (
	"archive/tar"
	"bufio"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// discardAt is an io.WriterAt that drops everything.
type discardAt struct{}

func (discardAt) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }

// writeGorootTar writes a tar of the Go toolchain's own files (realistic
// binaries and sources of mixed compressibility) to w until it holds about
// targetBytes of file data, and returns the number of bytes and files. When
// the toolchain is smaller than targetBytes its files are added again under
// copyN/ with a unique first line, so no two files are identical.
func writeGorootTar(t testing.TB, w io.Writer, targetBytes int64) (int64, int) {
	t.Helper()
	goroot := runtime.GOROOT()
	if out, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
		goroot = strings.TrimSpace(string(out))
	}
	tw := tar.NewWriter(w)
	mtime := time.Unix(1700000000, 0)
	var total int64
	var files int
	for pass := 0; total < targetBytes; pass++ {
		prefix := ""
		if pass > 0 {
			prefix = fmt.Sprintf("copy%d/", pass)
			if err := tw.WriteHeader(&tar.Header{Name: prefix, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime}); err != nil {
				t.Fatal(err)
			}
		}
		added := false
		err := filepath.WalkDir(goroot, func(p string, d fs.DirEntry, err error) error {
			if err != nil || total >= targetBytes {
				return err
			}
			rel, _ := filepath.Rel(goroot, p)
			if rel == "." {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			h := &tar.Header{Name: prefix + filepath.ToSlash(rel), Mode: int64(info.Mode().Perm()), ModTime: mtime, Format: tar.FormatPAX}
			switch {
			case d.IsDir():
				h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
				return tw.WriteHeader(h)
			case info.Mode()&fs.ModeSymlink != 0:
				h.Typeflag = tar.TypeSymlink
				if h.Linkname, err = os.Readlink(p); err != nil {
					return err
				}
				return tw.WriteHeader(h)
			case !info.Mode().IsRegular():
				return nil
			}
			header := ""
			if pass > 0 {
				header = fmt.Sprintf("copy %d of %s\n", pass, rel)
			}
			h.Typeflag, h.Size = tar.TypeReg, info.Size()+int64(len(header))
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.WriteString(tw, header); err != nil {
				return err
			}
			n, err := io.Copy(tw, f)
			total += n
			files++
			added = true
			return err
		})
		if err != nil {
			t.Fatalf("writing the GOROOT tar: %v", err)
		}
		if !added {
			break
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return total, files
}

func BenchmarkWrite(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "bench.tar"))
	if err != nil {
		b.Fatal(err)
	}
	bw := bufio.NewWriter(f)
	size, _ := writeGorootTar(b, bw, 64<<20)
	if err := bw.Flush(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			b.Fatal(err)
		}
		if _, err := Write(context.Background(), discardAt{}, bufio.NewReaderSize(f, 1<<20), Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// cpuTime returns the user+system CPU time this process used so far.
func cpuTime(t testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestCompareMksquashfs times Write against mksquashfs on the same tree with
// the same compression (zstd level 3, 128 KiB blocks, 2 workers). The tree
// is NODEBAKE_BENCH_TAR when set, otherwise ~300 MB of Go toolchain files.
// Run with NODEBAKE_BENCH=1 (as root, so that extraction keeps owners).
func TestCompareMksquashfs(t *testing.T) {
	if os.Getenv("NODEBAKE_BENCH") != "1" {
		t.Skip("set NODEBAKE_BENCH=1 to compare with mksquashfs")
	}
	mksquashfs := needTool(t, "mksquashfs")
	tarTool := needTool(t, "tar")
	workers := 2
	if v := os.Getenv("NODEBAKE_BENCH_WORKERS"); v != "" {
		workers, _ = strconv.Atoi(v)
	}
	tmp := fastTempDir(t)
	tarPath := os.Getenv("NODEBAKE_BENCH_TAR")
	if tarPath == "" {
		tarPath = filepath.Join(tmp, "tree.tar")
		f, err := os.Create(tarPath)
		if err != nil {
			t.Fatal(err)
		}
		bw := bufio.NewWriter(f)
		size, files := writeGorootTar(t, bw, 300<<20)
		if err := bw.Flush(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		t.Logf("synthesized %d MB in %d files from GOROOT", size>>20, files)
	}
	tree := filepath.Join(tmp, "tree")
	if err := os.Mkdir(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, tarTool, "--xattrs", "--xattrs-include=*", "--same-owner", "-xpf", tarPath, "-C", tree)

	ours, theirs := filepath.Join(tmp, "ours.sqfs"), filepath.Join(tmp, "mksquashfs.sqfs")
	var oursTimes, theirTimes, oursCPU, theirCPU []time.Duration
	var oursSize, theirSize int64
	for range 2 {
		os.Remove(theirs)
		start := time.Now()
		cmd := exec.Command(mksquashfs, tree, theirs, "-comp", "zstd", "-Xcompression-level", "3", "-b", "131072",
			"-processors", strconv.Itoa(workers), "-noappend", "-no-progress", "-quiet")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mksquashfs: %v\n%s", err, out)
		}
		theirTimes = append(theirTimes, time.Since(start))
		theirCPU = append(theirCPU, cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
		st, err := os.Stat(theirs)
		if err != nil {
			t.Fatal(err)
		}
		theirSize = st.Size()

		cpu0 := cpuTime(t)
		start = time.Now()
		in, err := os.Open(tarPath)
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(ours)
		if err != nil {
			t.Fatal(err)
		}
		oursSize, err = Write(context.Background(), out, bufio.NewReaderSize(in, 1<<20),
			Options{Level: 3, BlockSize: 131072, Workers: workers, ModTime: 1700000000})
		if err != nil {
			t.Fatal(err)
		}
		in.Close()
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
		oursTimes = append(oursTimes, time.Since(start))
		oursCPU = append(oursCPU, cpuTime(t)-cpu0)
	}
	best := func(d []time.Duration) time.Duration { return min(d[0], d[1]).Round(time.Millisecond) }
	report := fmt.Sprintf("squashfs benchmark (%d workers): wall ours %v mksquashfs %v (ratio %.2f); cpu ours %v mksquashfs %v (ratio %.2f); size ours %d mksquashfs %d (ratio %.3f); runs: ours %v %v, mksquashfs %v %v",
		workers, best(oursTimes), best(theirTimes), best(oursTimes).Seconds()/best(theirTimes).Seconds(),
		best(oursCPU), best(theirCPU), best(oursCPU).Seconds()/best(theirCPU).Seconds(),
		oursSize, theirSize, float64(oursSize)/float64(theirSize),
		oursTimes, oursCPU, theirTimes, theirCPU)
	t.Log(report)
	fmt.Println(report)

	if sqfsdiff, err := exec.LookPath("sqfsdiff"); err == nil {
		// Same contents, owners and permissions as mksquashfs's image.
		if out, err := exec.Command(sqfsdiff, "-a", ours, "-b", theirs).CombinedOutput(); err != nil {
			var diffs []string
			for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				if !strings.HasSuffix(l, "has a basic type") && !strings.HasSuffix(l, "has an extended type") {
					diffs = append(diffs, l)
				}
			}
			if len(diffs) > 0 {
				t.Errorf("sqfsdiff: %v\n%s", err, strings.Join(diffs, "\n"))
			}
		}
	}
}
