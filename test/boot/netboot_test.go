package boot

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodebake/nodebake/builder/publish/netboot"
	"github.com/nodebake/nodebake/test/harness"
	"github.com/nodebake/nodebake/test/qemu"
)

// netbootServerIP is where the guest reaches the bundle's HTTP server (a
// guest forward to a server on the host's loopback).
const netbootServerIP = "10.0.2.100"

// served records the requests of a bundle server.
type served struct {
	mu   sync.Mutex
	reqs []servedRequest
}

type servedRequest struct {
	method, path string
	status       int
	bytes        int64
}

func (s *served) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for _, r := range s.reqs {
		fmt.Fprintf(&b, "%s %s -> %d (%d bytes); ", r.method, r.path, r.status, r.bytes)
	}
	return b.String()
}

func (s *served) count(path string, status int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.reqs {
		if r.path == path && (status == 0 || r.status == status) {
			n++
		}
	}
	return n
}

type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// serveBundle serves dir on 127.0.0.1 for the rest of the test and
// records every request.
func serveBundle(t *testing.T, dir string) (string, *served) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &served{}
	files := http.FileServer(http.Dir(dir))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		files.ServeHTTP(sw, r)
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, servedRequest{r.Method, r.URL.Path, sw.status, sw.bytes})
		rec.mu.Unlock()
		t.Logf("bundle server: %s %s -> %d (%d bytes)", r.Method, r.URL.Path, sw.status, sw.bytes)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String(), rec
}

// netbootBundle builds the worker image with the probe and writes its
// network-boot bundle for a server at http://netbootServerIP.
func netbootBundle(t *testing.T) *netboot.Bundle {
	t.Helper()
	s := harness.WorkerSpec(t, probeFiles()...)
	dir := t.TempDir()
	res := harness.BuildImage(t, s, dir)
	start := time.Now()
	b, err := netboot.Write(context.Background(), filepath.Join(dir, "netboot"), res.ImagePath, netboot.Options{
		FirstbootBinary: harness.Firstboot(t),
		BaseURL:         "http://" + netbootServerIP,
		ModTime:         time.Unix(s.SourceDateEpoch, 0),
		// Status lines on the console (as on a real console at boot).
		ExtraArgs: []string{"systemd.show_status=true"},
	})
	if err != nil {
		t.Fatal(err)
	}
	figure(t, "netboot bundle write: %s; kernel %d KiB, initrd %d KiB, root %d MiB",
		time.Since(start).Round(10*time.Millisecond), fileSize(t, b.Kernel)>>10, fileSize(t, b.Initrd)>>10, b.RootSize>>20)
	t.Logf("kernel command line: %s", b.Cmdline)
	return b
}

// TestNetboot builds the worker image, writes its network-boot bundle,
// serves the bundle over HTTP on the loopback and boots it under QEMU
// (kernel and initrd given to QEMU, the root image fetched over HTTP by
// the initrd) to multi-user.target. The probe baked into the image reports
// the root and /var: squashfs on a loop device, and a tmpfs /var.
func TestNetboot(t *testing.T) {
	harness.RequireSlow(t)
	harness.RequireTool(t, "qemu-system-x86_64")
	b := netbootBundle(t)
	bootRetrying(t, "netboot (-kernel)", func(t *testing.T) (*qemu.VM, *served) {
		addr, rec := serveBundle(t, b.Dir)
		vm, err := qemu.Start(t.Context(), qemu.Config{
			Kernel:   b.Kernel,
			Initrd:   b.Initrd,
			Append:   b.Cmdline,
			UUID:     vmUUID,
			NoReboot: true, // the probe reboots once it has reported: that ends QEMU
			UserNet:  []string{harness.GuestForward(t, netbootServerIP, 80, addr)},
		})
		if err != nil {
			t.Fatal(err)
		}
		return vm, rec
	})
}

// bootRetrying boots a guest with start and checks it with checkNetboot.
// When the guest kernel crashes (an oops and a panic on the console: the
// emulator, TCG on a loaded host, has done so once in some twenty boots,
// inside the kernel's own allocator), it logs the crash and boots once
// more; a second crash fails the test.
func bootRetrying(t *testing.T, what string, start func(t *testing.T) (*qemu.VM, *served)) *served {
	t.Helper()
	for attempt := 1; ; attempt++ {
		vm, rec := start(t)
		t.Cleanup(func() { vm.Close() }) // Close is idempotent
		crash := checkNetboot(t, vm, rec, what)
		vm.Close()
		if crash == nil {
			return rec
		}
		if attempt == 2 {
			t.Fatalf("%s: the guest kernel crashed on both boots: %v", what, crash)
		}
		t.Logf("%s: the guest kernel crashed, booting once more: %v", what, crash)
	}
}

