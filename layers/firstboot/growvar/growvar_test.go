package growvar

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// machine is a fake root: a sysfs device tree, /dev nodes (empty files)
// and udev's links, laid out as the kernel and udev lay them out.
type machine struct {
	t    *testing.T
	root string
}

func newMachine(t *testing.T) *machine { return &machine{t: t, root: t.TempDir()} }

func (m *machine) write(p, content string) {
	m.t.Helper()
	full := filepath.Join(m.root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		m.t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		m.t.Fatal(err)
	}
}

func (m *machine) link(target, p string) {
	m.t.Helper()
	full := filepath.Join(m.root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		m.t.Fatal(err)
	}
	if err := os.Symlink(target, full); err != nil {
		m.t.Fatal(err)
	}
}

// disk adds a disk with partitions (name -> size in sectors) under the
// device path dev (e.g. "pci0000:00/0000:00:04.0/virtio2/block").
func (m *machine) disk(dev, disk string, sectors int64, parts map[string]int64) {
	dir := "/sys/devices/" + dev + "/" + disk
	m.write(dir+"/size", strconv.FormatInt(sectors, 10)+"\n")
	m.link("../../devices/"+dev+"/"+disk, "/sys/class/block/"+disk)
	m.write("/dev/"+disk, "")
	for p, n := range parts {
		m.write(dir+"/"+p+"/size", strconv.FormatInt(n, 10)+"\n")
		m.write(dir+"/"+p+"/partition", "3\n")
		m.link("../../devices/"+dev+"/"+disk+"/"+p, "/sys/class/block/"+p)
		m.write("/dev/"+p, "")
	}
}

// image is the worker image written to a 20 GiB virtio disk: the root on
// vda2, /var on vda3, udev's links to both.
func image(t *testing.T) *machine {
	m := newMachine(t)
	m.disk("pci0000:00/0000:00:04.0/virtio2/block", "vda", 20<<21, map[string]int64{"vda1": 256 << 11, "vda2": 200 << 11, "vda3": 1024 << 11})
	m.link("../../vda3", "/dev/disk/by-partlabel/var")
	m.link("../../vda2", "/dev/disk/by-partuuid/0f6c2a3e-1b6e-4c1e-9a33-2c6a0d4f9e10")
	m.write("/proc/cmdline", "root=PARTUUID=0F6C2A3E-1B6E-4C1E-9A33-2C6A0D4F9E10 rootfstype=squashfs ro console=ttyS0\n")
	return m
}

