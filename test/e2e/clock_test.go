package e2e

import (
	"encoding/base64"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/layers/firstboot"
	"github.com/nodebake/nodebake/layers/spec"
	"github.com/nodebake/nodebake/layers/worker"
	"github.com/nodebake/nodebake/test/harness"
	"github.com/nodebake/nodebake/test/netlab"
	"github.com/nodebake/nodebake/test/netlab/ntp"
	"github.com/nodebake/nodebake/test/qemu"
)

// The clock probe: a unit and a script baked into the clock test's image.
// Once first boot has run, it reports on ttyS1, as "CLOCK key=value"
// lines, the kernel command line, the system clock, first boot's result
// and status, whether timesyncd synchronized the clock, and the timers
// the image runs.
const (
	clockProbeUnitPath  = "/etc/systemd/system/nodebake-clock-probe.service"
	clockProbeWantsPath = "/etc/systemd/system/multi-user.target.wants/nodebake-clock-probe.service"
	clockProbePath      = "/usr/local/lib/nodebake-clock/probe.sh"
)

const clockProbeUnit = `[Unit]
Description=nodebake clock test probe (reports on ttyS1)
After=nodebake-firstboot.service

[Service]
Type=oneshot
ExecStart=` + clockProbePath + `
`

const clockProbeScript = `#!/bin/sh
# nodebake clock test probe: reports on ttyS1 once first boot has run.
exec >/dev/ttyS1 2>&1
p() { printf 'CLOCK %s\n' "$*"; }
p cmdline=$(cat /proc/cmdline)
p uptime=$(cut -d' ' -f1 /proc/uptime)
p clock=$(date -u +%s)
p firstboot=$(systemctl show -p ActiveState,Result,ExecMainStatus nodebake-firstboot | tr '\n' ' ')
p flag=$(test -e /run/systemd/timesync/synchronized && echo yes || echo no)
p timers=$(systemctl list-units --all --type=timer --no-legend --plain | cut -d' ' -f1 | sort | tr '\n' ' ')
p status=$(base64 -w0 /run/nodebake/status.json)
p done
`

func clockProbeFiles() []spec.File {
	unit, script := clockProbeUnit, clockProbeScript
	return []spec.File{
		{Path: clockProbeUnitPath, Content: &unit, Mode: "0644"},
		{Path: clockProbeWantsPath, Link: "../nodebake-clock-probe.service", Mode: "0777"},
		{Path: clockProbePath, Content: &script, Mode: "0755"},
	}
}

// clockReport is what the probe reported.
type clockReport struct {
	fields map[string]string
	status firstboot.Status
}

func parseClockReport(t *testing.T, log string) clockReport {
	t.Helper()
	r := clockReport{fields: map[string]string{}}
	for _, line := range strings.Split(strings.ReplaceAll(log, "\r", ""), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "CLOCK "); ok {
			k, v, _ := strings.Cut(rest, "=")
			r.fields[k] = v
		}
	}
	b, err := base64.StdEncoding.DecodeString(r.fields["status"])
	if err != nil {
		t.Fatalf("the probe's status.json: %v\n%s", err, log)
	}
	if err := json.Unmarshal(b, &r.status); err != nil {
		t.Fatalf("the probe's status.json: %v\n%s", err, b)
	}
	return r
}

// labNTPAddr is the first lab's NTP server, handed out by its DHCP server;
// it answers ntpDelay after first boot has begun to wait.
const (
	labNTPAddr = "10.0.2.123"
	ntpDelay   = 20 * time.Second
)

// The timers the image runs: neither needs the time to be right before
// first boot has run (fstrim.timer trims whenever it fires;
// systemd-tmpfiles-clean.timer first fires 15 minutes after boot, on the
// monotonic clock). A new one must be looked at before it is added here.
var imageTimers = []string{"fstrim.timer", "systemd-tmpfiles-clean.timer"}

// clockPlan is the clock test's two workers: the one whose clock is
// synchronized, and the one without a time source. Neither has an
// underlay link.
func clockPlan() (synced, unsynced *guest) {
	return &guest{name: "clock01", uuid: "6e6f6465-6261-6b65-2d63-6c6f636b0001", wgAddr: "10.8.0.211/24", podCIDR: "10.200.11.0/24",
			via: viaCredential, memory: 2048, cpus: 2},
		&guest{name: "clock02", uuid: "6e6f6465-6261-6b65-2d63-6c6f636b0002", wgAddr: "10.8.0.212/24", podCIDR: "10.200.12.0/24",
			via: viaCredential, memory: 2048, cpus: 2}
}

