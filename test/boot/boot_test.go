package boot

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/layers/spec"
	"github.com/nodebake/nodebake/test/harness"
	"github.com/nodebake/nodebake/test/qemu"
)

// bootTimeout bounds each boot, sized for TCG on a busy 2-core host.
const bootTimeout = 6 * time.Minute

// crictlVersion is the crictl the booted image under test carries.
const crictlVersion = "v1.34.0"

// vmUUID is the guest's fixed SMBIOS UUID.
const vmUUID = "6e6f6465-6261-6b65-2d74-6573742d0001"

// figure logs a measured figure to the test log and to stdout.
func figure(t *testing.T, format string, args ...any) {
	t.Helper()
	s := fmt.Sprintf(format, args...)
	t.Log(s)
	fmt.Println("FIGURE " + s)
}

// TestBoot builds the worker image from the pinned components served by a
// local release mirror, with a probe added through the spec's files,
// checks the image with independent tools, boots it under QEMU twice (the
// probe reboots it) and checks what the probe reports.
func TestBoot(t *testing.T) {
	harness.RequireSlow(t)
	for _, tool := range []string{"qemu-system-x86_64", "qemu-img"} {
		harness.RequireTool(t, tool)
	}
	// crictl is off by default; this image lists it, so the probe can ask
	// containerd over CRI from inside the booted image.
	s := harness.WorkerSpecWith(t, func(s *spec.Spec) {
		s.Components["crictl"] = spec.Component{Version: crictlVersion, From: spec.FromGo}
	}, probeFiles()...)
	start := time.Now()
	res := harness.BuildImage(t, s, t.TempDir())
	figure(t, "image build (library, warm components): %s; %d MiB disk, %d MiB root filesystem",
		time.Since(start).Round(100*time.Millisecond), res.Manifest.Image.Size>>20, res.Manifest.Image.RootFilesystemSize>>20)

	t.Run("image", func(t *testing.T) { checkImage(t, res, harness.BaseLayout(t)) })

	ctx := t.Context()
	accel := qemu.Accel()
	// The probe's reboot is a power cycle (ColdReboot): OVMF under TCG
	// can hang on a warm reset.
	vm, err := qemu.Start(ctx, qemu.Config{Disk: res.ImagePath, UUID: vmUUID, Accel: accel, ColdReboot: true})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	t.Logf("VM work directory %s (NODEBAKE_KEEP_VM=1 keeps it)", vm.Dir())

	probeStart := regexp.MustCompile(`PROBE start`)
	probeRunning := regexp.MustCompile(`PROBE system=(\S+)`)
	firstLine, err := vm.WaitForFrom(ctx, qemu.Report, 0, probeStart, bootTimeout)
	if err != nil {
		t.Fatalf("first boot: %v", err)
	}
	running, err := vm.WaitForFrom(ctx, qemu.Report, firstLine.End, probeRunning, bootTimeout)
	if err != nil {
		t.Fatalf("first boot: %v", err)
	}
	figure(t, "boot 1 (%s): QEMU start -> probe started %s, -> system %s %s",
		accel, firstLine.SeenAt.Sub(vm.StartedAt).Round(100*time.Millisecond), running.Groups[0], running.SeenAt.Sub(vm.StartedAt).Round(100*time.Millisecond))

	reboot, err := vm.WaitForFrom(ctx, qemu.Report, running.End, regexp.MustCompile(`PROBE reboot`), bootTimeout)
	if err != nil {
		t.Fatalf("first boot, probe did not finish: %v\nreport so far:\n%s", err, vm.ReportLog())
	}
	second, err := vm.WaitForFrom(ctx, qemu.Report, reboot.End, probeStart, bootTimeout)
	if err != nil {
		t.Fatalf("second boot: %v\nreport so far:\n%s", err, vm.ReportLog())
	}
	running2, err := vm.WaitForFrom(ctx, qemu.Report, second.End, probeRunning, bootTimeout)
	if err != nil {
		t.Fatalf("second boot: %v", err)
	}
	figure(t, "boot 2 (%s, reboot): probe asked for reboot -> probe started %s, -> system %s %s",
		accel, second.SeenAt.Sub(reboot.SeenAt).Round(100*time.Millisecond), running2.Groups[0], running2.SeenAt.Sub(reboot.SeenAt).Round(100*time.Millisecond))
	if _, err := vm.WaitForFrom(ctx, qemu.Report, running2.End, regexp.MustCompile(`PROBE done`), bootTimeout); err != nil {
		t.Fatalf("second boot, probe did not finish: %v\nreport so far:\n%s", err, vm.ReportLog())
	}
	if err := vm.WaitExit(ctx, 2*time.Minute); err != nil {
		t.Errorf("after the probe's poweroff: %v", err)
	} else if n := vm.Restarts(); n != 1 {
		t.Errorf("QEMU was started again %d times; want once, for the probe's reboot (the poweroff ends it)", n)
	}
	figure(t, "two boots and a poweroff under %s: %s", accel, time.Since(vm.StartedAt).Round(100*time.Millisecond))

	report := vm.ReportLog()
	t.Logf("probe report:\n%s", report)
	boots := parseProbe(report)
	if len(boots) != 2 {
		t.Fatalf("want 2 boots in the probe report, got %d:\n%s", len(boots), report)
	}
	for i, b := range boots {
		t.Logf("boot %d: %s; critical chain: %s; slowest units: %s", i+1, b["analyze"], b["critical-chain"], b["blame"])
		checkBoot(t, i+1, b, s)
	}
	first, last := boots[0], boots[1]
	if _, ok := first["reboot"]; !ok {
		t.Error("first boot did not report the reboot")
	}
	if first["bootid"] == "" || last["marker"] != first["bootid"] {
		t.Errorf("the marker written to /var on the first boot (boot id %q) came back as %q", first["bootid"], last["marker"])
	}
	if first["bootid"] == last["bootid"] {
		t.Errorf("both boots have boot id %s: the guest did not reboot", first["bootid"])
	}
	// systemd derives the machine id from the VM's UUID.
	wantID := strings.ReplaceAll(vmUUID, "-", "")
	for i, b := range boots {
		if b["machine-id"] != wantID {
			t.Errorf("boot %d: machine id %q, want %s (from the VM UUID)", i+1, b["machine-id"], wantID)
		}
	}
}

