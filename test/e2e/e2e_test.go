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

	"github.com/nodebake/nodebake/layers/firstboot"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
	"github.com/nodebake/nodebake/layers/oci"
	"github.com/nodebake/nodebake/layers/spec"
	"github.com/nodebake/nodebake/layers/worker"
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
	// QEMU start -> login prompt. Three TCG guests share two cores: the
	// third's image preload into containerd has taken over 6 minutes.
	loginTimeout = 20 * time.Minute
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
	// created is when each one-shot pod was created.
	created map[string]time.Time
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
	// Kept when the test fails, so under the repository's build
	// directory rather than the system's temporary one.
	logRoot := filepath.Join(harness.RepoRoot(t), "build", "test-logs")
	if err := os.MkdirAll(logRoot, 0o755); err != nil {
		t.Fatal(err)
	}
	logDir, err := os.MkdirTemp(logRoot, "e2e-")
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
	e := &env{t: t, cp: cp, logDir: logDir, guests: []*guest{w1, w2, bad}, created: map[string]time.Time{}}
	t.Cleanup(e.closeVMs)
	t.Cleanup(e.diagnoseOnFailure)

	// Node configs, checked on the host against the image's facts first.
	facts := worker.ImageFacts(s)
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
		e.bootFigures(g, accel, "first boot", readyAt[g.name])
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
		t.Logf("node %s: Ready, kubelet %s, internal IP %s, %s, kernel %s, %s",
			g.name, n.Status.NodeInfo.KubeletVersion, n.address("InternalIP"),
			n.Status.NodeInfo.OSImage, n.Status.NodeInfo.KernelVersion, n.Status.NodeInfo.ContainerRuntime)
	}

	// 2. At once: the first-boot program's status on each worker, read
	// through a pod (where the node config came from, how long it took);
	// a marker written to worker02's /var; two replicas of the test
	// server, one per node.
	e.waitServiceAccount()
	marker := fmt.Sprintf("written before the power cycle at %s", time.Now().UTC().Format(time.RFC3339Nano))
	const markerFile = "/var/lib/e2e/marker"
	if _, err := cp.kubectl(ctx, webDeployment(), "apply", "-f", "-"); err != nil {
		e.fatalf("creating the web deployment: %v", err)
	}
	if _, err := cp.kubectl(ctx, webService(), "apply", "-f", "-"); err != nil {
		e.fatalf("creating the web service: %v", err)
	}
	webStart := time.Now()
	done := e.runPods(podTimeout,
		statusPod(w1, "status-"+w1.name),
		statusPod(w2, "status-"+w2.name),
		podSpec{name: "marker-write", nodeName: w2.name, args: []string{"write", markerFile, marker}, hostPath: "/var/lib/e2e"})
	for _, g := range []*guest{w1, w2} {
		e.checkStatus(g, done["status-"+g.name], true)
	}
	web := e.waitWeb(podTimeout, nil, time.Time{})
	figure(t, "web deployment: 2 replicas ready, one per node, %s after it was created", time.Since(webStart).Round(time.Second))

	// 3. Each node's pods reach the other node's over wg0, and a pod on
	// worker01 reaches the service in front of both (kube-proxy, IPVS).
	svcIP, err := cp.kubectl(ctx, "", "get", "service", "web", "-o", "jsonpath={.spec.clusterIP}")
	if err != nil || svcIP == "" {
		e.fatalf("the web service's cluster IP: %q, %v", svcIP, err)
	}
	e.crossFetch(web, w1, w2, "a", svcIP)

	// 4. The marker on worker02's /var survives a power cycle.
	downStart := time.Now()
	if err := w2.vm.Powerdown(ctx); err != nil {
		e.fatalf("powering worker02 down: %v", err)
	}
	if err := w2.vm.WaitExit(ctx, shutdownWait); err != nil {
		e.fatalf("worker02 did not power off cleanly: %v", err)
	}
	figure(t, "worker02: ACPI powerdown -> QEMU exited %s", time.Since(downStart).Round(time.Second))
	e.keepLogs(w2)
	w2.vm.Close()
	e.start(w2)
	readyAt = e.waitReady([]*guest{w2}, bootIDs[w2.name], readyTimeout)
	e.bootFigures(w2, accel, "after a power cycle", readyAt[w2.name])
	checkPods := []podSpec{
		{name: "marker-check", nodeName: w2.name, args: []string{"check", markerFile, marker}, hostPath: "/var/lib/e2e", readOnly: true},
		statusPod(w2, "status-worker02-again"),
	}
	e.createPods(checkPods...)
	// The deployment's pod on worker02 comes back, and the nodes still
	// reach each other's pods: the underlay link and WireGuard are back.
	web = e.waitWeb(podTimeout, map[string]pod{w2.name: web[w2.name]}, downStart)
	e.crossFetch(web, w1, w2, "b", "")
	done = e.waitPods(podTimeout, checkPods...)
	e.checkStatus(w2, done["status-worker02-again"], false)

	// 5. The bad node: the first-boot program names the problem on the
	// console, the boot otherwise completes (a login prompt), and the
	// kubelet never starts: its node never appears.
	fb, err := bad.firstboot.wait()
	if err != nil {
		e.fatalf("%s: %v", bad.name, err)
	}
	t.Logf("%s console: %s", bad.name, fb.Text)
	wantLine := fmt.Sprintf(`nodeName: %q does not match the node certificate's subject CN "system:node:%s"`, bad.name, w2.name)
	if !strings.Contains(fb.Text, wantLine) {
		t.Errorf("%s: console says %q, want it to name the problem: %s", bad.name, fb.Text, wantLine)
	}
	login, err := bad.login.wait()
	if err != nil {
		e.fatalf("%s did not finish booting: %v", bad.name, err)
	}
	if strings.Contains(bad.vm.ConsoleLog(), "emergency mode") {
		e.fatalf("%s went into emergency mode: its kubelet could not have started anyway\n%s", bad.name, bad.vm.ConsoleTail(60))
	}
	figure(t, "%s (%s, bad node config by %s): QEMU start -> first-boot failure on the console %s -> login prompt %s",
		bad.name, accel, bad.via, fb.SeenAt.Sub(bad.vm.StartedAt).Round(time.Second), login.SeenAt.Sub(bad.vm.StartedAt).Round(time.Second))
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
	ctx := e.t.Context()
	g.firstboot = watch(ctx, vm, firstbootLine, consoleTimeout)
	g.login = watch(ctx, vm, loginPrompt, loginTimeout)
	e.t.Logf("%s: QEMU started (%d MiB, %d vCPU, node config by %s), work directory %s", g.name, g.memory, g.cpus, g.via, vm.Dir())
}

