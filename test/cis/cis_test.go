package cis

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodebake/nodebake/layers/firstboot"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig/nodeconfigtest"
	"github.com/nodebake/nodebake/layers/spec"
	"github.com/nodebake/nodebake/layers/worker"
	"github.com/nodebake/nodebake/test/harness"
	"github.com/nodebake/nodebake/test/qemu"
)

// The node: worker01 of the node config corpus, its API server outside
// wg0's subnet (so that it has its own entry in the allow lists), reached
// through a guest forward to a listener of the test's.
const (
	vmUUID       = "6e6f6465-6261-6b65-2d63-697300000001"
	wgAddress    = "10.8.0.203/24"
	apiServerIP  = "10.0.2.100"
	probeTimeout = 25 * time.Minute
)

// unobservable are the checks kube-bench cannot see the image pass, each
// with why and the check of ours that proves the control instead.
var unobservable = map[string]string{
	"4.2.15": "IPAddressDeny= is a systemd unit setting; kube-bench looks for it among the kubelet's flags and configuration fields, where it cannot be. " +
		"Proven here: systemctl show kubelet IPAddressDeny/IPAddressAllow, and port 10250 refuses a denied address while it takes an allowed one",
}

// TestKubeBench boots a worker from the default spec with its node config
// and runs kube-bench's node checks for the spec's Kubernetes version in
// it: no FAIL, and no WARN but for the checks kube-bench cannot observe,
// whose controls the probe proves. The kubelet, with protectKernelDefaults,
// stays active without a restart. The report is kept in
// build/test-logs/cis.
func TestKubeBench(t *testing.T) {
	harness.RequireSlow(t)
	harness.RequireTool(t, "qemu-system-x86_64")
	kb := harness.KubeBench(t)

	s := harness.WorkerSpec(t)
	configYAML, err := os.ReadFile(filepath.Join(kb, "cfg", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	benchmark, err := benchmarkFor(configYAML, s.Kubernetes.Version)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kube-bench %s: benchmark %s for Kubernetes %s", harness.KubeBenchVersion, benchmark, s.Kubernetes.Version)
	config, err := withImagePaths(configYAML)
	if err != nil {
		t.Fatal(err)
	}

	// The spec's files come from one directory: kube-bench, its
	// benchmark, the connection checker.
	stage := t.TempDir()
	copyFile(t, filepath.Join(kb, "kube-bench"), filepath.Join(stage, "kube-bench"))
	benchFiles, err := filepath.Glob(filepath.Join(kb, "cfg", benchmark, "*.yaml"))
	if err != nil || len(benchFiles) == 0 {
		t.Fatalf("kube-bench's benchmark %s has no files (%v)", benchmark, err)
	}
	var rel []string
	for _, f := range benchFiles {
		r := benchmark + "/" + filepath.Base(f)
		copyFile(t, f, filepath.Join(stage, "cfg", r))
		rel = append(rel, r)
	}
	harness.GoBuild(t, "./test/cis/internal/connect", stage)
	s.Dir = stage
	s.Files = append(s.Files, probeFiles(benchmark, rel, string(config))...)
	s.Default()
	if err := s.Validate(); err != nil {
		t.Fatalf("the test's spec: %v", err)
	}
	kc, err := s.KubeletConfigJSON()
	if err != nil || !strings.Contains(string(kc), `"protectKernelDefaults": true`) {
		t.Fatalf("the default spec's kubelet configuration lacks protectKernelDefaults: true (%v)", err)
	}
	res := harness.BuildImage(t, s, t.TempDir())

	// The node config, checked against the image's facts as first boot
	// will.
	p, err := nodeconfigtest.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	cfg := p.Config()
	cfg.WireGuard.Address = wgAddress
	cfg.WireGuard.Peers = cfg.WireGuard.Peers[:1] // its endpoint is never reached
	cfg.Kubernetes.APIServer = "https://" + apiServerIP + ":6443"
	facts := worker.ImageFacts(s)
	if err := nodeconfig.Validate(cfg, facts, time.Now()); err != nil {
		t.Fatalf("the node config: %v", err)
	}
	allow, err := nodeconfig.IPAllowFor(cfg, facts)
	if err != nil {
		t.Fatal(err)
	}
	nodeYAML, err := nodeconfig.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	vmDir := t.TempDir()
	nodeFile := filepath.Join(vmDir, "node.yaml")
	if err := os.WriteFile(nodeFile, nodeYAML, 0o600); err != nil {
		t.Fatal(err)
	}

	// The API server: a listener that counts the connections the guest's
	// kubelet and kube-proxy make (no control plane: kube-bench reads
	// files, flags and processes).
	api, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	var apiConns atomic.Int64
	go func() {
		for {
			c, err := api.Accept()
			if err != nil {
				return
			}
			apiConns.Add(1)
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()

	ctx := t.Context()
	vm, err := qemu.Start(ctx, qemu.Config{
		Disk: res.ImagePath, UUID: vmUUID, Memory: 2048, CPUs: 2, Dir: vmDir,
		FwCfg:   map[string]string{"opt/io.systemd.credentials/" + firstboot.CredentialName: nodeFile},
		UserNet: []string{harness.GuestForward(t, apiServerIP, 6443, api.Addr().String())},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	t.Logf("VM under %s, work directory %s", qemu.Accel(), vm.Dir())
	if _, err := vm.WaitForFrom(ctx, qemu.Report, 0, regexp.MustCompile(`CIS done`), probeTimeout); err != nil {
		t.Fatalf("the probe did not finish: %v\nconsole:\n%s\nreport:\n%s", err, vm.ConsoleTail(60), lastLines(vm.ReportLog(), 80))
	}
	if err := vm.WaitExit(ctx, 3*time.Minute); err != nil {
		t.Logf("after the probe's poweroff: %v", err)
	}
	log := vm.ReportLog()
	r, err := parseReport(log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	saveArtifacts(t, r, log)
	v := r.values

	// The kubelet, with protectKernelDefaults, is up and stays up.
	if v["protectKernelDefaults"] != "true" {
		t.Errorf("the kubelet's configuration on the node does not have protectKernelDefaults: true")
	}
	for _, u := range []string{"kubelet", "kube-proxy"} {
		if v[u+".ActiveState"] != "active" || v[u+".NRestarts"] != "0" {
			t.Errorf("%s is %s/%s with %s restarts %ds after it became active, want active with 0", u, v[u+".ActiveState"], v[u+".SubState"], v[u+".NRestarts"], settle)
		}
	}
	for _, k := range spec.KubeletKernelSettings() {
		if got := v["sysctl."+k.Key]; got != strconv.Itoa(k.Value) {
			t.Errorf("%s = %q on the node, want %d", k.Key, got, k.Value)
		}
	}

	// Our equivalent of 4.2.15: the units' filters, in effect.
	checkIPAccess(t, v, "kubelet", allow.Kubelet)
	checkIPAccess(t, v, "kube-proxy", allow.KubeProxy)
	fbExit, _ := strconv.ParseInt(v["nodebake-firstboot.ExecMainExitTimestampMonotonic"], 10, 64)
	for _, u := range []string{"kubelet", "kube-proxy"} {
		start, _ := strconv.ParseInt(v[u+".ExecMainStartTimestampMonotonic"], 10, 64)
		if fbExit == 0 || start <= fbExit {
			t.Errorf("%s started at %d µs, the first-boot program exited at %d µs: want it after", u, start, fbExit)
		}
	}
	// The kubelet's port takes an allowed address and drops a denied one;
	// in each unit's cgroup, a listener and a client are filtered the same
	// way (kube-proxy itself listens only once it has synced with an API
	// server, which the test does not run); outside them, the denied
	// address works (the controls).
	for _, k := range []string{"kubelet.allowed", "control", "control.out",
		"kubelet.in.allowed", "kubelet.out.allowed", "kube-proxy.in.allowed", "kube-proxy.out.allowed"} {
		if v[k] != "ok" {
			t.Errorf("%s: %q, want ok", k, v[k])
		}
	}
	for _, k := range []string{"kubelet.denied", "kubelet.in.denied", "kubelet.out.denied", "kube-proxy.in.denied", "kube-proxy.out.denied"} {
		// Dropped coming in, the connection times out; going out, the
		// kernel refuses to send (EPERM) or drops.
		if !strings.HasPrefix(v[k], "failed: ") || !(strings.Contains(v[k], "timeout") || strings.Contains(v[k], "operation not permitted")) {
			t.Errorf("%s (%s): %q, want the connection's packets dropped (a timeout, or EPERM on the way out)", k, deniedAddr, v[k])
		}
	}
	for _, u := range []string{"kubelet", "kube-proxy"} {
		if want := "/system.slice/" + unitFiles()[u]; !strings.HasSuffix(v[u+".cgroup"], want) {
			t.Errorf("the listener meant for %s's cgroup is in %q, want %s", u, v[u+".cgroup"], want)
		}
	}
	if n := apiConns.Load(); n == 0 {
		t.Errorf("the API server at %s (allowed, outside wg0's subnet) was never reached", apiServerIP)
	} else {
		t.Logf("the API server at %s was reached %d times through the units' filters", apiServerIP, n)
	}

	// kube-bench: no FAIL, WARN only where it cannot observe the control.
	if v["kube-bench.json.rc"] != "0" {
		t.Errorf("kube-bench --json exited %s: %s", v["kube-bench.json.rc"], r.files["stderr-json.log"])
	}
	result, checks, err := parseBench(r.files["report.json"])
	if err != nil {
		t.Fatalf("%v\n%s", err, r.files["stderr-json.log"])
	}
	if len(checks) == 0 || len(result.Controls) == 0 || result.Controls[0].Version != benchmark || result.Controls[0].Type != "node" {
		t.Fatalf("kube-bench ran no node checks of %s: %s", benchmark, r.files["report.json"])
	}
	for _, c := range checks {
		switch c.status {
		case "PASS", "INFO":
		case "WARN":
			if why, ok := unobservable[c.id]; ok {
				t.Logf("%s WARN, as expected: %s", c.id, why)
			} else {
				t.Errorf("%s WARN: %s (%s)", c.id, c.desc, c.reason)
			}
		default:
			t.Errorf("%s %s: %s (%s)", c.id, c.status, c.desc, c.reason)
		}
	}
	for _, id := range []string{"4.2.12", "4.2.13"} {
		if i := slices.IndexFunc(checks, func(c check) bool { return c.id == id }); i < 0 || checks[i].status != "PASS" {
			t.Errorf("check %s did not PASS", id)
		}
	}
	figure(t, "kube-bench %s, %s node checks: %d PASS, %d FAIL, %d WARN, %d INFO (both runs %s s of guest time under %s)", harness.KubeBenchVersion, benchmark,
		result.Totals.Pass, result.Totals.Fail, result.Totals.Warn, result.Totals.Info, elapsed(v["kube-bench.start"], v["kube-bench.end"]), qemu.Accel())
	if result.Totals.Fail != 0 {
		t.Errorf("%d checks FAIL", result.Totals.Fail)
	}
}

// checkIPAccess checks what systemd says of a unit's IP filter: deny
// everything, allow loopback and exactly the node's networks, from the
// first-boot program's drop-in, loaded before the unit started.
func checkIPAccess(t *testing.T, v map[string]string, unit string, want []netip.Prefix) {
	t.Helper()
	if got := strings.Fields(v[unit+".IPAddressDeny"]); !slices.Equal(sorted(got), []string{"0.0.0.0/0", "::/0"}) {
		t.Errorf("%s: IPAddressDeny=%q, want any (0.0.0.0/0 ::/0)", unit, v[unit+".IPAddressDeny"])
	}
	wantAllow := []string{"127.0.0.0/8", "::1/128"}
	for _, p := range want {
		wantAllow = append(wantAllow, p.String())
	}
	if got := strings.Fields(v[unit+".IPAddressAllow"]); !slices.Equal(sorted(got), sorted(wantAllow)) {
		t.Errorf("%s: IPAddressAllow=%q, want %q", unit, v[unit+".IPAddressAllow"], strings.Join(sorted(wantAllow), " "))
	}
	if dropIn := firstboot.IPAccessPath(unitFiles()[unit]); !slices.Contains(strings.Fields(v[unit+".DropInPaths"]), dropIn) {
		t.Errorf("%s: DropInPaths=%q lacks %s", unit, v[unit+".DropInPaths"], dropIn)
	}
	if v[unit+".NeedDaemonReload"] != "no" {
		t.Errorf("%s: NeedDaemonReload=%q: the drop-in was written but not loaded", unit, v[unit+".NeedDaemonReload"])
	}
}

// unitFiles maps the probe's names of the units to their files.
func unitFiles() map[string]string {
	return map[string]string{"kubelet": firstboot.KubeletUnit, "kube-proxy": firstboot.KubeProxyUnit}
}

// figure logs a measured figure to the test log and to stdout.
func figure(t *testing.T, format string, args ...any) {
	t.Helper()
	s := fmt.Sprintf(format, args...)
	t.Log(s)
	fmt.Println("FIGURE " + s)
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

func elapsed(from, to string) string {
	a, errA := strconv.ParseFloat(from, 64)
	b, errB := strconv.ParseFloat(to, 64)
	if errA != nil || errB != nil {
		return "?"
	}
	return strconv.FormatFloat(b-a, 'f', 1, 64)
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// saveArtifacts keeps kube-bench's reports and the probe's log in
// build/test-logs/cis, named by the time of the run.
func saveArtifacts(t *testing.T, r report, log string) {
	t.Helper()
	dir := filepath.Join(harness.RepoRoot(t), "build", "test-logs", "cis")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Errorf("keeping the report: %v", err)
		return
	}
	stamp := time.Now().UTC().Format("20060102T150405Z")
	for name, b := range map[string][]byte{
		"kube-bench-" + stamp + ".json": r.files["report.json"],
		"kube-bench-" + stamp + ".txt":  r.files["report.txt"],
		"probe-" + stamp + ".log":       []byte(log),
		"kubelet-" + stamp + ".log":     r.files["kubelet.log"],
		"kube-proxy-" + stamp + ".log":  r.files["kube-proxy.log"],
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Errorf("keeping %s: %v", p, err)
			continue
		}
		t.Logf("kept %s", p)
	}
}
