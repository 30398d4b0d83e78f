package qemu

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func requireTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("NODEBAKE_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%s is required (NODEBAKE_REQUIRE_TOOLS=1): %v", name, err)
		}
		t.Skipf("%s not installed: %v", name, err)
	}
}

func TestAccelOverride(t *testing.T) {
	for _, v := range []string{AccelKVM, AccelTCG} {
		t.Setenv(EnvAccel, v)
		if got := Accel(); got != v {
			t.Errorf("Accel() with %s=%s = %q", EnvAccel, v, got)
		}
	}
	t.Setenv(EnvAccel, "bogus")
	if _, err := (Config{Disk: "x.raw"}).withDefaults(); err == nil || !strings.Contains(err.Error(), EnvAccel) {
		t.Errorf("withDefaults with %s=bogus: err = %v, want one naming the variable", EnvAccel, err)
	}
}

func TestWithDefaults(t *testing.T) {
	t.Setenv(EnvAccel, "tcg")
	c, err := Config{Disk: "x.raw"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Memory != 2048 || c.CPUs != 2 || c.Binary != "qemu-system-x86_64" || c.Accel != AccelTCG {
		t.Errorf("defaults = memory %d, cpus %d, binary %q, accel %q", c.Memory, c.CPUs, c.Binary, c.Accel)
	}
	bad := []struct {
		name string
		c    Config
		want string
	}{
		{"no disk", Config{}, "no disk"},
		{"negative memory", Config{Disk: "x", Memory: -1}, "positive"},
		{"bad accel", Config{Disk: "x", Accel: "hvf"}, `accelerator "hvf"`},
		{"netdev with id", Config{Disk: "x", NetDevs: []string{"socket,id=a,listen=127.0.0.1:1"}}, "leave out the id"},
		{"cold reboot and no reboot", Config{Disk: "x", ColdReboot: true, NoReboot: true}, "ColdReboot and NoReboot"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.c.withDefaults(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// pairs returns the values following each occurrence of flag in args.
func pairs(args []string, flag string) []string {
	var out []string
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag {
			out = append(out, args[i+1])
		}
	}
	return out
}

func TestArgs(t *testing.T) {
	fw := Firmware{Code: "/fw/CODE.fd", Vars: "/fw/VARS.fd"}
	base := Config{Disk: "/img/w.raw", Memory: 1024, CPUs: 1, Accel: AccelTCG, Firmware: fw}
	tests := []struct {
		name   string
		config func(c *Config)
		check  func(t *testing.T, args []string)
	}{
		{"tcg", nil, func(t *testing.T, a []string) {
			joined := strings.Join(a, " ")
			for _, want := range []string{
				"-nodefaults", "-no-user-config", "-display none", "-accel tcg -cpu max", "-m 1024", "-smp 1",
				"-drive if=pflash,format=raw,unit=0,readonly=on,file=/fw/CODE.fd",
				"-drive if=pflash,format=raw,unit=1,file=/vm/OVMF_VARS.fd",
				"-drive if=none,id=disk0,format=qcow2,file=/vm/disk.qcow2",
				"-device virtio-blk-pci,drive=disk0,bootindex=0",
				"-netdev user,id=n0,restrict=on -device virtio-net-pci,netdev=n0",
				"-device virtio-rng-pci",
				"-chardev file,id=serial0,append=on,path=/vm/console.log -serial chardev:serial0",
				"-chardev file,id=serial1,append=on,path=/vm/report.log -serial chardev:serial1",
			} {
				if !strings.Contains(joined, want) {
					t.Errorf("args lack %q:\n%s", want, joined)
				}
			}
			for _, unwanted := range []string{"-enable-kvm", "-no-reboot", "-action", "-uuid", "-fw_cfg", "-smbios"} {
				if slices.Contains(a, unwanted) {
					t.Errorf("args have %s:\n%s", unwanted, joined)
				}
			}
		}},
		{"cold reboot", func(c *Config) { c.ColdReboot = true }, func(t *testing.T, a []string) {
			if got := pairs(a, "-action"); !slices.Equal(got, []string{"reboot=shutdown"}) {
				t.Errorf("-action = %q, want reboot=shutdown", got)
			}
			if got := pairs(a, "-qmp"); !slices.Equal(got, []string{"unix:/vm/qmp.sock,server=on,wait=off", "unix:/vm/events.sock,server=on,wait=off"}) {
				t.Errorf("-qmp = %q: want the commands' monitor and the events' one", got)
			}
			if slices.Contains(a, "-no-reboot") {
				t.Error("-no-reboot with ColdReboot")
			}
		}},
		{"kvm", func(c *Config) { c.Accel = AccelKVM }, func(t *testing.T, a []string) {
			joined := strings.Join(a, " ")
			if !strings.Contains(joined, "-enable-kvm -cpu host") || strings.Contains(joined, "tcg") {
				t.Errorf("kvm args wrong:\n%s", joined)
			}
		}},
		{"direct disk", func(c *Config) { c.Direct = true }, func(t *testing.T, a []string) {
			if d := pairs(a, "-drive"); !slices.Contains(d, "if=none,id=disk0,format=raw,file=/img/w.raw") {
				t.Errorf("drives = %q", d)
			}
		}},
		{"everything", func(c *Config) {
			c.UUID = "8f9ae2cc-6b4e-4f0b-9f53-0c3f1f2b7d10"
			c.NoReboot = true
			c.ExtraDisks = []string{"/cfg/a,b.img", "/cfg/c.qcow2"}
			c.FwCfg = map[string]string{"opt/io.systemd.credentials/z": "/c/z", "opt/io.systemd.credentials/a": "/c/a"}
			c.SMBIOS = []string{"type=11,value=io.systemd.credential:x=y"}
			c.UserNet = []string{"guestfwd=tcp:10.0.2.100:6443-tcp:127.0.0.1:6443"}
			c.NetDevs = []string{"socket,listen=127.0.0.1:5000", "socket,connect=127.0.0.1:5001"}
		}, func(t *testing.T, a []string) {
			check := func(flag string, want []string) {
				t.Helper()
				if got := pairs(a, flag); !slices.Equal(got, want) {
					t.Errorf("%s = %q, want %q", flag, got, want)
				}
			}
			check("-uuid", []string{"8f9ae2cc-6b4e-4f0b-9f53-0c3f1f2b7d10"})
			check("-fw_cfg", []string{"name=opt/io.systemd.credentials/a,file=/c/a", "name=opt/io.systemd.credentials/z,file=/c/z"})
			check("-smbios", []string{"type=11,value=io.systemd.credential:x=y"})
			check("-netdev", []string{
				"user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:6443-tcp:127.0.0.1:6443",
				"socket,listen=127.0.0.1:5000,id=n1",
				"socket,connect=127.0.0.1:5001,id=n2",
			})
			drives := pairs(a, "-drive")
			for _, want := range []string{"if=none,id=disk1,format=raw,file=/cfg/a,,b.img", "if=none,id=disk2,format=qcow2,file=/cfg/c.qcow2"} {
				if !slices.Contains(drives, want) {
					t.Errorf("drives %q lack %q", drives, want)
				}
			}
			devs := pairs(a, "-device")
			mac1, mac2 := deriveMAC(c0UUID, 1), deriveMAC(c0UUID, 2)
			for _, want := range []string{"virtio-blk-pci,drive=disk1", "virtio-blk-pci,drive=disk2",
				"virtio-net-pci,netdev=n1,mac=" + mac1, "virtio-net-pci,netdev=n2,mac=" + mac2} {
				if !slices.Contains(devs, want) {
					t.Errorf("devices %q lack %q", devs, want)
				}
			}
			if !slices.Contains(a, "-no-reboot") {
				t.Error("no -no-reboot")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			if tt.config != nil {
				tt.config(&c)
			}
			tt.check(t, c.args(newPaths("/vm", c)))
		})
	}
}

const c0UUID = "8f9ae2cc-6b4e-4f0b-9f53-0c3f1f2b7d10"

func TestDeriveMAC(t *testing.T) {
	re := regexp.MustCompile(`^52:54:00(:[0-9a-f]{2}){3}$`)
	a, b := deriveMAC(c0UUID, 1), deriveMAC(c0UUID, 2)
	if !re.MatchString(a) || !re.MatchString(b) || a == b {
		t.Errorf("MACs %q %q", a, b)
	}
	if deriveMAC(c0UUID, 1) != a {
		t.Error("MAC is not stable")
	}
	if deriveMAC("other", 1) == a {
		t.Error("different VMs share a MAC")
	}
}

func TestLastLines(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"a\r\nb\x1b[0m\nc\n\n", 2, "b[0m\nc"},
		{"a\nb", 5, "a\nb"},
		{"", 3, ""},
	}
	for _, tt := range tests {
		if got := lastLines(tt.in, tt.n); got != tt.want {
			t.Errorf("lastLines(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

// fakeVM is a VM without a process, whose logs the test writes.
func fakeVM(t *testing.T) *VM {
	dir := t.TempDir()
	vm := &VM{dir: dir, done: make(chan struct{}), files: [2]string{filepath.Join(dir, "console.log"), filepath.Join(dir, "report.log")}}
	for _, f := range vm.files {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return vm
}

func appendTo(t *testing.T, path, s string) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Error(err)
	}
}

func TestWaitFor(t *testing.T) {
	ctx := context.Background()
	vm := fakeVM(t)
	go func() {
		time.Sleep(150 * time.Millisecond)
		appendTo(t, vm.Path(Report), "PROBE a=1\nPROBE reboot\n")
		appendTo(t, vm.Path(Console), "boot one\nReached target multi-user.target\n")
	}()
	m, err := vm.WaitForFrom(ctx, Report, 0, regexp.MustCompile(`PROBE a=(\d+)`), 5*time.Second)
	if err != nil || m.Text != "PROBE a=1" || !slices.Equal(m.Groups, []string{"1"}) {
		t.Fatalf("WaitForFrom = %+v, %v", m, err)
	}
	first, err := vm.WaitForFrom(ctx, Console, 0, regexp.MustCompile(`Reached target multi-user`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(150 * time.Millisecond)
		appendTo(t, vm.Path(Console), "boot two\nReached target multi-user.target\n")
	}()
	second, err := vm.WaitForFrom(ctx, Console, first.End, regexp.MustCompile(`Reached target multi-user`), 5*time.Second)
	if err != nil || second.Start <= first.Start {
		t.Fatalf("second match = %+v, %v (first %+v)", second, err, first)
	}
	if s, err := vm.WaitFor(ctx, Report, regexp.MustCompile(`PROBE reboot`), time.Second); err != nil || s != "PROBE reboot" {
		t.Errorf("WaitFor = %q, %v", s, err)
	}

	// A timeout names the pattern and shows the console.
	_, err = vm.WaitFor(ctx, Report, regexp.MustCompile(`PROBE done`), 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "PROBE done") || !strings.Contains(err.Error(), "boot two") {
		t.Errorf("timeout error = %v", err)
	}
	if got := vm.ReportLog(); got != "PROBE a=1\nPROBE reboot\n" {
		t.Errorf("ReportLog = %q", got)
	}

	// A guest kernel panic ends the wait at once, with the crash report.
	appendTo(t, vm.Path(Console), "[ 36.1] Oops: general protection fault, probably for non-canonical address\n[ 36.2] RIP: 0010:kmem_cache_alloc\n[ 36.3] Kernel panic - not syncing: Fatal exception in interrupt\n")
	start := time.Now()
	_, err = vm.WaitFor(ctx, Report, regexp.MustCompile(`never`), time.Minute)
	if !errors.Is(err, ErrGuestCrashed) || !strings.Contains(err.Error(), "Oops: general protection fault") || !strings.Contains(err.Error(), "Fatal exception") || time.Since(start) > 5*time.Second {
		t.Errorf("after a guest panic: err = %v after %s", err, time.Since(start))
	}
	// Crashed says so too, and a Watch context ends with the report as
	// its cause.
	if err := vm.Crashed(); !errors.Is(err, ErrGuestCrashed) || !strings.Contains(err.Error(), "RIP: 0010:kmem_cache_alloc") {
		t.Errorf("Crashed() = %v", err)
	}
	wctx, cancel := vm.Watch(ctx)
	select {
	case <-wctx.Done():
		if err := context.Cause(wctx); !errors.Is(err, ErrGuestCrashed) {
			t.Errorf("Watch: cause %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("Watch: the context did not end after the guest crashed")
	}
	cancel()
	// What matched before the panic still matches.
	if _, err := vm.WaitFor(ctx, Report, regexp.MustCompile(`PROBE reboot`), time.Second); err != nil {
		t.Errorf("a match before the panic: %v", err)
	}
	os.WriteFile(vm.Path(Console), nil, 0o644)
	if err := vm.Crashed(); err != nil {
		t.Errorf("Crashed() with a clean console = %v", err)
	}
	wctx, cancel = vm.Watch(ctx)
	defer cancel()

	// An exited QEMU ends the wait at once, and a Watch context.
	close(vm.done)
	select {
	case <-wctx.Done():
		if err := context.Cause(wctx); err == nil || !strings.Contains(err.Error(), "qemu exited") {
			t.Errorf("Watch after exit: cause %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("Watch: the context did not end after QEMU exited")
	}
	start = time.Now()
	_, err = vm.WaitFor(ctx, Report, regexp.MustCompile(`never`), time.Minute)
	if err == nil || !strings.Contains(err.Error(), "qemu exited") || time.Since(start) > 5*time.Second {
		t.Errorf("after exit: err = %v after %s", err, time.Since(start))
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	vm2 := fakeVM(t)
	if _, err := vm2.WaitFor(cctx, Console, regexp.MustCompile(`x`), time.Minute); err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Errorf("cancelled: err = %v", err)
	}
}

// TestStartFailsEarly checks Start's input errors without starting QEMU.
func TestStartFailsEarly(t *testing.T) {
	t.Setenv(EnvAccel, "tcg")
	_, err := Start(context.Background(), Config{Disk: filepath.Join(t.TempDir(), "missing.raw")})
	if err == nil || !strings.Contains(err.Error(), "missing.raw") {
		t.Errorf("Start(missing disk) err = %v", err)
	}
}

// requireOVMF skips a test that boots the firmware when QEMU, qemu-img or
// OVMF is missing, and fails it then under NODEBAKE_REQUIRE_TOOLS=1.
func requireOVMF(t *testing.T) {
	t.Helper()
	requireTool(t, "qemu-system-x86_64")
	requireTool(t, "qemu-img")
	if _, err := FindFirmware("/usr/share/OVMF"); err != nil {
		if os.Getenv("NODEBAKE_REQUIRE_TOOLS") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
}

// TestStartOverlay starts a real QEMU on a blank disk (the firmware finds
// nothing to boot) and checks that the image is attached through an overlay
// and never written, that the serial files exist, and that Close cleans up.
func TestStartOverlay(t *testing.T) {
	requireOVMF(t)
	t.Setenv(EnvKeep, "")
	dir := t.TempDir()
	img := filepath.Join(dir, "blank.raw")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(img)
	ctx := context.Background()
	vm, err := Start(ctx, Config{Disk: img, Dir: dir, Memory: 256, CPUs: 1, Accel: AccelTCG, UUID: c0UUID})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	if vm.StartedAt.IsZero() {
		t.Error("StartedAt not set")
	}
	for _, f := range []string{"disk.qcow2", "OVMF_VARS.fd", "console.log", "report.log"} {
		if _, err := os.Stat(filepath.Join(vm.Dir(), f)); err != nil {
			t.Error(err)
		}
	}
	// QMP answers once QEMU is up; a powerdown request is accepted.
	qctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var qerr error
	for qctx.Err() == nil {
		if qerr = vm.Powerdown(qctx); qerr == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if qerr != nil {
		t.Errorf("Powerdown: %v", qerr)
	}
	vm.Kill()
	if !vm.Exited() {
		t.Error("not exited after Kill")
	}
	wd := vm.Dir()
	vm.Close()
	if _, err := os.Stat(wd); !os.IsNotExist(err) {
		t.Errorf("work directory left behind: %v", err)
	}
	after, _ := os.Stat(img)
	if !after.ModTime().Equal(before.ModTime()) || after.Size() != before.Size() {
		t.Error("the disk image was modified")
	}
}

// TestColdReboot starts a real QEMU that takes cold reboots, on a blank
// disk (the firmware finds nothing to boot): a reset ends the process and
// a new one starts on the same disk overlay and firmware variables, the
// console log goes on with a note between, and a quit ends the VM.
func TestColdReboot(t *testing.T) {
	requireOVMF(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "blank.raw")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	vm, err := Start(ctx, Config{Disk: img, Dir: dir, Memory: 256, CPUs: 1, Accel: AccelTCG, ColdReboot: true})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	until := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within a minute (restarts %d, exited %v)\n%s", what, vm.Restarts(), vm.Exited(), vm.stderrTail())
			}
		}
	}
	qmp := func(cmd string) {
		t.Helper()
		var err error
		until("QMP "+cmd, func() bool { err = vm.qmpCommand(ctx, cmd); return err == nil })
	}
	pid := func() int {
		vm.mu.Lock()
		defer vm.mu.Unlock()
		return vm.cmd.Process.Pid
	}
	files := func() map[string]os.FileInfo {
		m := map[string]os.FileInfo{}
		for _, f := range []string{"disk.qcow2", "OVMF_VARS.fd"} {
			fi, err := os.Stat(filepath.Join(vm.Dir(), f))
			if err != nil {
				t.Fatal(err)
			}
			m[f] = fi
		}
		return m
	}
	before, first := files(), pid()
	os.WriteFile(vm.Path(Console), []byte("before the reboot\n"), 0o644)

	qmp("system_reset")
	until("QEMU started again", func() bool { return vm.Restarts() == 1 })
	if vm.Exited() || pid() == first {
		t.Fatalf("after the reset: exited %v, pid %d (was %d): want a new QEMU process", vm.Exited(), pid(), first)
	}
	for f, fi := range files() {
		if !os.SameFile(fi, before[f]) {
			t.Errorf("%s was replaced: the next boot must use the same one", f)
		}
	}
	if c := vm.ConsoleLog(); !strings.HasPrefix(c, "before the reboot\n") || !strings.Contains(c, RebootNote) {
		t.Errorf("the console log after the reboot: %q; want what was there, then the note", c)
	}

	// A quit is no reboot: the VM is over.
	qmp("quit")
	until("QEMU exited", vm.Exited)
	if err := vm.Wait(); err != nil || vm.Restarts() != 1 {
		t.Errorf("after quit: Wait %v, restarts %d; want a clean end and no restart", err, vm.Restarts())
	}
}

func TestArgsKernel(t *testing.T) {
	c, err := Config{Kernel: "/b/vmlinuz", Initrd: "/b/initrd.img", Append: "console=ttyS0 ip=dhcp", Accel: AccelTCG}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	a := c.args(newPaths("/vm", c))
	joined := strings.Join(a, " ")
	for flag, want := range map[string]string{"-kernel": "/b/vmlinuz", "-initrd": "/b/initrd.img", "-append": "console=ttyS0 ip=dhcp"} {
		if got := pairs(a, flag); !slices.Equal(got, []string{want}) {
			t.Errorf("%s = %q, want %q", flag, got, want)
		}
	}
	if d := pairs(a, "-drive"); len(d) != 0 {
		t.Errorf("a kernel boot without disk or firmware has drives %q:\n%s", d, joined)
	}

	// With a disk and OVMF named, both are attached too.
	c.Disk, c.Firmware = "/img/w.qcow2", Firmware{Code: "/fw/C.fd", Vars: "/fw/V.fd"}
	c.Direct, c.DiskFormat = true, "qcow2"
	d := pairs(c.args(newPaths("/vm", c)), "-drive")
	for _, want := range []string{"if=pflash,format=raw,unit=0,readonly=on,file=/fw/C.fd", "if=none,id=disk0,format=qcow2,file=/img/w.qcow2"} {
		if !slices.Contains(d, want) {
			t.Errorf("drives %q lack %q", d, want)
		}
	}
}

func TestWithDefaultsKernel(t *testing.T) {
	t.Setenv(EnvAccel, "tcg")
	c, err := Config{Disk: "x.qcow2", DiskFormat: "qcow2"}.withDefaults()
	if err != nil || c.DiskFormat != "qcow2" {
		t.Errorf("qcow2 disk: %v, format %q", err, c.DiskFormat)
	}
	if c, _ := (Config{Disk: "x"}).withDefaults(); c.DiskFormat != "raw" {
		t.Errorf("default disk format %q, want raw", c.DiskFormat)
	}
	for _, tt := range []struct {
		c    Config
		want string
	}{
		{Config{Initrd: "i"}, "no disk and no kernel"},
		{Config{Disk: "x", Append: "quiet"}, "needs a kernel"},
		{Config{Disk: "x", DiskFormat: "vmdk"}, `"vmdk"`},
		{Config{Kernel: "k", Direct: true}, "Direct without a disk"},
	} {
		if _, err := tt.c.withDefaults(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("withDefaults(%+v) = %v, want an error containing %q", tt.c, err, tt.want)
		}
	}
}

// TestStartKernelOverlay checks a qcow2 image attached through an overlay
// with the right backing format, and a kernel path that does not exist.
func TestStartKernelOverlay(t *testing.T) {
	requireTool(t, "qemu-img")
	t.Setenv(EnvAccel, "tcg")
	_, err := Start(context.Background(), Config{Kernel: filepath.Join(t.TempDir(), "missing-vmlinuz")})
	if err == nil || !strings.Contains(err.Error(), "missing-vmlinuz") {
		t.Errorf("Start(missing kernel) err = %v", err)
	}
	requireTool(t, "qemu-system-x86_64")
	t.Setenv(EnvKeep, "")
	dir := t.TempDir()
	img := filepath.Join(dir, "blank.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", img, "1M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	// The "kernel" is not one: QEMU refuses it and exits, which is enough
	// to check the overlay it was given.
	kernel := filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(kernel, []byte("not a kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	vm, err := Start(context.Background(), Config{Disk: img, DiskFormat: "qcow2", Kernel: kernel, Dir: dir, Memory: 128, CPUs: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	out, err := exec.Command("qemu-img", "info", "--output=json", filepath.Join(vm.Dir(), "disk.qcow2")).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img info: %v: %s", err, out)
	}
	if !strings.Contains(string(out), `"backing-filename-format": "qcow2"`) {
		t.Errorf("the overlay does not name qcow2 as its backing format:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(vm.Dir(), "OVMF_VARS.fd")); !os.IsNotExist(err) {
		t.Errorf("a kernel boot without Firmware copied the OVMF variables (%v)", err)
	}
	vm.WaitExit(context.Background(), 30*time.Second)
}

func TestArgsNetBoot(t *testing.T) {
	c, err := Config{NetBoot: true, Accel: AccelTCG, UserNet: []string{"bootfile=http://10.0.2.100/boot.ipxe"}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	a := c.args(newPaths("/vm", c))
	if d := pairs(a, "-drive"); len(d) != 0 {
		t.Errorf("drives %q, want none", d)
	}
	if !slices.Contains(pairs(a, "-device"), "virtio-net-pci,netdev=n0,bootindex=0") {
		t.Errorf("the user NIC is not first to boot: %q", pairs(a, "-device"))
	}
	c.NICROM, c.NICOptions = "/rom/pxe,virtio.rom", []string{"disable-legacy=on"}
	if devs := pairs(c.args(newPaths("/vm", c)), "-device"); !slices.Contains(devs, "virtio-net-pci,netdev=n0,bootindex=0,romfile=/rom/pxe,,virtio.rom,disable-legacy=on") {
		t.Errorf("NIC ROM and options: %q", devs)
	}
	c.Disk = "/img/w.raw"
	if devs := pairs(c.args(newPaths("/vm", c)), "-device"); !slices.Contains(devs, "virtio-blk-pci,drive=disk0,bootindex=1") {
		t.Errorf("with a disk: %q", devs)
	}
}
