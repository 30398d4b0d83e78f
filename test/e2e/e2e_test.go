package e2e

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/builder/spec"
	"github.com/nodebake/nodebake/layers/firstboot"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
	"github.com/nodebake/nodebake/layers/oci"
	"github.com/nodebake/nodebake/test/harness"
	"github.com/nodebake/nodebake/test/qemu"
)

// EnvE2E set to 1 (with NODEBAKE_SLOW=1) runs the end-to-end test.
const EnvE2E = "NODEBAKE_E2E"

// Time limits, sized for TCG on a loaded 2-core host.
const (
	readyTimeout   = 15 * time.Minute // QEMU start -> node Ready
	podTimeout     = 8 * time.Minute  // pod created -> Running or Succeeded
	shutdownWait   = 5 * time.Minute  // powerdown -> QEMU exits
	badNodeWatch   = 3 * time.Minute  // how long the bad node must stay away, at least
	consoleTimeout = 10 * time.Minute // QEMU start -> first-boot line on the console
)

// figure logs a measured figure to the test log and to stdout.
func figure(t *testing.T, format string, args ...any) {
	t.Helper()
	s := fmt.Sprintf(format, args...)
	t.Log(s)
	fmt.Println("FIGURE " + s)
}

// env is the running test cluster.
type env struct {
	t      *testing.T
	cp     *controlPlane
	logDir string
	guests []*guest
}

