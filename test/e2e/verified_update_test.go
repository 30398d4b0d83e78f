package e2e

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodebake/nodebake/builder/build"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
	"github.com/nodebake/nodebake/layers/spec"
	"github.com/nodebake/nodebake/layers/worker"
	"github.com/nodebake/nodebake/test/harness"
	"github.com/nodebake/nodebake/test/qemu"
)

// The update probe: a unit and a script baked into the verified update
// test's images. On every boot it reports on ttyS1, as "UPDATE key=value"
// lines: which version runs, from which root, what systemd-boot counted,
// the kubelet's version and the /var marker written on the node's first
// boot; then, once the boot has settled, the health check's and
// systemd-bless-boot's verdicts, the UKIs on the ESP and the slots.
//
// The report comes in two units: the first part runs before the health
// check may start (so a try that the health check reboots at once, on a
// slow host, still reports which version and boot counter it ran), the
// second once the boot has settled.
const (
	updateProbeEarlyUnitPath  = "/etc/systemd/system/nodebake-update-probe-early.service"
	updateProbeEarlyWantsPath = "/etc/systemd/system/multi-user.target.wants/nodebake-update-probe-early.service"
	updateProbeUnitPath       = "/etc/systemd/system/nodebake-update-probe.service"
	updateProbeWantsPath      = "/etc/systemd/system/multi-user.target.wants/nodebake-update-probe.service"
	updateProbePath           = "/usr/local/lib/nodebake-update/probe.sh"
	// updateMarker is written on the node's first boot, on /var.
	updateMarker = "/var/lib/nodebake-update-test/first-boot"
)

const updateProbeEarlyUnit = `[Unit]
Description=nodebake verified update test probe, before the health check (reports on ttyS1)
After=local-fs.target
Before=` + worker.HealthUnit + `

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=` + updateProbePath + ` early
`

const updateProbeUnit = `[Unit]
Description=nodebake verified update test probe, once settled (reports on ttyS1)
After=nodebake-update-probe-early.service

[Service]
Type=exec
ExecStart=` + updateProbePath + ` settled
`

const updateProbeScript = `#!/bin/sh
exec >/dev/ttyS1 2>&1
p() { printf 'UPDATE %s\n' "$*"; }
one() { tr '\n' ' ' | sed 's/ *$//'; }
efivar() {
	f=/sys/firmware/efi/efivars/$1
	if [ -e "$f" ]; then cat "$f" | tail -c +5 | tr -d '\000'; else echo absent; fi
}
loader=4a67b082-0a4c-41cf-b6c7-440b29bb8c4f
if [ "$1" = early ]; then
boot=$(cat /proc/sys/kernel/random/boot_id)
if [ ! -f ` + updateMarker + ` ]; then
	mkdir -p "$(dirname ` + updateMarker + `)" && echo "$boot" > ` + updateMarker + ` && sync
fi
p boot=$boot
p os.image=$(. /etc/os-release; echo "$IMAGE_ID $IMAGE_VERSION")
p verity.roothash=$(veritysetup status root 2>&1 | sed -n 's/^ *root hash: *//p')
p loader.entry=$(efivar LoaderEntrySelected-$loader)
p loader.bootcountpath=$(efivar LoaderBootCountPath-$loader)
p kubelet.version=$(/usr/local/bin/kubelet --version 2>&1)
p marker=$(cat ` + updateMarker + `)
p started
exit 0
fi
systemctl is-system-running --wait >/dev/null 2>&1
p health=$(systemctl show -p ActiveState,Result,ConditionResult ` + worker.HealthUnit + ` | one)
p health.done=$(systemctl show -p ExecMainExitTimestampMonotonic --value ` + worker.HealthUnit + `)
p analyze=$(systemd-analyze 2>&1 | head -n 1)
p bless=$(systemctl show -p ActiveState --value systemd-bless-boot.service)
p esp.uki=$(ls /efi/EFI/Linux | one)
p slots=$(lsblk -n -r -o PARTLABEL /dev/vda | one)
p sysupdate.list=$(` + worker.SysupdateProgram + ` --offline list 2>&1 | one)
p settled
`

