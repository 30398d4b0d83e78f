package platform

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/builder/publish/netboot"
	"github.com/nodebake/nodebake/layers/firstboot"
	"github.com/nodebake/nodebake/layers/firstboot/platform"
	"github.com/nodebake/nodebake/layers/spec"
	"github.com/nodebake/nodebake/test/harness"
	"github.com/nodebake/nodebake/test/netlab"
	"github.com/nodebake/nodebake/test/qemu"
)

// bootTimeout bounds one boot to the probe's report, sized for TCG on a
// loaded 2-core host.
const bootTimeout = 10 * time.Minute

// The nodes' networks: wg0 in 10.8.0.0/24, pods in 10.200.1.0/24 (inside
// the image's cluster CIDR), the lab's guests in netlab.DefaultSubnet.
const podCIDR = "10.200.1.0/24"

// grownDiskSize is the disk the EC2 boot writes the image to.
const grownDiskSize = 20 << 30

func figure(t *testing.T, format string, args ...any) {
	t.Helper()
	s := fmt.Sprintf(format, args...)
	t.Log(s)
	fmt.Println("FIGURE " + s)
}

// suite is what the boots share: one image, built once.
type suite struct {
	image    string // the raw image
	sum      string // its sha256
	gce      string // its GCE archive
	firstb   string // the nodebake-firstboot program
	epoch    int64
	ca       *testCA
	grown    string // the 20 GiB disk of the EC2 boots
	ec2Files string // the sums of the files the first EC2 boot wrote to /var
	dir      string // kept for all the boots
	nodes    int
	statuses map[string]firstboot.Status
}

// TestPlatformBoots builds one image and boots it once per platform, each
// in a network lab of its own with the firmware strings that platform
// sets and a server playing its service at the real address: EC2 (the
// real amazon-ec2-metadata-mock, IMDSv2 required), GCE, Azure (with the
// ready report), OpenStack (a config-2 ISO; the metadata service), NoCloud
// (a cidata ISO) and network boot (an https URL). Each boot must show the
// status naming the source, node-ready, a running kubelet bound to the
// wg0 address; the EC2 boot also grows /var on a 20 GiB disk and tries
// the metadata addresses from a pod. Then the failures: the second boot
// of that disk with corrupted user data, Azure whose metadata service
// never answers, and plain QEMU with no platform data (what detection
// adds where no platform matches).
func TestPlatformBoots(t *testing.T) {
	harness.RequireSlow(t)
	netlab.Require(t)
	for _, tool := range []string{"qemu-system-x86_64", "qemu-img", "genisoimage", "sgdisk", "tar"} {
		harness.RequireTool(t, tool)
	}
	start := time.Now()
	s := &suite{ca: newTestCA(t), firstb: harness.Firstboot(t), statuses: map[string]firstboot.Status{}, dir: t.TempDir()}
	harness.EC2MetadataMock(t) // built (once) before the image, for the EC2 boots' labs
	// The spec's files come from one directory, the spec's own: cnitool
	// is staged there.
	w := harness.WorkerSpec(t)
	w.Dir = t.TempDir()
	run(t, "cp", harness.CNITool(t), filepath.Join(w.Dir, "cnitool"))
	w.Files = append(w.Files, probeFiles("cnitool", s.ca.certPEM)...)
	w.Kubernetes.PodNetwork = spec.PodNetworkBridge
	w.Output.VarSize, w.Output.DiskSize = 0, 2*spec.GiB
	w.Output.Formats = []spec.Format{spec.FormatRaw, spec.FormatGCE}
	if err := w.Validate(); err != nil {
		t.Fatal(err)
	}
	s.epoch = w.SourceDateEpoch
	res := harness.BuildImage(t, w, t.TempDir())
	s.image, s.sum = res.ImagePath, res.Manifest.Image.SHA256
	for _, o := range res.Outputs {
		if o.Format == spec.FormatGCE {
			s.gce = o.Path
		}
	}
	figure(t, "one image for every platform: sha256 %s, %d MiB (output.diskSize 2GiB), built in %s", s.sum, res.Manifest.Image.Size>>20, time.Since(start).Round(time.Second))
	if res.Manifest.Image.Size != 2<<30 {
		t.Errorf("the image has %d bytes, want output.diskSize's 2 GiB", res.Manifest.Image.Size)
	}
	t.Run("gce-disk.raw", func(t *testing.T) { checkGCEArchive(t, s.gce) })

	boots := []struct {
		name string
		fn   func(*suite, *testing.T)
	}{
		{"ec2", (*suite).bootEC2},
		{"ec2-corrupt-user-data", (*suite).bootEC2Corrupt},
		{"gce", (*suite).bootGCE},
		{"azure", (*suite).bootAzure},
		{"azure-imds-silent", (*suite).bootAzureSilent},
		{"openstack-config-2", (*suite).bootConfigDrive},
		{"openstack-metadata", (*suite).bootOpenStackMetadata},
		{"nocloud", (*suite).bootNoCloud},
		{"netboot", (*suite).bootNetboot},
		{"plain-no-platform-data", (*suite).bootPlain},
	}
	for _, b := range boots {
		t.Run(b.name, func(t *testing.T) { b.fn(s, t) })
	}
	// The image is the same after all the boots: each ran on an overlay
	// or a copy.
	if sum := fileSHA256(t, s.image); sum != s.sum {
		t.Errorf("the image changed: sha256 %s, was %s", sum, s.sum)
	}
	figure(t, "platform boots: %d boots, %s in all", s.nodes, time.Since(start).Round(time.Second))
}

