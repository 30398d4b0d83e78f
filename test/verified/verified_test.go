package verified

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodebake/nodebake/builder/build"
	"github.com/nodebake/nodebake/builder/disk"
	"github.com/nodebake/nodebake/layers/spec"
	"github.com/nodebake/nodebake/test/harness"
	"github.com/nodebake/nodebake/test/qemu"
	"github.com/nodebake/nodebake/test/secureboot"
)

// bootTimeout bounds each boot, sized for TCG on a busy 2-core host.
const bootTimeout = 8 * time.Minute

// vmUUID is the guests' fixed SMBIOS UUID.
const vmUUID = "6e6f6465-6261-6b65-2d76-657269747931"

// version is the image version of the verified images; tamperPath the
// root file the tamper test changes (PID 1, read by every boot).
const (
	version    = "1.35.4-1"
	tamperPath = "/usr/lib/systemd/systemd"
)

// verifiedSpec is the repository's worker spec with the probe and verified
// boot: version, updates from a source the probe never reaches (it lists
// offline).
func verifiedSpec(t *testing.T) *spec.Spec {
	t.Helper()
	s := harness.WorkerSpec(t, probeFiles()...)
	s.Output.Formats = nil
	s.Output.VerifiedBoot = &spec.VerifiedBoot{Enabled: true, Version: version,
		Updates: &spec.Updates{Source: "http://10.0.2.100:8080/", AllowHTTP: true}}
	s.Default()
	if err := s.Validate(); err != nil {
		t.Fatalf("the verified worker spec: %v", err)
	}
	return s
}

// TestVerifiedBoot builds the worker spec with verified boot through
// `nodebake build`: unsigned twice (the same bytes), signed with the key
// the firmware has enrolled, and signed with another. It boots the signed
// image under enforced Secure Boot, then a copy of it with one byte of a
// root file flipped, and shows that the firmware refuses the other two.
func TestVerifiedBoot(t *testing.T) {
	harness.RequireSlow(t)
	for _, tool := range []string{"qemu-system-x86_64", "rdsquashfs", "veritysetup", "sgdisk", "sbverify"} {
		harness.RequireTool(t, tool)
	}
	s := verifiedSpec(t)
	c := newCLI(t)
	key, vars := enrolledKey(t)
	other := secureboot.NewKey(t, "nodebake other key")

	unsigned := c.build(t, s, "unsigned")
	again := c.build(t, s, "unsigned-again")
	signed := c.build(t, s, "signed", "--signing-key", key.KeyPath, "--signing-cert", key.CertPath)
	foreign := c.build(t, s, "other-key", "--signing-key", other.KeyPath, "--signing-cert", other.CertPath)
	v := signed.manifest.Verified
	figure(t, "verified image build (CLI, warm cache): unsigned %s, again %s, signed %s, other key %s",
		unsigned.took.Round(100*time.Millisecond), again.took.Round(100*time.Millisecond), signed.took.Round(100*time.Millisecond), foreign.took.Round(100*time.Millisecond))

	// Two builds of the same spec: the same bytes, image and update.
	if a, b := fileSHA256(t, unsigned.image), fileSHA256(t, again.image); a != b || a != unsigned.manifest.Image.SHA256 {
		t.Errorf("two unsigned builds: sha256 %s and %s (manifest %s)", a, b, unsigned.manifest.Image.SHA256)
	} else {
		t.Logf("two unsigned builds: both sha256 %s", a)
	}
	if a, b := readFile(t, filepath.Join(unsigned.dir, s.Name+".SHA256SUMS")), readFile(t, filepath.Join(again.dir, s.Name+".SHA256SUMS")); a != b {
		t.Errorf("the two builds' sums differ:\n%s\n---\n%s", a, b)
	}
	// Signing changes systemd-boot and the UKI, not the root.
	for _, b := range []built{unsigned, foreign} {
		if h := b.manifest.Verified.RootHash; h != v.RootHash {
			t.Errorf("%s: root hash %s, the signed image's %s", b.dir, h, v.RootHash)
		}
	}
	if v.SigningCertificate != certFingerprint(t, key.CertPEM) || unsigned.manifest.Verified.SigningCertificate != "" {
		t.Errorf("signing certificates in the manifests: %q and %q", v.SigningCertificate, unsigned.manifest.Verified.SigningCertificate)
	}
	checkVerifiedDisk(t, signed, key.CertPath)
	reportSizes(t, signed)

	sb := &qemu.SecureBoot{Vars: vars}
	t.Run("signed", func(t *testing.T) {
		r := boot(t, qemu.Config{Disk: signed.image, SecureBoot: sb}, "signed, Secure Boot")
		checkVerityBoot(t, r, signed.manifest.Verified)
		if r["secureboot"] != "1" {
			t.Errorf("SecureBoot variable %q in the guest, want 1", r["secureboot"])
		}
	})
	t.Run("tamper", func(t *testing.T) {
		tampered := filepath.Join(t.TempDir(), "tampered.raw")
		run(t, "cp", "--sparse=always", signed.image, tampered)
		off, rootStart := tamperOffset(t, signed.image)
		flipByte(t, tampered, rootStart+off)
		t.Logf("flipped the byte at offset %d of the root filesystem, inside %s", off, tamperPath)
		bootTampered(t, qemu.Config{Disk: tampered, SecureBoot: sb})
	})
	t.Run("other-key", func(t *testing.T) {
		refused(t, qemu.Config{Disk: foreign.image, SecureBoot: sb}, firmwareRefused)
	})
	t.Run("unsigned", func(t *testing.T) {
		refused(t, qemu.Config{Disk: unsigned.image, SecureBoot: sb}, firmwareRefused)
	})
}