// TestCluster builds one worker image, boots two workers from it (each
// completed at first boot by its own node config, delivered two ways) and
// a third with a bad node config, joins them to a control plane on the
// host's loopback, and checks that pods on the two workers reach each
// other over WireGuard, that a worker keeps its /var across a power cycle,
// and that the bad one never starts its kubelet.
func TestCluster(t *testing.T) {
	harness.RequireSlow(t)
	if os.Getenv(EnvE2E) != "1" {
		t.Skipf("end-to-end test: set %s=1 (and %s=1) to run it", EnvE2E, harness.EnvSlow)
	}
	for _, tool := range []string{"qemu-system-x86_64", "qemu-img", "cp"} {
		harness.RequireTool(t, tool)
	}
	testStart := time.Now()
	ctx := t.Context()
	work := t.TempDir()

	// The image: the repository's worker spec, pinned to the local
	// mirror, with the bridge pod network and the test image preloaded.
	pauseLayout := ensurePauseImage(t)
	webLayout := buildWebImage(t, work)
	s := harness.WorkerSpec(t, diagFiles()...)
	s.Kubernetes.PodNetwork = spec.PodNetworkBridge
	if !slices.ContainsFunc(s.Images, func(im spec.Image) bool { return im.Ref == s.Containerd.SandboxImage }) {
		s.Images = append(s.Images, spec.Image{Ref: s.Containerd.SandboxImage, Image: "oci:" + pauseLayout})
	}
	s.Images = append(s.Images, spec.Image{Ref: webImage, Image: "oci:" + webLayout})
	s.Default()
	if err := s.Validate(); err != nil {
		t.Fatalf("the test's worker spec: %v", err)
	}
	buildStart := time.Now()
	res := harness.BuildImage(t, s, filepath.Join(work, "out"))
	figure(t, "image build (warm cache): %s", time.Since(buildStart).Round(100*time.Millisecond))

	bins := controlPlaneBinaries(t, s)
	logDir, err := os.MkdirTemp("", "nodebake-e2e-logs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs of the control plane and the VMs are kept in %s", logDir)
			return
		}
		os.RemoveAll(logDir)
	})

	w1 := &guest{name: "worker01", uuid: "6e6f6465-6261-6b65-2d65-326500000001", wgAddr: "10.8.0.203/24", podCIDR: "10.200.0.0/24",
		underlay: "192.168.100.1/24", via: viaCredential, memory: 2048, cpus: 2}
	w2 := &guest{name: "worker02", uuid: "6e6f6465-6261-6b65-2d65-326500000002", wgAddr: "10.8.0.204/24", podCIDR: "10.200.1.0/24",
		underlay: "192.168.100.2/24", via: viaConfigDrive, memory: 2048, cpus: 2}
	bad := &guest{name: "worker03", uuid: "6e6f6465-6261-6b65-2d65-326500000003", wgAddr: "10.8.0.205/24", podCIDR: "10.200.2.0/24",
		via: viaSMBIOS, memory: 1024, cpus: 1}
	for _, g := range []*guest{w1, w2, bad} {
		g.wgKey = newWGKey(t)
	}

	cpStart := time.Now()
	cp := startControlPlane(t, bins, logDir, []string{w1.name, w2.name})
	figure(t, "control plane (etcd, kube-apiserver, controller manager, scheduler) up in %s", time.Since(cpStart).Round(100*time.Millisecond))
	e := &env{t: t, cp: cp, logDir: logDir, guests: []*guest{w1, w2, bad}}
	t.Cleanup(e.closeVMs)
	t.Cleanup(e.diagnoseOnFailure)

	// Node configs, checked on the host against the image's facts first.
	facts := imageFacts(s)
	vmDir := filepath.Join(work, "vms")
	if err := os.MkdirAll(vmDir, 0o755); err != nil {
		t.Fatal(err)
	}
	linkPort := freePort(t)
	for _, c := range []struct {
		g       *guest
		certFor string
		peers   []*guest
		netdev  string
	}{
		{w1, w1.name, []*guest{w2}, fmt.Sprintf("socket,listen=127.0.0.1:%d", linkPort)},
		{w2, w2.name, []*guest{w1}, fmt.Sprintf("socket,connect=127.0.0.1:%d", linkPort)},
		// The bad node presents worker02's certificate as its own.
		{bad, w2.name, nil, ""},
	} {
		cfg := assembleNodeConfig(t, work, cp, c.g, c.certFor, c.peers)
		err := nodeconfig.Validate(cfg, facts, time.Now())
		if c.g == bad {
			if err == nil {
				t.Fatalf("the bad node config of %s validates on the host", bad.name)
			}
			t.Logf("%s's node config is bad, as meant: %v", bad.name, err)
		} else if err != nil {
			t.Fatalf("node config of %s: %v", c.g.name, err)
		}
		var nd []string
		if c.netdev != "" {
			nd = []string{c.netdev}
		}
		c.g.prepare(t, vmDir, cfg, nd)
	}
	// worker02 is power-cycled later: it boots from its own raw copy of
	// the image (qemu.Config.Direct), so that a second QEMU finds its /var.
	w2.cfg.Disk = filepath.Join(work, "worker02.raw")
	if out, err := exec.CommandContext(ctx, "cp", "--sparse=always", res.ImagePath, w2.cfg.Disk).CombinedOutput(); err != nil {
		t.Fatalf("copying the image for worker02: %v: %s", err, out)
	}
	w2.cfg.Direct = true
	w1.cfg.Disk, bad.cfg.Disk = res.ImagePath, res.ImagePath

	accel := qemu.Accel()
	t.Logf("booting the workers under %s", accel)
	e.start(w1)
	if err := waitListening(linkPort, time.Minute); err != nil {
		t.Fatalf("worker01's end of the WireGuard underlay: %v", err)
	}
	e.start(w2)

	// 1. Both workers become Ready with the image's version and their
	// wg0 address.
	readyAt := e.waitReady([]*guest{w1, w2}, "", readyTimeout)
	for _, g := range []*guest{w1, w2} {
		figure(t, "%s (%s, node config by %s): QEMU start -> node Ready %s", g.name, accel, g.via, readyAt[g.name].Sub(g.vm.StartedAt).Round(time.Second))
	}
	// The bad node boots while the workers run pods (booting it with
	// them overloads a 2-core host under TCG).
	e.start(bad)
	nodes, err := cp.nodes(ctx)
	if err != nil {
		e.fatalf("listing nodes: %v", err)
	}
	bootIDs := map[string]string{}
	for _, n := range nodes {
		g := e.guest(n.Metadata.Name)
		if g == nil {
			e.fatalf("unexpected node %s", n.Metadata.Name)
		}
		if got := n.Status.NodeInfo.KubeletVersion; got != s.Kubernetes.Version {
			t.Errorf("node %s: VERSION %s, want the spec's %s", g.name, got, s.Kubernetes.Version)
		}
		if got := n.address("InternalIP"); got != g.wgIP() {
			t.Errorf("node %s: INTERNAL-IP %s, want its wg0 address %s", g.name, got, g.wgIP())
		}
		bootIDs[g.name] = n.Status.NodeInfo.BootID
		t.Logf("node %s: Ready, kubelet %s, kube-proxy %s, internal IP %s, %s, kernel %s, %s",
			g.name, n.Status.NodeInfo.KubeletVersion, n.Status.NodeInfo.KubeProxyVersion, n.address("InternalIP"),
			n.Status.NodeInfo.OSImage, n.Status.NodeInfo.KernelVersion, n.Status.NodeInfo.ContainerRuntime)
	}

	// 2. The first-boot program's status on each worker, read through a
	// pod: where the node config came from and how long it took.
	e.waitServiceAccount()
	for _, g := range []*guest{w1, w2} {
		st := e.firstbootStatus(g, "status-"+g.name)
		wantSource := map[string]string{viaCredential: "credential ", viaConfigDrive: "config-drive "}[g.via]
		if !st.OK || st.NodeName != g.name || !strings.HasPrefix(st.Source, wantSource) {
			t.Errorf("%s: first-boot status ok=%v node=%q source=%q, want ok, %s, source %q...", g.name, st.OK, st.NodeName, st.Source, g.name, wantSource)
		}
		figure(t, "%s: first-boot program ran %s (status.json durationMicros %d; source %s)", g.name,
			(time.Duration(st.DurationMicros) * time.Microsecond).Round(time.Microsecond), st.DurationMicros, st.Source)
		if m := regexp.MustCompile(`nodebake-firstboot: [^\r\n]*`).FindString(g.vm.ConsoleLog()); m != "" {
			t.Logf("%s console: %s", g.name, m)
		}
	}

	// 3. Two replicas of the test server, one per node, and each node's
	// pods reaching the other node's over wg0.
	if _, err := cp.kubectl(ctx, webDeployment(), "apply", "-f", "-"); err != nil {
		e.fatalf("creating the web deployment: %v", err)
	}
	webStart := time.Now()
	web := e.waitWeb(podTimeout)
	figure(t, "web deployment: 2 replicas ready, one per node, in %s", time.Since(webStart).Round(time.Second))
	e.crossFetch(web, w1, w2, "a")

	// 4. A marker on worker02's /var survives a power cycle.
	marker := fmt.Sprintf("written before the power cycle at %s", time.Now().UTC().Format(time.RFC3339Nano))
	const markerFile = "/var/lib/e2e/marker"
	e.runPod(podSpec{name: "marker-write", nodeName: w2.name, args: []string{"write", markerFile, marker}, hostPath: "/var/lib/e2e"}, podTimeout)
	downStart := time.Now()
	if err := w2.vm.Powerdown(ctx); err != nil {
		e.fatalf("powering worker02 down: %v", err)
	}
	if err := w2.vm.WaitExit(ctx, shutdownWait); err != nil {
		e.fatalf("worker02 did not power off cleanly: %v", err)
	}
	figure(t, "worker02: ACPI powerdown -> QEMU exited %s", time.Since(downStart).Round(time.Second))
	if m := regexp.MustCompile(`reboot: Power down`).FindString(w2.vm.ConsoleLog()); m == "" {
		t.Logf("worker02's console does not show the kernel's power down line")
	}
	e.keepLogs(w2)
	w2.vm.Close()
	e.start(w2)
	readyAt = e.waitReady([]*guest{w2}, bootIDs[w2.name], readyTimeout)
	figure(t, "worker02 (%s, second boot): QEMU start -> node Ready again %s", accel, readyAt[w2.name].Sub(w2.vm.StartedAt).Round(time.Second))
	e.runPod(podSpec{name: "marker-check", nodeName: w2.name, args: []string{"check", markerFile, marker}, hostPath: "/var/lib/e2e", readOnly: true}, podTimeout)
	st := e.firstbootStatus(w2, "status-worker02-again")
	if !st.OK {
		t.Errorf("worker02 after the power cycle: first boot status not ok: %+v", st)
	}
	// The deployment's pod on worker02 comes back, and the nodes still
	// reach each other's pods: the underlay link and WireGuard are back.
	web = e.waitWeb(podTimeout)
	e.crossFetch(web, w1, w2, "b")

	// 5. The bad node: the first-boot program names the problem on the
	// console, the boot otherwise completes (a login prompt), and the
	// kubelet never starts: its node never appears.
	m, err := bad.vm.WaitFor(ctx, qemu.Console, regexp.MustCompile(`nodebake-firstboot: [^\r\n]*`), consoleTimeout)
	if err != nil {
		e.fatalf("%s: %v", bad.name, err)
	}
	t.Logf("%s console: %s", bad.name, m)
	wantLine := fmt.Sprintf(`nodeName: %q does not match the node certificate's subject CN "system:node:%s"`, bad.name, w2.name)
	if !strings.Contains(m, wantLine) {
		t.Errorf("%s: console says %q, want it to name the problem: %s", bad.name, m, wantLine)
	}
	login, err := bad.vm.WaitForFrom(ctx, qemu.Console, 0, regexp.MustCompile(`login: `), consoleTimeout)
	if err != nil {
		e.fatalf("%s did not finish booting: %v", bad.name, err)
	}
	if strings.Contains(bad.vm.ConsoleLog(), "emergency mode") {
		e.fatalf("%s went into emergency mode: its kubelet could not have started anyway\n%s", bad.name, bad.vm.ConsoleTail(60))
	}
	figure(t, "%s (%s, bad node config by %s): QEMU start -> first-boot failure on the console -> login prompt %s",
		bad.name, accel, bad.via, login.SeenAt.Sub(bad.vm.StartedAt).Round(time.Second))
	if rest := badNodeWatch - time.Since(login.SeenAt); rest > 0 {
		t.Logf("watching for %s's node %s more", bad.name, rest.Round(time.Second))
		time.Sleep(rest)
	}
	nodes, err = cp.nodes(ctx)
	if err != nil {
		e.fatalf("listing nodes: %v", err)
	}
	if got, want := nodeNames(nodes), []string{w1.name, w2.name}; !slices.Equal(got, want) {
		t.Errorf("nodes %v %s after %s's boot finished, want only %v: the bad node registered", got, time.Since(login.SeenAt).Round(time.Second), bad.name, want)
	} else {
		t.Logf("%s's boot finished %s ago; the nodes are still only %v", bad.name, time.Since(login.SeenAt).Round(time.Second), got)
	}
	if l := diagLine(lastDiag(bad.vm.ReportLog()), "unit kubelet:"); !strings.Contains(l, "ActiveState=inactive") || !strings.Contains(l, "ConditionResult=no") {
		t.Errorf("%s: want the kubelet inactive for its unmet condition, the guest says %q", bad.name, l)
	} else {
		t.Logf("%s: %s", bad.name, l)
	}
	figure(t, "total test time: %s", time.Since(testStart).Round(time.Second))
}