func updateProbeFiles() []spec.File {
	early, unit, script := updateProbeEarlyUnit, updateProbeUnit, updateProbeScript
	return []spec.File{
		{Path: updateProbeEarlyUnitPath, Content: &early, Mode: "0644"},
		{Path: updateProbeEarlyWantsPath, Link: "../nodebake-update-probe-early.service", Mode: "0777"},
		{Path: updateProbeUnitPath, Content: &unit, Mode: "0644"},
		{Path: updateProbeWantsPath, Link: "../nodebake-update-probe.service", Mode: "0777"},
		{Path: updateProbePath, Content: &script, Mode: "0755"},
	}
}

// updateBoot is one boot's probe report.
type updateBoot map[string]string

func (b updateBoot) has(k string) bool { _, ok := b[k]; return ok }

// updateBoots splits a report log into boots ("UPDATE boot=" starts one).
func updateBoots(log string) []updateBoot {
	var out []updateBoot
	for _, line := range strings.Split(strings.ReplaceAll(log, "\r", ""), "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "UPDATE ")
		if !ok {
			continue
		}
		k, v, _ := strings.Cut(rest, "=")
		if k == "boot" {
			out = append(out, updateBoot{})
		}
		if len(out) > 0 {
			out[len(out)-1][k] = v
		}
	}
	return out
}

// The update test's setup: where the guest finds updates, the node's name
// and addresses, the image versions.
const (
	updateGuestIP     = "10.0.2.101"
	updatePort        = 8080
	updateNode        = "verified01"
	updateNodeUUID    = "6e6f6465-6261-6b65-2d75-706461746501"
	updateWGAddr      = "10.8.0.221/24"
	updatePodCIDR     = "10.200.21.0/24"
	updateTries       = 3
	updateCalendar    = "minutely"
	updateSlotSize    = 512 * spec.MiB
	updateWGPort      = 51820
	brokenKubeletFlag = "nodebake-test-no-such-flag"
)

// updateVersion is one version of the image.
type updateVersion struct {
	version, kubernetes string
	// broken gives the kubelet a flag it does not know: it cannot start.
	broken bool
	spec   *spec.Spec
	res    *build.Result
	dir    string // its update output
}