// TestClock boots the worker image twice, each time in a network lab
// with the guest's RTC a year behind, so that the node's certificates,
// issued now, are not yet valid at the guest's clock:
//
//  1. The lab's DHCP server hands out its NTP server, which answers 20 s
//     after first boot has begun to wait: first boot waits for the clock to
//     synchronize, completes, and the node joins a control plane on the
//     host's loopback and becomes Ready.
//  2. The lab has no time source, and nodebake.timewait=1m15s is on the
//     kernel command line: first boot fails closed after 75 s (longer
//     than the unit's 60 s start timeout, which it extends) with a
//     console line that names the clock; the kubelet never starts.
func TestClock(t *testing.T) {
	harness.RequireSlow(t)
	netlab.Require(t)
	for _, tool := range []string{"qemu-system-x86_64", "qemu-img"} {
		harness.RequireTool(t, tool)
	}
	testStart := time.Now()
	work := t.TempDir()

	s := harness.WorkerSpec(t, append(diagFiles(), clockProbeFiles()...)...)
	s.Kubernetes.PodNetwork = spec.PodNetworkBridge
	s.Default()
	if err := s.Validate(); err != nil {
		t.Fatalf("the test's worker spec: %v", err)
	}
	buildStart := time.Now()
	res := harness.BuildImage(t, s, filepath.Join(work, "out"))
	figure(t, "image build: %s", time.Since(buildStart).Round(100*time.Millisecond))

	cli := harness.GoBuild(t, "./builder/cmd/nodebake", work)
	bins := controlPlaneBinaries(t, s)
	logDir := t.TempDir()
	synced, unsynced := clockPlan()
	// Each guest gets a lab of its own, whose address apiServerGuestIP
	// forwards to the API server on the host's loopback: the first with
	// an NTP server handed out by DHCP, the second without a time source.
	// The first lab's NTP server answers only once first boot has begun
	// to wait: first boot runs after timesyncd, which may otherwise have
	// set the clock already (then first boot has nothing to wait for).
	ntpAddr := netip.MustParseAddr(labNTPAddr)
	apiPort := freePort(t) // the API server's, chosen before it starts
	newLab := func(opts ...netlab.Option) *netlab.Lab {
		lab := netlab.New(t, append(opts, netlab.WithAddrs(netip.MustParseAddr(apiServerGuestIP)))...)
		lab.ForwardTCP(t, net.JoinHostPort(apiServerGuestIP, strconv.Itoa(apiPort)), net.JoinHostPort("127.0.0.1", strconv.Itoa(apiPort)))
		return lab
	}
	ntpLab, silentLab := newLab(netlab.WithAddrs(ntpAddr), netlab.WithNTPServers(ntpAddr)), newLab()
	ntpConn, err := ntpLab.ListenPacket("udp4", netip.AddrPortFrom(ntpAddr, ntp.Port).String())
	if err != nil {
		t.Fatal(err)
	}
	ntpServer := &ntp.Server{Log: t.Logf}
	cp := startControlPlane(t, bins, logDir, apiPort, []string{synced.name, unsynced.name})
	e := &env{t: t, cp: cp, logDir: logDir, guests: []*guest{synced, unsynced}, created: map[string]time.Time{}}
	t.Cleanup(e.closeVMs)
	t.Cleanup(e.diagnoseOnFailure)

	vmDir := filepath.Join(work, "vms")
	if err := os.MkdirAll(vmDir, 0o755); err != nil {
		t.Fatal(err)
	}
	yearAgo := time.Now().AddDate(-1, 0, 0).UTC().Truncate(time.Second)
	// boot prepares g in lab and starts it.
	// The node configs come from the import of the seed's group_vars and
	// an inventory of the two guests, as the cluster test's do.
	imp := importCluster(t, cli, work, s, cp, e.guests)
	boot := func(g *guest, lab *netlab.Lab, cmdline string) {
		t.Helper()
		// Good now: the guest's only problem is its clock.
		if _, err := loadNodeConfig(imp.nodeConfig(g.name), worker.ImageFacts(s)); err != nil {
			t.Fatalf("the imported node config of %s: %v", g.name, err)
		}
		g.prepare(t, cp, vmDir, imp.nodeConfig(g.name), "", nil)
		g.cfg.UserNet = nil // the lab is the guest's only network
		g.cfg.Disk, g.cfg.RTCBase, g.cfg.NoReboot = res.ImagePath, yearAgo, true
		if cmdline != "" {
			// systemd-boot appends it to the entry's command line.
			g.cfg.SMBIOS = append(g.cfg.SMBIOS, "type=11,value=io.systemd.boot.kernel-cmdline-extra="+cmdline)
		}
		lab.Attach(t, &g.cfg)
		e.start(g)
	}
	accel := qemu.Accel()
	since := func(g *guest, at time.Time) string { return at.Sub(g.vm.StartedAt).Round(time.Second).String() }

	// 1. A time source: first boot waits, the clock is synchronized, the
	// node becomes Ready.
	boot(synced, ntpLab, "")
	waiting := watch(t.Context(), synced.vm, regexp.MustCompile(`nodebake-firstboot: waiting up to [^\r\n]*`), consoleTimeout)
	done := watch(t.Context(), synced.vm, regexp.MustCompile(`nodebake-firstboot: node clock01 configured [^\r\n]*`), consoleTimeout)
	w, err := waiting.wait()
	if err != nil {
		t.Fatalf("%s: first boot did not wait for the clock: %v\n%s", synced.name, err, synced.vm.ConsoleTail(60))
	}
	// The time source appears a while after: first boot keeps waiting.
	select {
	case <-time.After(ntpDelay):
	case <-t.Context().Done():
		t.Fatal(t.Context().Err())
	}
	ntpOn := time.Now()
	go ntpServer.Serve(ntpConn) // returns when the lab closes the socket
	d, err := done.wait()
	if err != nil {
		t.Fatalf("%s: first boot did not complete: %v\n%s", synced.name, err, synced.vm.ConsoleTail(60))
	}
	readyAt := e.waitReady([]*guest{synced}, "", readyTimeout)
	t.Logf("%s console:\n%s\n%s", synced.name, w.Text, d.Text)
	// The first certificate in the document is the CA's, issued with the
	// node's.
	if !strings.Contains(w.Text, "waiting up to 5m0s for the clock to synchronize: at ") ||
		!strings.Contains(w.Text, `kubernetes.caCert: certificate "nodebake-e2e-ca" is not valid before `) {
		t.Errorf("%s: the wait's line %q, want the default bound and the certificate", synced.name, w.Text)
	}
	if !strings.Contains(d.Text, " after it waited ") || !strings.Contains(d.Text, " for the clock to synchronize (") {
		t.Errorf("%s: the success line %q, want it to say it waited for the clock", synced.name, d.Text)
	}
	if _, err := synced.vm.WaitForFrom(t.Context(), qemu.Report, 0, regexp.MustCompile(`CLOCK done`), 5*time.Minute); err != nil {
		t.Fatalf("%s: the clock probe: %v\n%s", synced.name, err, synced.vm.ReportLog())
	}
	r := parseClockReport(t, synced.vm.ReportLog())
	cs := r.status.Clock
	if !r.status.OK || cs == nil || cs.Outcome != firstboot.ClockWaited || !cs.Synchronized || cs.LimitMicros != firstboot.DefaultClockWait.Microseconds() {
		t.Fatalf("%s: status %+v, clock %+v; want success after waiting for the clock", synced.name, r.status, cs)
	}
	if notBefore := cp.ca.cert.NotBefore; !cs.FirstChecked.Before(notBefore) || time.Since(cs.LastChecked).Abs() > 30*time.Minute {
		t.Errorf("%s: certificates first checked at %s (want before their validity from %s), last at %s (want the host's time, %s)",
			synced.name, cs.FirstChecked, notBefore, cs.LastChecked, time.Now().UTC())
	}
	if waited := time.Duration(cs.WaitedMicros) * time.Microsecond; waited < ntpOn.Sub(w.SeenAt) {
		t.Errorf("%s: first boot waited %s, less than the %s from its wait's line to the NTP server's start", synced.name, waited, ntpOn.Sub(w.SeenAt))
	}
	if r.fields["flag"] != "yes" || ntpServer.Requests() < 1 {
		t.Errorf("%s: timesyncd's flag %q, the lab's NTP server answered %d requests", synced.name, r.fields["flag"], ntpServer.Requests())
	}
	if got := strings.Fields(r.fields["timers"]); !slices.Equal(got, imageTimers) {
		t.Errorf("%s: the image runs the timers %q, want %q", synced.name, got, imageTimers)
	}
	figure(t, "%s (%s, RTC a year behind, NTP by DHCP): first boot waited %s for the clock (first checked at %s); QEMU start -> wait began %s -> NTP server on %s -> first boot done %s -> node Ready %s",
		synced.name, accel, (time.Duration(cs.WaitedMicros) * time.Microsecond).Round(100*time.Millisecond), cs.FirstChecked.Format(time.RFC3339),
		since(synced, w.SeenAt), since(synced, ntpOn), since(synced, d.SeenAt), since(synced, readyAt[synced.name]))
	synced.vm.Kill()
	e.keepLogs(synced)
	synced.vm.Close()
	synced.vm = nil

	// 2. No time source: first boot fails closed after the bounded wait.
	const wait = 75 * time.Second
	boot(unsynced, silentLab, firstboot.ClockWaitParam+"="+wait.String())
	fb := watch(t.Context(), unsynced.vm, regexp.MustCompile(`nodebake-firstboot: clock: [^\r\n]*`), consoleTimeout)
	m, err := fb.wait()
	if err != nil {
		t.Fatalf("%s: no clock line on the console: %v\n%s", unsynced.name, err, unsynced.vm.ConsoleTail(60))
	}
	t.Logf("%s console: %s", unsynced.name, m.Text)
	if want := "nodebake-firstboot: clock: not synchronized within 1m15s, and the certificates are not valid at the system time "; !strings.HasPrefix(m.Text, want) ||
		!strings.Contains(m.Text, `(kubernetes.caCert: certificate "nodebake-e2e-ca" is not valid before `) {
		t.Errorf("%s: console %q, want %q... naming the certificate", unsynced.name, m.Text, want)
	}
	login, err := unsynced.login.wait()
	if err != nil {
		t.Fatalf("%s did not finish booting: %v\n%s", unsynced.name, err, unsynced.vm.ConsoleTail(60))
	}
	if _, err := unsynced.vm.WaitForFrom(t.Context(), qemu.Report, 0, regexp.MustCompile(`CLOCK done`), 5*time.Minute); err != nil {
		t.Fatalf("%s: the clock probe: %v\n%s", unsynced.name, err, unsynced.vm.ReportLog())
	}
	r = parseClockReport(t, unsynced.vm.ReportLog())
	cs = r.status.Clock
	if r.status.OK || r.status.Field != firstboot.ClockField || cs == nil || cs.Outcome != firstboot.ClockTimedOut || cs.Synchronized ||
		cs.LimitMicros != wait.Microseconds() || cs.WaitedMicros < wait.Microseconds() {
		t.Errorf("%s: status %+v, clock %+v; want a failure naming the clock after %s", unsynced.name, r.status, cs, wait)
	}
	if !strings.Contains(" "+r.fields["cmdline"]+" ", " "+firstboot.ClockWaitParam+"="+wait.String()+" ") {
		t.Errorf("%s: kernel command line %q lacks %s=%s", unsynced.name, r.fields["cmdline"], firstboot.ClockWaitParam, wait)
	}
	// It ended itself (exit 1) after its wait: systemd's 60 s start
	// timeout, extended, did not stop it.
	if fbUnit := r.fields["firstboot"]; !strings.Contains(fbUnit, "Result=exit-code") || !strings.Contains(fbUnit, "ExecMainStatus=1") {
		t.Errorf("%s: the first-boot unit %q, want it failed with exit status 1", unsynced.name, fbUnit)
	}
	if r.fields["flag"] != "no" {
		t.Errorf("%s: timesyncd's flag %q without a time source", unsynced.name, r.fields["flag"])
	}
	// The kubelet does not start: its node never appears.
	if rest := 30*time.Second - time.Since(login.SeenAt); rest > 0 {
		time.Sleep(rest)
	}
	if l := diagLine(lastDiag(unsynced.vm.ReportLog()), "unit kubelet:"); !strings.Contains(l, "ActiveState=inactive") || !strings.Contains(l, "ConditionResult=no") {
		t.Errorf("%s: want the kubelet inactive for its unmet condition, the guest says %q", unsynced.name, l)
	}
	nodes, err := cp.nodes(t.Context())
	if err != nil {
		t.Fatalf("listing nodes: %v", err)
	}
	if got := nodeNames(nodes); !slices.Equal(got, []string{synced.name}) {
		t.Errorf("nodes %v, want only %s", got, synced.name)
	}
	figure(t, "%s (%s, RTC a year behind, no time source, %s=%s): QEMU start -> clock failure on the console %s -> login prompt %s; waited %s",
		unsynced.name, accel, firstboot.ClockWaitParam, wait, since(unsynced, m.SeenAt), since(unsynced, login.SeenAt),
		(time.Duration(cs.WaitedMicros) * time.Microsecond).Round(100*time.Millisecond))
	figure(t, "total test time: %s", time.Since(testStart).Round(time.Second))
}
