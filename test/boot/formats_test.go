package boot

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/builder/build"
	"github.com/nodebake/nodebake/layers/spec"
	"github.com/nodebake/nodebake/test/harness"
	"github.com/nodebake/nodebake/test/qemu"
)

// TestFormats builds the worker image in every single-file format, checks
// each with an independent reader (qemu-img info and compare against the
// raw image for qcow2, VHD and VMDK, a tar listing for the GCE tarball,
// zstd for raw.zst) and boots the qcow2 under QEMU once, the probe
// checking the running system.
func TestFormats(t *testing.T) {
	harness.RequireSlow(t)
	for _, tool := range []string{"qemu-system-x86_64", "qemu-img", "zstd", "tar"} {
		harness.RequireTool(t, tool)
	}
	s := harness.WorkerSpec(t, probeFiles()...)
	s.Output.Formats = []spec.Format{spec.FormatRaw, spec.FormatRawZst, spec.FormatQCOW2, spec.FormatVHD, spec.FormatVMDK, spec.FormatGCE}
	dir := t.TempDir()
	res := harness.BuildImage(t, s, dir)
	raw := res.ImagePath
	rawInfo, err := os.Stat(raw)
	if err != nil {
		t.Fatal(err)
	}
	figure(t, "format raw: %d MiB (%d MiB allocated)", rawInfo.Size()>>20, allocated(t, raw)>>20)
	paths := map[spec.Format]string{}
	for _, o := range res.Outputs {
		paths[o.Format] = o.Path
		figure(t, "format %s: %s, %d MiB (%d MiB allocated)", o.Format, o.Duration.Round(10*time.Millisecond), o.Size()>>20, allocated(t, o.Path)>>20)
	}
	checkManifestOutputs(t, res)

	for _, c := range []struct {
		format  spec.Format
		qemuFmt string
		want    []string
	}{
		{spec.FormatQCOW2, "qcow2", []string{"file format: qcow2", "compat: 1.1"}},
		{spec.FormatVHD, "vpc", []string{"file format: vpc"}},
		{spec.FormatVMDK, "vmdk", []string{"file format: vmdk", "create type: streamOptimized"}},
	} {
		p := paths[c.format]
		info := run(t, "qemu-img", "info", "-f", c.qemuFmt, p)
		for _, w := range c.want {
			if !strings.Contains(info, w) {
				t.Errorf("qemu-img info %s lacks %q:\n%s", filepath.Base(p), w, info)
			}
		}
		// The virtual size is the raw's (VHD rounds up to a whole MiB).
		if !strings.Contains(info, fmt.Sprintf("(%d bytes)", rawInfo.Size())) && !strings.Contains(info, fmt.Sprintf("(%d bytes)", (rawInfo.Size()+1<<20-1)&^(1<<20-1))) {
			t.Errorf("qemu-img info %s: virtual size is not the raw image's %d bytes:\n%s", filepath.Base(p), rawInfo.Size(), info)
		}
		if c.format != spec.FormatVHD {
			run(t, "qemu-img", "check", "-f", c.qemuFmt, p)
		}
		// A size difference (the VHD's whole-MiB padding) passes only when
		// the extra bytes are zero.
		run(t, "qemu-img", "compare", "-f", "raw", "-F", c.qemuFmt, raw, p)
	}

	listing := run(t, "tar", "-tvzf", paths[spec.FormatGCE])
	fields := strings.Fields(listing)
	if lines := strings.Split(strings.TrimSpace(listing), "\n"); len(lines) != 1 || len(fields) < 6 || fields[len(fields)-1] != "disk.raw" {
		t.Errorf("the GCE tarball lists %q, want disk.raw alone", listing)
	}
	cmd := exec.Command("sh", "-c", `zstd -dc "$1" | cmp - "$2"`, "sh", paths[spec.FormatRawZst], raw)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("raw.zst does not decompress to the raw image: %v\n%s", err, b)
	}

	// The qcow2 boots: the probe reports from the running system, then
	// reboots, which ends QEMU.
	ctx := t.Context()
	accel := qemu.Accel()
	vm, err := qemu.Start(ctx, qemu.Config{Disk: paths[spec.FormatQCOW2], DiskFormat: "qcow2", UUID: vmUUID, Accel: accel, NoReboot: true})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	running, err := vm.WaitForFrom(ctx, qemu.Report, 0, regexp.MustCompile(`PROBE system=(\S+)`), bootTimeout)
	if err != nil {
		t.Fatalf("booting the qcow2: %v\nconsole:\n%s", err, tail(vm.ConsoleLog(), 40))
	}
	figure(t, "qcow2 boot (%s): QEMU start -> system %s %s", accel, running.Groups[0], running.SeenAt.Sub(vm.StartedAt).Round(100*time.Millisecond))
	if _, err := vm.WaitForFrom(ctx, qemu.Report, running.End, regexp.MustCompile(`PROBE reboot`), bootTimeout); err != nil {
		t.Fatalf("the probe did not finish: %v\nreport so far:\n%s", err, vm.ReportLog())
	}
	boots := parseProbe(vm.ReportLog())
	if len(boots) != 1 {
		t.Fatalf("want 1 boot in the probe report, got %d:\n%s", len(boots), vm.ReportLog())
	}
	checkBoot(t, 1, boots[0], s)
}

// checkManifestOutputs checks the manifest lists every output with the
// sha256 of the file on disk.
func checkManifestOutputs(t *testing.T, res *build.Result) {
	t.Helper()
	dir := filepath.Dir(res.ManifestPath)
	var formats []string
	for _, o := range res.Manifest.Outputs {
		formats = append(formats, o.Format)
		for _, f := range o.Files {
			got := run(t, "sha256sum", filepath.Join(dir, f.Path))
			if !strings.HasPrefix(got, f.SHA256+" ") {
				t.Errorf("manifest: %s sha256 %s, the file's: %s", f.Path, f.SHA256, got)
			}
		}
	}
	if got := strings.Join(formats, ","); got != "raw,raw.zst,qcow2,vhd,vmdk,gce" {
		t.Errorf("manifest outputs %s", got)
	}
	cmd := exec.Command("sha256sum", "--strict", "-c", filepath.Base(res.SumsPath))
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c %s: %v\n%s", filepath.Base(res.SumsPath), err, b)
	}
}

// allocated returns the bytes a file occupies on disk.
func allocated(t *testing.T, p string) int64 {
	t.Helper()
	out, err := exec.Command("du", "-B1", "--", p).Output()
	if err != nil {
		t.Fatalf("du %s: %v", p, err)
	}
	var n int64
	fmt.Sscan(string(out), &n)
	return n
}

func tail(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
