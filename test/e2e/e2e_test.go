package e2e

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/builder/ansible"
	"github.com/nodebake/nodebake/layers/firstboot"
	"github.com/nodebake/nodebake/layers/oci"
	"github.com/nodebake/nodebake/layers/spec"
	"github.com/nodebake/nodebake/layers/worker"
	"github.com/nodebake/nodebake/test/e2e/internal/probe"
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
	// QEMU start -> login prompt. Three TCG guests boot at once on two
	// cores: a guest's image preload into containerd has taken over 6
	// minutes.
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

// TestCluster goes from the seed's Ansible setup to a running cluster:
// `nodebake import ansible` turns the seed's group_vars and an inventory of
// three workers into a spec and a node config per worker; the image is
// built from that spec; two workers boot from it, each completed at first
// boot by its imported node config (delivered two ways), and a third with
// a bad node config. They join a control plane on the host's loopback,
// and the test checks that pods on the two workers reach each other over
// WireGuard and through a service, that a worker keeps its /var across a
// power cycle, and that the bad one never starts its kubelet.
func TestCluster(t *testing.T) {
	harness.RequireSlow(t)
	if os.Getenv(EnvE2E) != "1" {
		t.Skipf("end-to-end test: set %s=1 (and %s=1) to run it", EnvE2E, harness.EnvSlow)
	}
	for _, tool := range []string{"qemu-system-x86_64", "qemu-img", "cp"} {
		harness.RequireTool(t, tool)
	}
	testStart := time.Now()
	sw := newStopwatch(t)
	ctx := t.Context()
	work := t.TempDir()

	base := podBaseSpec(t, work)
	cli := harness.GoBuild(t, "./builder/cmd/nodebake", work)
	sw.lap("base spec, release mirror, test image, nodebake CLI")

	bins := controlPlaneBinaries(t, base)
	sw.lap("control plane binaries")
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

	plan := clusterPlan()
	w1, w2, bad := plan.w1, plan.w2, plan.bad
	cp := startControlPlane(t, bins, logDir, freePort(t), plan.names())
	sw.lap("control plane up (etcd, kube-apiserver, controller manager, scheduler)")
	e := &env{t: t, cp: cp, logDir: logDir, guests: plan.all(), created: map[string]time.Time{}}
	t.Cleanup(e.closeVMs)
	t.Cleanup(e.diagnoseOnFailure)

	// The seed's Ansible setup, imported: the spec the image is built
	// from and every worker's node config. Every worker has a pod CIDR in
	// the inventory, so the spec has the bridge pod network.
	imp := importCluster(t, cli, work, base, cp, plan.all())
	s := imp.spec
	if s.Kubernetes.PodNetwork != spec.PodNetworkBridge {
		t.Fatalf("the imported spec's pod network is %q, want %q (every worker has a %s)", s.Kubernetes.PodNetwork, spec.PodNetworkBridge, ansible.PodCIDRVar)
	}
	t.Logf("nodebake import ansible: %s", reportSummary(imp.report))
	sw.lap("nodebake import ansible")
	res := harness.BuildImage(t, s, filepath.Join(work, "out"))
	sw.lap("image build from the imported spec (warm cache)")

	// The node configs are checked on the host against the image's facts,
	// as first boot will check them. The good ones are the import's, as it
	// wrote them. The bad one is the only node config made by hand: the
	// import cannot write it (it names each node after its certificate, and
	// refuses two hosts with one node name), so worker03's imported config
	// gets worker02's certificate and key in place of its own, as a
	// tampered or mixed-up config would: first boot must refuse it.
	facts := worker.ImageFacts(s)
	for _, g := range []*guest{w1, w2} {
		if _, err := loadNodeConfig(imp.nodeConfig(g.name), facts); err != nil {
			t.Fatalf("the imported node config of %s: %v", g.name, err)
		}
	}
	vmDir := filepath.Join(work, "vms")
	if err := os.MkdirAll(vmDir, 0o755); err != nil {
		t.Fatal(err)
	}
	badFile := filepath.Join(vmDir, bad.name+"-bad-node.yaml")
	if err := writeBadNodeConfig(imp.nodeConfig(bad.name), badFile, cp.workers[w2.name], facts); err != nil {
		t.Fatal(err)
	}
	accel := qemu.Accel()
	if accel == qemu.AccelTCG && runtime.NumCPU() < 2*len(plan.all()) {
		// Under TCG each vCPU is a host thread translating guest code.
		// With fewer host cores than two vCPUs per guest, a second vCPU
		// costs more than it gives: the guests' threads contend for the
		// cores, and a guest's vCPU spins on a lock that a descheduled one
		// holds.
		for _, g := range plan.all() {
			g.cpus = 1
		}
	}
	linkPort := freePort(t)
	w1.prepare(t, cp, vmDir, imp.nodeConfig(w1.name), "", []string{fmt.Sprintf("socket,listen=127.0.0.1:%d", linkPort)})
	w2.prepare(t, cp, vmDir, imp.nodeConfig(w2.name), imp.configDrive(w2.name), []string{fmt.Sprintf("socket,connect=127.0.0.1:%d", linkPort)})
	bad.prepare(t, cp, vmDir, badFile, "", nil)
	// worker02 is power-cycled later: it boots from its own raw copy of
	// the image (qemu.Config.Direct), so that a second QEMU finds its /var.
	w2.cfg.Disk = filepath.Join(work, "worker02.raw")
	if out, err := exec.CommandContext(ctx, "cp", "--sparse=always", res.ImagePath, w2.cfg.Disk).CombinedOutput(); err != nil {
		t.Fatalf("copying the image for worker02: %v: %s", err, out)
	}
	w2.cfg.Direct = true
	w1.cfg.Disk, bad.cfg.Disk = res.ImagePath, res.ImagePath

	t.Logf("booting the workers under %s", accel)
	// The three boot at once. The bad node is checked in the background
	// while the others are tested, and stopped when its checks are done,
	// so that it does not hold the host's cores for the rest of the test.
	e.start(w1)
	if err := waitListening(linkPort, time.Minute); err != nil {
		t.Fatalf("worker01's end of the WireGuard underlay: %v", err)
	}
	e.start(w2)
	e.start(bad)
	badDone := e.checkBadNode(bad, w2.name, []string{w1.name, w2.name}, accel)

	// 1. Both workers become Ready with the image's version and their
	// wg0 address.
	readyAt := e.waitReady([]*guest{w1, w2}, "", readyTimeout)
	for _, g := range []*guest{w1, w2} {
		e.bootFigures(g, accel, "first boot", readyAt[g.name])
	}
	sw.lap("worker01 and worker02: QEMU start -> both nodes Ready (worker03 booting alongside)")
	nodes, err := cp.nodes(ctx)
	if err != nil {
		e.fatalf("listing nodes: %v", err)
	}
	bootIDs := map[string]string{}
	for _, n := range nodes {
		g := e.guest(n.Metadata.Name)
		if g == nil || g == bad {
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

	// 2. Two replicas of the test server, one per node, behind a service.
	// As soon as they have addresses, one probe pod per node: the
	// first-boot status (where the node config came from, how long it
	// took), a marker written to worker02's /var, the other node's web
	// pod fetched over wg0 and, from worker01, the service (kube-proxy,
	// IPVS). Fetches retry until the server answers.
	e.waitServiceAccount()
	if _, err := cp.kubectl(ctx, webDeployment(), "apply", "-f", "-"); err != nil {
		e.fatalf("creating the web deployment: %v", err)
	}
	if _, err := cp.kubectl(ctx, webService(), "apply", "-f", "-"); err != nil {
		e.fatalf("creating the web service: %v", err)
	}
	webStart := time.Now()
	var svc struct {
		Spec struct {
			ClusterIP string `json:"clusterIP"`
		} `json:"spec"`
	}
	if err := cp.get(ctx, "/api/v1/namespaces/default/services/web", &svc); err != nil || svc.Spec.ClusterIP == "" {
		e.fatalf("the web service's cluster IP: %q, %v", svc.Spec.ClusterIP, err)
	}
	svcURL := "http://" + svc.Spec.ClusterIP + "/"
	web := e.waitWeb(podTimeout, false, nil, time.Time{})
	marker := fmt.Sprintf("written before the power cycle at %s", time.Now().UTC().Format(time.RFC3339Nano))
	const markerDir = "/var/lib/e2e"
	markerFile := markerDir + "/marker"
	statusMount := mount{path: path.Dir(firstboot.StatusPath), readOnly: true}
	probeA1 := podSpec{name: "probe-a-" + w1.name, nodeName: w1.name, mounts: []mount{statusMount},
		steps: [][]string{{"report", firstboot.StatusPath}, {"fetch", web[w2.name].url()}, {"fetch", svcURL}}}
	probeA2 := podSpec{name: "probe-a-" + w2.name, nodeName: w2.name, mounts: []mount{statusMount, {path: markerDir}},
		steps: [][]string{{"report", firstboot.StatusPath}, {"write", markerFile, marker}, {"fetch", web[w1.name].url()}}}
	done := e.runPods(podTimeout, probeA1, probeA2)
	web = e.waitWeb(podTimeout, true, nil, time.Time{})
	figure(t, "web deployment: 2 replicas ready, one per node, %s after it was created", time.Since(webStart).Round(time.Second))
	a1, a2 := e.steps(done[probeA1.name], 3), e.steps(done[probeA2.name], 3)
	e.checkStatus(w1, a1[0], true)
	e.checkStatus(w2, a2[0], true)
	e.checkFetch(w1, a1[1], w2, web[w2.name])
	e.checkService(w1, a1[2], svc.Spec.ClusterIP, web)
	if want := "wrote " + markerFile; a2[1].Result != want {
		t.Errorf("%s: the marker step says %q, want %q", w2.name, a2[1].Result, want)
	}
	e.checkFetch(w2, a2[2], w1, web[w1.name])
	sw.lap("web deployment and a probe pod per node: first-boot status, /var marker, pod to pod over wg0, the service")

	// 3. The marker on worker02's /var survives a power cycle.
	downStart := time.Now()
	if err := w2.vm.Powerdown(ctx); err != nil {
		e.fatalf("powering worker02 down: %v", err)
	}
	if err := w2.vm.WaitExit(ctx, shutdownWait); err != nil {
		e.fatalf("worker02 did not power off cleanly: %v", err)
	}
	figure(t, "worker02: ACPI powerdown -> QEMU exited %s", time.Since(downStart).Round(time.Second))
	sw.lap("power cycle: worker02 powers off")
	e.keepLogs(w2)
	w2.vm.Close()
	e.start(w2)
	readyAt = e.waitReady([]*guest{w2}, bootIDs[w2.name], readyTimeout)
	e.bootFigures(w2, accel, "after a power cycle", readyAt[w2.name])
	sw.lap("power cycle: worker02 boots to Ready")
	// At once on worker02: the marker, the first-boot status, and
	// worker01's web pod (the underlay link and WireGuard are back). Once
	// the deployment's pod on worker02 is back, worker01 fetches it.
	probeB2 := podSpec{name: "probe-b-" + w2.name, nodeName: w2.name, mounts: []mount{statusMount, {path: markerDir, readOnly: true}},
		steps: [][]string{{"check", markerFile, marker}, {"report", firstboot.StatusPath}, {"fetch", web[w1.name].url()}}}
	e.createPods(probeB2)
	web = e.waitWeb(podTimeout, true, map[string]pod{w2.name: web[w2.name]}, downStart)
	probeB1 := podSpec{name: "probe-b-" + w1.name, nodeName: w1.name, steps: [][]string{{"fetch", web[w2.name].url()}}}
	done = e.runPods(podTimeout, probeB1)
	maps.Copy(done, e.waitPods(podTimeout, probeB2))
	b1, b2 := e.steps(done[probeB1.name], 1), e.steps(done[probeB2.name], 3)
	if b2[0].Result != marker {
		t.Errorf("%s: the marker after the power cycle reads %q, want %q", w2.name, b2[0].Result, marker)
	}
	e.checkStatus(w2, b2[1], false)
	e.checkFetch(w2, b2[2], w1, web[w1.name])
	e.checkFetch(w1, b1[0], w2, web[w2.name])
	sw.lap("after the power cycle: marker, status, web pod back, pod to pod both ways")

	// 4. The bad node's checks, if they are not done yet.
	<-badDone
	sw.lap("the bad node's checks, what was left of them")
	e.logEvents()
	figure(t, "total test time: %s", time.Since(testStart).Round(time.Second))
}

// checkBadNode checks the bad node in the background and returns a channel
// closed when it is done: the first-boot program names the problem on the
// console (the node config names node bad while its certificate is
// certOf's), the boot otherwise completes (a login prompt, no emergency
// mode), the kubelet stays inactive for its unmet condition, and for
// badNodeWatch after the login prompt the nodes stay only good. Then the
// VM is stopped. Problems are reported with t.Errorf.
func (e *env) checkBadNode(bad *guest, certOf string, good []string, accel string) <-chan struct{} {
	t := e.t
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		<-done
	})
	go func() {
		defer close(done)
		defer bad.vm.Kill()
		fb, err := bad.firstboot.wait()
		if err != nil {
			t.Errorf("%s: %v", bad.name, err)
			return
		}
		t.Logf("%s console: %s", bad.name, fb.Text)
		wantLine := fmt.Sprintf(`nodeName: %q does not match the node certificate's subject CN "system:node:%s"`, bad.name, certOf)
		if !strings.Contains(fb.Text, wantLine) {
			t.Errorf("%s: console says %q, want it to name the problem: %s", bad.name, fb.Text, wantLine)
		}
		login, err := bad.login.wait()
		if err != nil {
			t.Errorf("%s did not finish booting: %v", bad.name, err)
			return
		}
		if strings.Contains(bad.vm.ConsoleLog(), "emergency mode") {
			t.Errorf("%s went into emergency mode: its kubelet could not have started anyway\n%s", bad.name, bad.vm.ConsoleTail(60))
			return
		}
		figure(t, "%s (%s, bad node config by %s): QEMU start -> first-boot failure on the console %s -> login prompt %s",
			bad.name, accel, bad.via, fb.SeenAt.Sub(bad.vm.StartedAt).Round(time.Second), login.SeenAt.Sub(bad.vm.StartedAt).Round(time.Second))
		// The nodes are listed every few seconds until badNodeWatch has
		// passed since the login prompt: the bad node must never appear.
		for {
			nodes, err := e.cp.nodes(ctx)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				t.Logf("listing nodes while watching %s: %v", bad.name, err)
			} else if got := nodeNames(nodes); slices.Contains(got, bad.name) {
				t.Errorf("nodes %v %s after %s's boot finished: the bad node registered", got, time.Since(login.SeenAt).Round(time.Second), bad.name)
				return
			}
			if time.Since(login.SeenAt) >= badNodeWatch {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Second):
			}
		}
		t.Logf("%s's boot finished %s ago; it never registered (the nodes are %v)", bad.name, time.Since(login.SeenAt).Round(time.Second), good)
		// The diagnostics probe reports every 30 s: wait for a report
		// from after the watch.
		var l string
		for deadline := time.Now().Add(2 * time.Minute); ; {
			l = diagLine(lastDiag(bad.vm.ReportLog()), "unit kubelet:")
			if strings.Contains(l, "ActiveState=inactive") && strings.Contains(l, "ConditionResult=no") || time.Now().After(deadline) {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Second):
			}
		}
		if !strings.Contains(l, "ActiveState=inactive") || !strings.Contains(l, "ConditionResult=no") {
			t.Errorf("%s: want the kubelet inactive for its unmet condition, the guest says %q", bad.name, l)
		} else {
			t.Logf("%s: %s; stopping it", bad.name, l)
		}
	}()
	return done
}

