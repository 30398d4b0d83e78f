package embedded

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestFirstbootPrograms: one static Linux program per image architecture,
// for that architecture, and an unknown architecture is refused by name.
func TestFirstbootPrograms(t *testing.T) {
	if got := Arches(); !slices.Equal(got, []string{"amd64", "arm64"}) {
		t.Fatalf("Arches() = %v, want amd64 and arm64 (make plugin-firstboot builds both)", got)
	}
	for arch, machine := range map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64} {
		b, err := Firstboot(arch)
		if err != nil {
			t.Fatal(err)
		}
		f, err := elf.NewFile(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: not an ELF file: %v", arch, err)
		}
		if f.Machine != machine || f.Type != elf.ET_EXEC {
			t.Errorf("%s: machine %v, type %v", arch, f.Machine, f.Type)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s: dynamically linked", arch)
			}
		}
		if d := Describe(arch); !strings.Contains(d, "linux/"+arch) || !strings.Contains(d, "sha256 ") {
			t.Errorf("Describe(%s) = %q", arch, d)
		}
	}
	for _, bad := range []string{"riscv64", "", "../amd64", "*"} {
		if _, err := Firstboot(bad); err == nil {
			t.Errorf("Firstboot(%q) succeeded", bad)
		}
	}
}

// TestFirstbootIsFresh: the embedded programs are what the sources give
// now (scripts/build-firstboot.sh), not a stale build.
func TestFirstbootIsFresh(t *testing.T) {
	script, err := filepath.Abs("../../scripts/build-firstboot.sh")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(script); err != nil {
		t.Skipf("not in the repository: %v", err)
	}
	for _, arch := range Arches() {
		out := filepath.Join(t.TempDir(), "fb")
		if b, err := exec.Command(script, out, arch).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", script, err, b)
		}
		want, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := Firstboot(arch)
		if !bytes.Equal(got, want) {
			t.Errorf("the embedded nodebake-firstboot for %s is stale: run make plugin-firstboot and rebuild the plugin", arch)
		}
	}
}
