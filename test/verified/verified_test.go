package verified

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodebake/nodebake/builder/authenticode"
	"github.com/nodebake/nodebake/builder/build"
	"github.com/nodebake/nodebake/builder/disk"
	"github.com/nodebake/nodebake/builder/sysupdate"
	"github.com/nodebake/nodebake/layers/spec"
	"github.com/nodebake/nodebake/test/harness"
	"github.com/nodebake/nodebake/test/qemu"
	"github.com/nodebake/nodebake/test/secureboot"
)

// bootTimeout bounds each boot, sized for TCG on a busy 2-core host.
const bootTimeout = 8 * time.Minute

// vmUUID is the guests' fixed SMBIOS UUID.
const vmUUID = "6e6f6465-6261-6b65-2d76-657269747931"

// In the root filesystem of the image: systemd-stub, os-release, and the
// file the tamper test changes (PID 1, read by every boot).
const (
	stubPath      = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"
	osReleasePath = "/usr/lib/os-release"
	tamperPath    = "/usr/lib/systemd/systemd"
)

// version is the image version of the verified disks.
const version = "1.35.4-1"

func figure(t *testing.T, format string, args ...any) {
	t.Helper()
	s := fmt.Sprintf(format, args...)
	t.Log(s)
	fmt.Println("FIGURE " + s)
}

// fixture is the worker image built by the pipeline and what is needed
// to turn it into verified disks.
type fixture struct {
	dir      string
	plain    string // the image in the default layout
	res      *build.Result
	seed     []byte
	modTime  time.Time
	varSize  int64
	parts    *disk.Parts
	rootFile string // its root filesystem, copied out
	stub     []byte
	osrel    []byte
}

// newFixture builds the worker image (with the probe) from the pipeline.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	harness.RequireSlow(t)
	for _, tool := range []string{"qemu-system-x86_64", "qemu-img", "rdsquashfs", "veritysetup", "sgdisk", "fsck.fat"} {
		harness.RequireTool(t, tool)
	}
	s := harness.WorkerSpec(t, append(probeFiles(), updateFiles(t)...)...)
	f := &fixture{dir: t.TempDir()}
	f.res = harness.BuildImage(t, s, f.dir)
	f.plain = f.res.ImagePath
	f.seed = []byte(f.res.Manifest.SpecHash + "/verified")
	f.modTime = fatTime(s.SourceDateEpoch)
	f.varSize = int64(s.Output.VarSize)
	var err error
	if f.parts, err = disk.ReadParts(f.plain); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.parts.Close() })
	f.rootFile = filepath.Join(f.dir, "root.squashfs")
	writeRoot(t, f.parts, f.rootFile)
	f.stub = catFile(t, f.rootFile, stubPath)
	f.osrel = catFile(t, f.rootFile, osReleasePath)
	return f
}

// convert writes the verified disk of the built image to out, signed
// when signer is not nil.
func (f *fixture) convert(t *testing.T, out string, signer *authenticode.Signer) disk.Result {
	t.Helper()
	start := time.Now()
	img := f.parts.Image(disk.Image{
		Seed:    f.seed,
		ModTime: f.modTime,
		ESPSize: disk.DefaultESPSize,
		VarSize: f.varSize,
		Verified: &disk.Verified{
			Name:      "nodebake",
			Version:   version,
			Tries:     3,
			Stub:      disk.BytesFile("", f.stub),
			OSRelease: f.osrel,
			Uname:     f.res.Manifest.KernelRelease,
			Signer:    signer,
		},
	})
	r, err := disk.Write(t.Context(), out, img)
	if err != nil {
		t.Fatalf("writing the verified disk: %v", err)
	}
	figure(t, "verified disk written in %s: root %d MiB in a %d MiB slot, hash tree %d KiB, UKI %d MiB; disk %d MiB, %d MiB allocated (the plain one: %d MiB, %d MiB allocated)",
		time.Since(start).Round(100*time.Millisecond), r.RootSize>>20, partSize(r.Partitions[1])>>20, r.Verified.HashSize>>10,
		r.Verified.UKISize>>20, r.Size>>20, allocated(t, out)>>20, f.res.Manifest.Image.Size>>20, allocated(t, f.plain)>>20)
	return r
}

