package configdrive

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/nodebake/nodebake/layers/firstboot"
	"github.com/nodebake/nodebake/layers/firstboot/blockdev"
)

const nodeYAML = "apiVersion: nodebake.io/v1alpha1\nkind: NodeConfig\nnodeName: worker01\n"

func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("NODEBAKE_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%s not found (NODEBAKE_REQUIRE_TOOLS=1)", name)
		}
		t.Skipf("%s not found", name)
	}
	return p
}

func writeDrive(t *testing.T, name string) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), name)
	if err := Write(img, []byte(nodeYAML)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return img
}

func TestWrite(t *testing.T) {
	img := writeDrive(t, "drive.img")
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	label, err := blockdev.ReadLabel(f)
	if err != nil || label != (blockdev.Label{FS: blockdev.FAT, Name: "NODEBAKE"}) {
		t.Errorf("label %+v, %v", label, err)
	}
	info, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if info.Size() != Size {
		t.Errorf("size %d, want %d", info.Size(), Size)
	}
	if used := info.Sys().(*syscall.Stat_t).Blocks * 512; used > 4<<20 {
		t.Errorf("the image uses %d bytes: not sparse", used)
	}
	again := writeDrive(t, "again.img")
	a, _ := os.ReadFile(img)
	b, _ := os.ReadFile(again)
	if !bytes.Equal(a, b) {
		t.Errorf("two images of the same node config differ")
	}
	// The volume label's directory entry carries the fixed time too, not
	// the clock (two writes straddling a two-second FAT tick differed).
	label8 := append([]byte("NODEBAKE   "), 0x08)
	i := bytes.Index(a, label8)
	if i < 0 {
		t.Fatal("no volume label entry in the root directory")
	}
	if e := a[i : i+32]; !bytes.Equal(e[14:18], []byte{0, 0, 0x21, 0}) || !bytes.Equal(e[22:26], []byte{0, 0, 0x21, 0}) {
		t.Errorf("volume label entry times % x, want 1980-01-01 00:00 (00 00 21 00)", e[13:26])
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(img), ".*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestWriteReadBackWithTools(t *testing.T) {
	img := writeDrive(t, "drive.img")
	t.Run("fsck.fat", func(t *testing.T) {
		fsck := requireTool(t, "fsck.fat")
		if out, err := exec.Command(fsck, "-n", img).CombinedOutput(); err != nil {
			t.Errorf("fsck.fat -n: %v\n%s", err, out)
		}
	})
	t.Run("mtools", func(t *testing.T) {
		mdir, mtype := requireTool(t, "mdir"), requireTool(t, "mtype")
		env := append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		cmd := exec.Command(mdir, "-i", img, "::")
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "NODEBAKE") || !strings.Contains(strings.ToLower(string(out)), "node") {
			t.Errorf("mdir: %v\n%s", err, out)
		}
		cmd = exec.Command(mtype, "-i", img, "::node.yaml")
		cmd.Env = env
		out, err = cmd.Output()
		if err != nil || string(out) != nodeYAML {
			t.Errorf("mtype: %v\n%q", err, out)
		}
	})
}

func TestWriteRejectsBadConfig(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "drive.img")
	err := Write(img, []byte("nodeName: a\nbogus: 1\n"))
	if err == nil || !strings.Contains(err.Error(), "bogus: unknown field") {
		t.Errorf("got %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Errorf("files left: %v", entries)
	}
}

// TestFirstbootReadsDrive attaches an image to a loop device and lets the
// first-boot library find it by label, mount it and read node.yaml. It
// needs root, losetup and a kernel with vfat; otherwise it skips.
func TestFirstbootReadsDrive(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	losetup := requireTool(t, "losetup")
	img := writeDrive(t, "drive.img")
	out, err := exec.Command(losetup, "--find", "--show", "--read-only", img).Output()
	if err != nil {
		t.Skipf("no loop device: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command(losetup, "--detach", dev).Run() })
	var st syscall.Stat_t
	if err := syscall.Stat(dev, &st); err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(dev)
	root := t.TempDir()
	files := map[string]string{
		firstboot.FactsPath: `{"serviceCIDR":"10.32.0.0/16","clusterCIDR":"10.200.0.0/16","podNetwork":"none",
 "kubeletConfigTemplate":"/usr/lib/nodebake/kubelet-config.json","kubeProxyConfigTemplate":"/usr/lib/nodebake/kube-proxy-config.json"}`,
		"/sys/class/block/" + name + "/size":   "204800\n",
		"/sys/class/block/" + name + "/uevent": "DEVNAME=" + name + "\n",
	}
	for p, data := range files {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mknod(filepath.Join(root, "dev", name), syscall.S_IFBLK|0o600, int(st.Rdev)); err != nil {
		t.Skipf("mknod: %v", err)
	}
	status, err := firstboot.Run(context.Background(), firstboot.Options{Root: root})
	if err != nil && strings.Contains(err.Error(), "no such device") {
		t.Skipf("the kernel cannot mount vfat: %v", err)
	}
	// The drive's node config is incomplete: the run fails validating it,
	// after reading it from the drive.
	if want := "config-drive /dev/" + name; status.Source != want {
		t.Fatalf("source %q, want %q (error %v)", status.Source, want, err)
	}
	if status.NodeName != "worker01" || status.Field == "source" {
		t.Errorf("status %+v", status)
	}
}
