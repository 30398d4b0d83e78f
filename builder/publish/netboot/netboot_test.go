package netboot

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/builder/disk"
	"github.com/nodebake/nodebake/builder/squashfs"
)

// needTool skips the test when a program is missing, or fails it when
// NODEBAKE_REQUIRE_TOOLS=1.
func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("NODEBAKE_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%s is required (NODEBAKE_REQUIRE_TOOLS=1): %v", name, err)
		}
		t.Skipf("%s not installed", name)
	}
}

func TestKernelCmdline(t *testing.T) {
	const url, sum = "http://h/b/root.squashfs", "abc"
	ours := "boot=nodebake-http nodebake.root=" + url + " nodebake.root.sha256=" + sum + " ip=dhcp fstab=no"
	varTmp := " systemd.mount-extra=tmpfs:/var:tmpfs:mode=0755"
	tests := []struct {
		name, options string
		extra         []string
		want          string
	}{
		{"image", "root=PARTUUID=1234 rootfstype=squashfs ro console=tty0 console=ttyS0,115200 systemd.show_status=auto", nil,
			ours + varTmp + " ro console=tty0 console=ttyS0,115200 systemd.show_status=auto"},
		{"stale boot words dropped", "root=/dev/sda2 rootflags=x boot=local ip=off fstab=yes initrd=/initrd.img nodebake.root=old quiet", nil,
			ours + varTmp + " quiet"},
		{"extra appended", "root=x ro", []string{"systemd.show_status=true", "panic=10"},
			ours + varTmp + " ro systemd.show_status=true panic=10"},
		{"disk /var replaces the tmpfs", "root=x ro", []string{"systemd.mount-extra=PARTLABEL=var:/var:ext4:x-systemd.makefs"},
			ours + " ro systemd.mount-extra=PARTLABEL=var:/var:ext4:x-systemd.makefs"},
		{"other mount-extra kept", "root=x ro", []string{"systemd.mount-extra=tmpfs:/srv:tmpfs"},
			ours + varTmp + " ro systemd.mount-extra=tmpfs:/srv:tmpfs"},
		{"static ip replaces dhcp", "root=x ro console=ttyS0", []string{"ip=10.0.0.5::10.0.0.1:255.255.255.0::eth0:off"},
			"boot=nodebake-http nodebake.root=" + url + " nodebake.root.sha256=" + sum + " fstab=no" + varTmp + " ro console=ttyS0 ip=10.0.0.5::10.0.0.1:255.255.255.0::eth0:off"},
		{"image word overridden by extra", "root=x console=ttyS0 systemd.show_status=auto", []string{"systemd.show_status=true"},
			ours + varTmp + " console=ttyS0 systemd.show_status=true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := kernelCmdline(tt.options, url, sum, tt.extra); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestIPXEScript(t *testing.T) {
	fixed := ipxeScript("http://boot.example/w", "boot=nodebake-http quiet")
	for _, want := range []string{"#!ipxe\n", "set base-url http://boot.example/w\n",
		"kernel ${base-url}/vmlinuz initrd=initrd.img boot=nodebake-http quiet || goto failed\n",
		"initrd ${base-url}/initrd.img || goto failed\n", "boot || goto failed\n"} {
		if !strings.Contains(fixed, want) {
			t.Errorf("script with a base URL lacks %q:\n%s", want, fixed)
		}
	}
	if !strings.HasPrefix(fixed, "#!ipxe\n") || strings.Contains(fixed, "cwduri") {
		t.Errorf("script with a base URL:\n%s", fixed)
	}
	derived := ipxeScript("", "x")
	for _, want := range []string{"isset ${base-url} || set base-url ${cwduri}\n", "isset ${base-url} || goto no-base-url\n", ":no-base-url\n"} {
		if !strings.Contains(derived, want) {
			t.Errorf("script without a base URL lacks %q:\n%s", want, derived)
		}
	}
}

// cpioFixture is a small archive: directories, a script, an empty file
// and a file whose length needs padding.
func cpioFixture() ([]cpioEntry, map[string][]byte) {
	content := map[string][]byte{
		"scripts/nodebake-http":       bootScript,
		"usr/lib/nodebake/empty":      nil,
		"usr/lib/nodebake/odd-length": bytes.Repeat([]byte("x"), 4097),
	}
	file := func(name string, mode uint32) cpioEntry {
		b := content[name]
		return cpioEntry{name: name, mode: mode, size: int64(len(b)), open: func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(b)), nil
		}}
	}
	return []cpioEntry{
		{name: "scripts", mode: 0o755, dir: true},
		file("scripts/nodebake-http", 0o644),
		{name: "usr", mode: 0o755, dir: true},
		{name: "usr/lib", mode: 0o755, dir: true},
		{name: "usr/lib/nodebake", mode: 0o755, dir: true},
		file("usr/lib/nodebake/empty", 0o600),
		file("usr/lib/nodebake/odd-length", 0o755),
	}, content
}