func TestFind(t *testing.T) {
	t.Run("virtio", func(t *testing.T) {
		m := image(t)
		part, disk, err := Find(m.root)
		if err != nil || part != "vda3" || disk != "vda" {
			t.Errorf("Find = %q, %q, %v; want vda3 on vda", part, disk, err)
		}
	})
	t.Run("nvme", func(t *testing.T) {
		m := newMachine(t)
		m.disk("pci0000:00/0000:00:1f.0/nvme/nvme0/nvme0n1", "nvme0n1", 1<<30, map[string]int64{"nvme0n1p2": 1 << 20, "nvme0n1p3": 1 << 21})
		m.link("../../nvme0n1p3", "/dev/disk/by-partlabel/var")
		part, disk, err := Find(m.root)
		if err != nil || part != "nvme0n1p3" || disk != "nvme0n1" {
			t.Errorf("Find = %q, %q, %v; want nvme0n1p3 on nvme0n1", part, disk, err)
		}
	})
	t.Run("no var partition", func(t *testing.T) {
		m := newMachine(t)
		if _, _, err := Find(m.root); !errors.Is(err, ErrNoPartition) {
			t.Errorf("Find: %v, want ErrNoPartition", err)
		}
	})
	t.Run("var on another disk than the root", func(t *testing.T) {
		m := image(t)
		m.disk("pci0000:00/0000:00:05.0/virtio3/block", "vdb", 20<<21, map[string]int64{"vdb3": 1024 << 11})
		os.Remove(filepath.Join(m.root, "dev/disk/by-partlabel/var"))
		m.link("../../vdb3", "/dev/disk/by-partlabel/var")
		_, _, err := Find(m.root)
		if err == nil || !strings.Contains(err.Error(), "/var's partition vdb3 is on vdb, the root partition vda2 on vda") {
			t.Errorf("Find: %v", err)
		}
	})
	t.Run("root partition not found", func(t *testing.T) {
		m := image(t)
		m.write("/proc/cmdline", "root=PARTUUID=11111111-2222-4333-8444-555555555555 ro\n")
		if _, _, err := Find(m.root); err == nil || !strings.Contains(err.Error(), "the root partition (root=PARTUUID=1111") {
			t.Errorf("Find: %v", err)
		}
	})
	t.Run("label on a whole disk", func(t *testing.T) {
		m := image(t)
		os.Remove(filepath.Join(m.root, "dev/disk/by-partlabel/var"))
		m.link("../../vda", "/dev/disk/by-partlabel/var")
		if _, _, err := Find(m.root); err == nil || !strings.Contains(err.Error(), "/dev/vda is not a partition") {
			t.Errorf("Find: %v", err)
		}
	})
	t.Run("link out of /dev", func(t *testing.T) {
		m := image(t)
		os.Remove(filepath.Join(m.root, "dev/disk/by-partlabel/var"))
		m.write("/tmp/x", "")
		m.link("../../../tmp/x", "/dev/disk/by-partlabel/var")
		if _, _, err := Find(m.root); err == nil || !strings.Contains(err.Error(), "not a device in /dev") {
			t.Errorf("Find: %v", err)
		}
	})
}

// The real systemd-repart grows the partition in the guest boot tests
// (test/platform); here a stand-in changes the size the kernel reports.
func TestGrow(t *testing.T) {
	m := image(t)
	var args []string
	opts := Options{Root: m.root, Run: func(ctx context.Context, name string, a ...string) ([]byte, error) {
		args = append([]string{name}, a...)
		m.write("/sys/devices/pci0000:00/0000:00:04.0/virtio2/block/vda/vda3/size", strconv.Itoa(19<<21)+"\n")
		return []byte("Growing existing partition 2.\nAll done.\n"), nil
	}}
	res, err := Grow(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if want := Repart + " --dry-run=no --no-pager --discard=no --definitions=" + DefinitionsDir + " /dev/vda"; strings.Join(args, " ") != want {
		t.Errorf("ran %q, want %q", args, want)
	}
	if !res.Grown() || res.Before != 1<<30 || res.After != 19<<30 || !strings.HasPrefix(res.String(), "/var (vda3) grown from 1024 MiB to 19456 MiB on vda in ") {
		t.Errorf("result %+v: %s", res, res)
	}

	// Again: nothing to do.
	opts.Run = func(context.Context, string, ...string) ([]byte, error) { return []byte("No changes.\n"), nil }
	res, err = Grow(context.Background(), opts)
	if err != nil || res.Grown() || !strings.HasPrefix(res.String(), "/var (vda3) already takes the free space of vda: 19456 MiB") {
		t.Errorf("second run: %v, %s", err, res)
	}

	opts.Run = func(context.Context, string, ...string) ([]byte, error) {
		return []byte("Applying changes.\nFailed to open device: Permission denied\n"), errors.New("exit status 1")
	}
	if _, err := Grow(context.Background(), opts); err == nil || !strings.HasSuffix(err.Error(), "exit status 1: Failed to open device: Permission denied") {
		t.Errorf("failing repart: %v", err)
	}
}

// The definition is what systemd-repart needs to match the image's /var
// partition, and nothing that would touch its content.
func TestDefinition(t *testing.T) {
	if !strings.Contains(Definition, "[Partition]\nType=var\n") {
		t.Errorf("definition %q", Definition)
	}
	for _, bad := range []string{"Format=", "CopyFiles=", "SizeMaxBytes=", "FactoryReset=", "Encrypt="} {
		if strings.Contains(Definition, bad) {
			t.Errorf("definition sets %s", bad)
		}
	}
}
