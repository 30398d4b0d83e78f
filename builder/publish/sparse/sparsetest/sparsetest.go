// Package sparsetest builds small synthetic sparse raw disk images for the
// tests of the publish format writers and finds the independent tools
// (qemu-img, zstd, tar) they check the output with.
package sparsetest

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Region is a written region of an image.
type Region struct {
	Off, Len int64
	// Kind is "random" (incompressible), "text" (compressible) or "zero"
	// (written zeros: allocated on disk but all zero).
	Kind string
}

// Image is a synthetic raw image.
type Image struct {
	Name    string
	Size    int64
	Regions []Region
}

// Images is the table the format tests run: odd offsets, a region not
// aligned to 64 KiB clusters, an all-zero data region, data at the very
// end, a size that is not a MiB multiple and an image with no data at all.
func Images() []Image {
	const mib = 1 << 20
	return []Image{
		{Name: "mixed", Size: 24 * mib, Regions: []Region{
			{0, 4096, "random"},             // the "partition table"
			{mib + 100, 70000, "random"},    // not cluster aligned, crosses a cluster boundary
			{3*mib + 512, 2 * mib, "text"},  // compressible
			{6 * mib, 256 << 10, "zero"},    // written zeros: a data extent with no data
			{7*mib - 1, 2, "random"},        // two bytes across a cluster boundary
			{9 * mib, 64 << 10, "random"},   // exactly one cluster
			{24*mib - 1000, 1000, "random"}, // the very end
		}},
		{Name: "oddsize", Size: 8*mib + 3*512, Regions: []Region{
			{512, 1024, "text"},
			{4*mib + 4096, 8192, "zero"},
			{5*mib + 7, 100000, "random"},
			{8*mib + 3*512 - 700, 700, "text"}, // the last partial cluster
		}},
		{Name: "empty", Size: 16 * mib},
		{Name: "dense", Size: 4 * mib, Regions: []Region{{0, 4 * mib, "text"}}},
	}
}

// Write creates the image in dir and returns its path. Only the regions are
// written, so the rest of the file is a hole on file systems with holes.
func (im Image) Write(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, im.Name+".raw")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(im.Size); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(uint64(im.Size), 42))
	for i, reg := range im.Regions {
		b := make([]byte, reg.Len)
		switch reg.Kind {
		case "random":
			for j := range b {
				b[j] = byte(r.Uint32())
			}
			if len(b) > 0 && b[0] == 0 {
				b[0] = 1
			}
		case "text":
			words := []string{"kubelet ", "containerd ", "squashfs ", "nodebake ", "\n", "0123456789 "}
			var buf bytes.Buffer
			for buf.Len() < len(b) {
				buf.WriteString(words[r.IntN(len(words))])
			}
			copy(b, buf.Bytes())
		case "zero":
		default:
			t.Fatalf("region %d: unknown kind %q", i, reg.Kind)
		}
		if _, err := f.WriteAt(b, reg.Off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// Tool returns the path of the named program. When it is missing the test
// is skipped, or fails when NODEBAKE_REQUIRE_TOOLS=1.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("NODEBAKE_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%s is required (NODEBAKE_REQUIRE_TOOLS=1): %v", name, err)
		}
		t.Skipf("%s not found: %v", name, err)
	}
	return p
}

// Run runs a command and returns its standard output; it fails the test
// with the combined output when the command fails.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %q: %v\nstdout:\n%s\nstderr:\n%s", name, args, err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// Output creates an empty output file in dir, opened read-write.
func Output(t testing.TB, dir, name string) *os.File {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// Open opens path read-only for the duration of the test.
func Open(t testing.TB, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// SameFiles fails the test unless the two files have equal bytes.
func SameFiles(t testing.TB, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x, y) {
		t.Fatalf("%s and %s differ (%d and %d bytes)", a, b, len(x), len(y))
	}
}