// TestVerifiedBoot builds the worker image with the pipeline, turns it
// into a verified disk with builder/disk and boots it: plain (for the
// time), verified, tampered, and signed under enforced Secure Boot.
func TestVerifiedBoot(t *testing.T) {
	f := newFixture(t)
	plain, convert, rootFile := f.plain, f.convert, f.rootFile

	verified := filepath.Join(f.dir, "verified.raw")
	vres := convert(t, verified, nil)
	checkVerifiedDisk(t, verified, vres)

	t.Run("plain", func(t *testing.T) {
		r := boot(t, qemu.Config{Disk: plain}, "plain")
		if r["root.source"] == "/dev/mapper/root" {
			t.Errorf("the plain image has a verity root: %v", r)
		}
	})

	t.Run("verity", func(t *testing.T) {
		r := boot(t, qemu.Config{Disk: verified}, "verity")
		checkVerityBoot(t, r, vres)
	})

	t.Run("tamper", func(t *testing.T) {
		tampered := filepath.Join(t.TempDir(), "tampered.raw")
		copyFile(t, verified, tampered)
		off := fileDataOffset(t, rootFile, tamperPath)
		flipByte(t, tampered, partOffset(vres.Partitions[1])+off)
		t.Logf("flipped the byte at offset %d of the root filesystem, inside %s", off, tamperPath)
		bootTampered(t, tampered)
	})

	t.Run("secureboot", func(t *testing.T) {
		harness.RequireTool(t, "qemu-system-x86_64")
		key, vars := enrolledKey(t)
		signer, err := authenticode.ParseSigner(key.KeyPEM, key.CertPEM)
		if err != nil {
			t.Fatal(err)
		}
		signed := filepath.Join(t.TempDir(), "signed.raw")
		sres := convert(t, signed, signer)
		if sres.Verified.RootHash != vres.Verified.RootHash {
			t.Errorf("signing changed the root hash")
		}
		sb := &qemu.SecureBoot{Vars: vars}

		t.Run("signed", func(t *testing.T) {
			r := boot(t, qemu.Config{Disk: signed, SecureBoot: sb}, "signed, Secure Boot")
			checkVerityBoot(t, r, sres)
			if r["secureboot"] != "1" {
				t.Errorf("SecureBoot variable %q in the guest, want 1", r["secureboot"])
			}
		})
		t.Run("other-key", func(t *testing.T) {
			other, err := authenticode.ParseSigner(otherKey(t))
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(t.TempDir(), "other.raw")
			convert(t, p, other)
			refused(t, qemu.Config{Disk: p, SecureBoot: sb}, firmwareRefused)
		})
		t.Run("unsigned", func(t *testing.T) {
			refused(t, qemu.Config{Disk: verified, SecureBoot: sb}, firmwareRefused)
		})
		// systemd-boot signed with the enrolled key, the UKI with another:
		// the boot loader starts, the firmware refuses the UKI it loads.
		t.Run("foreign-uki", func(t *testing.T) {
			harness.RequireTool(t, "mcopy")
			other, err := authenticode.ParseSigner(otherKey(t))
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(t.TempDir(), "foreign-uki.raw")
			r := convert(t, p, other)
			loader := filepath.Join(t.TempDir(), "BOOTX64.EFI")
			run(t, "mcopy", "-n", "-i", fmt.Sprintf("%s@@%d", signed, partOffset(sres.Partitions[0])), "::/EFI/BOOT/BOOTX64.EFI", loader)
			esp := fmt.Sprintf("%s@@%d", p, partOffset(r.Partitions[0]))
			for _, dst := range []string{"::/EFI/BOOT/BOOTX64.EFI", "::/EFI/systemd/systemd-bootx64.efi"} {
				run(t, "mcopy", "-o", "-i", esp, loader, dst)
			}
			refused(t, qemu.Config{Disk: p, SecureBoot: sb}, loaderRefused)
		})
	})
}

