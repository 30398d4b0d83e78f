package e2e

import (
	"bufio"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/layers/configdrive"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
	"github.com/nodebake/nodebake/test/harness"
	"github.com/nodebake/nodebake/test/qemu"
)

// How a node config reaches a guest.
const (
	viaCredential  = "credential"   // fw_cfg systemd credential nodebake.node
	viaConfigDrive = "config-drive" // a FAT drive labelled NODEBAKE
	viaSMBIOS      = "smbios"       // SMBIOS type 11 systemd credential
)

// underlayCredential is the systemd credential that systemd-network-generator
// turns into /run/systemd/network/40-underlay.network.
const underlayCredential = "opt/io.systemd.credentials/network.network.40-underlay"

// wgPort is WireGuard's listen port on every node.
const wgPort = 51820

// guest is one worker VM of the test and what makes it.
type guest struct {
	name     string
	uuid     string
	wgAddr   string // wg0's address, CIDR
	podCIDR  string
	underlay string // the underlay NIC's address, CIDR ("" for none)
	via      string
	memory   int
	cpus     int

	wgKey *ecdh.PrivateKey
	// nodeYAML is the node config as delivered.
	nodeYAML []byte
	cfg      qemu.Config
	vm       *qemu.VM
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

func newWGKey(t *testing.T) *ecdh.PrivateKey {
	t.Helper()
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

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

// assembleNodeConfig writes the cluster CA's output for one node under the
// seed's file names and assembles its node config from them, as an
// operator would with the nodebake CLI. certFor names whose node
// certificate to use (normally the node's own).
func assembleNodeConfig(t *testing.T, dir string, cp *controlPlane, g *guest, certFor string, peers []*guest) *nodeconfig.NodeConfig {
	t.Helper()
	cdir := filepath.Join(dir, g.name+"-pki")
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
	write("ca-k8s-apiserver.pem", cp.ca.certPEM)
	nc := cp.workers[certFor]
	nodeCert, nodeKey := write("cert-"+certFor+".pem", nc.certPEM), write("cert-"+certFor+"-key.pem", nc.keyPEM)
	write("cert-kube-proxy.pem", cp.proxy.certPEM)
	write("cert-kube-proxy-key.pem", cp.proxy.keyPEM)
	wgKey := write("wg.key", b64(g.wgKey.Bytes())+"\n")
	var ps []string
	for _, p := range peers {
		ps = append(ps, fmt.Sprintf("publicKey=%s,endpoint=%s:%d,allowedIPs=%s/32,%s,persistentKeepalive=15",
			b64(p.wgKey.PublicKey().Bytes()), p.underlayIP(), wgPort, p.wgIP(), p.podCIDR))
	}
	cfg, err := nodeconfig.Assemble(nodeconfig.AssembleOptions{
		NodeName:         g.name,
		CertDir:          cdir,
		NodeCertFile:     nodeCert,
		NodeKeyFile:      nodeKey,
		APIServer:        "https://" + apiServerGuestIP + ":6443",
		PodCIDR:          g.podCIDR,
		WireGuardAddress: g.wgAddr,
		WireGuardKeyFile: wgKey,
		ListenPort:       wgPort,
		Peers:            ps,
	})
	if err != nil {
		t.Fatalf("assembling the node config of %s: %v", g.name, err)
	}
	return cfg
}

// prepare writes g's node config and underlay files into dir and fills in
// g.cfg (without Disk) for its delivery path.
func (g *guest) prepare(t *testing.T, dir string, cfg *nodeconfig.NodeConfig, netdevs []string) {
	t.Helper()
	y, err := nodeconfig.Marshal(cfg)
	if err != nil {
		t.Fatalf("writing the node config of %s: %v", g.name, err)
	}
	g.nodeYAML = y
	g.cfg = qemu.Config{
		UUID:    g.uuid,
		Memory:  g.memory,
		CPUs:    g.cpus,
		FwCfg:   map[string]string{},
		UserNet: []string{harness.GuestForward(t, apiServerGuestIP, 6443, apiServerHostAddr)},
		NetDevs: netdevs,
		Dir:     dir,
	}
	file := func(name string, b []byte) string {
		p := filepath.Join(dir, g.name+"-"+name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	switch g.via {
	case viaCredential:
		g.cfg.FwCfg["opt/io.systemd.credentials/nodebake.node"] = file("node.yaml", y)
	case viaConfigDrive:
		drive := filepath.Join(dir, g.name+"-config-drive.img")
		if err := configdrive.Write(drive, y); err != nil {
			t.Fatal(err)
		}
		g.cfg.ExtraDisks = []string{drive}
	case viaSMBIOS:
		g.cfg.SMBIOS = []string{"type=11,value=io.systemd.credential.binary:nodebake.node=" + b64(y)}
	default:
		t.Fatalf("unknown delivery %q", g.via)
	}
	if g.underlay != "" {
		g.cfg.FwCfg[underlayCredential] = file("40-underlay.network", []byte(underlayNetwork(underlayMAC(g.uuid, 1), g.underlay)))
	}
}

// waitListening waits until something listens on 127.0.0.1:port, without
// connecting (a QEMU socket netdev accepts one peer only): it reads
// /proc/net/tcp.
func waitListening(port int, timeout time.Duration) error {
	want := fmt.Sprintf("0100007F:%04X", port)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		f, err := os.Open("/proc/net/tcp")
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