// TestVerifiedUpdate proves A/B updates with rollback on a node of a real
// cluster (a control plane on the host's loopback):
//
//  1. Version 1 (Kubernetes v1.35.3) boots with a node config and becomes
//     Ready. Its update timer looks for updates every minute at a loopback
//     HTTP server, which serves version 1's own update: nothing to do.
//  2. The server serves version 2 (Kubernetes v1.35.4): the node downloads
//     it into the other slot with systemd-sysupdate and reboots into it;
//     systemd-boot counts the boot, the health check passes and
//     systemd-bless-boot marks it good. The node is Ready again under the
//     same name, with the new kubelet and the same /var.
//  3. The server serves version 3, whose kubelet cannot start: the node
//     installs it and reboots; each boot the health check fails and the
//     machine reboots, until the tries are used up and systemd-boot boots
//     version 2 again, by itself. The node is Ready on version 2.
func TestVerifiedUpdate(t *testing.T) {
	harness.RequireSlow(t)
	if os.Getenv(EnvE2E) != "1" {
		t.Skipf("end-to-end test: set %s=1 (and %s=1) to run it", EnvE2E, harness.EnvSlow)
	}
	harness.RequireTool(t, "qemu-system-x86_64")
	testStart := time.Now()
	ctx := t.Context()
	work := t.TempDir()

	versions := []*updateVersion{
		{version: "1.35.3-1", kubernetes: "v1.35.3"},
		{version: "1.35.4-2", kubernetes: "v1.35.4"},
		{version: "1.35.4-3", kubernetes: "v1.35.4", broken: true},
	}
	v1, v2, v3 := versions[0], versions[1], versions[2]
	for _, v := range versions {
		s := harness.WorkerSpecWith(t, func(s *spec.Spec) { harness.SetKubernetesVersion(s, v.kubernetes) },
			append(diagFiles(), updateProbeFiles()...)...)
		s.Kubernetes.PodNetwork = spec.PodNetworkBridge
		s.Output.Formats = nil
		s.Output.VerifiedBoot = &spec.VerifiedBoot{Enabled: true, Version: v.version, Tries: updateTries, SlotSize: updateSlotSize,
			Updates: &spec.Updates{Source: fmt.Sprintf("http://%s:%d/", updateGuestIP, updatePort), AllowHTTP: true, Timer: updateCalendar}}
		if v.broken {
			s.Kubelet.Settings = map[string]*string{brokenKubeletFlag: ptrTo("true")}
		}
		s.Default()
		if err := s.Validate(); err != nil {
			t.Fatalf("the spec of version %s: %v", v.version, err)
		}
		start := time.Now()
		v.spec = s
		v.res = harness.BuildImage(t, s, filepath.Join(work, v.version))
		up, ok := v.res.Plan.Output(spec.FormatUpdate)
		if !ok {
			t.Fatalf("version %s: no update output", v.version)
		}
		v.dir = up.Path
		figure(t, "version %s (Kubernetes %s%s) built in %s: root hash %s", v.version, v.kubernetes,
			map[bool]string{true: ", kubelet cannot start"}[v.broken], time.Since(start).Round(100*time.Millisecond), v.res.Manifest.Verified.RootHash)
	}

	// The update server: what it serves is switched from version to
	// version; it records what the guest fetched and when.
	srv := newUpdateServer(t, v1.dir)

	// The control plane runs the newest Kubernetes of the versions, so
	// the kubelet is never newer than the API server.
	bins := controlPlaneBinaries(t, v2.spec)
	logDir := t.TempDir()
	cp := startControlPlane(t, bins, logDir, freePort(t), []string{updateNode})
	nodeYAML := updateNodeConfig(t, work, cp, v1)

	unlock, err := qemu.Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	vm, err := qemu.Start(ctx, qemu.Config{
		Disk: v1.res.ImagePath, UUID: updateNodeUUID, Memory: 2048, CPUs: 2, Accel: qemu.Accel(),
		// Every reboot is a power cycle: OVMF under TCG can hang on a
		// warm reset (the firmware spins, the console stays silent).
		ColdReboot: true,
		FwCfg:      map[string]string{"opt/io.systemd.credentials/nodebake.node": nodeYAML},
		UserNet: []string{
			cp.guestForward(t),
			harness.GuestForward(t, updateGuestIP, updatePort, srv.addr),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	t.Cleanup(func() {
		if t.Failed() {
			// The guest's console last: what a reader of the end of the
			// output sees first.
			for _, n := range []string{"kube-apiserver", "kube-controller-manager"} {
				t.Logf("--- %s log (last lines) ---\n%s", n, tailFile(filepath.Join(logDir, n+".log"), 20))
			}
			t.Logf("--- report (last lines) ---\n%s", lastLines(vm.ReportLog(), 40))
			t.Logf("--- console (last lines) ---\n%s", vm.ConsoleTail(80))
		}
	})
	u := &updateRun{t: t, cp: cp, vm: vm, srv: srv}

	// 1. Version 1 joins the cluster.
	first := u.waitBoot(1, v1, "")
	u.waitReady(v1, "")
	if first["loader.bootcountpath"] != "absent" || !strings.Contains(first["health"], "ActiveState=inactive") {
		t.Errorf("the image as built: boot counter %q, health check %q; want neither", first["loader.bootcountpath"], first["health"])
	}
	uid, err := cp.kubectl(ctx, "", "get", "node", updateNode, "-o", "jsonpath={.metadata.uid}")
	if err != nil || uid == "" {
		t.Fatalf("the node object: %q, %v", uid, err)
	}
	imageFigures(t, v1)

	// 2. Version 2 is published: the node updates itself and reboots.
	pub := time.Now()
	srv.serve(v2.dir)
	second := u.waitBoot(2, v2, first["boot"])
	fetched := srv.fetched(v2, pub)
	readyAt := u.waitReady(v2, first["boot"])
	figure(t, "update to %s: published -> downloaded %s (%d MiB in %s, %d requests) -> rebooted into it %s -> node Ready %s",
		v2.version, fetched.done.Sub(pub).Round(time.Second), fetched.bytes>>20, fetched.took.Round(100*time.Millisecond), fetched.requests,
		u.bootSeen.Sub(pub).Round(time.Second), readyAt.Sub(pub).Round(time.Second))
	want := map[string]string{
		"loader.bootcountpath": `\EFI\Linux\worker_` + v2.version + `+2-1.efi`,
		"marker":               first["boot"],
		"bless":                "active",
	}
	u.check(second, want)
	// A figure only: that the health check passed is checked above.
	if us, err := strconv.ParseInt(second["health.done"], 10, 64); err != nil || us <= 0 {
		t.Logf("version 2's boot: no time for the health check's end (%q)", second["health.done"])
	} else {
		figure(t, "version %s's counted boot: kernel start -> health check passed (boot marked good) %.1f s; %s",
			v2.version, float64(us)/1e6, second["analyze"])
	}
	if !strings.Contains(second["health"], "Result=success") || !strings.Contains(second["esp.uki"], "worker_"+v2.version+".efi") ||
		!strings.Contains(second["esp.uki"], "worker_"+v1.version+".efi") {
		t.Errorf("version 2's boot: health %q, UKIs %q; want healthy, blessed, version 1 kept", second["health"], second["esp.uki"])
	}
	if got, err := cp.kubectl(ctx, "", "get", "node", updateNode, "-o", "jsonpath={.metadata.uid}"); err != nil || got != uid {
		t.Errorf("the node object after the update: uid %q (%v), before %q", got, err, uid)
	}

	// 3. Version 3 cannot run its kubelet: the node tries it three times
	// and falls back to version 2 by itself.
	pub = time.Now()
	srv.serve(v3.dir)
	var tries []updateBoot
	for i := range updateTries {
		b := u.waitBoot(3+i, v3, "")
		tries = append(tries, b)
		t.Logf("version 3, try %d: boot counter %s, kubelet %s", i+1, b["loader.bootcountpath"], b["kubelet.version"])
	}
	back := u.waitBoot(3+updateTries, v2, "")
	backAt := u.bootSeen
	readyAt = u.waitReady(v2, second["boot"])
	figure(t, "update to the broken %s: published -> %d failed boots -> version %s again %s -> node Ready %s",
		v3.version, len(tries), v2.version, backAt.Sub(pub).Round(time.Second), readyAt.Sub(pub).Round(time.Second))
	for i, b := range tries {
		if w := fmt.Sprintf(`\EFI\Linux\worker_%s+%d-%d.efi`, v3.version, updateTries-1-i, i+1); b["loader.bootcountpath"] != w {
			t.Errorf("version 3, try %d: boot counter %q, want %q", i+1, b["loader.bootcountpath"], w)
		}
		if b["marker"] != first["boot"] {
			t.Errorf("version 3, try %d: /var marker %q, want %q", i+1, b["marker"], first["boot"])
		}
	}
	if m := regexp.MustCompile(`nodebake-health: unhealthy: [^\r\n]*`).FindString(vm.ConsoleLog()); !strings.Contains(m, "kubelet.service restarted") {
		t.Errorf("the console does not say why version 3 is unhealthy: %q", m)
	} else {
		t.Logf("console: %s", m)
	}
	u.check(back, map[string]string{"loader.bootcountpath": "absent", "marker": first["boot"], "bless": "inactive"})
	if !strings.Contains(back["esp.uki"], "worker_"+v2.version+".efi") || !strings.Contains(back["esp.uki"], "worker_"+v3.version+"+0-"+fmt.Sprint(updateTries)+".efi") {
		t.Errorf("UKIs after the fallback %q: want version 2 blessed and version 3 with no tries left", back["esp.uki"])
	}
	if got, err := cp.kubectl(ctx, "", "get", "node", updateNode, "-o", "jsonpath={.metadata.uid}"); err != nil || got != uid {
		t.Errorf("the node object after the fallback: uid %q (%v), before %q", got, err, uid)
	}
	// The node stays on version 2: version 3 is installed, so the timer
	// finds nothing to do (watched for two more of its runs).
	time.Sleep(2*time.Minute + 10*time.Second)
	if n := len(updateBoots(vm.ReportLog())); n != 3+updateTries {
		t.Errorf("%d boots after the fallback settled, want %d: the node left version 2 again", n, 3+updateTries)
	}
	if n := vm.Restarts(); n != 2+updateTries {
		t.Errorf("the guest rebooted %d times, want %d (each boot after the first one)", n, 2+updateTries)
	}
	figure(t, "verified update test: %s", time.Since(testStart).Round(time.Second))
}

// updateRun follows the guest of the update test.
type updateRun struct {
	t        *testing.T
	cp       *controlPlane
	vm       *qemu.VM
	srv      *updateServer
	bootSeen time.Time // when waitBoot saw the boot it returned
}

// waitBoot waits until the guest has reported its n-th boot (counted from
// 1) up to the point where it settled, and checks that it runs version v
// from v's root; notBoot is a boot id it must not have.
func (u *updateRun) waitBoot(n int, v *updateVersion, notBoot string) updateBoot {
	t := u.t
	t.Helper()
	deadline := time.Now().Add(20 * time.Minute)
	for {
		if err := u.vm.Crashed(); err != nil {
			t.Fatalf("waiting for boot %d (%s): %v", n, v.version, err)
		}
		if u.vm.Exited() {
			t.Fatalf("waiting for boot %d (%s): QEMU exited", n, v.version)
		}
		bs := updateBoots(u.vm.ReportLog())
		// A boot is over for the test once it settled, or, when its
		// health check failed and it rebooted first, once the next began.
		if len(bs) > n || len(bs) == n && bs[n-1].has("settled") {
			b := bs[n-1]
			u.bootSeen = time.Now()
			if b["os.image"] != "worker "+v.version || b["verity.roothash"] != v.res.Manifest.Verified.RootHash {
				t.Fatalf("boot %d runs %q from root %s, want version %s from %s\n%v", n, b["os.image"], b["verity.roothash"], v.version, v.res.Manifest.Verified.RootHash, b)
			}
			if notBoot != "" && b["boot"] == notBoot {
				t.Fatalf("boot %d has the boot id of an earlier one", n)
			}
			t.Logf("boot %d: %s, kubelet %s, boot counter %s, health %s, UKIs %s", n, b["os.image"], b["kubelet.version"], b["loader.bootcountpath"], b["health"], b["esp.uki"])
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("boot %d (version %s) not seen within 20 minutes; %d boots reported", n, v.version, len(bs))
		}
		select {
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		case <-time.After(2 * time.Second):
		}
	}
}

// waitReady waits until the node is Ready with v's kubelet and a boot id
// other than notBoot, and returns when.
func (u *updateRun) waitReady(v *updateVersion, notBoot string) time.Time {
	t := u.t
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	var status string
	for time.Now().Before(deadline) {
		if err := u.cp.check(); err != nil {
			t.Fatal(err)
		}
		ns, err := u.cp.nodes(t.Context())
		status = fmt.Sprint(err)
		for _, n := range ns {
			if n.Metadata.Name != updateNode {
				t.Fatalf("a node %s joined, want only %s", n.Metadata.Name, updateNode)
			}
			info := n.Status.NodeInfo
			status = fmt.Sprintf("ready %v, kubelet %s, boot %s", n.ready(), info.KubeletVersion, info.BootID)
			if n.ready() && info.KubeletVersion == v.kubernetes && (notBoot == "" || info.BootID != notBoot) {
				t.Logf("node %s Ready: kubelet %s, %s, internal IP %s", updateNode, info.KubeletVersion, info.OSImage, n.address("InternalIP"))
				return time.Now()
			}
		}
		time.Sleep(3 * time.Second)
	}
	t.Fatalf("node %s not Ready with kubelet %s within %s: %s", updateNode, v.kubernetes, readyTimeout, status)
	return time.Time{}
}

func (u *updateRun) check(b updateBoot, want map[string]string) {
	u.t.Helper()
	for k, w := range want {
		if b[k] != w {
			u.t.Errorf("boot of %s: %s = %q, want %q", b["os.image"], k, b[k], w)
		}
	}
}

// updateServer serves one update directory at a time on the host's
// loopback.
type updateServer struct {
	addr string
	mu   sync.Mutex
	dir  string
	log  []served
}

// served is one request answered.
type served struct {
	path  string
	code  int
	bytes int64
	start time.Time
	end   time.Time
}

func newUpdateServer(t *testing.T, dir string) *updateServer {
	s := &updateServer{dir: dir}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		s.mu.Lock()
		dir := s.dir
		s.mu.Unlock()
		cw := &countingWriter{ResponseWriter: w, code: http.StatusOK}
		http.FileServer(http.Dir(dir)).ServeHTTP(cw, r)
		s.mu.Lock()
		s.log = append(s.log, served{path: r.URL.Path, code: cw.code, bytes: cw.n, start: start, end: time.Now()})
		s.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	s.addr = strings.TrimPrefix(srv.URL, "http://")
	return s
}

func (s *updateServer) serve(dir string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dir = dir
}

// fetch sums up the download of a version's artifacts.
type fetch struct {
	bytes    int64
	requests int
	took     time.Duration // first artifact request to last answered
	done     time.Time
}

// fetched describes what the guest downloaded of v since since.
func (s *updateServer) fetched(v *updateVersion, since time.Time) fetch {
	s.mu.Lock()
	defer s.mu.Unlock()
	var f fetch
	var first time.Time
	for _, r := range s.log {
		if r.start.Before(since) || !strings.Contains(r.path, "_"+v.version) {
			continue
		}
		if first.IsZero() {
			first = r.start
		}
		f.bytes += r.bytes
		f.requests++
		f.done = r.end
	}
	f.took = f.done.Sub(first)
	return f
}

type countingWriter struct {
	http.ResponseWriter
	code int
	n    int64
}

func (c *countingWriter) WriteHeader(code int) {
	c.code = code
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n += int64(n)
	return n, err
}

// updateNodeConfig assembles the node's config from the control plane's
// certificates (written under the seed's file names) and writes it as a
// file for QEMU's fw_cfg; it is checked against the image's facts first.
func updateNodeConfig(t *testing.T, dir string, cp *controlPlane, v *updateVersion) string {
	t.Helper()
	cdir := filepath.Join(dir, updateNode+"-pki")
	if err := os.MkdirAll(cdir, 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) string {
		p := filepath.Join(cdir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	write("ca-k8s-apiserver.pem", cp.ca.certPEM)
	nc := cp.workers[updateNode]
	write("cert-kube-proxy.pem", cp.proxy.certPEM)
	write("cert-kube-proxy-key.pem", cp.proxy.keyPEM)
	cfg, err := nodeconfig.Assemble(nodeconfig.AssembleOptions{
		NodeName:         updateNode,
		CertDir:          cdir,
		NodeCertFile:     write("cert-"+updateNode+".pem", nc.certPEM),
		NodeKeyFile:      write("cert-"+updateNode+"-key.pem", nc.keyPEM),
		APIServer:        cp.guestURL(),
		PodCIDR:          updatePodCIDR,
		WireGuardAddress: updateWGAddr,
		WireGuardKeyFile: write("wg.key", base64.StdEncoding.EncodeToString(key.Bytes())+"\n"),
		ListenPort:       updateWGPort,
	})
	if err != nil {
		t.Fatalf("assembling the node config: %v", err)
	}
	if err := nodeconfig.Validate(cfg, worker.ImageFacts(v.spec), time.Now()); err != nil {
		t.Fatalf("the node config: %v", err)
	}
	y, err := nodeconfig.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return write("node.yaml", string(y))
}

// imageFigures reports a verified image's sizes against a full re-image.
func imageFigures(t *testing.T, v *updateVersion) {
	t.Helper()
	m := v.res.Manifest
	var update int64
	for _, o := range v.res.Outputs {
		for _, f := range o.Files {
			update += f.Size
		}
	}
	figure(t, "version %s: update %d MiB (root %d MiB, hash tree %d KiB, UKI %d MiB) against a full re-image of a %d MiB disk (the raw image)",
		v.version, update>>20, m.Image.RootFilesystemSize>>20, m.Verified.HashTreeSize>>10, m.Verified.UKI.Size>>20, m.Image.Size>>20)
}

func ptrTo[T any](v T) *T { return &v }