func TestCpio(t *testing.T) {
	entries, content := cpioFixture()
	var buf bytes.Buffer
	n, err := writeCpio(&buf, entries, time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) || n%4 != 0 {
		t.Errorf("wrote %d bytes (returned %d), want a multiple of 4", buf.Len(), n)
	}
	var again bytes.Buffer
	writeCpio(&again, entries, time.Unix(1700000000, 0))
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("two writes of the same archive differ")
	}

	needTool(t, "cpio")
	cmd := exec.Command("cpio", "-t", "--quiet")
	cmd.Stdin = bytes.NewReader(buf.Bytes())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -t: %v\n%s", err, out)
	}
	var want []string
	for _, e := range entries {
		want = append(want, e.name)
	}
	if got := strings.Fields(string(out)); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("cpio -t lists %q, want %q", got, want)
	}

	dir := t.TempDir()
	cmd = exec.Command("cpio", "-i", "-d", "-m", "--quiet", "--no-absolute-filenames")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(buf.Bytes())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v\n%s", err, out)
	}
	for name, b := range content {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s extracted as %d bytes (%v), want %d", name, len(got), err, len(b))
		}
	}
	fi, err := os.Stat(filepath.Join(dir, "usr/lib/nodebake/odd-length"))
	if err != nil || fi.Mode().Perm() != 0o755 || fi.ModTime().Unix() != 1700000000 {
		t.Errorf("odd-length: %v, %v", fi, err)
	}
}

func TestCpioErrors(t *testing.T) {
	for _, e := range []cpioEntry{
		{name: "/abs", dir: true},
		{name: "", dir: true},
		{name: "TRAILER!!!", dir: true},
		{name: "short", size: 10, open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("abc")), nil }},
	} {
		if _, err := writeCpio(io.Discard, []cpioEntry{e}, time.Unix(0, 0)); err == nil {
			t.Errorf("writeCpio accepted %+v", e)
		}
	}
}

// fakeELF returns a minimal x86-64 ELF header, with one PT_INTERP program
// header when dynamic.
func fakeELF(t *testing.T, dynamic bool) string {
	t.Helper()
	b := make([]byte, 64)
	copy(b, "\x7fELF\x02\x01\x01")
	le := binary.LittleEndian
	le.PutUint16(b[16:], 2)  // ET_EXEC
	le.PutUint16(b[18:], 62) // EM_X86_64
	le.PutUint32(b[20:], 1)
	le.PutUint16(b[52:], 64) // ehsize
	le.PutUint16(b[54:], 56) // phentsize
	le.PutUint16(b[58:], 64) // shentsize
	if dynamic {
		le.PutUint64(b[32:], 64) // phoff
		le.PutUint16(b[56:], 1)  // phnum
		ph := make([]byte, 56)
		le.PutUint32(ph[0:], 3) // PT_INTERP
		b = append(b, ph...)
	}
	b = append(b, "padding for a program"...)
	p := filepath.Join(t.TempDir(), "nodebake-firstboot")
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	testKernel = bytes.Repeat([]byte("kernel "), 40001)
	testInitrd = bytes.Repeat([]byte("initrd."), 30001) // not a multiple of 4
)