// checkBoot checks one boot's probe report.
func checkBoot(t *testing.T, n int, b probeReport, s *spec.Spec) {
	t.Helper()
	k8sVersion := s.Kubernetes.Version
	want := map[string]string{
		"root.fstype":                "squashfs",
		"containerd":                 "active",
		"kubelet.version":            "Kubernetes " + k8sVersion,
		"kubelet.ActiveState":        "inactive",
		"kubelet.ConditionResult":    "no",
		"kubelet.NRestarts":          "0",
		"kube-proxy.ActiveState":     "inactive",
		"kube-proxy.NRestarts":       "0",
		"var.fstype":                 "ext4",
		"var.mountpoint":             "yes",
		"swaps":                      "0",
		"sysctl.net.ipv4.ip_forward": "1",
		"sysctl.net.bridge.bridge-nf-call-iptables": "1",
		"cni.bridge":     "ok",
		"cni.host-local": "ok",
		"cni.loopback":   "ok",
		"cni.portmap":    "ok",
	}
	for k, v := range want {
		if got, ok := b[k]; !ok {
			t.Errorf("boot %d: probe did not report %s", n, k)
		} else if got != v {
			t.Errorf("boot %d: %s = %q, want %q", n, k, got, v)
		}
	}
	if opts := strings.Split(b["root.options"], ","); len(opts) == 0 || opts[0] != "ro" {
		t.Errorf("boot %d: root mounted %q, want ro", n, b["root.options"])
	}
	// crictl, when the spec lists it, answers over CRI against containerd:
	// the runtime's status says RuntimeReady, and the client reports its
	// own version. Off by default, it is not in the image at all.
	if c, ok := s.Components["crictl"]; ok {
		if b["crictl.info"] != "RuntimeReady=true" {
			t.Errorf("boot %d: crictl info: %q, want RuntimeReady=true", n, b["crictl.info"])
		}
		if want := "crictl version " + strings.TrimPrefix(c.Version, "v"); b["crictl.version"] != want {
			t.Errorf("boot %d: crictl --version = %q, want %q", n, b["crictl.version"], want)
		}
	} else if !strings.HasSuffix(b["crictl.version"], "crictl: not found") {
		t.Errorf("boot %d: crictl --version = %q in an image whose spec does not list crictl, want it not found", n, b["crictl.version"])
	}
	if !regexp.MustCompile(`^runc version \d+\.\d+\.\d+`).MatchString(b["runc.version"]) {
		t.Errorf("boot %d: runc --version = %q", n, b["runc.version"])
	}
	for _, m := range []string{"overlay", "br_netfilter", "ip_vs", "wireguard"} {
		if v := b["module."+m]; v != "loaded" && v != "builtin" {
			t.Errorf("boot %d: module %s %q", n, m, v)
		}
	}
	if b["system"] != "running" {
		t.Logf("boot %d: system is %q; failed units: %s", n, b["system"], b["failed"])
	}
	t.Logf("boot %d: root %s (%s, %s), /etc on %s, /var %s from %s, kubelet %s/%s result=%s, status %s",
		n, b["root.fstype"], b["root.options"], b["root.source"], b["etc.fstype"], b["var.fstype"], b["var.source"],
		b["kubelet.ActiveState"], b["kubelet.SubState"], b["kubelet.Result"], b["status"])
}