// TestNetbootIPXE boots the bundle through real iPXE: the NIC's iPXE ROM
// gets http://10.0.2.100/boot.ipxe as its DHCP boot file, and the script
// loads the kernel and initrd over HTTP.
func TestNetbootIPXE(t *testing.T) {
	harness.RequireSlow(t)
	harness.RequireTool(t, "qemu-system-x86_64")
	var rom string
	for _, p := range []string{"/usr/lib/ipxe/qemu/pxe-virtio.rom", "/usr/share/qemu/pxe-virtio.rom"} {
		if _, err := os.Stat(p); err == nil {
			rom = p
			break
		}
	}
	if rom == "" {
		t.Skip("no iPXE ROM for virtio-net (Debian package ipxe-qemu)")
	}
	b := netbootBundle(t)
	rec := bootRetrying(t, "netboot (iPXE)", func(t *testing.T) (*qemu.VM, *served) {
		addr, rec := serveBundle(t, b.Dir)
		vm, err := qemu.Start(t.Context(), qemu.Config{
			NetBoot: true,
			NICROM:  rom,
			// The ROM's PCI id is the modern virtio-net's (1af4:1041).
			NICOptions: []string{"disable-legacy=on"},
			UUID:       vmUUID,
			NoReboot:   true,
			UserNet: []string{
				"bootfile=http://" + netbootServerIP + "/" + netboot.IPXEName,
				harness.GuestForward(t, netbootServerIP, 80, addr),
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		return vm, rec
	})
	for _, name := range []string{netboot.IPXEName, netboot.KernelName, netboot.InitrdName} {
		if n := rec.count("/"+name, http.StatusOK); n != 1 {
			t.Errorf("%s fetched %d times with 200, want once; requests: %s", name, n, rec)
		}
	}
}

// TestNetbootFailsClosed boots the bundle with a wrong root digest on the
// command line: the initrd must refuse the image and stop (panic=-1 makes
// initramfs-tools reboot at once, which ends QEMU) instead of booting it.
func TestNetbootFailsClosed(t *testing.T) {
	harness.RequireSlow(t)
	harness.RequireTool(t, "qemu-system-x86_64")
	b := netbootBundle(t)
	wrong := strings.Repeat("0", 64)
	cmdline := strings.Replace(b.Cmdline, "nodebake.root.sha256="+b.RootSHA256, "nodebake.root.sha256="+wrong, 1) + " panic=-1"
	if !strings.Contains(cmdline, wrong) {
		t.Fatalf("no root digest in %s", b.Cmdline)
	}
	addr, rec := serveBundle(t, b.Dir)
	vm, err := qemu.Start(t.Context(), qemu.Config{
		Kernel:   b.Kernel,
		Initrd:   b.Initrd,
		Append:   cmdline,
		NoReboot: true,
		UserNet:  []string{harness.GuestForward(t, netbootServerIP, 80, addr)},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	m, err := vm.WaitForFrom(t.Context(), qemu.Console, 0, regexp.MustCompile(`nodebake-http: fetching \S+ failed: cannot boot without a verified root image`), bootTimeout)
	if err != nil {
		t.Fatalf("waiting for the refusal: %v", err)
	}
	figure(t, "netboot with a wrong digest: refused %s after QEMU start", m.SeenAt.Sub(vm.StartedAt).Round(100*time.Millisecond))
	if err := vm.WaitExit(t.Context(), 2*time.Minute); err != nil {
		t.Errorf("after the refusal: %v", err)
	}
	log := vm.ConsoleLog()
	if !strings.Contains(log, "refusing it") {
		t.Errorf("the console lacks netroot's checksum message:\n%s", vm.ConsoleTail(30))
	}
	for _, bad := range []string{"mounted read-only from", "systemd[1]"} {
		if strings.Contains(log, bad) {
			t.Errorf("the console shows %q: the boot went on after the refusal", bad)
		}
	}
	if n := rec.count("/"+netboot.RootName, 0); n != 1 {
		t.Errorf("root.squashfs requested %d times, want once (a mismatch is not retried); requests: %s", n, rec)
	}
}

// checkNetboot waits for the network-booted guest to reach
// multi-user.target and its probe to report, and checks the report and
// the server's requests. It returns the error when the guest kernel
// crashed (qemu.ErrGuestCrashed) and fails the test on anything else.
func checkNetboot(t *testing.T, vm *qemu.VM, rec *served, what string) error {
	t.Helper()
	ctx := t.Context()
	t.Logf("VM work directory %s (NODEBAKE_KEEP_VM=1 keeps it)", vm.Dir())
	mounted, err := vm.WaitForFrom(ctx, qemu.Console, 0, regexp.MustCompile(`nodebake-http: root \S+ \(sha256 [0-9a-f]+\) mounted read-only from (\S+)`), bootTimeout)
	if errors.Is(err, qemu.ErrGuestCrashed) {
		return err
	}
	if err != nil {
		t.Fatalf("root over HTTP: %v\nrequests: %s", err, rec)
	}
	fetch := "?"
	if m := regexp.MustCompile(`netroot: root.squashfs: (\d+) bytes verified in (\S+)`).FindStringSubmatch(vm.ConsoleLog()); m != nil {
		fetch = m[2]
	}
	// The probe reports once systemctl is-system-running --wait returns:
	// the boot is finished, the default target (multi-user.target) reached.
	running, err := vm.WaitForFrom(ctx, qemu.Report, 0, regexp.MustCompile(`PROBE system=(\S+)`), bootTimeout)
	if errors.Is(err, qemu.ErrGuestCrashed) {
		return err
	}
	if err != nil {
		t.Fatalf("waiting for the boot to finish: %v", err)
	}
	figure(t, "%s under %s: QEMU start -> root fetched (%s) and mounted %s, -> boot finished (%s) %s",
		what, qemu.Accel(), fetch, mounted.SeenAt.Sub(vm.StartedAt).Round(100*time.Millisecond), running.Groups[0], running.SeenAt.Sub(vm.StartedAt).Round(100*time.Millisecond))

	if _, err := vm.WaitForFrom(ctx, qemu.Report, 0, regexp.MustCompile(`PROBE reboot`), bootTimeout); errors.Is(err, qemu.ErrGuestCrashed) {
		return err
	} else if err != nil {
		t.Fatalf("probe: %v\nreport so far:\n%s", err, vm.ReportLog())
	}
	if err := vm.WaitExit(ctx, 2*time.Minute); err != nil {
		t.Errorf("after the probe's reboot: %v", err)
	}
	boots := parseProbe(vm.ReportLog())
	if len(boots) != 1 {
		t.Fatalf("want 1 boot in the probe report, got %d:\n%s", len(boots), vm.ReportLog())
	}
	p := boots[0]
	t.Logf("probe: system %s, failed units %q; root %s %s (%s); /var %s from %s; %s",
		p["system"], p["failed"], p["root.fstype"], p["root.source"], p["root.options"], p["var.fstype"], p["var.source"], p["analyze"])
	for k, want := range map[string]string{
		"root.fstype":    "squashfs",
		"root.source":    mounted.Groups[0],
		"var.fstype":     "tmpfs",
		"var.mountpoint": "yes",
		"containerd":     "active",
	} {
		if p[k] != want {
			t.Errorf("probe: %s = %q, want %q", k, p[k], want)
		}
	}
	// systemd-analyze critical-chain multi-user.target: its first line is
	// the target itself, with the time it became active.
	if m := regexp.MustCompile(`(?:^|;)multi-user\.target @([^;\s]+)`).FindStringSubmatch(p["critical-chain"]); m == nil {
		t.Errorf("probe: multi-user.target is not active: critical chain %q", p["critical-chain"])
	} else {
		t.Logf("multi-user.target active @%s (systemd-analyze critical-chain: from the start of userspace)", m[1])
	}
	if regexp.MustCompile(`Reached target \S*multi-user\.target`).MatchString(vm.ConsoleLog()) {
		t.Log("console: Reached target multi-user.target")
	}
	if !strings.HasPrefix(p["root.options"], "ro") {
		t.Errorf("probe: root mounted %q, want ro", p["root.options"])
	}
	if n := rec.count("/"+netboot.RootName, http.StatusOK); n != 1 {
		t.Errorf("root.squashfs fetched %d times with 200, want once; requests: %s", n, rec)
	}
	if n := rec.count("/"+netboot.RootName, 0); n != 1 {
		t.Errorf("root.squashfs requested %d times, want once; requests: %s", n, rec)
	}
	return nil
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
