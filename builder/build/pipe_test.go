package build

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/nodebake/nodebake/builder/rootfs"
	"github.com/nodebake/nodebake/layers/cache"
	"github.com/nodebake/nodebake/layers/entry"
	"github.com/nodebake/nodebake/layers/failure"
	"github.com/nodebake/nodebake/layers/spec"
)

// These tests check that a failing root filesystem write reports its first
// cause, not the closed pipe the other side of the stream saw.

// testBase returns the fake base, normalized and opened.
func testBase(t *testing.T) *rootfs.Base {
	t.Helper()
	dir := t.TempDir()
	fakeBase(t, dir)
	src, err := os.Open(filepath.Join(dir, "rootfs.tar"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	p := filepath.Join(dir, "base.tar")
	if err := rootfs.Normalize(context.Background(), src, p, 0); err != nil {
		t.Fatal(err)
	}
	b, err := rootfs.OpenBase(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// incompressible returns n pseudo-random bytes.
func incompressible(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// bigKubelet is an overlay entry large enough that the squashfs writer is
// still busy with it when its output fails.
func bigKubelet() entry.Entry {
	return entry.File("/usr/local/bin/kubelet", 0o755, incompressible(8<<20))
}

func testSpec() *spec.Spec {
	s := &spec.Spec{}
	s.Output.RootCompressionLevel = spec.DefaultRootCompressionLevel
	return s
}

// fullDisk is an io.WriterAt on a device with room for limit bytes, which
// then fails as the kernel does.
type fullDisk struct {
	limit int64
}

func (d *fullDisk) WriteAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) <= d.limit {
		return len(p), nil
	}
	return int(max(0, d.limit-off)), &os.PathError{Op: "write", Path: "/out/.test.raw.tmp-1", Err: syscall.ENOSPC}
}

// noConsequences fails the test when err shows a consequence of the first
// failure instead of it.
func noConsequences(t *testing.T, err error) {
	t.Helper()
	for _, s := range []string{"stopped", "closed pipe"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q reports a consequence (%q), not the cause", err, s)
		}
	}
}

func TestWriteRootNoSpace(t *testing.T) {
	_, err := writeRoot(context.Background(), &fullDisk{limit: 1 << 20}, testBase(t), []entry.Entry{bigKubelet()}, testSpec(), 2)
	if err == nil {
		t.Fatal("writing onto a full disk succeeded")
	}
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("error = %v, want the ENOSPC cause", err)
	}
	if !strings.HasPrefix(err.Error(), "writing squashfs: ") || strings.Contains(err.Error(), "tar entry") {
		t.Errorf("error = %q, want it to blame the squashfs output, not an entry", err)
	}
	noConsequences(t, err)
}

func TestWriteRootUnreadableInput(t *testing.T) {
	denied := &os.PathError{Op: "open", Path: "/cache/keyed/x/files/kube-proxy", Err: syscall.EACCES}
	overlay := []entry.Entry{bigKubelet(), {
		Path: "/usr/local/bin/kube-proxy", Type: tar.TypeReg, Mode: 0o755, Size: 10,
		Open: func() (io.ReadCloser, error) { return nil, denied },
	}}
	_, err := writeRoot(context.Background(), discardAt{}, testBase(t), overlay, testSpec(), 2)
	if !errors.Is(err, syscall.EACCES) || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("error = %v, want the EACCES cause", err)
	}
	if !strings.HasPrefix(err.Error(), "composing the root filesystem: ") || !strings.Contains(err.Error(), "/usr/local/bin/kube-proxy") {
		t.Errorf("error = %q, want it to name the stage and the file", err)
	}
	noConsequences(t, err)
}

