package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/layers/firstboot"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
	"github.com/nodebake/nodebake/test/qemu"
)

// How a node config reaches a guest.
const (
	viaCredential  = "credential"   // fw_cfg systemd credential nodebake.node
	viaConfigDrive = "config-drive" // a FAT drive labelled NODEBAKE
	viaSMBIOS      = "smbios"       // SMBIOS type 11 systemd credential
	// From the guest's platform (guest.identity): EC2's IMDSv2 user data,
	// served by the real metadata mock in the guest's network lab, and an
	// OpenStack config-2 ISO.
	viaEC2IMDS = "ec2-imds"
	viaConfig2 = "config-2"
)

// sources are, by delivery, the source first boot's status names (or
// begins with, where a path follows) and the platform it detects ("" for
// any).
var sources = map[string]struct{ platform, source string }{
	viaCredential:  {"", "credential "},
	viaConfigDrive: {"", "config-drive "},
	viaEC2IMDS:     {"ec2", "ec2-imds user-data"},
	// The boot disk is the first virtio disk, the drive the second.
	viaConfig2: {"openstack", "openstack config-2 drive /dev/vdb"},
}

// underlayCredential is the systemd credential that systemd-network-generator
// turns into /run/systemd/network/40-underlay.network.
const underlayCredential = "opt/io.systemd.credentials/network.network.40-underlay"

// guest is one worker VM of the test and what makes it.
type guest struct {
	name     string
	uuid     string
	wgAddr   string // wg0's address, CIDR
	podCIDR  string
	underlay string // the underlay NIC's address, CIDR ("" for none)
	via      string
	// identity is what the guest's firmware reports (qemu.PlainIdentity,
	// the zero value, unless a platform's).
	identity qemu.Identity
	memory   int
	cpus     int

	cfg qemu.Config
	vm  *qemu.VM
	// firstboot and login watch the current VM's console for the
	// first-boot program's line and the login prompt.
	firstboot, login *sighting
}

// sighting is when a pattern first showed on a VM's console, watched in
// the background from the VM's start.
type sighting struct {
	done chan struct{}
	m    qemu.Match
	err  error
}

func watch(ctx context.Context, vm *qemu.VM, re *regexp.Regexp, timeout time.Duration) *sighting {
	s := &sighting{done: make(chan struct{})}
	go func() {
		s.m, s.err = vm.WaitForFrom(ctx, qemu.Console, 0, re, timeout)
		close(s.done)
	}()
	return s
}

// wait waits for the pattern (or the watch's timeout).
func (s *sighting) wait() (qemu.Match, error) {
	<-s.done
	return s.m, s.err
}

// seen returns the match if the pattern has shown.
func (s *sighting) seen() (qemu.Match, bool) {
	select {
	case <-s.done:
		return s.m, s.err == nil
	default:
		return qemu.Match{}, false
	}
}

func (g *guest) wgIP() string       { ip, _, _ := strings.Cut(g.wgAddr, "/"); return ip }
func (g *guest) underlayIP() string { ip, _, _ := strings.Cut(g.underlay, "/"); return ip }

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// underlayMAC is the MAC address the qemu package gives NIC n (1 for the
// first of Config.NetDevs) of a VM with the given UUID. It repeats the
// package's unexported deriveMAC; the WireGuard handshake over the underlay
// fails (and with it the test) if the two ever disagree.
func underlayMAC(uuid string, n int) string {
	h := sha256.Sum256([]byte(uuid + "/" + strconv.Itoa(n)))
	return fmt.Sprintf("52:54:00:%02x:%02x:%02x", h[0], h[1], h[2])
}

// underlayNetwork is the .network for the NIC that joins the workers.
func underlayNetwork(mac, addr string) string {
	return fmt.Sprintf(`[Match]
MACAddress=%s

[Network]
Address=%s
LinkLocalAddressing=no
IPv6AcceptRA=no
`, mac, addr)
}

// prepare fills in g.cfg (without Disk), with a forward to cp's API
// server and g's firmware identity, to deliver the node config
// nodeFile by g's path: the file itself as a systemd credential over
// fw_cfg, the config drive image drive (a NODEBAKE or a config-2 drive),
// or the file's content as an SMBIOS credential; the EC2 guest's comes
// from its lab. The underlay's .network, when g has one, goes into dir.
func (g *guest) prepare(t *testing.T, cp *controlPlane, dir, nodeFile, drive string, netdevs []string) {
	t.Helper()
	g.cfg = qemu.Config{
		UUID:    g.uuid,
		Memory:  g.memory,
		CPUs:    g.cpus,
		FwCfg:   map[string]string{},
		UserNet: []string{cp.guestForward(t)},
		NetDevs: netdevs,
		Dir:     dir,
	}
	credential := "type=11,value=io.systemd.credential.binary:" + firstboot.CredentialName + "="
	switch g.via {
	case viaCredential:
		g.cfg.FwCfg["opt/io.systemd.credentials/"+firstboot.CredentialName] = nodeFile
	case viaConfigDrive:
		if drive == "" {
			t.Fatalf("%s: no config drive", g.name)
		}
		g.cfg.ExtraDisks = []string{drive}
	case viaSMBIOS:
		y, err := os.ReadFile(nodeFile)
		if err != nil {
			t.Fatal(err)
		}
		g.cfg.SMBIOS = []string{credential + b64(y)}
	case viaConfig2:
		if drive == "" {
			t.Fatalf("%s: no config-2 drive", g.name)
		}
		g.cfg.ExtraDisks = []string{drive}
	case viaEC2IMDS:
		// Served in the guest's network lab (netlab.Lab.ServeEC2Metadata).
	default:
		t.Fatalf("unknown delivery %q", g.via)
	}
	g.identity.Apply(&g.cfg)
	if g.underlay != "" {
		p := filepath.Join(dir, g.name+"-40-underlay.network")
		if err := os.WriteFile(p, []byte(underlayNetwork(underlayMAC(g.uuid, 1), g.underlay)), 0o600); err != nil {
			t.Fatal(err)
		}
		g.cfg.FwCfg[underlayCredential] = p
	}
}