// checkVerifiedDisk reads a built verified disk back with independent
// tools: the partition table, the hash tree, the signatures.
func checkVerifiedDisk(t *testing.T, b built, cert string) {
	t.Helper()
	if out := run(t, "sgdisk", "-v", b.image); !strings.Contains(out, "No problems found") {
		t.Errorf("sgdisk -v:\n%s", out)
	}
	vp, err := disk.ReadVerifiedParts(b.image)
	if err != nil {
		t.Fatal(err)
	}
	defer vp.Close()
	dir := t.TempDir()
	root, hash, uki := filepath.Join(dir, "root"), filepath.Join(dir, "hash"), filepath.Join(dir, "uki.efi")
	writeFrom(t, root, vp.Root)
	writeFrom(t, hash, vp.Hash)
	if err := os.WriteFile(uki, vp.UKI, 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	run(t, "veritysetup", "verify", root, hash, b.manifest.Verified.RootHash)
	t.Logf("veritysetup verify of slot A: ok in %s", time.Since(start).Round(10*time.Millisecond))
	run(t, "sbverify", "--cert", cert, uki)
	if sum := sha256.Sum256(vp.UKI); hex.EncodeToString(sum[:]) != b.manifest.Verified.UKI.SHA256 {
		t.Errorf("the UKI's sha256 %x is not the manifest's %s", sum, b.manifest.Verified.UKI.SHA256)
	}
	// The root says which version it is, as sysupdate reads it.
	if osrel := catFile(t, root, "/usr/lib/os-release"); !strings.Contains(string(osrel), "\nIMAGE_ID=worker\nIMAGE_VERSION="+version+"\n") {
		t.Errorf("the root's os-release:\n%s", osrel)
	}
}

// reportSizes reports what verified boot adds to the image.
func reportSizes(t *testing.T, b built) {
	t.Helper()
	m := b.manifest
	v := m.Verified
	up := 0
	for _, o := range m.Outputs {
		if o.Format == string(spec.FormatUpdate) {
			for _, f := range o.Files {
				up += int(f.Size)
			}
		}
	}
	figure(t, "verified image: root %d MiB in a %d MiB slot (x2, the second sparse), hash tree %d KiB (%.2f%% of the root), UKI %d MiB; disk %d MiB, %d MiB allocated; update %d MiB",
		m.Image.RootFilesystemSize>>20, v.SlotSize>>20, v.HashTreeSize>>10, 100*float64(v.HashTreeSize)/float64(m.Image.RootFilesystemSize),
		v.UKI.Size>>20, m.Image.Size>>20, allocated(t, b.image)>>20, up>>20)
}

// checkVerityBoot checks a probe report of a verified boot of the image
// as built: root from slot A through dm-verity, no boot counter (nothing
// to judge, so the health check does not run and nothing is blessed).
func checkVerityBoot(t *testing.T, r map[string]string, v *build.VerifiedInfo) {
	t.Helper()
	want := map[string]string{
		"root.source":                       "/dev/mapper/root",
		"root.fstype":                       "squashfs",
		"verity.status":                     "verified",
		"verity.roothash":                   v.RootHash,
		"cmdline":                           v.Cmdline,
		"containerd.ActiveState":            "active",
		"kubelet.ActiveState":               "inactive", // no node config: it waits
		"loader.bootcountpath":              "absent",
		"esp.uki":                           "worker_" + version + ".efi",
		"nodebake-healthy.service.Skipped":  "yes",
		"systemd-bless-boot.ActiveState":    "inactive",
		"nodebake-update.service.LoadState": "loaded",
		"os.image":                          "worker " + version,
	}
	for k, w := range want {
		if r[k] != w {
			t.Errorf("probe %s = %q, want %q", k, r[k], w)
		}
	}
	if !strings.Contains(r["dm.table"], " verity 1 ") || !strings.Contains(r["dm.table"], "panic_on_corruption") {
		t.Errorf("dm table of root %q: want verity with panic_on_corruption", r["dm.table"])
	}
	if !strings.HasPrefix(r["root.options"], "ro") {
		t.Errorf("root mounted %q, want read-only", r["root.options"])
	}
	if !strings.HasPrefix(r["loader.entry"], "worker_"+version) {
		t.Errorf("systemd-boot selected %q, want the UKI worker_%s", r["loader.entry"], version)
	}
	// The real systemd-sysupdate, given the image's transfer definitions,
	// finds this version in slot A (both partitions, by the PARTUUIDs of
	// the root hash) and its UKI, and protects it as the running one.
	if l := r["sysupdate.list"]; !regexp.MustCompile(regexp.QuoteMeta(version) + ` +✓ +current`).MatchString(l) {
		t.Errorf("systemd-sysupdate list: %q, want %s as current", l, version)
	}
	h := v.RootHash
	for _, w := range []string{
		"State: current", "Protected: yes",
		"p2 " + h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32],
		"p3 " + h[32:40] + "-" + h[40:44] + "-" + h[44:48] + "-" + h[48:52] + "-" + h[52:64],
		"/efi/EFI/Linux/worker_" + version + ".efi",
	} {
		if !strings.Contains(r["sysupdate.version"], w) {
			t.Errorf("systemd-sysupdate list %s lacks %q: %s", version, w, r["sysupdate.version"])
		}
	}
}