// TestReproducible builds the pinned spec twice with the CLI in different
// time zones, umasks and wall-clock times and wants identical images and
// manifests.
func TestReproducible(t *testing.T) {
	harness.RequireSlow(t)
	s := harness.WorkerSpec(t, probeFiles()...)
	dir := t.TempDir()
	yaml, err := s.Dump()
	if err != nil {
		t.Fatal(err)
	}
	specFile := filepath.Join(dir, "worker.yaml")
	if err := os.WriteFile(specFile, yaml, 0o644); err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	cli := harness.GoBuild(t, "./builder/cmd/nodebake", bin)
	fb := harness.Firstboot(t)
	cacheDir := harness.CacheDir(t)

	runs := []struct {
		tz, umask string
	}{{"UTC", "022"}, {"Pacific/Kiritimati", "077"}}
	var sums, manifests []string
	for i, r := range runs {
		if i > 0 {
			time.Sleep(time.Second)
		}
		out := filepath.Join(dir, fmt.Sprintf("out%d", i))
		cmd := exec.CommandContext(t.Context(), "sh", "-c", `umask "$1"; shift; exec "$@"`, "sh", r.umask,
			cli, "build", "--cache", cacheDir, "--firstboot", fb, "-o", out, specFile)
		cmd.Env = append(os.Environ(), "TZ="+r.tz)
		var stderr bytes.Buffer
		cmd.Stderr = io.MultiWriter(&stderr, harness.LogWriter(t, fmt.Sprintf("build %d: ", i+1)))
		start := time.Now()
		stdout, err := cmd.Output()
		if err != nil {
			t.Fatalf("nodebake build (TZ=%s, umask %s): %v", r.tz, r.umask, err)
		}
		figure(t, "CLI build %d (TZ=%s, umask %s, warm cache): %s", i+1, r.tz, r.umask, time.Since(start).Round(100*time.Millisecond))
		img := strings.TrimSpace(string(stdout))
		if img != filepath.Join(out, s.Name+".raw") {
			t.Errorf("nodebake build printed %q, want the image path", img)
		}
		sums = append(sums, fileSHA256(t, img))
		m, err := os.ReadFile(filepath.Join(out, s.Name+".manifest.json"))
		if err != nil {
			t.Fatal(err)
		}
		manifests = append(manifests, string(m))
	}
	if sums[0] != sums[1] {
		t.Errorf("the two images differ: sha256 %s and %s", sums[0], sums[1])
	} else {
		t.Logf("both images have sha256 %s", sums[0])
	}
	if manifests[0] != manifests[1] {
		t.Errorf("the two manifests differ:\n%s\n---\n%s", manifests[0], manifests[1])
	}
	if !strings.Contains(manifests[0], sums[0]) {
		t.Errorf("the manifest does not record the image's sha256 %s", sums[0])
	}
}

func fileSHA256(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