// waitListening waits until something listens on 127.0.0.1:port, without
// connecting (a QEMU socket netdev accepts one peer only): it reads the
// calling thread's /proc/thread-self/net/tcp. Not /proc/net/tcp, which is
// the network namespace of the process's main thread: a network lab
// (TestClock's) may have left that thread in the lab's namespace, where
// QEMU's socket is not.
func waitListening(port int, timeout time.Duration) error {
	want := fmt.Sprintf("0100007F:%04X", port)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		f, err := os.Open("/proc/thread-self/net/tcp")
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) > 3 && fs[1] == want && fs[3] == "0A" {
				f.Close()
				return nil
			}
		}
		f.Close()
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on 127.0.0.1:%d after %s", port, timeout)
}

// plan is the cluster's workers: two that join, one whose node config is
// bad.
type plan struct {
	w1, w2, bad *guest
}

func (p plan) all() []*guest { return []*guest{p.w1, p.w2, p.bad} }

func (p plan) names() []string {
	var out []string
	for _, g := range p.all() {
		out = append(out, g.name)
	}
	return out
}

// clusterPlan is the test's network plan: each worker's wg0 address, pod
// CIDR, underlay address and how its node config reaches it. worker01 and
// worker02 are joined by a loopback socket link (the underlay WireGuard
// runs over); worker03, the bad node, has no underlay link. The inventory
// the test imports is written from it (writeInventory).
func clusterPlan() plan {
	return plan{
		w1: &guest{name: "worker01", uuid: "6e6f6465-6261-6b65-2d65-326500000001", wgAddr: "10.8.0.203/24", podCIDR: "10.200.0.0/24",
			underlay: "192.168.100.1/24", via: viaCredential, memory: 2048, cpus: 2},
		w2: &guest{name: "worker02", uuid: "6e6f6465-6261-6b65-2d65-326500000002", wgAddr: "10.8.0.204/24", podCIDR: "10.200.1.0/24",
			underlay: "192.168.100.2/24", via: viaConfigDrive, memory: 2048, cpus: 2},
		bad: &guest{name: "worker03", uuid: "6e6f6465-6261-6b65-2d65-326500000003", wgAddr: "10.8.0.205/24", podCIDR: "10.200.2.0/24",
			via: viaSMBIOS, memory: 1024, cpus: 1},
	}
}

// loadNodeConfig reads and validates a node config file against the
// image's facts, as first boot does.
func loadNodeConfig(path string, facts nodeconfig.ImageFacts) (*nodeconfig.NodeConfig, error) {
	b, err := nodeconfig.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return nodeconfig.Load(b, facts, time.Now())
}

// writeBadNodeConfig writes the node config at src with the node
// certificate and key of other into dst, and checks that it no longer
// validates.
func writeBadNodeConfig(src, dst string, other pair, facts nodeconfig.ImageFacts) error {
	if _, err := loadNodeConfig(src, facts); err != nil {
		return fmt.Errorf("the imported node config %s: %w", src, err)
	}
	b, err := nodeconfig.ReadFile(src)
	if err != nil {
		return err
	}
	cfg, err := nodeconfig.Parse(b)
	if err != nil {
		return err
	}
	cfg.Kubernetes.NodeCert, cfg.Kubernetes.NodeKey = other.certPEM, other.keyPEM
	if err := nodeconfig.Validate(cfg, facts, time.Now()); err == nil {
		return fmt.Errorf("the bad node config made from %s validates", src)
	}
	y, err := nodeconfig.Marshal(cfg)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, y, 0o600)
}

// reportSummary returns the import report's summary and what the spec
// changes, from "Summary" up to the list of variables.
func reportSummary(report string) string {
	i := strings.Index(report, "\nSummary\n")
	j := strings.Index(report, "\nVariables")
	if i < 0 || j < i {
		return lastLines(report, 20)
	}
	return report[i:j]
}

// TestWaitListening: waitListening sees a listening socket of this
// process, and not a port where nothing listens.
func TestWaitListening(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := waitListening(port, 10*time.Second); err != nil {
		t.Errorf("a listening socket: %v", err)
	}
	l.Close()
	if err := waitListening(port, 300*time.Millisecond); err == nil {
		t.Error("a closed port: no error")
	}
}