// boot boots cfg with the probe and returns its report.
func boot(t *testing.T, cfg qemu.Config, what string) map[string]string {
	t.Helper()
	unlock := lockQEMU(t)
	defer unlock()
	cfg.UUID = vmUUID
	cfg.Accel = qemu.Accel()
	vm, err := qemu.Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	kernel, err := vm.WaitForFrom(t.Context(), qemu.Console, 0, regexp.MustCompile(`Linux version`), bootTimeout)
	if err != nil {
		t.Fatalf("%s boot: %v", what, err)
	}
	if _, err = vm.WaitFor(t.Context(), qemu.Report, regexp.MustCompile(`PROBE start`), bootTimeout); err != nil {
		t.Fatalf("%s boot: %v", what, err)
	}
	_, err = vm.WaitForFrom(t.Context(), qemu.Report, 0, regexp.MustCompile(`PROBE done`), bootTimeout)
	if err != nil {
		t.Fatalf("%s boot, the probe did not finish: %v\nreport:\n%s", what, err, vm.ReportLog())
	}
	r := parseProbe(vm.ReportLog())
	running, _ := vm.WaitForFrom(t.Context(), qemu.Report, 0, regexp.MustCompile(`PROBE system=(\S+)`), time.Second)
	r["qemu.kernel"] = strconv.FormatFloat(kernel.SeenAt.Sub(vm.StartedAt).Seconds(), 'f', 1, 64)
	r["qemu.running"] = strconv.FormatFloat(running.SeenAt.Sub(vm.StartedAt).Seconds(), 'f', 1, 64)
	figure(t, "%s boot (%s): QEMU start -> first kernel line %s s (firmware, loader) -> system %s %s s (guest uptime %s s)", what, cfg.Accel,
		r["qemu.kernel"], r["system"], r["qemu.running"], r["running-uptime"])
	for _, k := range []string{"analyze", "root.source", "verity.status", "dm.table", "loader.entry", "loader.bootcountpath", "esp.uki", "stub.info", "secureboot", "failed", "nodebake-healthy.service.Skipped", "kubelet.ConditionResult", "os.image", "sysupdate.list", "sysupdate.version"} {
		t.Logf("  %s=%s", k, r[k])
	}
	for _, line := range grepLines(vm.ConsoleLog(), `nodebake-verity|device-mapper: verity|systemd-boot|Secure Boot`) {
		t.Logf("  console: %s", line)
	}
	_ = vm.WaitExit(t.Context(), 2*time.Minute)
	return r
}

