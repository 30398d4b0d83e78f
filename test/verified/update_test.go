package verified

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodebake/nodebake/builder/disk"
	"github.com/nodebake/nodebake/builder/sysupdate"
	"github.com/nodebake/nodebake/layers/spec"
	"github.com/nodebake/nodebake/test/harness"
	"github.com/nodebake/nodebake/test/qemu"
)

// updateProbeScript updates the node on its first boot and reports on the
// next: it writes "PROBE key=value" lines to ttyS1 each boot; when its
// marker in /var is missing it runs systemd-sysupdate, leaves the marker
// and reboots, otherwise it powers off.
const updateProbeScript = `#!/bin/sh
exec >/dev/ttyS1 2>&1
p() { printf 'PROBE %s\n' "$*"; }
one() { tr '\n' ' ' | sed 's/ *$//'; }
efivar() {
	f=/sys/firmware/efi/efivars/$1
	if [ -e "$f" ]; then cat "$f" | tail -c +5 | tr -d '\000'; else echo absent; fi
}
loader=4a67b082-0a4c-41cf-b6c7-440b29bb8c4f
sysupdate=/usr/lib/systemd/systemd-sysupdate

p start uptime=$(cut -d' ' -f1 /proc/uptime)
p system=$(systemctl is-system-running --wait)
p os.image=$(. /etc/os-release; echo "$IMAGE_ID $IMAGE_VERSION")
p root.source=$(findmnt -n -o SOURCE /)
p verity.roothash=$(veritysetup status root 2>&1 | sed -n 's/^ *root hash: *//p')
p loader.entry=$(efivar LoaderEntrySelected-$loader)
p loader.bootcountpath=$(efivar LoaderBootCountPath-$loader)
p partitions=$(lsblk -n -r -o NAME,PARTLABEL,PARTUUID /dev/vda | one)
marker=/var/lib/nodebake-probe/updated
if [ -f "$marker" ]; then
	p marker=$(cat "$marker")
	p esp.uki=$(ls /efi/EFI/Linux | one)
	p sysupdate.list=$($sysupdate --offline list 2>&1 | one)
	p done
	systemctl poweroff
	exit 0
fi
/usr/lib/systemd/systemd-networkd-wait-online --any --timeout=120
start=$(cut -d' ' -f1 /proc/uptime)
$sysupdate update >/run/sysupdate.log 2>&1
p sysupdate.rc=$?
p sysupdate.update=$(tail -n 20 /run/sysupdate.log | one)
p sysupdate.seconds=$(echo "$(cut -d' ' -f1 /proc/uptime) $start" | awk '{print $1 - $2}')
p esp.uki.after=$(ls /efi/EFI/Linux | one)
p partitions.after=$(lsblk -n -r -o NAME,PARTLABEL,PARTUUID /dev/vda | one)
mkdir -p "${marker%/*}"
cat /proc/sys/kernel/random/boot_id > "$marker"
sync
p reboot
systemctl reboot
`

// updateServer is where the guest finds updates: QEMU forwards it to the
// test's HTTP server on the host's loopback.
const updateServer = "10.0.2.100:8080"