// logEvents logs the cluster's events in time order: when each pod was
// scheduled, its sandbox and container created and started, for reading
// where a run's time went.
func (e *env) logEvents() {
	out, err := e.cp.kubectl(e.t.Context(), "", "get", "events", "-A", "--sort-by=.lastTimestamp",
		"-o", "custom-columns=FIRST:.firstTimestamp,LAST:.lastTimestamp,COUNT:.count,OBJECT:.involvedObject.name,REASON:.reason,FROM:.source.host")
	if err != nil {
		e.t.Logf("events: %v", err)
		return
	}
	e.t.Logf("--- events ---\n%s", out)
}

// stopwatch times the test's phases: each lap is a FIGURE line, and the
// laps are listed together when the test ends, passed or failed.
type stopwatch struct {
	t         *testing.T
	start, at time.Time
	names     []string
	durations []time.Duration
}

func newStopwatch(t *testing.T) *stopwatch {
	now := time.Now()
	sw := &stopwatch{t: t, start: now, at: now}
	t.Cleanup(sw.summary)
	return sw
}

// lap ends the phase that began at the previous lap (or the start).
func (sw *stopwatch) lap(name string) {
	now := time.Now()
	d := now.Sub(sw.at)
	sw.at = now
	sw.names = append(sw.names, name)
	sw.durations = append(sw.durations, d)
	figure(sw.t, "phase %q: %s", name, d.Round(100*time.Millisecond))
}