// A read that fails half way through a file (an I/O error, a cache entry
// that does not verify) is the cause too.
func TestWriteRootInputFailsMidway(t *testing.T) {
	boom := errors.New("input/output error")
	overlay := []entry.Entry{{
		Path: "/usr/local/bin/kubelet", Type: tar.TypeReg, Mode: 0o755, Size: 8 << 20,
		Open: func() (io.ReadCloser, error) {
			return io.NopCloser(io.MultiReader(bytes.NewReader(incompressible(4<<20)), iotestErrReader{boom})), nil
		},
	}}
	_, err := writeRoot(context.Background(), discardAt{}, testBase(t), overlay, testSpec(), 2)
	if !errors.Is(err, boom) {
		t.Fatalf("error = %v, want the read error", err)
	}
	noConsequences(t, err)
}

type iotestErrReader struct{ err error }

func (r iotestErrReader) Read([]byte) (int, error) { return 0, r.err }

// cancelling is an io.WriterAt that calls cancel on its first write and
// waits until ctx is done, as a ^C in the middle of a write would.
type cancelling struct {
	once   sync.Once
	cancel func()
	ctx    context.Context
}

func (c *cancelling) WriteAt(p []byte, _ int64) (int, error) {
	c.once.Do(func() {
		c.cancel()
		<-c.ctx.Done()
	})
	return len(p), nil
}

func TestWriteRootCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := writeRoot(ctx, &cancelling{cancel: cancel, ctx: ctx}, testBase(t), []entry.Entry{bigKubelet()}, testSpec(), 2)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want context.Canceled", err)
	}
	noConsequences(t, err)
}

// TestWriteRootInterrupted sends this process a real SIGINT, caught as the
// CLI catches it, in the middle of the write: the error says so.
func TestWriteRootInterrupted(t *testing.T) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	interrupt := func() {
		if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
			t.Error(err)
		}
	}
	_, err := writeRoot(ctx, &cancelling{cancel: interrupt, ctx: ctx}, testBase(t), []entry.Entry{bigKubelet()}, testSpec(), 2)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "interrupt signal received") {
		t.Fatalf("error = %v, want the interrupt as the cause", err)
	}
	noConsequences(t, err)
}

// smallTmpfs mounts a tmpfs of size (mount's notation) for the test.
func smallTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if b, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0755", "nodebake-test", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, b)
	}
	t.Cleanup(func() {
		if b, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, b)
		}
	})
	return dir
}

// TestBuildIntoFullFilesystem builds with the output, or the cache, on a
// real, small tmpfs: the build fails with the kernel's ENOSPC in its
// message, an internal failure (exit 1) whatever stage met it, and leaves
// no output.
func TestBuildIntoFullFilesystem(t *testing.T) {
	f := newFixture(t)
	big := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(big, incompressible(16<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	s := f.spec.Clone()
	s.Dir = filepath.Dir(big) // a file's source lies in the spec's directory
	s.Files = append(s.Files, spec.File{Path: "/usr/local/share/big", Source: big})
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		// setup returns the output directory and the cache.
		setup func(t *testing.T) (string, *cache.Cache)
		// stage is how the error begins: the stage that met the full disk.
		stage string
	}{
		{"output", func(t *testing.T) (string, *cache.Cache) { return smallTmpfs(t, "4m"), f.cache }, "writing the disk image: "},
		{"cache", func(t *testing.T) (string, *cache.Cache) {
			c, err := cache.Open(smallTmpfs(t, "16k"))
			if err != nil {
				t.Fatal(err)
			}
			return t.TempDir(), c
		}, "base.image: normalizing: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, c := tc.setup(t)
			_, err := Build(context.Background(), s, Options{OutputDir: out, Cache: c, FirstbootBinary: f.firstboot, Workers: 2})
			if err == nil {
				t.Fatal("the build succeeded")
			}
			t.Logf("the error: %v", err)
			if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "no space left on device") {
				t.Fatalf("error = %v, want no space left on device", err)
			}
			if !strings.HasPrefix(err.Error(), tc.stage) {
				t.Errorf("error = %q, want it to begin with the stage %q", err, tc.stage)
			}
			if k := failure.KindOf(err); k != failure.Internal {
				t.Errorf("kind %v, want internal (exit 1)", k)
			}
			noConsequences(t, err)
			if entries, _ := os.ReadDir(out); len(entries) != 0 {
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Errorf("the failed build left %v", names)
			}
		})
	}
}