// checkVerifiedDisk reads the verified disk back with independent tools.
func checkVerifiedDisk(t *testing.T, p string, r disk.Result) {
	t.Helper()
	if out := run(t, "sgdisk", "-v", p); !strings.Contains(out, "No problems found") {
		t.Errorf("sgdisk -v:\n%s", out)
	}
	dir := t.TempDir()
	root, hash := filepath.Join(dir, "root"), filepath.Join(dir, "hash")
	extract(t, p, r.Partitions[1], root)
	extract(t, p, r.Partitions[2], hash)
	start := time.Now()
	run(t, "veritysetup", "verify", root, hash, r.Verified.RootHash)
	t.Logf("veritysetup verify of slot A: ok in %s", time.Since(start).Round(10*time.Millisecond))
	esp := filepath.Join(dir, "esp")
	extract(t, p, r.Partitions[0], esp)
	run(t, "fsck.fat", "-n", esp)
}

// checkVerityBoot checks a probe report of a verified boot.
func checkVerityBoot(t *testing.T, r map[string]string, res disk.Result) {
	t.Helper()
	want := map[string]string{
		"root.source":                      "/dev/mapper/root",
		"root.fstype":                      "squashfs",
		"verity.status":                    "verified",
		"verity.roothash":                  res.Verified.RootHash,
		"cmdline":                          res.Cmdline,
		"containerd.ActiveState":           "active",
		"kubelet.ActiveState":              "inactive", // no node config: it waits
		"boot-complete.target.ActiveState": "active",
	}
	for k, v := range want {
		if r[k] != v {
			t.Errorf("probe %s = %q, want %q", k, r[k], v)
		}
	}
	if !strings.Contains(r["dm.table"], " verity 1 ") || !strings.Contains(r["dm.table"], "panic_on_corruption") {
		t.Errorf("dm table of root %q: want verity with panic_on_corruption", r["dm.table"])
	}
	if !strings.HasPrefix(r["root.options"], "ro") {
		t.Errorf("root mounted %q, want read-only", r["root.options"])
	}
	if !strings.HasPrefix(r["loader.entry"], "nodebake_"+version) {
		t.Errorf("systemd-boot selected %q, want the UKI nodebake_%s", r["loader.entry"], version)
	}
	// The real systemd-sysupdate, given the image's transfer definitions,
	// finds this version in slot A (both partitions, by the PARTUUIDs of
	// the root hash) and its UKI, and protects it as the running one.
	if l := r["sysupdate.list"]; !regexp.MustCompile(regexp.QuoteMeta(version) + ` +✓ +current`).MatchString(l) {
		t.Errorf("systemd-sysupdate list: %q, want %s as current", l, version)
	}
	h := res.Verified.RootHash
	for _, w := range []string{
		"State: current", "Protected: yes",
		"p2 " + h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32],
		"p3 " + h[32:40] + "-" + h[40:44] + "-" + h[44:48] + "-" + h[48:52] + "-" + h[52:64],
		"/efi/EFI/Linux/nodebake_" + version + ".efi",
	} {
		if !strings.Contains(r["sysupdate.version"], w) {
			t.Errorf("systemd-sysupdate list %s lacks %q: %s", version, w, r["sysupdate.version"])
		}
	}
	// Boot counting: systemd-boot counted this try down before starting
	// the UKI, and systemd-bless-boot marked the boot good afterwards
	// (there is no health check yet: any boot that reaches
	// boot-complete.target is good).
	if want := `\EFI\Linux\nodebake_` + version + `+2-1.efi`; r["loader.bootcountpath"] != want {
		t.Errorf("LoaderBootCountPath %q, want %q", r["loader.bootcountpath"], want)
	}
	if r["systemd-bless-boot.ActiveState"] != "active" || r["esp.uki"] != "nodebake_"+version+".efi" {
		t.Errorf("systemd-bless-boot %s, UKIs on the ESP %q; want active and the blessed nodebake_%s.efi", r["systemd-bless-boot.ActiveState"], r["esp.uki"], version)
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
	for _, k := range []string{"analyze", "root.source", "verity.status", "dm.table", "loader.entry", "loader.bootcountpath", "loader.vars", "esp.uki", "stub.info", "secureboot", "esp.mount", "failed", "systemd-bless-boot.ActiveState", "kubelet.ConditionResult", "os.image", "sysupdate.list", "sysupdate.version"} {
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
func bootTampered(t *testing.T, p string) {
	t.Helper()
	unlock := lockQEMU(t)
	defer unlock()
	vm, err := qemu.Start(t.Context(), qemu.Config{Disk: p, UUID: vmUUID, Accel: qemu.Accel(), NoReboot: true})
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
// refusing the boot loader, systemd-boot failing to load a UKI.
var (
	firmwareRefused = regexp.MustCompile(`BdsDxe: failed to load [^\n]*Access Denied`)
	loaderRefused   = regexp.MustCompile(`(?i)error loading [^\n]*nodebake_[^\n]*(access denied|security violation)`)
)

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

// otherKey is a key no store enrolls.
func otherKey(t *testing.T) ([]byte, []byte) {
	k := secureboot.NewKey(t, "nodebake other key")
	return k.KeyPEM, k.CertPEM
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

// updateFiles are the files phase 3's build will add to a verified
// image: the sysupdate transfer definitions and an os-release with the
// image's IMAGE_ID and IMAGE_VERSION (sysupdate protects the running
// version, %A). The source is never reached: the probe lists offline.
func updateFiles(t *testing.T) []spec.File {
	t.Helper()
	transfers, err := sysupdate.Transfers(sysupdate.Config{Name: "nodebake", Source: "http://127.0.0.1:9/updates", Tries: 3})
	if err != nil {
		t.Fatal(err)
	}
	var files []spec.File
	for _, tr := range transfers {
		c := tr.Content
		files = append(files, spec.File{Path: tr.Path, Content: &c, Mode: "0644"})
	}
	osrel, err := disk.OSRelease([]byte(debianOSRelease), "nodebake", version)
	if err != nil {
		t.Fatal(err)
	}
	c := string(osrel)
	return append(files, spec.File{Path: "/etc/os-release", Content: &c, Mode: "0644"})
}

// debianOSRelease is trixie's os-release.
const debianOSRelease = `PRETTY_NAME="Debian GNU/Linux 13 (trixie)"
NAME="Debian GNU/Linux"
VERSION_ID="13"
VERSION="13 (trixie)"
VERSION_CODENAME=trixie
DEBIAN_VERSION_FULL=13
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
`

// fatTime is the ESP timestamp the build uses: SOURCE_DATE_EPOCH, but
// not before FAT's 1980.
func fatTime(epoch int64) time.Time {
	return time.Unix(max(epoch, time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC).Unix()), 0).UTC()
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

func partOffset(p disk.Partition) int64 { return int64(p.FirstLBA) * 512 }
func partSize(p disk.Partition) int64   { return int64(p.LastLBA-p.FirstLBA+1) * 512 }

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// writeRoot copies the root filesystem of parts to p.
func writeRoot(t *testing.T, parts *disk.Parts, p string) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := parts.WriteRoot(context.Background(), f); err != nil {
		t.Fatal(err)
	}
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

func extract(t *testing.T, img string, part disk.Partition, dst string) {
	t.Helper()
	run(t, "dd", "if="+img, "of="+dst, "bs=1M", "iflag=skip_bytes,count_bytes", "conv=sparse",
		"skip="+strconv.FormatInt(partOffset(part), 10), "count="+strconv.FormatInt(partSize(part), 10), "status=none")
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	run(t, "cp", "--sparse=always", src, dst)
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