// ensurePauseImage returns the pause image layout scripts/build-pause.sh
// writes, running the script when the layout is missing.
func ensurePauseImage(t *testing.T) string {
	t.Helper()
	root := harness.RepoRoot(t)
	p := filepath.Join(root, "build", "images", "pause")
	if _, err := os.Stat(filepath.Join(p, "index.json")); err == nil {
		return p
	}
	cmd := exec.CommandContext(t.Context(), "bash", "scripts/build-pause.sh")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/build-pause.sh: %v\n%s", err, out)
	}
	return p
}

// buildWebImage compiles the test program (internal/web) and makes it a
// one-layer OCI image layout; it returns the layout's directory.
func buildWebImage(t *testing.T, dir string) string {
	t.Helper()
	bin := harness.GoBuild(t, "./test/e2e/internal/web", dir)
	tarPath := filepath.Join(dir, "web-rootfs.tar")
	if err := writeRootfsTar(tarPath, bin); err != nil {
		t.Fatalf("making the web image's layer: %v", err)
	}
	img, err := oci.ImageFromRootfsTar(tarPath, time.Unix(0, 0), "amd64")
	if err == nil {
		img, err = oci.WithEntrypoint(img, []string{"/web"})
	}
	layout := filepath.Join(dir, "web-image")
	if err == nil {
		err = oci.WriteLayout(layout, img, map[string]string{"org.opencontainers.image.ref.name": webImage})
	}
	if err != nil {
		t.Fatalf("making the web image: %v", err)
	}
	return layout
}

