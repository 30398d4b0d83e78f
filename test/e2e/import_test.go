package e2e

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodebake/nodebake/builder/ansible"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig/nodeconfigtest"
	"github.com/nodebake/nodebake/layers/spec"
	"github.com/nodebake/nodebake/layers/worker"
	"github.com/nodebake/nodebake/test/harness"
)

// The cluster's workers come from the seed's Ansible setup, as a user who
// followed the seed has it: the seed's group_vars (the fixture the import's
// own tests read, with k8s_release set to the image's version), and an
// inventory with host_vars that the test writes from its network plan
// (clusterPlan). `nodebake import ansible` turns them into the spec the
// image is built from and a node config per worker.

// seedGroupVars is the seed's group_vars, relative to the repository root.
const seedGroupVars = "builder/ansible/testdata/seed/group_vars"

// hostDomain makes a worker's inventory host name from its node name, as
// the seed names its hosts (worker01.i.domain.tld). The CA names the
// certificate files after the host and the node inside them after the
// node, and the import maps one onto the other.
const hostDomain = ".i.domain.tld"

var update = flag.Bool("update", false, "rewrite the golden inventory in testdata")

// inventoryDir is the golden copy of the inventory the test writes.
const inventoryDir = "testdata/inventory"

func (g *guest) host() string { return g.name + hostDomain }

// writeInventory writes the inventory of the cluster's workers into dir:
// dir/hosts (every worker in the vpn and k8s_worker groups) and
// dir/host_vars/HOST.yml with each worker's githubixx.wireguard variables
// and its pod CIDR. A worker without an underlay has no WireGuard
// endpoint: its peers do not try to reach it.
func writeInventory(dir string, gs []*guest) error {
	var hosts strings.Builder
	hosts.WriteString(`# The cluster test's inventory, written by the test from its network plan
# (clusterPlan in test/e2e). Every worker is in the WireGuard mesh. The
# control plane runs on the test host's loopback, outside the mesh: the
# inventory has no controllers, and the import is given --apiserver.
`)
	for _, group := range []string{ansible.DefaultVPNGroup, ansible.DefaultWorkerGroup} {
		fmt.Fprintf(&hosts, "\n[%s]\n", group)
		for _, g := range gs {
			hosts.WriteString(g.host() + "\n")
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "host_vars"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "hosts"), []byte(hosts.String()), 0o644); err != nil {
		return err
	}
	for _, g := range gs {
		endpoint := g.underlayIP()
		note := ""
		if endpoint == "" {
			note = "  # no underlay link: the peers do not send to it"
		}
		vars := fmt.Sprintf(`---
wireguard_addresses:
  - %q
wireguard_endpoint: %q%s
wireguard_persistent_keepalive: "15"
%s: %q
`, g.wgAddr, endpoint, note, ansible.PodCIDRVar, g.podCIDR)
		if err := os.WriteFile(filepath.Join(dir, "host_vars", g.host()+".yml"), []byte(vars), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// copySeedGroupVars copies the seed's group_vars into dst with k8s_release
// set to version (v1.35.4 is written 1.35.4, as the seed writes it).
func copySeedGroupVars(root, dst, version string) error {
	src := filepath.Join(root, filepath.FromSlash(seedGroupVars))
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	set := false
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return err
		}
		var out []string
		for _, line := range strings.SplitAfter(string(b), "\n") {
			if strings.HasPrefix(line, "k8s_release:") {
				line = fmt.Sprintf("k8s_release: %q\n", strings.TrimPrefix(version, "v"))
				set = true
			}
			out = append(out, line)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), []byte(strings.Join(out, "")), 0o644); err != nil {
			return err
		}
	}
	if !set {
		return fmt.Errorf("%s sets no k8s_release", seedGroupVars)
	}
	return nil
}