// Console lines the test times boots by.
var (
	firstbootLine = regexp.MustCompile(`nodebake-firstboot: [^\r\n]*`)
	loginPrompt   = regexp.MustCompile(`login: `)
)

// bootFigures reports how long g's boot took to its first-boot line, its
// login prompt and its node being Ready.
func (e *env) bootFigures(g *guest, accel, which string, readyAt time.Time) {
	e.t.Helper()
	since := func(at time.Time) string { return at.Sub(g.vm.StartedAt).Round(time.Second).String() }
	fb, login := "?", "?"
	if m, ok := g.firstboot.seen(); ok {
		fb = since(m.SeenAt)
		e.t.Logf("%s console: %s", g.name, m.Text)
	}
	if m, ok := g.login.seen(); ok {
		login = since(m.SeenAt)
	}
	figure(e.t, "%s (%s, %s, node config by %s): QEMU start -> first-boot done %s -> login prompt %s -> node Ready %s",
		g.name, accel, which, g.via, fb, login, since(readyAt))
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

// short returns s on one line, cut to at most n bytes.
func short(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
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

// statusPod is a pod that reports g's first-boot status file.
func statusPod(g *guest, name string) podSpec {
	return podSpec{name: name, nodeName: g.name, args: []string{"report", firstboot.StatusPath}, hostPath: "/run/nodebake", readOnly: true}
}

// createPods creates one-shot pods.
func (e *env) createPods(ps ...podSpec) {
	e.t.Helper()
	var items []json.RawMessage
	for _, p := range ps {
		items = append(items, json.RawMessage(p.manifest()))
	}
	list, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
	if _, err := e.cp.kubectl(e.t.Context(), string(list), "create", "-f", "-"); err != nil {
		e.fatalf("creating pods: %v", err)
	}
	for _, p := range ps {
		e.created[p.name] = time.Now()
	}
}

// waitPods waits for one-shot pods to succeed and returns them, as they
// ended, by name. A failed pod fails the test.
func (e *env) waitPods(timeout time.Duration, ps ...podSpec) map[string]pod {
	e.t.Helper()
	ctx := e.t.Context()
	out := map[string]pod{}
	var names []string
	for _, p := range ps {
		names = append(names, p.name)
	}
	e.poll("pods "+strings.Join(names, ", ")+" to succeed", timeout, 2*time.Second, func() (bool, string) {
		all, err := e.cp.pods(ctx, "app=e2e-job")
		if err != nil {
			return false, err.Error()
		}
		var status []string
		for _, p := range all {
			if !slices.Contains(names, p.Metadata.Name) {
				continue
			}
			status = append(status, p.describe())
			if p.Status.Phase == "Failed" {
				e.fatalf("pod %s failed: %s", p.Metadata.Name, p.describe())
			}
			if _, seen := out[p.Metadata.Name]; !seen && p.Status.Phase == "Succeeded" {
				out[p.Metadata.Name] = p
				e.t.Logf("pod %s succeeded on %s, %s after it was created: %q", p.Metadata.Name, p.Spec.NodeName,
					time.Since(e.created[p.Metadata.Name]).Round(time.Second), short(p.terminationMessage(), 200))
			}
		}
		return len(out) == len(ps), strings.Join(status, "; ")
	})
	return out
}

// runPods creates one-shot pods and waits for them to succeed.
func (e *env) runPods(timeout time.Duration, ps ...podSpec) map[string]pod {
	e.t.Helper()
	e.createPods(ps...)
	return e.waitPods(timeout, ps...)
}

// checkStatus checks g's first-boot status as a status pod reported it.
func (e *env) checkStatus(g *guest, p pod, report bool) {
	e.t.Helper()
	var st firstboot.Status
	if err := json.Unmarshal([]byte(p.terminationMessage()), &st); err != nil {
		e.fatalf("%s: decoding the first-boot status %q: %v", g.name, p.terminationMessage(), err)
	}
	wantSource := map[string]string{viaCredential: "credential ", viaConfigDrive: "config-drive "}[g.via]
	if !st.OK || st.NodeName != g.name || !strings.HasPrefix(st.Source, wantSource) {
		e.t.Errorf("%s: first-boot status ok=%v node=%q source=%q, want ok, %s, source %q...", g.name, st.OK, st.NodeName, st.Source, g.name, wantSource)
	}
	if report {
		figure(e.t, "%s: first-boot program ran %s (status.json durationMicros %d; node config from %s)", g.name,
			(time.Duration(st.DurationMicros) * time.Microsecond).Round(time.Millisecond), st.DurationMicros, st.Source)
	}
}

// waitWeb waits for the web deployment's two pods to be ready on two
// different nodes and returns them by node name. A pod whose node is in
// stale must run a container other than the one stale names (a pod as it
// was before its node restarted).
//
// A pod status the API server still holds from before a power cycle can
// look ready with the old container and the old IP until the kubelet
// reports again: on a node of stale, a pod counts only when its Ready
// condition turned true after since (the power-off) and it runs another
// container.
func (e *env) waitWeb(timeout time.Duration, stale map[string]pod, since time.Time) map[string]pod {
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
			if old, ok := stale[p.Spec.NodeName]; ok && (p.startedAt() == old.startedAt() || p.readySince().Before(since.Truncate(time.Second))) {
				continue
			}
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
// With a serviceIP, a pod on a also fetches from the service.
func (e *env) crossFetch(web map[string]pod, a, b *guest, round, serviceIP string) {
	e.t.Helper()
	type fetch struct {
		from, to *guest
		target   pod
		spec     podSpec
	}
	var fs []fetch
	var specs []podSpec
	for _, c := range [][2]*guest{{a, b}, {b, a}} {
		from, to := c[0], c[1]
		target, ok := web[to.name]
		if !ok {
			e.fatalf("no web pod on %s", to.name)
		}
		f := fetch{from: from, to: to, target: target, spec: podSpec{
			name: fmt.Sprintf("fetch-%s-from-%s-to-%s", round, from.name, to.name), nodeName: from.name,
			args: []string{"fetch", "http://" + target.Status.PodIP + "/"},
		}}
		fs = append(fs, f)
		specs = append(specs, f.spec)
	}
	svc := podSpec{name: fmt.Sprintf("fetch-%s-from-%s-to-service", round, a.name), nodeName: a.name,
		args: []string{"fetch", "http://" + serviceIP + "/"}}
	if serviceIP != "" {
		specs = append(specs, svc)
	}
	done := e.runPods(podTimeout, specs...)
	if serviceIP != "" {
		got := strings.TrimSpace(done[svc.name].terminationMessage())
		ok := false
		for _, p := range web {
			ok = ok || got == "hello from "+p.Metadata.Name
		}
		if !ok {
			e.t.Errorf("pod on %s fetching the web service at %s got %q, want a web pod's greeting", a.name, serviceIP, got)
		} else {
			e.t.Logf("pod on %s -> service %s (kube-proxy): HTTP 200, %q", a.name, serviceIP, got)
		}
	}
	for _, f := range fs {
		want := "hello from " + f.target.Metadata.Name
		if got := strings.TrimSpace(done[f.spec.name].terminationMessage()); got != want {
			e.t.Errorf("pod on %s fetching %s (%s on %s) got %q, want %q", f.from.name, f.target.Status.PodIP, f.target.Metadata.Name, f.to.name, got, want)
		} else {
			e.t.Logf("pod on %s (%s) -> pod %s on %s over wg0: HTTP 200, %q", f.from.name, f.from.podCIDR, f.target.Status.PodIP, f.to.name, got)
		}
	}
}