// writeRootfsTar writes a tar holding bin as /web.
func writeRootfsTar(path, bin string) error {
	b, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	if err := tw.WriteHeader(&tar.Header{Name: "web", Mode: 0o755, Size: int64(len(b)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}); err != nil {
		return err
	}
	if _, err := tw.Write(b); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}

func (e *env) guest(name string) *guest {
	for _, g := range e.guests {
		if g.name == name {
			return g
		}
	}
	return nil
}

// start boots g's VM.
func (e *env) start(g *guest) {
	e.t.Helper()
	vm, err := qemu.Start(e.t.Context(), g.cfg)
	if err != nil {
		e.fatalf("starting %s: %v", g.name, err)
	}
	g.vm = vm
	e.t.Logf("%s: QEMU started (%d MiB, %d vCPU, node config by %s), work directory %s", g.name, g.memory, g.cpus, g.via, vm.Dir())
}

// closeVMs stops every VM, keeping the consoles in the log directory.
func (e *env) closeVMs() {
	for _, g := range e.guests {
		if g.vm == nil {
			continue
		}
		g.vm.Kill()
		e.keepLogs(g)
		g.vm.Close()
	}
}

// keepLogs appends g's console and report logs to the log directory.
func (e *env) keepLogs(g *guest) {
	copyFileTo(g.vm.Path(qemu.Console), filepath.Join(e.logDir, g.name+"-console.log"))
	copyFileTo(g.vm.Path(qemu.Report), filepath.Join(e.logDir, g.name+"-report.log"))
}

func copyFileTo(src, dst string) {
	in, err := os.Open(src)
	if err != nil {
		return
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer out.Close()
	io.Copy(out, in)
}

// fatalf prints diagnostics and fails the test.
func (e *env) fatalf(format string, args ...any) {
	e.t.Helper()
	e.t.Fatalf(format, args...)
}

// diagnoseOnFailure prints the cluster's state, the control plane's logs
// and the consoles when the test failed.
func (e *env) diagnoseOnFailure() {
	if !e.t.Failed() {
		return
	}
	t := e.t
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, args := range [][]string{
		{"get", "nodes,pods", "-A", "-o", "wide"},
		{"describe", "nodes"},
		{"describe", "pods"},
		{"get", "events", "-A", "--sort-by=.lastTimestamp"},
	} {
		out, err := e.cp.kubectl(ctx, "", args...)
		if err != nil {
			out += "\n" + err.Error()
		}
		t.Logf("--- kubectl %s ---\n%s", strings.Join(args, " "), lastLines(out, 150))
	}
	for _, n := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"} {
		t.Logf("--- %s log (last lines) ---\n%s", n, tailFile(filepath.Join(e.logDir, n+".log"), 30))
	}
	for _, g := range e.guests {
		if g.vm != nil {
			t.Logf("--- %s ---\n%s\n--- %s: last diagnostics from inside the guest (%s) ---\n%s",
				g.name, g.vm.ConsoleTail(60), g.name, g.vm.Path(qemu.Report), lastDiag(g.vm.ReportLog()))
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// poll calls f every interval until it reports done, the timeout passes,
// or the test's context ends; f's status text goes into the failure.
func (e *env) poll(what string, timeout, interval time.Duration, f func() (done bool, status string)) {
	e.t.Helper()
	ctx := e.t.Context()
	deadline := time.Now().Add(timeout)
	var status string
	for {
		if err := e.cp.check(); err != nil {
			e.fatalf("waiting for %s: %v", what, err)
		}
		var done bool
		done, status = f()
		if done {
			return
		}
		if time.Now().After(deadline) {
			e.fatalf("waiting for %s: not done within %s; last status: %s", what, timeout, status)
		}
		select {
		case <-ctx.Done():
			e.fatalf("waiting for %s: %v; last status: %s", what, ctx.Err(), status)
		case <-time.After(interval):
		}
	}
}

// waitReady waits until every guest's node is Ready (with a boot id other
// than notBootID, when given) and returns when each was first seen Ready.
func (e *env) waitReady(gs []*guest, notBootID string, timeout time.Duration) map[string]time.Time {
	e.t.Helper()
	at := map[string]time.Time{}
	var names []string
	for _, g := range gs {
		names = append(names, g.name)
	}
	e.poll("nodes "+strings.Join(names, ", ")+" Ready", timeout, 2*time.Second, func() (bool, string) {
		for _, g := range gs {
			if g.vm.Exited() {
				e.fatalf("%s: QEMU exited\n%s", g.name, g.vm.ConsoleTail(40))
			}
		}
		ns, err := e.cp.nodes(e.t.Context())
		if err != nil {
			return false, err.Error()
		}
		var status []string
		for _, n := range ns {
			st := "NotReady"
			if n.ready() {
				st = "Ready"
			}
			status = append(status, n.Metadata.Name+"="+st)
			if _, seen := at[n.Metadata.Name]; seen || !n.ready() || !slices.Contains(names, n.Metadata.Name) {
				continue
			}
			if notBootID != "" && n.Status.NodeInfo.BootID == notBootID {
				continue
			}
			at[n.Metadata.Name] = time.Now()
			e.t.Logf("node %s Ready", n.Metadata.Name)
		}
		return len(at) == len(gs), fmt.Sprintf("nodes: %v", status)
	})
	return at
}

// waitServiceAccount waits for the default service account, which the
// API server's admission needs before it takes pods.
func (e *env) waitServiceAccount() {
	e.t.Helper()
	e.poll("the default service account", 3*time.Minute, time.Second, func() (bool, string) {
		_, err := e.cp.kubectl(e.t.Context(), "", "get", "serviceaccount", "default")
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
}

// runPod creates a one-shot pod and waits for it to succeed; it returns
// the pod as it ended.
func (e *env) runPod(p podSpec, timeout time.Duration) pod {
	e.t.Helper()
	ctx := e.t.Context()
	if _, err := e.cp.kubectl(ctx, p.manifest(), "create", "-f", "-"); err != nil {
		e.fatalf("creating pod %s: %v", p.name, err)
	}
	start := time.Now()
	var last pod
	e.poll("pod "+p.name+" to succeed", timeout, 2*time.Second, func() (bool, string) {
		var err error
		last, err = e.cp.pod(ctx, p.name)
		if err != nil {
			return false, err.Error()
		}
		if last.Status.Phase == "Failed" {
			e.fatalf("pod %s failed: %s", p.name, last.describe())
		}
		return last.Status.Phase == "Succeeded", last.describe()
	})
	e.t.Logf("pod %s succeeded on %s in %s: %q", p.name, p.nodeName, time.Since(start).Round(time.Second), last.terminationMessage())
	return last
}

// firstbootStatus reads /run/nodebake/status.json of g through a pod.
func (e *env) firstbootStatus(g *guest, podName string) firstboot.Status {
	e.t.Helper()
	p := e.runPod(podSpec{name: podName, nodeName: g.name, args: []string{"report", firstboot.StatusPath},
		hostPath: "/run/nodebake", readOnly: true}, podTimeout)
	var st firstboot.Status
	if err := json.Unmarshal([]byte(p.terminationMessage()), &st); err != nil {
		e.fatalf("%s: decoding the first-boot status %q: %v", g.name, p.terminationMessage(), err)
	}
	return st
}

// waitWeb waits for the web deployment's two pods to be ready on two
// different nodes and returns them by node name.
func (e *env) waitWeb(timeout time.Duration) map[string]pod {
	e.t.Helper()
	byNode := map[string]pod{}
	e.poll("the web deployment's pods, one ready per node", timeout, 2*time.Second, func() (bool, string) {
		ps, err := e.cp.pods(e.t.Context(), "app=web")
		if err != nil {
			return false, err.Error()
		}
		clear(byNode)
		var status []string
		for _, p := range ps {
			status = append(status, p.describe())
			if p.ready() && p.Status.PodIP != "" {
				if _, dup := byNode[p.Spec.NodeName]; dup {
					e.fatalf("two web pods on node %s: %v", p.Spec.NodeName, status)
				}
				byNode[p.Spec.NodeName] = p
			}
		}
		return len(byNode) == 2, strings.Join(status, "; ")
	})
	return byNode
}

// crossFetch runs a pod on each worker that fetches from the web pod on
// the other worker, and checks the answers.
func (e *env) crossFetch(web map[string]pod, a, b *guest, round string) {
	e.t.Helper()
	for _, c := range [][2]*guest{{a, b}, {b, a}} {
		from, to := c[0], c[1]
		target, ok := web[to.name]
		if !ok {
			e.fatalf("no web pod on %s", to.name)
		}
		start := time.Now()
		p := e.runPod(podSpec{name: fmt.Sprintf("fetch-%s-from-%s-%s", round, from.name, to.name), nodeName: from.name,
			args: []string{"fetch", "http://" + target.Status.PodIP + "/"}}, podTimeout)
		want := "hello from " + target.Metadata.Name
		if got := strings.TrimSpace(p.terminationMessage()); got != want {
			e.t.Errorf("pod on %s fetching %s (%s on %s) got %q, want %q", from.name, target.Status.PodIP, target.Metadata.Name, to.name, got, want)
		}
		figure(e.t, "pod on %s (%s) -> pod %s on %s over wg0: HTTP 200 in %s (pod created -> succeeded)",
			from.name, from.podCIDR, target.Status.PodIP, to.name, time.Since(start).Round(time.Second))
	}
}