// writeCADir writes the cluster CA's output for the workers into dir under
// the seed's file names, as the seed's CA role leaves it for the worker
// playbooks: the CA certificate, each worker's certificate and key named
// after its inventory host, and kube-proxy's.
func (cp *controlPlane) writeCADir(dir string, gs []*guest) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	files := map[string]string{
		nodeconfig.CACertFileName:        cp.ca.certPEM,
		nodeconfig.KubeProxyCertFileName: cp.proxy.certPEM,
		nodeconfig.KubeProxyKeyFileName:  cp.proxy.keyPEM,
	}
	for _, g := range gs {
		p, ok := cp.workers[g.name]
		if !ok {
			return fmt.Errorf("the control plane has no certificate for %s", g.name)
		}
		files[nodeconfig.NodeCertFileName(g.host())] = p.certPEM
		files[nodeconfig.NodeKeyFileName(g.host())] = p.keyPEM
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// imported is what `nodebake import ansible` wrote.
type imported struct {
	dir string
	// spec is the imported spec, loaded and validated.
	spec *spec.Spec
	// report is the import's report.
	report string
}

// nodeConfig is the node config the import wrote for a node.
func (im *imported) nodeConfig(node string) string {
	return filepath.Join(im.dir, ansible.NodesDir, node+".yaml")
}

// configDrive is the config drive the import wrote for a node.
func (im *imported) configDrive(node string) string {
	return filepath.Join(im.dir, ansible.NodesDir, node+".drive.img")
}

// importCluster runs `nodebake import ansible` on the seed's group_vars and
// the test's inventory, with base as the base spec, the control plane's CA
// output and its API server as guests reach it, and returns what it wrote.
func importCluster(t *testing.T, cli, dir string, base *spec.Spec, cp *controlPlane, gs []*guest) *imported {
	t.Helper()
	root := harness.RepoRoot(t)
	groupVars, inv, certs := filepath.Join(dir, "group_vars"), filepath.Join(dir, "inventory"), filepath.Join(dir, "ca")
	baseFile := filepath.Join(dir, "base.yaml")
	out := filepath.Join(dir, "imported")
	b, err := base.Dump()
	if err == nil {
		err = os.WriteFile(baseFile, b, 0o644)
	}
	if err == nil {
		err = copySeedGroupVars(root, groupVars, base.Kubernetes.Version)
	}
	if err == nil {
		err = writeInventory(inv, gs)
	}
	if err == nil {
		err = cp.writeCADir(certs, gs)
	}
	if err != nil {
		t.Fatalf("writing the Ansible tree to import: %v", err)
	}
	cmd := exec.CommandContext(t.Context(), cli, "import", "ansible",
		"--group-vars", groupVars, "--host-vars", filepath.Join(inv, "host_vars"), "-i", filepath.Join(inv, "hosts"),
		"--base", baseFile, "--certs", certs, "--apiserver", cp.guestURL(),
		"--config-drives", "-q", "-o", out)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, stderr.String())
	}
	report, err := os.ReadFile(filepath.Join(out, ansible.ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	s, err := spec.LoadAndValidate(filepath.Join(out, ansible.SpecFile))
	if err != nil {
		t.Fatalf("the imported spec: %v", err)
	}
	return &imported{dir: out, spec: s, report: string(report)}
}

// TestInventory checks the inventory the cluster test imports against its
// golden copy in testdata/inventory (go test -update rewrites it), so that
// a reader sees what the test imports without running it.
func TestInventory(t *testing.T) {
	dir := t.TempDir()
	if err := writeInventory(dir, clusterPlan().all()); err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.RemoveAll(inventoryDir); err != nil {
			t.Fatal(err)
		}
		if err := os.CopyFS(inventoryDir, os.DirFS(dir)); err != nil {
			t.Fatal(err)
		}
	}
	got, want := readTree(t, dir), readTree(t, inventoryDir)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("the inventory the test writes differs from %s (go test -update rewrites it; -want +got):\n%s", inventoryDir, d)
	}
}