// bootTampered boots an image whose root was changed: the kernel must
// stop on a verity error before the system (and kubelet) comes up.
func bootTampered(t *testing.T, cfg qemu.Config) {
	t.Helper()
	unlock := lockQEMU(t)
	defer unlock()
	cfg.UUID, cfg.Accel, cfg.NoReboot = vmUUID, qemu.Accel(), true
	vm, err := qemu.Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	_, err = vm.WaitFor(t.Context(), qemu.Report, regexp.MustCompile(`PROBE start`), bootTimeout)
	if err == nil {
		t.Fatalf("the tampered image booted:\n%s", vm.ReportLog())
	}
	if !errors.Is(err, qemu.ErrGuestCrashed) {
		t.Fatalf("the tampered image did not crash: %v", err)
	}
	console := vm.ConsoleLog()
	for _, re := range []string{`device-mapper: verity: [^\n]*data block \d+ is corrupted`, `Kernel panic - not syncing: dm-verity device corrupted`} {
		if m := regexp.MustCompile(re).FindString(console); m == "" {
			t.Errorf("the console lacks %q", re)
		} else {
			t.Logf("  console: %s", m)
		}
	}
	if strings.Contains(console, "Started kubelet") || strings.Contains(vm.ReportLog(), "PROBE") {
		t.Error("the tampered image got as far as starting kubelet or the probe")
	}
	_ = vm.WaitExit(t.Context(), time.Minute) // panic=10 reboots, -no-reboot ends QEMU
}

// What the console says when Secure Boot stops an image: the firmware
// refusing the boot loader.
var firmwareRefused = regexp.MustCompile(`BdsDxe: failed to load [^\n]*Access Denied`)

// refused boots cfg under Secure Boot and expects the console to say re,
// and no kernel to start.
func refused(t *testing.T, cfg qemu.Config, re *regexp.Regexp) {
	t.Helper()
	unlock := lockQEMU(t)
	defer unlock()
	cfg.UUID = vmUUID
	cfg.Accel = qemu.Accel()
	vm, err := qemu.Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	m, err := vm.WaitFor(t.Context(), qemu.Console, re, 4*time.Minute)
	if err != nil {
		t.Fatalf("the image was not refused: %v", err)
	}
	t.Logf("  console: %s", strings.TrimSpace(m))
	// Nothing of ours ran: no kernel line, no probe.
	time.Sleep(5 * time.Second)
	if c := vm.ConsoleLog(); strings.Contains(c, "Linux version") || strings.Contains(vm.ReportLog(), "PROBE") {
		t.Error("a kernel started after all")
	}
}