func (sw *stopwatch) summary() {
	var b strings.Builder
	total := time.Since(sw.start)
	for i, n := range sw.names {
		fmt.Fprintf(&b, "\n  %8s  %3d%%  %s", sw.durations[i].Round(time.Second), int(100*sw.durations[i]/total), n)
	}
	if rest := time.Since(sw.at); rest > time.Second {
		fmt.Fprintf(&b, "\n  %8s  %3d%%  (after the last phase)", rest.Round(time.Second), int(100*rest/total))
	}
	figure(sw.t, "phases (total %s, load average %s):%s", total.Round(time.Second), loadAverage(), b.String())
}

// loadAverage is the host's load average over 1, 5 and 15 minutes, for
// reading the figures: the guests share the host's cores.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// podBaseSpec is the base spec of the tests that run pods: the
// repository's worker spec, pinned to the local mirror, with the pause
// and test images preloaded and the diagnostics probe.
func podBaseSpec(t *testing.T, work string) *spec.Spec {
	t.Helper()
	pauseLayout := ensurePauseImage(t)
	webLayout := buildWebImage(t, work)
	base := harness.WorkerSpec(t, diagFiles()...)
	if !slices.ContainsFunc(base.Images, func(im spec.Image) bool { return im.Ref == base.Containerd.SandboxImage }) {
		base.Images = append(base.Images, spec.Image{Ref: base.Containerd.SandboxImage, Image: "oci:" + pauseLayout})
	}
	base.Images = append(base.Images, spec.Image{Ref: webImage, Image: "oci:" + webLayout})
	base.Default()
	if err := base.Validate(); err != nil {
		t.Fatalf("the test's base spec: %v", err)
	}
	return base
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
	if l := diagLine(lastDiag(g.vm.ReportLog()), "blame:"); l != "" {
		e.t.Logf("%s: the slowest units of the boot (systemd-analyze %s)", g.name, l)
	}
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
		for _, g := range e.guests {
			if g.vm == nil {
				continue
			}
			if err := g.vm.Crashed(); err != nil {
				e.fatalf("waiting for %s: %s: %v", what, g.name, err)
			}
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

// steps returns the outcomes of a probe pod's n steps, each of which
// succeeded (the pod did).
func (e *env) steps(p pod, n int) []probe.Step {
	e.t.Helper()
	steps, err := probe.Parse(p.terminationMessage())
	if err != nil {
		e.fatalf("pod %s: %v", p.Metadata.Name, err)
	}
	if len(steps) != n {
		e.fatalf("pod %s: %d steps, want %d: %+v", p.Metadata.Name, len(steps), n, steps)
	}
	for _, st := range steps {
		if !st.OK {
			e.fatalf("pod %s: step %q failed: %s", p.Metadata.Name, st.Step, st.Error)
		}
		tries := ""
		if st.Attempts > 1 {
			tries = fmt.Sprintf(" (%d attempts)", st.Attempts)
		}
		e.t.Logf("pod %s: %s: %s%s", p.Metadata.Name, short(st.Step, 80), (time.Duration(st.Millis) * time.Millisecond).Round(100*time.Millisecond), tries)
	}
	return steps
}

// checkStatus checks g's first-boot status as a probe pod reported it.
func (e *env) checkStatus(g *guest, st probe.Step, report bool) {
	e.t.Helper()
	var fs firstboot.Status
	if err := json.Unmarshal([]byte(st.Result), &fs); err != nil {
		e.fatalf("%s: decoding the first-boot status %q: %v", g.name, st.Result, err)
	}
	want, ok := sources[g.via]
	if !ok {
		e.fatalf("%s: no source known for delivery %q", g.name, g.via)
	}
	if !fs.OK || fs.NodeName != g.name || !strings.HasPrefix(fs.Source, want.source) || want.platform != "" && fs.Platform != want.platform {
		e.t.Errorf("%s: first-boot status ok=%v node=%q platform=%q source=%q, want ok, %s, platform %q, source %q...",
			g.name, fs.OK, fs.NodeName, fs.Platform, fs.Source, g.name, want.platform, want.source)
	}
	if report {
		figure(e.t, "%s: first-boot program ran %s (status.json durationMicros %d; platform %q, detection %.2f ms; node config from %s)", g.name,
			(time.Duration(fs.DurationMicros) * time.Microsecond).Round(time.Millisecond), fs.DurationMicros, fs.Platform, float64(fs.DetectMicros)/1000, fs.Source)
	}
}

// checkFetch checks that a pod on from fetched the web pod target on to,
// over wg0: its greeting names the pod.
func (e *env) checkFetch(from *guest, st probe.Step, to *guest, target pod) {
	e.t.Helper()
	want := "hello from " + target.Metadata.Name
	if got := strings.TrimSpace(st.Result); got != want {
		e.t.Errorf("pod on %s fetching %s (%s on %s) got %q, want %q", from.name, target.Status.PodIP, target.Metadata.Name, to.name, got, want)
		return
	}
	e.t.Logf("pod on %s (%s) -> pod %s on %s over wg0: HTTP 200, %q", from.name, from.podCIDR, target.Status.PodIP, to.name, want)
}

// checkService checks that a pod on from fetched the web service at ip
// (through kube-proxy): the greeting names one of the web pods.
func (e *env) checkService(from *guest, st probe.Step, ip string, web map[string]pod) {
	e.t.Helper()
	got := strings.TrimSpace(st.Result)
	for _, p := range web {
		if got == "hello from "+p.Metadata.Name {
			e.t.Logf("pod on %s -> service %s (kube-proxy): HTTP 200, %q", from.name, ip, got)
			return
		}
	}
	e.t.Errorf("pod on %s fetching the web service at %s got %q, want a web pod's greeting", from.name, ip, got)
}

// waitWeb waits for the web deployment's two pods to be on two different
// nodes, with an address or, when ready is set, ready, and returns them by
// node name. A pod whose node is in stale must run a container other than
// the one stale names (a pod as it was before its node restarted).
//
// A pod status the API server still holds from before a power cycle can
// look ready with the old container and the old IP until the kubelet
// reports again: on a node of stale, a pod counts only when its Ready
// condition turned true after since (the power-off) and it runs another
// container.
func (e *env) waitWeb(timeout time.Duration, ready bool, stale map[string]pod, since time.Time) map[string]pod {
	e.t.Helper()
	byNode := map[string]pod{}
	what := "the web deployment's pods, one with an address per node"
	if ready {
		what = "the web deployment's pods, one ready per node"
	}
	e.poll(what, timeout, 2*time.Second, func() (bool, string) {
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
			if (p.ready() || !ready) && p.Status.PodIP != "" {
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