// readTree returns the files under dir by relative path.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestImportPlan imports the Ansible trees of TestCluster, TestClock and
// TestPlatformJoin as they do, with a test CA in place of the control plane's, and checks
// what the tests depend on: the bridge pod network, and for every worker a
// node config named after its certificate, with the plan's wg0 address,
// pod CIDR and API server, and the other workers as peers (their wg0
// address and pod network routed to them, reached at their underlay
// address; a worker without an underlay link at none; two workers without
// one are no peers). It runs without QEMU.
func TestImportPlan(t *testing.T) {
	synced, unsynced := clockPlan()
	ec2, config2 := platformPlan()
	for name, gs := range map[string][]*guest{"cluster": clusterPlan().all(), "clock": {synced, unsynced}, "platform": {ec2, config2}} {
		t.Run(name, func(t *testing.T) { checkImportPlan(t, gs) })
	}
}

func checkImportPlan(t *testing.T, gs []*guest) {
	root := harness.RepoRoot(t)
	dir := t.TempDir()
	base, err := spec.Load(filepath.Join(root, "images", "worker.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var hosts []nodeconfigtest.Host
	for _, g := range gs {
		hosts = append(hosts, nodeconfigtest.Host{Host: g.host(), Node: g.name})
	}
	certs := filepath.Join(dir, "ca")
	if err := nodeconfigtest.WriteCADir(certs, hosts); err != nil {
		t.Fatal(err)
	}
	if err := copySeedGroupVars(root, filepath.Join(dir, "group_vars"), base.Kubernetes.Version); err != nil {
		t.Fatal(err)
	}
	if err := writeInventory(filepath.Join(dir, "inventory"), gs); err != nil {
		t.Fatal(err)
	}
	apiServer := "https://" + apiServerGuestIP + ":6443"
	res, err := ansible.Import(t.Context(), ansible.Options{
		GroupVars: filepath.Join(dir, "group_vars"),
		HostVars:  filepath.Join(dir, "inventory", "host_vars"),
		Inventory: filepath.Join(dir, "inventory", "hosts"),
		Base:      base, BaseName: "images/worker.yaml",
		OutputDir: filepath.Join(dir, "out"),
		CertDir:   certs,
		APIServer: apiServer,
		Now:       nodeconfigtest.Now(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Spec.Kubernetes.PodNetwork != spec.PodNetworkBridge || res.Spec.Kubernetes.Version != base.Kubernetes.Version {
		t.Errorf("imported spec: pod network %q, version %s; want bridge and the base's %s", res.Spec.Kubernetes.PodNetwork, res.Spec.Kubernetes.Version, base.Kubernetes.Version)
	}
	facts := worker.ImageFacts(res.Spec)
	if len(res.Nodes) != len(gs) {
		t.Fatalf("%d node configs, want %d", len(res.Nodes), len(gs))
	}
	for _, g := range gs {
		b, err := nodeconfig.ReadFile(filepath.Join(dir, "out", ansible.NodesDir, g.name+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := nodeconfig.Load(b, facts, nodeconfigtest.Now())
		if err != nil {
			t.Fatalf("%s: %v", g.name, err)
		}
		if cfg.NodeName != g.name || cfg.WireGuard.Address != g.wgAddr || cfg.Kubernetes.PodCIDR != g.podCIDR || cfg.Kubernetes.APIServer != apiServer {
			t.Errorf("%s: node %s, wg0 %s, pod CIDR %s, API server %s; want %s, %s, %s, %s", g.name,
				cfg.NodeName, cfg.WireGuard.Address, cfg.Kubernetes.PodCIDR, cfg.Kubernetes.APIServer, g.name, g.wgAddr, g.podCIDR, apiServer)
		}
		var want, got []string
		for _, o := range gs {
			if o == g || o.underlay == "" && g.underlay == "" {
				// Neither could reach the other: as the WireGuard
				// role, the import makes them no peers.
				continue
			}
			endpoint := ""
			if o.underlay != "" {
				endpoint = o.underlayIP() + ":51820"
			}
			want = append(want, fmt.Sprintf("%s/32,%s @%s", o.wgIP(), o.podCIDR, endpoint))
		}
		for _, peer := range cfg.WireGuard.Peers {
			got = append(got, strings.Join(peer.AllowedIPs, ",")+" @"+peer.Endpoint)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s's peers (-want +got):\n%s", g.name, d)
		}
	}
}