// checkGCEArchive extracts disk.raw and wants sgdisk -v clean: the backup
// GPT at the end of the padded disk.
func checkGCEArchive(t *testing.T, archive string) {
	if archive == "" {
		t.Fatal("the build wrote no GCE archive")
	}
	dir := t.TempDir()
	run(t, "tar", "-xzf", archive, "-C", dir)
	raw := filepath.Join(dir, "disk.raw")
	fi, err := os.Stat(raw)
	if err != nil || fi.Size()%(1<<30) != 0 {
		t.Fatalf("disk.raw: %v, %v; want a whole number of GiB", fi, err)
	}
	out := run(t, "sgdisk", "-v", raw)
	if !strings.Contains(out, "No problems found") {
		t.Errorf("sgdisk -v disk.raw:\n%s", out)
	}
	t.Logf("sgdisk -v disk.raw (%d GiB): %s", fi.Size()>>30, strings.TrimSpace(out))
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func fileSHA256(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 4<<20)
	for {
		n, err := f.Read(buf)
		h.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// guest is one boot: its firmware, drives and lab.
type guest struct {
	name     string
	identity qemu.Identity
	// disk is the boot disk: the image through an overlay, or, with
	// direct, this file itself.
	disk   string
	direct bool
	// kernel, initrd and cmdline boot a netboot bundle instead.
	kernel, initrd, cmdline string
	drives                  []string
	// credentials are SMBIOS type 11 systemd credentials (name=value).
	credentials []string
}

// boot starts g in lab, waits for the probe's report and the poweroff,
// and returns the report and the console.
func (s *suite) boot(t *testing.T, lab *netlab.Lab, g guest, afterLease func(netip.Addr)) (report, string) {
	t.Helper()
	s.nodes++
	cfg := qemu.Config{Disk: g.disk, Direct: g.direct, Kernel: g.kernel, Initrd: g.initrd, Append: g.cmdline,
		ExtraDisks: g.drives, NoReboot: true}
	if g.disk == "" && g.kernel == "" {
		cfg.Disk = s.image
	}
	g.identity.Apply(&cfg)
	for _, c := range g.credentials {
		cfg.SMBIOS = append(cfg.SMBIOS, "type=11,value=io.systemd.credential:"+c)
	}
	mac := lab.Attach(t, &cfg)
	ctx := t.Context()
	vm, err := qemu.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	t.Logf("%s: VM work directory %s (NODEBAKE_KEEP_VM=1 keeps it), lab %s", g.name, vm.Dir(), lab.Name())
	wctx, cancel := vm.Watch(ctx)
	lease, err := lab.WaitLease(wctx, mac, bootTimeout)
	cancel()
	if err != nil {
		t.Fatalf("%v\n%s", err, vm.ConsoleTail(40))
	}
	if afterLease != nil {
		afterLease(lease.Addr)
	}
	done, err := vm.WaitForFrom(ctx, qemu.Report, 0, regexp.MustCompile(`PLAT done\r?\n`), bootTimeout)
	if err != nil {
		t.Fatalf("%s: the probe did not finish: %v\nreport so far:\n%s", g.name, err, vm.ReportLog())
	}
	if err := vm.WaitExit(ctx, 2*time.Minute); err != nil {
		t.Errorf("%s: after the probe's poweroff: %v", g.name, err)
	}
	r := parseReport(vm.ReportLog())
	t.Logf("%s: QEMU start -> probe done %s (%s); system %s, failed units: %s; first boot's journal:\n%s", g.name,
		done.SeenAt.Sub(vm.StartedAt).Round(100*time.Millisecond), qemu.Accel(), r["system"], r["failed"], r.decoded("journal.nodebake-firstboot"))
	return r, vm.ConsoleLog()
}

// status decodes the status file the probe reported.
func (s *suite) status(t *testing.T, name string, r report) firstboot.Status {
	t.Helper()
	var st firstboot.Status
	if err := json.Unmarshal([]byte(r.decoded("status")), &st); err != nil {
		t.Fatalf("status.json %q: %v", r.decoded("status"), err)
	}
	s.statuses[name] = st
	figure(t, "%s: first boot %.1f ms under %s (platform %q, detection %.2f ms), source %q",
		name, float64(st.DurationMicros)/1000, qemu.Accel(), st.Platform, float64(st.DetectMicros)/1000, st.Source)
	return st
}

// configured checks a boot that got its node config from source on
// platform.
func (s *suite) configured(t *testing.T, name string, r report, console string, n node, platform, source string) firstboot.Status {
	t.Helper()
	st := s.status(t, name, r)
	if !st.OK || st.Source != source || st.Platform != platform || st.NodeName != n.name {
		t.Errorf("status: ok %v, source %q, platform %q, node %q (%s); want ok from %q on %q as %q", st.OK, st.Source, st.Platform, st.NodeName, st.Error, source, platform, n.name)
	}
	if r["node-ready"] != "yes" {
		t.Errorf("node-ready: %q", r["node-ready"])
	}
	// "Active" with no API server: the kubelet runs, failing to register
	// and retrying; no restarts.
	for k, want := range map[string]string{"kubelet.ActiveState": "active", "kubelet.SubState": "running", "kubelet.NRestarts": "0", "kubelet.Result": "success"} {
		if r[k] != want {
			t.Errorf("%s = %q, want %q; kubelet's last lines:\n%s", k, r[k], want, r.decoded("kubelet.journal"))
		}
	}
	if want := "--node-ip=" + n.addr + " "; !strings.Contains(r["kubelet.args"]+" ", want) {
		t.Errorf("kubelet runs as %q, want %s", r["kubelet.args"], want)
	}
	if r["wg0"] != n.addr+"/24" {
		t.Errorf("wg0 has %q, want %s/24", r["wg0"], n.addr)
	}
	if r["hostname"] != n.name {
		t.Errorf("hostname %q, want %s", r["hostname"], n.name)
	}
	if u := r.props("unit.nodebake-firstboot"); u["ActiveState"] != "active" || u["Result"] != "success" {
		t.Errorf("nodebake-firstboot.service: %s", r["unit.nodebake-firstboot"])
	}
	noSecrets(t, n, r, console)
	return st
}

// failedClosed checks a boot whose first boot failed: the status says
// why and names the source, node-ready is absent and the kubelet never
// started.
func (s *suite) failedClosed(t *testing.T, name string, r report, console string, n node, platform, source string) firstboot.Status {
	t.Helper()
	st := s.status(t, name, r)
	if st.OK || st.Platform != platform || st.Source != source || st.Error == "" {
		t.Errorf("status: ok %v, platform %q, source %q, error %q; want a failure of %q on %q", st.OK, st.Platform, st.Source, st.Error, source, platform)
	}
	if r["node-ready"] != "no" {
		t.Errorf("node-ready: %q", r["node-ready"])
	}
	for k, want := range map[string]string{"kubelet.ActiveState": "inactive", "kubelet.ConditionResult": "no", "kubelet.NRestarts": "0"} {
		if r[k] != want {
			t.Errorf("%s = %q, want %q", k, r[k], want)
		}
	}
	if u := r.props("unit.nodebake-firstboot"); u["ActiveState"] != "failed" || u["ExecMainStatus"] != "1" {
		t.Errorf("nodebake-firstboot.service: %s", r["unit.nodebake-firstboot"])
	}
	// One line on the console says why, naming the first problem.
	if line := "nodebake-firstboot: " + st.Field + ": " + st.Error; !strings.Contains(console, line) {
		t.Errorf("the console lacks %q", line)
	}
	noSecrets(t, n, r, console)
	return st
}

// noSecrets fails when a node config's private keys show up anywhere a
// node shows things: the console, first boot's journal, the status file.
func noSecrets(t *testing.T, n node, r report, console string) {
	t.Helper()
	places := map[string]string{"the console": console, "first boot's journal": r.decoded("journal.nodebake-firstboot"), "status.json": r.decoded("status")}
	for what, text := range places {
		for _, secret := range n.secrets {
			if strings.Contains(text, secret) {
				t.Errorf("%s holds a private key of the node config", what)
			}
		}
	}
}

// bootEC2 boots the image written to a 20 GiB disk as an EC2 Nitro
// instance; the node config is the instance's gzip'd user data, served by
// the real amazon-ec2-metadata-mock with IMDSv2 required. /var grows to
// the disk; a pod on the bridge network cannot reach the metadata
// addresses, the host can.
func (s *suite) bootEC2(t *testing.T) {
	n := s.ca.nodeConfig(t, "worker-ec2", "10.8.0.11", podCIDR, "10.77.0.1:51820")
	s.grown = filepath.Join(s.dir, "ec2-disk.raw")
	run(t, "cp", "--sparse=always", s.image, s.grown)
	if err := os.Truncate(s.grown, grownDiskSize); err != nil {
		t.Fatal(err)
	}
	lab := netlab.New(t)
	lab.ServeEC2Metadata(t, gzipped(t, n.yaml))
	wire := &recorder{}
	lab.ServeHTTP(t, netlab.WireServerAddr+":80", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { wire.add(r) }))
	serveLine(t, lab, netlab.MetadataAddr+":53", "HTTP/1.0 200 port 53")
	r, console := s.boot(t, lab, guest{name: "ec2", identity: qemu.EC2Identity("i-0123456789abcdef0"), disk: s.grown, direct: true,
		credentials: []string{podCheckCredential + "=1"}}, func(guestAddr netip.Addr) {
		// Pod traffic is not masqueraded: the lab answers pods through the
		// node, as a cloud's network would.
		if out, err := exec.Command("ip", "-n", lab.Name(), "route", "add", podCIDR, "via", guestAddr.String()).CombinedOutput(); err != nil {
			t.Errorf("routing the pod network in the lab: %v: %s", err, out)
		}
	})
	s.configured(t, "ec2", r, console, n, "ec2", "ec2-imds user-data")
	s.ec2Files = r.decoded("var.files")
	s.checkGrown(t, r, true)
	if !strings.Contains(r.decoded("journal.nodebake-firstboot"), "platform ec2 (dmi sys_vendor \"Amazon EC2\"): asking ec2-imds user-data within 1m0s") {
		t.Errorf("first boot's journal:\n%s", r.decoded("journal.nodebake-firstboot"))
	}
	s.checkPodIsolation(t, r, wire)
}

// checkGrown checks /var after a boot on the 20 GiB disk, and the disk
// itself with sgdisk after the guest powered off.
func (s *suite) checkGrown(t *testing.T, r report, first bool) {
	t.Helper()
	num := func(k string) int64 { v, _ := strconv.ParseInt(r[k], 10, 64); return v }
	if num("disk.bytes") != grownDiskSize {
		t.Errorf("the guest's disk %s has %s bytes, want %d", r["disk"], r["disk.bytes"], int64(grownDiskSize))
	}
	if fs := num("var.fs.bytes"); fs < 19<<30 {
		t.Errorf("/var is %d MiB (partition %s MiB), want at least 19 GiB", fs>>20, strconv.FormatInt(num("var.partition.bytes")>>20, 10))
	}
	grow := r.decoded("journal.nodebake-grow-var")
	t.Logf("grow-var: %s", strings.TrimSpace(lastLine(grow)))
	if first {
		if !regexp.MustCompile(`nodebake-firstboot grow-var: /var \(vda3\) grown from 1\d{3} MiB to (19|20)\d{3} MiB on vda in `).MatchString(grow) {
			t.Errorf("grow-var's journal:\n%s", grow)
		}
	} else if !strings.Contains(grow, "already takes the free space of vda") {
		t.Errorf("grow-var's journal on the second boot:\n%s", grow)
	}
	figure(t, "/var on a 20 GiB disk (boot %d): partition %d MiB, filesystem %d MiB; grow-var %s, makefs %s, growfs %s",
		map[bool]int{true: 1, false: 2}[first], num("var.partition.bytes")>>20, num("var.fs.bytes")>>20,
		unitTime(r.props("unit.nodebake-grow-var")), unitTime(r.props("makefs")), unitTime(r.props("growfs")))
	out := run(t, "sgdisk", "-v", s.grown)
	if !strings.Contains(out, "No problems found") {
		t.Errorf("sgdisk -v on the grown disk:\n%s", out)
	}
	p := run(t, "sgdisk", "-p", s.grown)
	if !strings.Contains(p, "last usable sector is 41943006") {
		t.Errorf("sgdisk -p: the GPT does not cover the 20 GiB disk:\n%s", p)
	}
	t.Logf("sgdisk -p on the grown disk:\n%s", p)
}

func unitTime(p map[string]string) string {
	a, _ := strconv.ParseInt(p["ExecMainStartTimestampMonotonic"], 10, 64)
	b, _ := strconv.ParseInt(p["ExecMainExitTimestampMonotonic"], 10, 64)
	if a == 0 || b < a {
		return "(did not run: " + p["ActiveState"] + ")"
	}
	return (time.Duration(b-a) * time.Microsecond).Round(time.Millisecond).String()
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// checkPodIsolation checks what the pod and the host reached.
func (s *suite) checkPodIsolation(t *testing.T, r report, wire *recorder) {
	t.Helper()
	podAddr, err := netip.ParsePrefix(r["pod.addr"])
	if err != nil || !netip.MustParsePrefix(podCIDR).Contains(podAddr.Addr()) {
		t.Fatalf("the pod's address %q (%v), want one in %s; cnitool add said:\n%s", r["pod.addr"], err, podCIDR, r.decoded("pod.add"))
	}
	t.Logf("pod %s, default route %q; metadata:80 %q, wireserver:80 %q, metadata:53 %q; host: metadata:80 %q, wireserver:80 %q",
		r["pod.addr"], r["pod.route"], r["pod.metadata80"], r["pod.wireserver80"], r["pod.metadata53"], r["host.metadata80"], r["host.wireserver80"])
	// The pod's connections to the metadata addresses time out (dropped);
	// its DNS port gets through, and so does the host.
	for _, k := range []string{"pod.metadata80", "pod.wireserver80"} {
		if !strings.HasPrefix(r[k], "rc=124") {
			t.Errorf("%s: %q, want no answer (rc=124)", k, r[k])
		}
	}
	if r["pod.metadata53"] != "rc=0 HTTP/1.0 200 port 53" {
		t.Errorf("pod.metadata53: %q, want the lab's answer on port 53", r["pod.metadata53"])
	}
	if !strings.HasPrefix(r["host.metadata80"], "rc=0 HTTP/1.") || !strings.HasPrefix(r["host.wireserver80"], "rc=0 HTTP/1.") {
		t.Errorf("the host: metadata %q, wireserver %q; want answers", r["host.metadata80"], r["host.wireserver80"])
	}
	for _, req := range wire.requests() {
		t.Logf("the wireserver saw %s", req)
	}
	if n := len(wire.requests()); n != 1 {
		t.Errorf("the wireserver saw %d requests, want the host's one", n)
	}
	counters := r.decoded("guard.counters")
	t.Logf("the guard's counters:\n%s", counters)
	for _, addr := range []string{"169.254.169.254", "168.63.129.16"} {
		m := regexp.MustCompile(`(?m)^\s*(\d+)\s+\d+\s+DROP\s.*\s` + regexp.QuoteMeta(addr) + `\s`).FindStringSubmatch(counters)
		if m == nil || m[1] == "0" {
			t.Errorf("the guard dropped no packet to %s", addr)
		}
	}
}

// bootEC2Corrupt boots the grown disk again, with user data cut short in
// the middle of a certificate: the node fails closed, /var keeps its
// size and the marker of the first boot.
func (s *suite) bootEC2Corrupt(t *testing.T) {
	if s.grown == "" {
		t.Skip("the EC2 boot did not make its disk")
	}
	n := s.ca.nodeConfig(t, "worker-ec2", "10.8.0.11", podCIDR, "10.77.0.1:51820")
	lab := netlab.New(t)
	i := bytes.Index(n.yaml, []byte("nodeCert: |"))
	if i < 0 {
		t.Fatalf("no nodeCert in the node config:\n%s", n.yaml)
	}
	lab.ServeEC2Metadata(t, n.yaml[:i+200]) // cut short inside the node's certificate
	r, console := s.boot(t, lab, guest{name: "ec2-corrupt", identity: qemu.EC2Identity("i-0123456789abcdef0"), disk: s.grown, direct: true}, nil)
	st := s.failedClosed(t, "ec2-corrupt-user-data", r, console, n, "ec2", "ec2-imds user-data")
	if st.Field != "kubernetes.nodeCert" || !strings.Contains(st.Error, "is truncated") {
		t.Errorf("first problem %s: %s; want kubernetes.nodeCert truncated", st.Field, st.Error)
	}
	if r["marker"] == "" {
		t.Errorf("the marker written to /var on the first boot is gone")
	}
	// All or nothing: the first boot's files stay as they were.
	if got := r.decoded("var.files"); got != s.ec2Files || strings.Count(got, "\n") < 6 {
		t.Errorf("the node's files on /var changed on the failed boot:\n%s\nwere:\n%s", got, s.ec2Files)
	}
	s.checkGrown(t, r, false)
}

// bootGCE boots as a Compute Engine VM; the node config is the instance
// attribute nodebake-node, gzip'd and base64'd
// (nodebake-node-encoding: base64).
func (s *suite) bootGCE(t *testing.T) {
	n := s.ca.nodeConfig(t, "worker-gce", "10.8.0.12", podCIDR, "10.77.0.1:51820")
	lab := netlab.New(t)
	md := &gceMetadata{attrs: map[string]string{
		"nodebake-node":          base64.StdEncoding.EncodeToString(gzipped(t, n.yaml)),
		"nodebake-node-encoding": "base64",
	}}
	lab.ServeHTTP(t, netlab.MetadataAddr+":80", md)
	r, console := s.boot(t, lab, guest{name: "gce", identity: qemu.GCEIdentity()}, nil)
	s.configured(t, "gce", r, console, n, "gce", "gce-metadata nodebake-node")
	t.Logf("GCE metadata requests: %q", md.requests())
}

// bootAzure boots as an Azure VM without an agent; the node config is
// IMDS userData, and the wireserver must get the Ready report.
func (s *suite) bootAzure(t *testing.T) {
	n := s.ca.nodeConfig(t, "worker-azure", "10.8.0.13", podCIDR, "10.77.0.1:51820")
	lab := netlab.New(t)
	imds := &azureIMDS{userData: n.yaml}
	wire := &wireServer{}
	lab.ServeHTTP(t, netlab.MetadataAddr+":80", imds)
	lab.ServeHTTP(t, netlab.WireServerAddr+":80", wire)
	r, console := s.boot(t, lab, guest{name: "azure", identity: qemu.AzureIdentity()}, nil)
	st := s.configured(t, "azure", r, console, n, "azure", "azure-imds userData")
	h := wire.health()
	if len(h) != 1 || h[0].State != "Ready" || h[0].Incarnation != "3" || h[0].ContainerID != azureContainerID || h[0].InstanceID != azureInstanceID {
		t.Errorf("health reports %+v, want one Ready for the goal state", h)
	}
	if st.Report != "Ready" {
		t.Errorf("status report %q, want Ready", st.Report)
	}
}

// bootAzureSilent boots as an Azure VM whose metadata service accepts
// connections and never answers: the node fails closed within the
// platform's time limit (60 s) and tells the wireserver
// NotReady/ProvisioningFailed.
func (s *suite) bootAzureSilent(t *testing.T) {
	n := s.ca.nodeConfig(t, "worker-azure", "10.8.0.13", podCIDR, "10.77.0.1:51820")
	lab := netlab.New(t)
	wire := &wireServer{}
	lab.ServeHTTP(t, netlab.MetadataAddr+":80", &azureIMDS{stall: true})
	lab.ServeHTTP(t, netlab.WireServerAddr+":80", wire)
	r, console := s.boot(t, lab, guest{name: "azure-silent", identity: qemu.AzureIdentity()}, nil)
	st := s.failedClosed(t, "azure-imds-silent", r, console, n, "azure", "azure-imds userData")
	if !strings.Contains(st.Error, "no answer in time: gave up after ") {
		t.Errorf("error %q, want the time limit named", st.Error)
	}
	// Within the documented limit: 60 s for the lookup (and a little for
	// the rest), before the report.
	if d := time.Duration(st.DurationMicros) * time.Microsecond; d < 60*time.Second || d > 70*time.Second {
		t.Errorf("first boot gave up after %s, want the 60 s time limit", d)
	}
	h := wire.health()
	if len(h) != 1 || h[0].State != "NotReady" || h[0].SubStatus != "ProvisioningFailed" || !strings.Contains(h[0].Description, "no answer in time") {
		t.Errorf("health reports %+v, want one NotReady/ProvisioningFailed naming the time limit", h)
	}
	if st.Report != "NotReady" {
		t.Errorf("status report %q, want NotReady", st.Report)
	}
}

// bootConfigDrive boots as an OpenStack Nova VM with a config-2 ISO made
// by genisoimage; the metadata service must not be asked.
func (s *suite) bootConfigDrive(t *testing.T) {
	n := s.ca.nodeConfig(t, "worker-os-drive", "10.8.0.14", podCIDR, "10.77.0.1:51820")
	iso := harness.ISO(t, "config-2", map[string][]byte{
		platform.ConfigDriveUserData:      n.yaml,
		"openstack/latest/meta_data.json": []byte(`{"uuid": "4f1c0d52-0000-4000-8000-00000000c0d2", "name": "worker-os-drive"}`),
	})
	lab := netlab.New(t)
	md := &openStackMetadata{}
	lab.ServeHTTP(t, netlab.MetadataAddr+":80", md)
	r, console := s.boot(t, lab, guest{name: "openstack-config-2", identity: qemu.OpenStackIdentity(), drives: []string{iso}}, nil)
	s.configured(t, "openstack-config-2", r, console, n, "openstack", "openstack config-2 drive /dev/vdb")
	if got := md.requests(); len(got) != 0 {
		t.Errorf("the metadata service was asked %q although a config drive is there", got)
	}
}

// bootOpenStackMetadata boots as an OpenStack Nova VM without a config
// drive: the node config comes from the metadata service.
func (s *suite) bootOpenStackMetadata(t *testing.T) {
	n := s.ca.nodeConfig(t, "worker-os-md", "10.8.0.15", podCIDR, "10.77.0.1:51820")
	lab := netlab.New(t)
	md := &openStackMetadata{userData: n.yaml}
	lab.ServeHTTP(t, netlab.MetadataAddr+":80", md)
	r, console := s.boot(t, lab, guest{name: "openstack-metadata", identity: qemu.OpenStackIdentity()}, nil)
	s.configured(t, "openstack-metadata", r, console, n, "openstack", "openstack-metadata user_data")
}

// bootNoCloud boots plain QEMU with a NoCloud cidata ISO.
func (s *suite) bootNoCloud(t *testing.T) {
	n := s.ca.nodeConfig(t, "worker-nocloud", "10.8.0.16", podCIDR, "10.77.0.1:51820")
	iso := harness.ISO(t, "cidata", map[string][]byte{"user-data": n.yaml, "meta-data": []byte("instance-id: worker-nocloud\n")})
	lab := netlab.New(t)
	r, console := s.boot(t, lab, guest{name: "nocloud", identity: qemu.PlainIdentity(), drives: []string{iso}}, nil)
	s.configured(t, "nocloud", r, console, n, "nocloud", "nocloud cidata drive /dev/vdb")
}

// bootNetboot boots the image's network-boot bundle (the same root
// filesystem, served over HTTP in the lab) with the node config at an
// https URL pinned by its sha256 on the kernel command line; the server's
// certificate is signed by the test CA the image trusts.
func (s *suite) bootNetboot(t *testing.T) {
	n := s.ca.nodeConfig(t, "worker-netboot", "10.8.0.17", podCIDR, "10.77.0.1:51820")
	lab := netlab.New(t)
	gw := lab.Gateway().String()
	b, err := netboot.Write(t.Context(), filepath.Join(t.TempDir(), "netboot"), s.image, netboot.Options{
		FirstbootBinary: s.firstb,
		BaseURL:         "http://" + gw,
		ModTime:         time.Unix(s.epoch, 0),
	})
	if err != nil {
		t.Fatal(err)
	}
	if root := rootPartitionSHA256(t, s.image, b.RootSize); root != b.RootSHA256 {
		t.Errorf("the bundle's root.squashfs (sha256 %s) is not the image's root filesystem (%s)", b.RootSHA256, root)
	}
	lab.ServeHTTP(t, gw+":80", http.FileServer(http.Dir(b.Dir)))
	nodes := &recorder{}
	ln, err := lab.Listen("tcp", gw+":443")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nodes.add(r)
		if r.URL.Path != "/nodes/worker-netboot.yaml" {
			http.NotFound(w, r)
			return
		}
		w.Write(n.yaml)
	})}
	go srv.Serve(tls.NewListener(ln, s.ca.serverTLS(t, net.ParseIP(gw))))
	t.Cleanup(func() { srv.Close() })
	sum := sha256.Sum256(n.yaml)
	url := "https://" + gw + "/nodes/worker-netboot.yaml?token=not-for-logs"
	cmdline := b.Cmdline + " nodebake.url=" + url + " nodebake.sha256=" + hex.EncodeToString(sum[:])
	r, console := s.boot(t, lab, guest{name: "netboot", identity: qemu.PlainIdentity(), kernel: b.Kernel, initrd: b.Initrd, cmdline: cmdline}, nil)
	st := s.configured(t, "netboot", r, console, n, "metal", "metal nodebake.url https://"+gw+"/nodes/worker-netboot.yaml")
	if strings.Contains(r.decoded("status"), "not-for-logs") || strings.Contains(r.decoded("journal.nodebake-firstboot"), "not-for-logs") {
		t.Errorf("the URL's query shows in the status or the journal")
	}
	if got := nodes.requests(); len(got) != 1 {
		t.Errorf("the node config server saw %q, want one request", got)
	}
	t.Logf("netboot: /var from %q, first boot report %q", r["var.source"], st.Report)
}