// testImage writes a small nodebake-like disk image with a real squashfs
// root and returns its path and the squashfs bytes.
func testImage(t *testing.T) (string, []byte) {
	t.Helper()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for _, f := range []struct{ name, body string }{{"etc/os-release", "ID=test\n"}, {"usr/bin/hello", "#!/bin/sh\necho hello\n"}} {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o755, Size: int64(len(f.body)), ModTime: time.Unix(1700000000, 0), Typeflag: tar.TypeReg})
		tw.Write([]byte(f.body))
	}
	tw.Close()
	var root []byte
	p := filepath.Join(t.TempDir(), "test.raw")
	_, err := disk.Write(context.Background(), p, disk.Image{
		Arch:       "amd64",
		Seed:       []byte("netboot test"),
		ModTime:    time.Unix(1700000000, 0),
		ESPSize:    100 * disk.MiB,
		VarSize:    4 * disk.MiB,
		Kernel:     disk.BytesFile("", testKernel),
		Initrd:     disk.BytesFile("", testInitrd),
		Bootloader: disk.BytesFile("", []byte("systemd-boot")),
		Cmdline:    []string{"console=ttyS0,115200", "quiet"},
		WriteRoot: func(ctx context.Context, w io.WriterAt) (int64, error) {
			var sb sliceWriterAt
			n, err := squashfs.Write(ctx, &sb, bytes.NewReader(tb.Bytes()), squashfs.Options{ModTime: 1700000000, Workers: 1})
			if err != nil {
				return 0, err
			}
			root = sb.b[:n]
			_, err = w.WriteAt(root, 0)
			return n, err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p, root
}

type sliceWriterAt struct{ b []byte }

func (s *sliceWriterAt) WriteAt(p []byte, off int64) (int, error) {
	if end := off + int64(len(p)); end > int64(len(s.b)) {
		s.b = append(s.b, make([]byte, end-int64(len(s.b)))...)
	}
	copy(s.b[off:], p)
	return len(p), nil
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func TestWrite(t *testing.T) {
	raw, root := testImage(t)
	fb := fakeELF(t, false)
	opts := Options{FirstbootBinary: fb, ModTime: time.Unix(1700000000, 0), ExtraArgs: []string{"panic=30"}}
	out := t.TempDir()
	b, err := Write(context.Background(), filepath.Join(out, "a"), raw, opts)
	if err != nil {
		t.Fatal(err)
	}
	read := func(p string) []byte {
		t.Helper()
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}

	if !bytes.Equal(read(b.Kernel), testKernel) {
		t.Error("vmlinuz differs from the image's kernel")
	}
	wantRoot := append(root, make([]byte, (4096-len(root)%4096)%4096)...)
	if got := read(b.Root); !bytes.Equal(got, wantRoot) || b.RootSize != int64(len(wantRoot)) {
		t.Errorf("root.squashfs: %d bytes (RootSize %d), want the squashfs's %d bytes padded to %d", len(got), b.RootSize, len(root), len(wantRoot))
	}
	if b.RootSHA256 != sha(wantRoot) {
		t.Errorf("RootSHA256 %s, want %s", b.RootSHA256, sha(wantRoot))
	}
	initrd := read(b.Initrd)
	if !bytes.HasPrefix(initrd, testInitrd) {
		t.Fatal("initrd.img does not start with the image's initrd")
	}
	tailAt := (len(testInitrd) + 3) &^ 3
	if !bytes.Equal(initrd[len(testInitrd):tailAt], make([]byte, tailAt-len(testInitrd))) || !bytes.HasPrefix(initrd[tailAt:], []byte("070701")) {
		t.Errorf("the appended archive does not start at offset %d after zero padding", tailAt)
	}

	wantCmdline := "boot=nodebake-http nodebake.root=${base-url}/root.squashfs nodebake.root.sha256=" + sha(wantRoot) +
		" ip=dhcp fstab=no systemd.mount-extra=tmpfs:/var:tmpfs:mode=0755 ro console=ttyS0,115200 quiet panic=30"
	if b.Cmdline != wantCmdline {
		t.Errorf("Cmdline\n got %s\nwant %s", b.Cmdline, wantCmdline)
	}
	if got := b.CmdlineFor("http://10.0.2.100/"); !strings.Contains(got, " nodebake.root=http://10.0.2.100/root.squashfs ") {
		t.Errorf("CmdlineFor = %s", got)
	}
	ipxe := string(read(b.IPXE))
	if !strings.Contains(ipxe, "kernel ${base-url}/vmlinuz initrd=initrd.img "+wantCmdline+" ") {
		t.Errorf("boot.ipxe lacks the kernel line:\n%s", ipxe)
	}
	var sums strings.Builder
	for _, n := range []string{IPXEName, InitrdName, RootName, KernelName} {
		sums.WriteString(sha(read(filepath.Join(b.Dir, n))) + "  " + n + "\n")
	}
	if got := string(read(b.Sums)); got != sums.String() {
		t.Errorf("SHA256SUMS\n%s\nwant\n%s", got, sums.String())
	}
	entries, _ := os.ReadDir(out)
	if len(entries) != 1 {
		t.Errorf("output parent holds %d entries, want only the bundle", len(entries))
	}
	for _, n := range []string{KernelName, InitrdName, RootName, IPXEName, SumsName} {
		fi, err := os.Stat(filepath.Join(b.Dir, n))
		if err != nil || !fi.ModTime().Equal(opts.ModTime) || fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: %v, %v", n, fi, err)
		}
	}

	// The same inputs give the same bytes; a base URL changes only the
	// script and the sums.
	b2, err := Write(context.Background(), filepath.Join(out, "b"), raw, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(read(b.Sums), read(b2.Sums)) {
		t.Error("two bundles of the same image differ")
	}
	opts.BaseURL = "http://boot.example/w/"
	b3, err := Write(context.Background(), filepath.Join(out, "c"), raw, opts)
	if err != nil {
		t.Fatal(err)
	}
	if b3.SHA256[InitrdName] != b.SHA256[InitrdName] || b3.SHA256[RootName] != b.SHA256[RootName] || b3.SHA256[IPXEName] == b.SHA256[IPXEName] {
		t.Errorf("with a base URL: sums %v, without %v", b3.SHA256, b.SHA256)
	}
	if !strings.Contains(b3.Cmdline, "nodebake.root=http://boot.example/w/root.squashfs ") || !strings.Contains(string(read(b3.IPXE)), "set base-url http://boot.example/w\n") {
		t.Errorf("with a base URL: Cmdline %s\n%s", b3.Cmdline, read(b3.IPXE))
	}

	// The appended archive holds the boot script and the program.
	needTool(t, "cpio")
	cmd := exec.Command("cpio", "-t", "--quiet")
	cmd.Stdin = bytes.NewReader(initrd[tailAt:])
	list, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -t of the appended archive: %v\n%s", err, list)
	}
	if got := strings.Fields(string(list)); strings.Join(got, " ") != "scripts "+BootScript+" usr usr/lib usr/lib/nodebake "+FetchProgram {
		t.Errorf("appended archive lists %q", got)
	}
}

func TestWriteFails(t *testing.T) {
	raw, _ := testImage(t)
	good := Options{FirstbootBinary: fakeELF(t, false)}
	out := t.TempDir()
	busy := filepath.Join(out, "busy")
	os.MkdirAll(busy, 0o755)
	os.WriteFile(filepath.Join(busy, "keep"), []byte("x"), 0o644)
	notSquash := filepath.Join(out, "zero.raw")
	os.WriteFile(notSquash, make([]byte, 1<<20), 0o644)
	tests := []struct {
		name, dir, raw string
		opts           Options
		want           string
	}{
		{"dynamic program", "d1", raw, Options{FirstbootBinary: fakeELF(t, true)}, "dynamically linked"},
		{"no program", "d2", raw, Options{}, "FirstbootBinary"},
		{"bad base URL", "d3", raw, Options{FirstbootBinary: good.FirstbootBinary, BaseURL: "ftp://x"}, "BaseURL"},
		{"blank extra arg", "d4", raw, Options{FirstbootBinary: good.FirstbootBinary, ExtraArgs: []string{"a b"}}, "ExtraArgs[0]"},
		{"no GPT", "d5", notSquash, good, "no GPT"},
		{"missing image", "d6", filepath.Join(out, "missing.raw"), good, "missing.raw"},
		{"non-empty output", "busy", raw, good, "must not exist or be empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Write(context.Background(), filepath.Join(out, tt.dir), tt.raw, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Write = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	entries, _ := os.ReadDir(out)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "busy zero.raw" {
		t.Errorf("after failures the output directory holds %q, want nothing new", names)
	}
	if b, _ := os.ReadFile(filepath.Join(busy, "keep")); string(b) != "x" {
		t.Error("the non-empty output directory was changed")
	}
}

func TestSquashfsSize(t *testing.T) {
	sb := make([]byte, 4096)
	copy(sb, "hsqs")
	binary.LittleEndian.PutUint16(sb[28:], 4)
	binary.LittleEndian.PutUint64(sb[40:], 5000)
	if n, err := squashfsSize(bytes.NewReader(sb), 1<<20, "x"); err != nil || n != 8192 {
		t.Errorf("squashfsSize = %d, %v; want 8192", n, err)
	}
	if _, err := squashfsSize(bytes.NewReader(sb), 4096, "x"); err == nil {
		t.Error("a squashfs larger than its partition was accepted")
	}
	copy(sb, "xxxx")
	if _, err := squashfsSize(bytes.NewReader(sb), 1<<20, "x"); err == nil || !strings.Contains(err.Error(), "does not hold a squashfs") {
		t.Errorf("bad magic: %v", err)
	}
}

// TestBootScriptSyntax parses the boot script with the host's POSIX shell
// (dash on Debian, whose dialect klibc's sh shares).
func TestBootScriptSyntax(t *testing.T) {
	needTool(t, "sh")
	cmd := exec.Command("sh", "-n")
	cmd.Stdin = bytes.NewReader(bootScript)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sh -n %s: %v\n%s", BootScript, err, out)
	}
	for _, want := range []string{"mountroot()", "configure_networking", "nodebake-firstboot netroot", "panic "} {
		if !bytes.Contains(bootScript, []byte(want)) {
			t.Errorf("the boot script lacks %q", want)
		}
	}
}
