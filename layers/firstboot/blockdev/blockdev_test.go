package blockdev

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
)

// requireTool returns the path of a tool, skipping the test when it is
// absent unless NODEBAKE_REQUIRE_TOOLS=1.
func requireTool(t *testing.T, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	if os.Getenv("NODEBAKE_REQUIRE_TOOLS") == "1" {
		t.Fatalf("none of %v found (NODEBAKE_REQUIRE_TOOLS=1)", names)
	}
	t.Skipf("none of %v found", names)
	return ""
}

// fatBoot builds a minimal FAT boot sector.
func fatBoot(fat32 bool, label string) []byte {
	b := make([]byte, 4096)
	b[0], b[1], b[2] = 0xEB, 0x58, 0x90
	binary.LittleEndian.PutUint16(b[11:], 512)
	b[13] = 1
	binary.LittleEndian.PutUint16(b[14:], 32)
	b[16] = 2
	if fat32 {
		binary.LittleEndian.PutUint32(b[36:], 100)
		b[0x42] = 0x29
		copy(b[0x47:0x52], label+"           ")
	} else {
		binary.LittleEndian.PutUint16(b[17:], 512)
		binary.LittleEndian.PutUint16(b[22:], 20)
		b[0x26] = 0x29
		copy(b[0x2B:0x36], label+"           ")
	}
	b[510], b[511] = 0x55, 0xAA
	return b
}

func isoImage(volid string) []byte {
	b := make([]byte, 18*2048)
	pvd := b[16*2048:]
	pvd[0] = 1
	copy(pvd[1:6], "CD001")
	pvd[6] = 1
	copy(pvd[40:72], volid+"                                ")
	return b
}

func TestReadLabel(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want Label
		err  error
	}{
		{"fat32", fatBoot(true, "NODEBAKE"), Label{FAT, "NODEBAKE"}, nil},
		{"fat16", fatBoot(false, "NODEBAKE"), Label{FAT, "NODEBAKE"}, nil},
		{"fat no name", fatBoot(true, "NO NAME"), Label{FAT, ""}, nil},
		{"iso9660", isoImage("NODEBAKE"), Label{ISO9660, "NODEBAKE"}, nil},
		{"zeros", make([]byte, 40000), Label{}, ErrNoFilesystem},
		{"short", []byte("hello"), Label{}, ErrNoFilesystem},
		{"mbr-like", func() []byte { b := fatBoot(true, "NODEBAKE"); b[11] = 3; return b }(), Label{}, ErrNoFilesystem},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadLabel(bytes.NewReader(tt.data))
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Errorf("got %+v, %v; want %+v, %v", got, err, tt.want, tt.err)
			}
		})
	}
}

// TestReadLabelRealImages reads labels of images made by mkfs.fat and
// genisoimage.
func TestReadLabelRealImages(t *testing.T) {
	dir := t.TempDir()
	t.Run("mkfs.fat", func(t *testing.T) {
		mkfs := requireTool(t, "mkfs.fat", "mkfs.vfat")
		for _, bits := range []string{"12", "16", "32"} {
			img := filepath.Join(dir, "fat"+bits+".img")
			if out, err := exec.Command(mkfs, "-F", bits, "-n", "NODEBAKE", "-C", img, "40000").CombinedOutput(); err != nil {
				t.Fatalf("mkfs.fat -F %s: %v\n%s", bits, err, out)
			}
			checkLabel(t, img, Label{FAT, "NODEBAKE"})
		}
	})
	t.Run("genisoimage", func(t *testing.T) {
		mkiso := requireTool(t, "genisoimage", "mkisofs", "xorrisofs")
		src := filepath.Join(dir, "src")
		if err := os.MkdirAll(src, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, "node.yaml"), []byte("nodeName: a\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		img := filepath.Join(dir, "drive.iso")
		if out, err := exec.Command(mkiso, "-quiet", "-V", "NODEBAKE", "-R", "-J", "-o", img, src).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", mkiso, err, out)
		}
		checkLabel(t, img, Label{ISO9660, "NODEBAKE"})
	})
}

func checkLabel(t *testing.T, path string, want Label) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := ReadLabel(f)
	if err != nil || got != want {
		t.Errorf("%s: got %+v, %v; want %+v", filepath.Base(path), got, err, want)
	}
}

func TestFindByLabel(t *testing.T) {
	root := t.TempDir()
	write := func(p string, data []byte) {
		t.Helper()
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// vda: no filesystem; vdb: the config drive; sr0: an ISO with another
	// label; sr1: empty drive (size 0); vdc: a node named by uevent.
	write("sys/class/block/vda/size", []byte("81920\n"))
	write("dev/vda", make([]byte, 40000))
	write("sys/class/block/vdb/size", []byte("8\n"))
	write("sys/class/block/vdb/uevent", []byte("MAJOR=253\nMINOR=16\nDEVNAME=vdb\nDEVTYPE=disk\n"))
	write("dev/vdb", fatBoot(true, "NODEBAKE"))
	write("sys/class/block/sr0/size", []byte("72\n"))
	write("dev/sr0", isoImage("OTHER"))
	write("sys/class/block/sr1/size", []byte("0\n"))
	write("dev/sr1", isoImage("NODEBAKE"))
	write("sys/class/block/vdc/uevent", []byte("DEVNAME=disk/cfg\n"))
	write("dev/disk/cfg", isoImage("nodebake"))
	write("sys/class/block/vdd/size", []byte("8\n")) // no device node

	got, err := FindByLabel(root, "NODEBAKE")
	if err != nil {
		t.Fatal(err)
	}
	want := []Device{
		{Name: "vdb", Path: "/dev/vdb", Label: Label{FAT, "NODEBAKE"}},
		{Name: "vdc", Path: "/dev/disk/cfg", Label: Label{ISO9660, "nodebake"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if got, err := FindByLabel(filepath.Join(root, "none"), "NODEBAKE"); err != nil || got != nil {
		t.Errorf("no sysfs: got %v, %v", got, err)
	}
}
