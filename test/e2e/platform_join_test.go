package e2e

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/layers/firstboot"
	"github.com/nodebake/nodebake/layers/firstboot/platform"
	"github.com/nodebake/nodebake/layers/spec"
	"github.com/nodebake/nodebake/layers/worker"
	"github.com/nodebake/nodebake/test/harness"
	"github.com/nodebake/nodebake/test/netlab"
	"github.com/nodebake/nodebake/test/qemu"
)

// ec2InstanceID is the EC2 worker's instance ID: its firmware's board
// asset tag, and the seed of its product UUID.
const ec2InstanceID = "i-0e2e00000000000a1"

// metadataDNSAnswer is what the EC2 worker's lab answers on the metadata
// address's DNS port, which the image's metadata guard lets pods reach:
// the pod that gets no answer from the metadata service gets this one, so
// the silence is the guard's, not a pod network that reaches nothing.
const metadataDNSAnswer = "the lab on the metadata address, port 53"

// platformPlan is the platform join test's two workers: one that gets
// its node config from EC2's instance metadata service, in a network lab
// of its own, and one from an OpenStack config-2 drive, on QEMU's user
// network. Neither has an underlay link, a credential or a NODEBAKE drive.
func platformPlan() (ec2, config2 *guest) {
	ec2ID := qemu.EC2Identity(ec2InstanceID)
	return &guest{name: "plat-ec2", uuid: ec2ID.UUID, identity: ec2ID, wgAddr: "10.8.0.221/24", podCIDR: "10.200.21.0/24",
			via: viaEC2IMDS, memory: 2048, cpus: 2},
		&guest{name: "plat-os", uuid: "6e6f6465-6261-6b65-2d70-6c6174000002", identity: qemu.OpenStackIdentity(), wgAddr: "10.8.0.222/24", podCIDR: "10.200.22.0/24",
			via: viaConfig2, memory: 2048, cpus: 2}
}

