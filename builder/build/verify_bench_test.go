package build

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/builder/rootfs"
	"github.com/nodebake/nodebake/layers/cache"
	"github.com/nodebake/nodebake/layers/entry"
	"github.com/nodebake/nodebake/layers/spec"
)

// discardAt is an io.WriterAt that drops everything.
type discardAt struct{}

func (discardAt) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }

// goBinaries returns the Go toolchain's programs: real binaries of the
// compressibility of kubelet and friends.
func goBinaries(tb testing.TB) []string {
	tb.Helper()
	goroot := runtime.GOROOT()
	if out, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
		goroot = strings.TrimSpace(string(out))
	}
	var bins []string
	for _, pat := range []string{"bin/*", "pkg/tool/*/*"} {
		m, _ := filepath.Glob(filepath.Join(goroot, pat))
		for _, p := range m {
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Size() > 1<<20 {
				bins = append(bins, p)
			}
		}
	}
	if len(bins) == 0 {
		tb.Skip("no Go toolchain binaries found")
	}
	return bins
}

// writeBinary writes n bytes made of concatenated real binaries,
// starting at a different one for each seed so no two files are alike.
func writeBinary(tb testing.TB, p string, n int64, bins []string, seed int) {
	tb.Helper()
	f, err := os.Create(p)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, "binary %d\n", seed)
	var written int64
	for i := seed; written < n; i++ {
		src, err := os.Open(bins[i%len(bins)])
		if err != nil {
			tb.Fatal(err)
		}
		m, err := io.CopyN(f, src, n-written)
		src.Close()
		if err != nil && err != io.EOF {
			tb.Fatal(err)
		}
		written += m
	}
}

// BenchmarkWarmRootVerified measures what verifying cached entries costs
// the heart of a warm build: composing the root filesystem and writing it
// as squashfs (level 3, 2 workers) from the real normalized base (when
// scripts/build-base.sh has made it) and four binaries of real Go code the
// sizes of kubelet, kube-proxy, kubectl and containerd (82, 70, 59 and 40
// MB). Each iteration runs the same work three times, in rotating order:
// plain reads (as before); the base verified beside the work and the
// binaries while streaming (what Build does); everything verified up
// front. It reports the
// times and their ratios to plain. The rest of a warm build (ESP, image
// hash, outputs) costs the same either way, so the whole build's overhead
// is smaller than these ratios say.
//
// Run: go test -run '^$' -bench WarmRootVerified -benchtime 6x ./builder/build
func BenchmarkWarmRootVerified(b *testing.B) {
	ctx := context.Background()
	baseTar := filepath.Join("..", "..", "build", "base", "trixie-amd64.tar")
	src, err := os.Open(baseTar)
	if err != nil {
		b.Skipf("no base tar (run scripts/build-base.sh): %v", err)
	}
	defer src.Close()
	c, err := cache.Open(filepath.Join(b.TempDir(), "cache"))
	if err != nil {
		b.Fatal(err)
	}
	const epoch = 1700000000
	baseEntry, err := c.PutEntry("bench/normalized-base", func(dir string) error {
		return rootfs.Normalize(ctx, src, filepath.Join(dir, "base.tar"), epoch)
	})
	if err != nil {
		b.Fatal(err)
	}
	bins := goBinaries(b)
	sizes := map[string]int64{"kubelet": 82 << 20, "kube-proxy": 70 << 20, "kubectl": 59 << 20, "containerd": 40 << 20}
	binEntry, err := c.PutEntry("bench/binaries", func(dir string) error {
		i := 0
		for name, n := range sizes {
			writeBinary(b, filepath.Join(dir, name), n, bins, i)
			i++
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	var read int64
	for _, es := range [][]cache.FileRecord{baseEntry.Files, binEntry.Files} {
		for _, f := range es {
			read += f.Size
		}
	}
	b.Logf("reading %d MiB of cached entries (the normalized base: %d MiB)", read>>20, baseEntry.Files[0].Size>>20)
	s := &spec.Spec{SourceDateEpoch: epoch}
	s.Output.RootCompressionLevel = spec.DefaultRootCompressionLevel

	// Modes: plain reads; the base verified beside the work and the
	// binaries while streaming (what Build does); everything verified up
	// front, then read plainly.
	const (
		plain = iota
		streaming
		upFront
		modes
	)
	run := func(mode int) time.Duration {
		start := time.Now()
		var check *backgroundCheck
		switch mode {
		case streaming:
			check = verifyInBackground(baseEntry, "base.tar")
		case upFront:
			if err := baseEntry.VerifyFile("base.tar"); err != nil {
				b.Fatal(err)
			}
			if err := binEntry.Verify(); err != nil {
				b.Fatal(err)
			}
		}
		base, err := rootfs.OpenBase(baseEntry.Path("base.tar"))
		if err != nil {
			b.Fatal(err)
		}
		defer base.Close()
		var overlay []entry.Entry
		for name := range sizes {
			fi, err := os.Stat(binEntry.Path(name))
			if err != nil {
				b.Fatal(err)
			}
			open := func() (io.ReadCloser, error) { return os.Open(binEntry.Path(name)) }
			if mode == streaming {
				open = func() (io.ReadCloser, error) { return binEntry.Open(name) }
			}
			overlay = append(overlay, entry.Entry{Path: "/usr/local/bin/" + name, Type: tar.TypeReg, Mode: 0o755, Size: fi.Size(), Open: open})
		}
		if _, err := writeRoot(ctx, discardAt{}, base, overlay, s, 2); err != nil {
			b.Fatal(err)
		}
		if err := check.wait(); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	run(plain) // warm the page cache
	var total [modes]time.Duration
	i := 0
	for b.Loop() {
		// Rotate the order, so a slow spell of a shared machine falls on
		// every mode alike.
		for m := range modes {
			mode := (i + m) % modes
			total[mode] += run(mode)
		}
		i++
	}
	b.ReportMetric(total[plain].Seconds()/float64(i), "plain-s/op")
	b.ReportMetric(total[streaming].Seconds()/float64(i), "streaming-s/op")
	b.ReportMetric(total[upFront].Seconds()/float64(i), "upfront-s/op")
	b.ReportMetric(float64(total[streaming])/float64(total[plain]), "streaming/plain")
	b.ReportMetric(float64(total[upFront])/float64(total[plain]), "upfront/plain")
}