// bootPlain boots plain QEMU with no platform data and no node config at
// all: detection finds no platform from the firmware and the drives,
// nothing asks the network (the lab's metadata address sees no request),
// and the node fails closed once the NODEBAKE drive it waits for (3 s)
// has not appeared. What detection cost is the time first boot adds on a
// machine that is no platform.
func (s *suite) bootPlain(t *testing.T) {
	n := s.ca.nodeConfig(t, "worker-plain", "10.8.0.18", podCIDR, "10.77.0.1:51820")
	lab := netlab.New(t)
	md := &recorder{}
	lab.ServeHTTP(t, netlab.MetadataAddr+":80", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { md.add(r) }))
	r, console := s.boot(t, lab, guest{name: "plain", identity: qemu.PlainIdentity()}, nil)
	st := s.failedClosed(t, "plain-no-platform-data", r, console, n, "none", "")
	if st.Field != "source" || !strings.Contains(st.Error, "no node config found") || st.PlatformReason != "no platform matched" {
		t.Errorf("first problem %s: %s (platform reason %q); want no node config found, no platform matched", st.Field, st.Error, st.PlatformReason)
	}
	if st.DetectMicros <= 0 {
		t.Errorf("status.json has no detection time (detectMicros %d)", st.DetectMicros)
	}
	// Only the drive wait, not a platform's time limit.
	if d := time.Duration(st.DurationMicros) * time.Microsecond; d > 15*time.Second {
		t.Errorf("first boot gave up after %s, want about the 3 s drive wait (no network wait)", d)
	}
	if got := md.requests(); len(got) != 0 {
		t.Errorf("the metadata address was asked %q on a machine that is no platform", got)
	}
	figure(t, "plain QEMU, no platform data: detection adds %.2f ms under %s (platform %q: %s); first boot failed closed after %.1f s (the NODEBAKE drive wait)",
		float64(st.DetectMicros)/1000, qemu.Accel(), st.Platform, st.PlatformReason, float64(st.DurationMicros)/1e6)
}

// rootPartitionSHA256 hashes the first size bytes of the image's root
// partition (the second), which is what a netboot bundle serves.
func rootPartitionSHA256(t *testing.T, image string, size int64) string {
	t.Helper()
	out := run(t, "sgdisk", "-i", "2", image)
	m := regexp.MustCompile(`First sector: (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("sgdisk -i 2:\n%s", out)
	}
	first, _ := strconv.ParseInt(m[1], 10, 64)
	f, err := os.Open(image)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 4<<20)
	for off := first * 512; off < first*512+size; {
		k := min(int64(len(buf)), first*512+size-off)
		if _, err := f.ReadAt(buf[:k], off); err != nil {
			t.Fatal(err)
		}
		h.Write(buf[:k])
		off += k
	}
	return hex.EncodeToString(h.Sum(nil))
}
