package uki

import (
	"bytes"
	"crypto/sha256"
	"debug/pe"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/builder/internal/testbase"
)

// EnvUkify names the ukify command (systemd-ukify of Debian trixie or
// later) for TestRealStub's comparison; without it, ukify on PATH is used,
// and the comparison is skipped when there is none.
const EnvUkify = "NODEBAKE_UKIFY"

// requireTool returns the path of a program, skipping the test when it is
// missing, or failing it when NODEBAKE_REQUIRE_TOOLS=1.
func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("NODEBAKE_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%s is required (NODEBAKE_REQUIRE_TOOLS=1; Debian package %s): %v", name, pkg, err)
		}
		t.Skipf("%s is not installed (Debian package %s): %v", name, pkg, err)
	}
	return p
}

// TestRealStub assembles a UKI from the base's systemd-stub, kernel,
// initrd and os-release, and reads it back with debug/pe, objdump and
// sbverify; when ukify is available the output must equal its output byte
// for byte.
func TestRealStub(t *testing.T) {
	files := testbase.Find(t, testbase.StubAMD64, testbase.KernelPattern, testbase.InitrdPattern, testbase.OSRelease)
	stub, kernel, initrd, osrel := files[0], files[1], files[2], files[3]
	release := strings.TrimPrefix(path.Base(kernel.Path), "vmlinuz-")
	if got, err := KernelRelease(kernel.Data); err != nil || got != release {
		t.Errorf("KernelRelease = %q, %v; the file is named for %q", got, err, release)
	}
	cmdline := "root=/dev/mapper/root ro rootfstype=squashfs roothash=" + strings.Repeat("ab", 32) + " console=ttyS0,115200"
	in := Input{Stub: stub.Data, Kernel: kernel.Data, Initrd: sectionReader(initrd.Data), Cmdline: cmdline, OSRelease: osrel.Data, Uname: release}
	out := build(t, in)
	dir := t.TempDir()
	file := filepath.Join(dir, "uki.efi")
	if err := os.WriteFile(file, out, 0o644); err != nil {
		t.Fatal(err)
	}

	f, err := pe.NewFile(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("debug/pe: %v", err)
	}
	oh := f.OptionalHeader.(*pe.OptionalHeader64)
	if oh.Subsystem != 10 || oh.CheckSum != 0 {
		t.Errorf("Subsystem %d, CheckSum %#x; want 10 (EFI application), 0", oh.Subsystem, oh.CheckSum)
	}
	contents := map[string][]byte{".osrel": osrel.Data, ".cmdline": []byte(cmdline), ".uname": []byte(release), ".linux": kernel.Data, ".initrd": initrd.Data}
	var names []string
	for _, s := range f.Sections {
		names = append(names, s.Name)
		if s.Offset%oh.FileAlignment != 0 || s.VirtualAddress%oh.SectionAlignment != 0 {
			t.Errorf("%s: raw offset %#x or address %#x not aligned", s.Name, s.Offset, s.VirtualAddress)
		}
		if want, ok := contents[s.Name]; ok {
			data, _ := s.Data()
			if s.VirtualSize != uint32(len(want)) || !bytes.Equal(data[:s.VirtualSize], want) {
				t.Errorf("%s: VirtualSize %d, want %d, or content differs", s.Name, s.VirtualSize, len(want))
			}
		}
	}
	if got := strings.Join(names, " "); got != ".text .rodata .data .sbat .sdmagic .reloc .osrel .cmdline .uname .linux .initrd" {
		t.Errorf("sections %s", got)
	}
	last := f.Sections[len(f.Sections)-1]
	if oh.SizeOfImage != uint32((uint64(last.VirtualAddress)+uint64(last.VirtualSize)+0xfff)&^0xfff) {
		t.Errorf("SizeOfImage %#x does not end at the last section", oh.SizeOfImage)
	}
	sbat, _ := f.Section(".sbat").Data()
	if !bytes.HasPrefix(sbat, []byte("sbat,1,")) || !bytes.Contains(sbat, []byte("\nsystemd-stub,")) || !bytes.Contains(sbat, []byte("\nuki,1,UKI,")) {
		t.Errorf(".sbat lacks the stub's or the UKI's line:\n%s", sbat)
	}

	// objdump reads the same sections with the same sizes.
	objdump := requireTool(t, "objdump", "binutils")
	b, err := exec.Command(objdump, "-h", file).CombinedOutput()
	if err != nil {
		t.Fatalf("objdump -h: %v\n%s", err, b)
	}
	row := regexp.MustCompile(`(?m)^\s+\d+\s+(\.\w+)\s+([0-9a-f]+)\s`)
	var listed []string
	for _, m := range row.FindAllSubmatch(b, -1) {
		size, _ := strconv.ParseUint(string(m[2]), 16, 64)
		listed = append(listed, fmt.Sprintf("%s:%d", m[1], size))
	}
	var wantListed []string
	for _, s := range f.Sections {
		wantListed = append(wantListed, fmt.Sprintf("%s:%d", s.Name, s.VirtualSize))
	}
	if strings.Join(listed, " ") != strings.Join(wantListed, " ") {
		t.Errorf("objdump -h lists %v, want %v", listed, wantListed)
	}

	sbverify := requireTool(t, "sbverify", "sbsigntool")
	if b, err := exec.Command(sbverify, "--list", file).CombinedOutput(); err != nil || !strings.Contains(string(b), "No signature table present") {
		t.Errorf("sbverify --list: %v\n%s", err, b)
	}

	ukify := os.Getenv(EnvUkify)
	if ukify == "" {
		ukify, _ = exec.LookPath("ukify")
	}
	if ukify == "" {
		t.Logf("ukify not found (set %s): not compared", EnvUkify)
		return
	}
	for name, data := range map[string][]byte{"stub": stub.Data, "kernel": kernel.Data, "initrd": initrd.Data, "os-release": osrel.Data} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ref := filepath.Join(dir, "ukify.efi")
	cmd := exec.Command(ukify, "build", "--stub", filepath.Join(dir, "stub"), "--linux", filepath.Join(dir, "kernel"),
		"--initrd", filepath.Join(dir, "initrd"), "--cmdline", cmdline, "--os-release", "@"+filepath.Join(dir, "os-release"),
		"--uname", release, "--output", ref)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, b)
	}
	want, err := os.ReadFile(ref)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, want) {
		t.Errorf("the UKI (%d bytes, sha256 %x) differs from ukify's (%d bytes, sha256 %x)", len(out), sha256.Sum256(out), len(want), sha256.Sum256(want))
	}
}
