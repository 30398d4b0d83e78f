// Package testimage makes small filesystem images for tests with the real
// tools that users make config drives with: genisoimage for ISO 9660 and
// mkfs.vfat with mtools for FAT. A test whose tool is missing is skipped,
// or failed when NODEBAKE_REQUIRE_TOOLS=1.
package testimage

import (
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
)

// EnvRequireTools set to 1 fails, instead of skipping, tests whose tools
// are missing.
const EnvRequireTools = "NODEBAKE_REQUIRE_TOOLS"

// RequireTool returns the path of the program name, skipping the test when
// it is absent (failing it when NODEBAKE_REQUIRE_TOOLS=1).
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv(EnvRequireTools) == "1" {
		t.Fatalf("%s is required (%s=1) but missing: %v", name, EnvRequireTools, err)
	}
	t.Skipf("%s is not installed: %v", name, err)
	return ""
}

// Files maps slash-separated paths to their content.
type Files map[string][]byte

// tree writes files under a new directory and returns it.
func tree(t testing.TB, files Files) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// ISO makes an ISO 9660 image labelled label holding files, with
// genisoimage and the given extra flags (e.g. "-J", "-r" for Joliet and
// Rock Ridge names), and returns its path.
func ISO(t testing.TB, label string, files Files, flags ...string) string {
	t.Helper()
	tool := RequireTool(t, "genisoimage")
	src := tree(t, files)
	out := filepath.Join(t.TempDir(), "drive.iso")
	args := append([]string{"-quiet", "-o", out, "-V", label}, flags...)
	args = append(args, src)
	run(t, tool, args...)
	return out
}

// FAT makes a FAT image of sizeKiB KiB labelled label holding files, with
// mkfs.vfat (bits: 12, 16 or 32) and mtools, and returns its path.
func FAT(t testing.TB, label string, bits, sizeKiB int, files Files) string {
	t.Helper()
	mkfs := RequireTool(t, "mkfs.vfat")
	mmd := RequireTool(t, "mmd")
	mcopy := RequireTool(t, "mcopy")
	out := filepath.Join(t.TempDir(), "drive.img")
	args := []string{"-C", "-F", strconv.Itoa(bits), "-n", label}
	if bits != 12 {
		args = append(args, "-s", "1") // enough clusters for FAT16 and FAT32 in a small image
	}
	run(t, mkfs, append(args, out, strconv.Itoa(sizeKiB))...)
	src := tree(t, files)
	dirs := map[string]bool{}
	var names []string
	for name := range files {
		names = append(names, name)
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	var ds []string
	for d := range dirs {
		ds = append(ds, d)
	}
	sort.Strings(ds) // parents first
	sort.Strings(names)
	for _, d := range ds {
		run(t, mmd, "-i", out, "::"+d)
	}
	for _, name := range names {
		run(t, mcopy, "-i", out, filepath.Join(src, filepath.FromSlash(name)), "::"+name)
	}
	return out
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}