// TestUpdate proves the A/B update path on a verified disk: version 1
// boots, downloads version 2 with systemd-sysupdate from a loopback HTTP
// server into slot B and its UKI onto the ESP, and reboots into version 2
// (boot counting, then blessed), with /var kept.
func TestUpdate(t *testing.T) {
	harness.RequireSlow(t)
	for _, tool := range []string{"qemu-system-x86_64", "qemu-img", "rdsquashfs"} {
		harness.RequireTool(t, tool)
	}
	const v1, v2 = "1.35.4-1", "1.35.4-2"
	dir := t.TempDir()
	build := func(version string) (string, disk.Result) {
		t.Helper()
		script := updateProbeScript
		files := append(probeFiles(), updateSourceFiles(t, version)...)
		for i := range files {
			if files[i].Path == probeScriptPath {
				files[i].Content = &script
			}
		}
		s := harness.WorkerSpec(t, files...)
		out := filepath.Join(dir, version)
		res := harness.BuildImage(t, s, out)
		parts, err := disk.ReadParts(res.ImagePath)
		if err != nil {
			t.Fatal(err)
		}
		defer parts.Close()
		rootFile := filepath.Join(out, "root.squashfs")
		writeRoot(t, parts, rootFile)
		img := parts.Image(disk.Image{
			Seed: []byte(res.Manifest.SpecHash + "/verified"), ModTime: fatTime(s.SourceDateEpoch),
			ESPSize: disk.DefaultESPSize, VarSize: int64(s.Output.VarSize),
			Verified: &disk.Verified{Name: "nodebake", Version: version, Tries: 3,
				Stub: disk.BytesFile("", catFile(t, rootFile, stubPath)), OSRelease: catFile(t, rootFile, "/etc/os-release"),
				Uname: res.Manifest.KernelRelease},
		})
		p := filepath.Join(out, "verified.raw")
		r, err := disk.Write(t.Context(), p, img)
		if err != nil {
			t.Fatal(err)
		}
		return p, r
	}
	img1, r1 := build(v1)
	img2, r2 := build(v2)
	if r1.Verified.RootHash == r2.Verified.RootHash {
		t.Fatal("versions 1 and 2 have the same root")
	}

	// Version 2, published as systemd-sysupdate reads it, served on the
	// host's loopback.
	vp, err := disk.ReadVerifiedParts(img2)
	if err != nil {
		t.Fatal(err)
	}
	defer vp.Close()
	pub := filepath.Join(dir, "updates")
	start := time.Now()
	names, err := sysupdate.Publish(t.Context(), pub, vp)
	if err != nil {
		t.Fatal(err)
	}
	figure(t, "update to %s published in %s: %v", v2, time.Since(start).Round(100*time.Millisecond), names)
	var mu sync.Mutex
	var served []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		served = append(served, r.URL.Path)
		mu.Unlock()
		http.FileServer(http.Dir(pub)).ServeHTTP(w, r)
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)

	unlock := lockQEMU(t)
	defer unlock()
	vm, err := qemu.Start(t.Context(), qemu.Config{Disk: img1, UUID: vmUUID, Accel: qemu.Accel(),
		UserNet: []string{"guestfwd=tcp:" + updateServer + "-tcp:" + u.Host}})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	reboot, err := vm.WaitForFrom(t.Context(), qemu.Report, 0, regexp.MustCompile(`PROBE reboot`), 2*bootTimeout)
	if err != nil {
		t.Fatalf("version 1 did not update: %v\nreport:\n%s", err, vm.ReportLog())
	}
	first := parseProbe(vm.ReportLog()[:reboot.Start])
	for _, k := range []string{"os.image", "verity.roothash", "loader.entry", "partitions", "sysupdate.update", "sysupdate.rc", "sysupdate.seconds", "esp.uki.after", "partitions.after"} {
		t.Logf("  boot 1 %s=%s", k, first[k])
	}
	mu.Lock()
	t.Logf("  served: %v", served)
	mu.Unlock()
	if first["sysupdate.rc"] != "0" {
		t.Errorf("systemd-sysupdate update exited %s: %s", first["sysupdate.rc"], first["sysupdate.update"])
	}
	figure(t, "update download and install in the guest (%s): %s s for %d MiB", qemu.Accel(), first["sysupdate.seconds"], (vp.Root.Size()+vp.Hash.Size()+int64(len(vp.UKI)))>>20)
	if first["os.image"] != "nodebake "+v1 || first["verity.roothash"] != r1.Verified.RootHash {
		t.Errorf("boot 1 runs %q with root hash %s, want version 1 with %s", first["os.image"], first["verity.roothash"], r1.Verified.RootHash)
	}
	done, err := vm.WaitForFrom(t.Context(), qemu.Report, reboot.End, regexp.MustCompile(`PROBE done`), bootTimeout)
	if err != nil {
		t.Fatalf("version 2 did not come up: %v\nreport:\n%s", err, vm.ReportLog()[reboot.End:])
	}
	second := parseProbe(vm.ReportLog()[reboot.End:done.End])
	for _, k := range []string{"os.image", "root.source", "verity.roothash", "loader.entry", "loader.bootcountpath", "partitions", "marker", "esp.uki", "sysupdate.list"} {
		t.Logf("  boot 2 %s=%s", k, second[k])
	}
	want := map[string]string{
		"os.image":             "nodebake " + v2,
		"root.source":          "/dev/mapper/root",
		"verity.roothash":      r2.Verified.RootHash,
		"loader.bootcountpath": `\EFI\Linux\nodebake_` + v2 + `+2-1.efi`,
	}
	for k, v := range want {
		if second[k] != v {
			t.Errorf("boot 2 %s = %q, want %q", k, second[k], v)
		}
	}
	if second["marker"] == "" {
		t.Error("/var lost the marker of boot 1")
	}
	if !strings.Contains(second["partitions"], "nodebake_"+v2) || !strings.Contains(second["partitions"], "nodebake_"+v1) {
		t.Errorf("partitions %q: want both versions' slots", second["partitions"])
	}
	// sysupdate wrote the UKI with three tries; systemd-boot used one and
	// systemd-bless-boot marked the boot good.
	if !strings.Contains(first["esp.uki.after"], "nodebake_"+v2+"+3-0.efi") {
		t.Errorf("UKIs after the update %q, want nodebake_%s+3-0.efi", first["esp.uki.after"], v2)
	}
	if got := second["esp.uki"]; got != "nodebake_"+v1+".efi nodebake_"+v2+".efi" {
		t.Errorf("UKIs on version 2 %q, want both, version 2 blessed", got)
	}
	if !regexp.MustCompile(regexp.QuoteMeta(v2) + ` ✓ current ` + regexp.QuoteMeta(v1) + ` ✓ installed`).MatchString(second["sysupdate.list"]) {
		t.Errorf("systemd-sysupdate list on version 2: %q", second["sysupdate.list"])
	}
	_ = vm.WaitExit(t.Context(), 2*time.Minute)
}

// updateSourceFiles are updateFiles with the source the guest reaches.
func updateSourceFiles(t *testing.T, version string) []spec.File {
	t.Helper()
	transfers, err := sysupdate.Transfers(sysupdate.Config{Name: "nodebake", Source: "http://" + updateServer + "/", Tries: 3, AllowHTTP: true})
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