// TestPlatformJoin boots two workers from one image, each with nothing
// but its platform to get its node config from, and they join a control
// plane on the host's loopback:
//
//   - an EC2 instance (EC2's firmware strings) in a network lab where the
//     real amazon-ec2-metadata-mock serves the node config as user data
//     at 169.254.169.254, IMDSv2 required, and the lab forwards the API
//     server's guest address to the host;
//   - an OpenStack Nova VM (Nova's firmware strings) with a config-2 ISO
//     made by genisoimage, on QEMU's user network.
//
// The node configs are the import's (`nodebake import ansible`), as in
// the cluster test. Both nodes become Ready with their wg0 address; a
// pod on each reports first boot's status, which must name the platform
// and the source; the kubelets are active. A pod on the EC2 worker gets
// no answer from the metadata service (the image's guard drops it),
// though the node itself read its user data from it.
func TestPlatformJoin(t *testing.T) {
	harness.RequireSlow(t)
	if os.Getenv(EnvE2E) != "1" {
		t.Skipf("end-to-end test: set %s=1 (and %s=1) to run it", EnvE2E, harness.EnvSlow)
	}
	netlab.Require(t)
	for _, tool := range []string{"qemu-system-x86_64", "qemu-img", "genisoimage"} {
		harness.RequireTool(t, tool)
	}
	testStart := time.Now()
	sw := newStopwatch(t)
	ctx := t.Context()
	work := t.TempDir()

	base := podBaseSpec(t, work)
	cli := harness.GoBuild(t, "./builder/cmd/nodebake", work)
	harness.EC2MetadataMock(t)
	bins := controlPlaneBinaries(t, base)
	sw.lap("base spec, test image, nodebake CLI, metadata mock, control plane binaries")

	ec2, os2 := platformPlan()
	gs := []*guest{ec2, os2}
	logDir := t.TempDir()
	cp := startControlPlane(t, bins, logDir, freePort(t), []string{ec2.name, os2.name})
	e := &env{t: t, cp: cp, logDir: logDir, guests: gs, created: map[string]time.Time{}}
	t.Cleanup(e.closeVMs)
	t.Cleanup(e.diagnoseOnFailure)
	sw.lap("control plane up")

	imp := importCluster(t, cli, work, base, cp, gs)
	s := imp.spec
	if s.Kubernetes.PodNetwork != spec.PodNetworkBridge {
		t.Fatalf("the imported spec's pod network is %q, want %q", s.Kubernetes.PodNetwork, spec.PodNetworkBridge)
	}
	res := harness.BuildImage(t, s, filepath.Join(work, "out"))
	sw.lap("nodebake import ansible, image build from the imported spec")
	facts := worker.ImageFacts(s)
	nodeYAML := map[string][]byte{}
	for _, g := range gs {
		if _, err := loadNodeConfig(imp.nodeConfig(g.name), facts); err != nil {
			t.Fatalf("the imported node config of %s: %v", g.name, err)
		}
		b, err := os.ReadFile(imp.nodeConfig(g.name))
		if err != nil {
			t.Fatal(err)
		}
		nodeYAML[g.name] = b
	}
	vmDir := filepath.Join(work, "vms")
	if err := os.MkdirAll(vmDir, 0o755); err != nil {
		t.Fatal(err)
	}

	// The EC2 worker's lab: the metadata mock with the node config as
	// user data, the API server at its guest address, and an answer on
	// the metadata address's DNS port.
	lab := netlab.New(t, netlab.WithAddrs(netip.MustParseAddr(apiServerGuestIP)))
	lab.ForwardTCP(t, net.JoinHostPort(apiServerGuestIP, strconv.Itoa(cp.port)), cp.hostAddr())
	lab.ServeEC2Metadata(t, nodeYAML[ec2.name])
	lab.ServeHTTP(t, net.JoinHostPort(netlab.MetadataAddr, "53"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, metadataDNSAnswer)
	}))
	ec2.prepare(t, cp, vmDir, "", "", nil)
	ec2.cfg.UserNet = nil // the lab is the guest's only network
	ec2.cfg.Disk = res.ImagePath
	ec2MAC := lab.Attach(t, &ec2.cfg)

	// The OpenStack worker's config-2 drive, as Nova writes one.
	drive := harness.ISO(t, "config-2", map[string][]byte{
		platform.ConfigDriveUserData:      nodeYAML[os2.name],
		"openstack/latest/meta_data.json": fmt.Appendf(nil, `{"uuid": %q, "name": %q}`, os2.uuid, os2.name),
	})
	os2.prepare(t, cp, vmDir, "", drive, nil)
	os2.cfg.Disk = res.ImagePath

	unlock, err := qemu.Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	accel := qemu.Accel()
	t.Logf("booting the workers under %s", accel)
	e.start(ec2)
	e.start(os2)
	// Pod traffic leaves the node unmasqueraded (the bridge network keeps
	// pod addresses): the lab routes the EC2 worker's pod CIDR back to it,
	// as a cloud's VPC routes a node's pod range, so that what a pod gets
	// no answer from is what the node drops.
	wctx, cancel := ec2.vm.Watch(ctx)
	lease, err := lab.WaitLease(wctx, ec2MAC, consoleTimeout)
	cancel()
	if err != nil {
		e.fatalf("%s: %v", ec2.name, err)
	}
	if out, err := lab.Command(ctx, "ip", "route", "add", ec2.podCIDR, "via", lease.Addr.String()).CombinedOutput(); err != nil {
		e.fatalf("routing %s's pod CIDR in its lab: %v: %s", ec2.name, err, out)
	}
	readyAt := e.waitReady(gs, "", readyTimeout)
	for _, g := range gs {
		e.bootFigures(g, accel, "first boot", readyAt[g.name])
	}
	sw.lap("both workers: QEMU start -> both nodes Ready")
	nodes, err := cp.nodes(ctx)
	if err != nil {
		e.fatalf("listing nodes: %v", err)
	}
	if got := nodeNames(nodes); len(got) != len(gs) {
		t.Errorf("nodes %v, want %s and %s", got, ec2.name, os2.name)
	}
	for _, n := range nodes {
		g := e.guest(n.Metadata.Name)
		if g == nil {
			e.fatalf("unexpected node %s", n.Metadata.Name)
		}
		if got := n.address("InternalIP"); got != g.wgIP() {
			t.Errorf("node %s: INTERNAL-IP %s, want its wg0 address %s", g.name, got, g.wgIP())
		}
		if got := n.Status.NodeInfo.KubeletVersion; got != s.Kubernetes.Version {
			t.Errorf("node %s: VERSION %s, want the spec's %s", g.name, got, s.Kubernetes.Version)
		}
	}

	// A probe pod per node: first boot's status; on the EC2 worker, the
	// metadata service (dropped) and its address's DNS port (let through).
	e.waitServiceAccount()
	statusMount := mount{path: path.Dir(firstboot.StatusPath), readOnly: true}
	metadataURL := "http://" + netlab.MetadataAddr + "/latest/meta-data/"
	probeEC2 := podSpec{name: "probe-" + ec2.name, nodeName: ec2.name, mounts: []mount{statusMount},
		steps: [][]string{{"report", firstboot.StatusPath}, {"noanswer", metadataURL},
			{"fetch", "http://" + net.JoinHostPort(netlab.MetadataAddr, "53") + "/"}}}
	probeOS := podSpec{name: "probe-" + os2.name, nodeName: os2.name, mounts: []mount{statusMount},
		steps: [][]string{{"report", firstboot.StatusPath}}}
	done := e.runPods(podTimeout, probeEC2, probeOS)
	stEC2, stOS := e.steps(done[probeEC2.name], 3), e.steps(done[probeOS.name], 1)
	e.checkStatus(ec2, stEC2[0], true)
	e.checkStatus(os2, stOS[0], true)
	t.Logf("pod on %s: %s: %s; %s: %q", ec2.name, stEC2[1].Step, stEC2[1].Result, stEC2[2].Step, stEC2[2].Result)
	if got := stEC2[2].Result; got != metadataDNSAnswer {
		t.Errorf("pod on %s: the metadata address's DNS port answered %q, want %q", ec2.name, got, metadataDNSAnswer)
	}
	sw.lap("a probe pod per node: first-boot status, the metadata service from a pod")

	// The kubelets are active: the diagnostics probe's first report
	// (every 30 s) from after the pods ran.
	for _, g := range gs {
		from := len(g.vm.ReportLog())
		var l string
		e.poll(g.name+"'s kubelet active in a report after the pods ran", 2*time.Minute, 5*time.Second, func() (bool, string) {
			l = diagLine(lastDiag(g.vm.ReportLog()[from:]), "unit kubelet:")
			return strings.Contains(l, "ActiveState=active") && strings.Contains(l, "SubState=running"), l
		})
		t.Logf("%s: %s", g.name, l)
	}
	figure(t, "total test time: %s", time.Since(testStart).Round(time.Second))
}