// enrolledKey returns a test key and an OVMF variable store with it
// enrolled and Secure Boot on: a new key with virt-fw-vars, else Debian's
// snakeoil key and store.
func enrolledKey(t *testing.T) (secureboot.Key, string) {
	t.Helper()
	if _, err := exec.LookPath("virt-fw-vars"); err == nil || os.Getenv(secureboot.EnvVirtFwVars) != "" {
		k := secureboot.NewKey(t, "nodebake verified-boot test")
		return k, secureboot.EnrolledVars(t, k)
	}
	t.Log("virt-fw-vars is missing: using Debian's OVMF snakeoil key and store")
	return secureboot.SnakeoilKey(t), secureboot.SnakeoilVarsFile
}

// lockQEMU takes the QEMU lock ($NODEBAKE_QEMU_LOCK): one guest at a time.
func lockQEMU(t *testing.T) func() {
	t.Helper()
	unlock, err := qemu.Lock()
	if err != nil {
		t.Fatal(err)
	}
	return unlock
}

// tamperOffset returns the offset of a byte inside tamperPath's first data
// block in the root filesystem of the verified image, and where that root
// starts in the image.
func tamperOffset(t *testing.T, image string) (off, rootStart int64) {
	t.Helper()
	vp, err := disk.ReadVerifiedParts(image)
	if err != nil {
		t.Fatal(err)
	}
	defer vp.Close()
	root := filepath.Join(t.TempDir(), "root.squashfs")
	writeFrom(t, root, vp.Root)
	_, rootStart, _ = vp.Root.Outer()
	return fileDataOffset(t, root, tamperPath), rootStart
}

// certFingerprint is the sha256 of a PEM certificate's DER, as the
// manifest records the signing certificate.
func certFingerprint(t *testing.T, certPEM []byte) string {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	if b == nil {
		t.Fatal("the test certificate is not PEM")
	}
	sum := sha256.Sum256(b.Bytes)
	return hex.EncodeToString(sum[:])
}

// allocated returns the bytes a (sparse) file occupies.
func allocated(t *testing.T, p string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func writeFrom(t *testing.T, p string, r io.Reader) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(f, r); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
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

// catFile reads a file of a squashfs with rdsquashfs.
func catFile(t *testing.T, squashfs, p string) []byte {
	t.Helper()
	out, err := exec.Command("rdsquashfs", "-c", p, squashfs).Output()
	if err != nil || len(out) == 0 {
		t.Fatalf("rdsquashfs -c %s: %v (%d bytes)", p, err, len(out))
	}
	return out
}

// fileDataOffset returns the offset in the squashfs of the middle of the
// first data block of file p, from rdsquashfs -s.
func fileDataOffset(t *testing.T, squashfs, p string) int64 {
	t.Helper()
	out := run(t, "rdsquashfs", "-s", p, squashfs)
	start := regexp.MustCompile(`(?m)^Blocks start: (\d+)$`).FindStringSubmatch(out)
	size := regexp.MustCompile(`(?m)^\s*Block #0 size: (\d+)`).FindStringSubmatch(out)
	if start == nil || size == nil {
		t.Fatalf("rdsquashfs -s %s: no block start and size:\n%s", p, out)
	}
	off, _ := strconv.ParseInt(start[1], 10, 64)
	n, _ := strconv.ParseInt(size[1], 10, 64)
	if off <= 0 || n <= 0 {
		t.Fatalf("rdsquashfs -s %s: block at %d, %d bytes:\n%s", p, off, n, out)
	}
	return off + n/2
}

func flipByte(t *testing.T, p string, off int64) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x20
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func grepLines(s, re string) []string {
	var out []string
	r := regexp.MustCompile(re)
	for _, l := range strings.Split(strings.ReplaceAll(s, "\r", ""), "\n") {
		if r.MatchString(l) {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}
