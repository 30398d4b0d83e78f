package firstboot

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodebake/nodebake/layers/firstboot/internal/testpki"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig/nodeconfigtest"
)

var update = flag.Bool("update", false, "rewrite golden files")

const (
	factsJSON = `{"serviceCIDR":"10.32.0.0/16","clusterCIDR":"10.200.0.0/16","podNetwork":"bridge",
 "kubeletConfigTemplate":"/usr/lib/nodebake/kubelet-config.json","kubeProxyConfigTemplate":"/usr/lib/nodebake/kube-proxy-config.json",
 "kubernetesVersion":"v1.35.4"}`
	kubeletTemplate = `{"kind":"KubeletConfiguration","apiVersion":"kubelet.config.k8s.io/v1beta1",
 "authentication":{"anonymous":{"enabled":false},"webhook":{"enabled":true},"x509":{"clientCAFile":"/var/lib/kubernetes/ca-k8s-apiserver.pem"}},
 "authorization":{"mode":"Webhook"},"clusterDomain":"cluster.local","clusterDNS":["10.32.0.254"],"failSwapOn":true,
 "healthzPort":10248,"runtimeRequestTimeout":"15m","serializeImagePulls":false,"cgroupDriver":"systemd",
 "containerRuntimeEndpoint":"unix:///run/containerd/containerd.sock","readOnlyPort":0}`
	kubeProxyTemplate = `{"kind":"KubeProxyConfiguration","apiVersion":"kubeproxy.config.k8s.io/v1alpha1",
 "clientConnection":{"kubeconfig":"/var/lib/kube-proxy/kubeconfig"},"mode":"ipvs",
 "ipvs":{"minSyncPeriod":"0s","scheduler":"","syncPeriod":"2s"},"iptables":{"masqueradeAll":true},
 "clusterCIDR":"10.200.0.0/16","metricsBindAddress":"127.0.0.1:10249"}`
	networkGID = 998
)

type pki struct {
	ca, other           *testpki.CA
	nodeCert, nodeKey   string
	proxyCert, proxyKey string
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	ca, err := testpki.NewCA("kubernetes", 1)
	if err != nil {
		t.Fatal(err)
	}
	other, err := testpki.NewCA("another CA", 9)
	if err != nil {
		t.Fatal(err)
	}
	p := &pki{ca: ca, other: other}
	p.nodeCert, p.nodeKey = issue(t, ca, testpki.Leaf{CommonName: "system:node:worker01", Organization: []string{"system:nodes"}, Seed: 2})
	p.proxyCert, p.proxyKey = issue(t, ca, testpki.Leaf{CommonName: "system:kube-proxy", Organization: []string{"system:node-proxier"}, Seed: 3})
	return p
}

func issue(t testing.TB, ca *testpki.CA, l testpki.Leaf) (string, string) {
	t.Helper()
	c, k, err := ca.Issue(l)
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

func (p *pki) config() *nodeconfig.NodeConfig {
	return &nodeconfig.NodeConfig{
		APIVersion: nodeconfig.APIVersion,
		Kind:       nodeconfig.Kind,
		NodeName:   "worker01",
		WireGuard: nodeconfig.WireGuard{
			Address:    "10.8.0.203/24",
			PrivateKey: testpki.WireGuardKey(0x11),
			ListenPort: 51820,
			Peers: []nodeconfig.Peer{{
				PublicKey:           testpki.WireGuardKey(0x22),
				Endpoint:            "192.0.2.10:51820",
				AllowedIPs:          []string{"10.8.0.204/32", "10.200.2.0/24"},
				PersistentKeepalive: 25,
			}, {
				PublicKey:  testpki.WireGuardKey(0x33),
				Endpoint:   "worker03.example.net:51820",
				AllowedIPs: []string{"10.8.0.205/32", "10.200.3.0/24"},
			}},
		},
		Kubernetes: nodeconfig.Kubernetes{
			APIServer: "https://10.8.0.1:6443",
			CACert:    p.ca.CertPEM,
			NodeCert:  p.nodeCert,
			NodeKey:   p.nodeKey,
			KubeProxy: nodeconfig.KubeProxy{Cert: p.proxyCert, Key: p.proxyKey},
			PodCIDR:   "10.200.1.0/24",
		},
	}
}

func marshal(t testing.TB, cfg *nodeconfig.NodeConfig) []byte {
	t.Helper()
	b, err := nodeconfig.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, root, path string, data []byte) {
	t.Helper()
	p := filepath.Join(root, path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// newRoot lays out an image's inputs under a temporary root; node (if not
// nil) is delivered as the system credential.
func newRoot(t testing.TB, node []byte) string {
	t.Helper()
	return newRootIn(t, t.TempDir(), node)
}

// newRootIn lays out the image's inputs under root.
func newRootIn(t testing.TB, root string, node []byte) string {
	t.Helper()
	writeFile(t, root, FactsPath, []byte(factsJSON))
	writeFile(t, root, "/usr/lib/nodebake/kubelet-config.json", []byte(kubeletTemplate))
	writeFile(t, root, "/usr/lib/nodebake/kube-proxy-config.json", []byte(kubeProxyTemplate))
	writeFile(t, root, "/etc/group", []byte(fmt.Sprintf("root:x:0:\nsystemd-network:x:%d:\n", networkGID)))
	if node != nil {
		writeFile(t, root, SystemCredentialsDir+"/"+CredentialName, node)
	}
	return root
}

func options(root string) Options {
	return Options{Root: root, Now: testpki.Now(), Chown: os.Geteuid() == 0}
}

type entry struct {
	mode     fs.FileMode
	uid, gid uint32
	data     string
}

// snapshot returns every regular file under root.
func snapshot(t *testing.T, root string) map[string]entry {
	t.Helper()
	files := map[string]entry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		var data []byte
		if info.Mode().IsRegular() { // not named pipes: they would block
			if data, err = os.ReadFile(p); err != nil {
				return err
			}
		}
		st := info.Sys().(*syscall.Stat_t)
		rel, _ := filepath.Rel(root, p)
		files["/"+rel] = entry{mode: info.Mode(), uid: st.Uid, gid: st.Gid, data: string(data)}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// written returns the files in after that are new or changed since before.
func written(before, after map[string]entry) []string {
	var out []string
	for p, e := range after {
		if b, ok := before[p]; !ok || b != e {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

func TestRunGolden(t *testing.T) {
	p := newPKI(t)
	root := newRoot(t, marshal(t, p.config()))
	before := snapshot(t, root)
	var hostname string
	opts := options(root)
	opts.SetHostname = func(n string) error { hostname = n; return nil }
	st, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !st.OK || st.Source != "credential /run/credentials/@system/nodebake.node" || st.NodeName != "worker01" {
		t.Errorf("status %+v", st)
	}
	if hostname != "worker01" {
		t.Errorf("hostname %q", hostname)
	}
	after := snapshot(t, root)
	paths := written(before, after)

	// Every written file is compared with its golden copy, and the list of
	// golden files with the list of written files.
	var modes strings.Builder
	for _, path := range paths {
		e := after[path]
		golden(t, filepath.Join("golden", path), []byte(e.data))
		fmt.Fprintf(&modes, "%v %s\n", e.mode, path)
		if os.Geteuid() == 0 {
			wantGID := uint32(0)
			if path == NetdevPath {
				wantGID = networkGID
			}
			if e.uid != 0 || e.gid != wantGID {
				t.Errorf("%s owned by %d:%d, want 0:%d", path, e.uid, e.gid, wantGID)
			}
		}
	}
	golden(t, "golden.modes", []byte(modes.String()))
	var goldens []string
	_ = filepath.WalkDir(filepath.Join("testdata", "golden"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(filepath.Join("testdata", "golden"), p)
			goldens = append(goldens, "/"+rel)
		}
		return err
	})
	if strings.Join(goldens, "\n") != strings.Join(paths, "\n") {
		t.Errorf("written files:\n%s\ngolden files:\n%s", strings.Join(paths, "\n"), strings.Join(goldens, "\n"))
	}

	// Idempotent: a second run writes the same files.
	if _, err := Run(context.Background(), opts); err != nil {
		t.Fatalf("second Run: %v", err)
	}
	again := snapshot(t, root)
	if diff := written(after, again); len(diff) > 0 {
		t.Errorf("second run changed %v", diff)
	}
	if len(again) != len(after) {
		t.Errorf("second run left %d files, first %d", len(again), len(after))
	}
}

func TestRunPodNetworkNone(t *testing.T) {
	p := newPKI(t)
	root := newRoot(t, marshal(t, p.config()))
	if _, err := Run(context.Background(), options(root)); err != nil {
		t.Fatal(err)
	}
	cni := filepath.Join(root, CNIConfigPath)
	if _, err := os.Stat(cni); err != nil {
		t.Fatalf("bridge: %v", err)
	}
	writeFile(t, root, FactsPath, []byte(strings.Replace(factsJSON, `"bridge"`, `"none"`, 1)))
	if _, err := Run(context.Background(), options(root)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cni); !os.IsNotExist(err) {
		t.Errorf("none: the CNI config is still there (%v)", err)
	}
}

// fatBootSector is a FAT32 boot sector labelled NODEBAKE over data that
// is not a filesystem: found by label, but not mountable.
func fatBootSector() []byte {
	b := make([]byte, 64*1024)
	b[0], b[1], b[2] = 0xEB, 0x58, 0x90
	binary.LittleEndian.PutUint16(b[11:], 512)
	b[13] = 1
	binary.LittleEndian.PutUint16(b[14:], 32)
	b[16] = 2
	binary.LittleEndian.PutUint32(b[36:], 100)
	b[0x42] = 0x29
	copy(b[0x47:], "NODEBAKE   ")
	b[510], b[511] = 0x55, 0xAA
	return b
}

func TestRunBadInput(t *testing.T) {
	p := newPKI(t)
	otherCert, otherKey := issue(t, p.other, testpki.Leaf{CommonName: "system:node:worker01", Organization: []string{"system:nodes"}, Seed: 2})
	expiredCert, expiredKey := issue(t, p.ca, testpki.Leaf{CommonName: "system:node:worker01", Organization: []string{"system:nodes"}, Seed: 2,
		NotBefore: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)})
	worker02Cert, worker02Key := issue(t, p.ca, testpki.Leaf{CommonName: "system:node:worker02", Organization: []string{"system:nodes"}, Seed: 4})
	valid := string(marshal(t, p.config()))

	tests := []struct {
		name   string
		mutate func(*nodeconfig.NodeConfig)
		raw    string // the config as text, instead of mutate
		setup  func(t *testing.T, root string)
		line   string // the one line to show
	}{
		{name: "missing field", mutate: func(c *nodeconfig.NodeConfig) { c.NodeName = "" }, line: "nodeName: required"},
		{name: "malformed address", mutate: func(c *nodeconfig.NodeConfig) { c.WireGuard.Address = "10.8.0/24" },
			line: `wireguard.address: "10.8.0/24" is not an address in CIDR notation`},
		{name: "address in service CIDR", mutate: func(c *nodeconfig.NodeConfig) { c.WireGuard.Address = "10.32.1.1/24" },
			line: "wireguard.address: 10.32.1.1/24 overlaps the service CIDR 10.32.0.0/16"},
		{name: "address in pod CIDR", mutate: func(c *nodeconfig.NodeConfig) { c.WireGuard.Address = "10.200.1.1/24" },
			line: "wireguard.address: 10.200.1.1/24 overlaps the cluster (pod) CIDR 10.200.0.0/16"},
		{name: "bad WireGuard key", mutate: func(c *nodeconfig.NodeConfig) { c.WireGuard.PrivateKey = "c2hvcnQ=" },
			line: "wireguard.privateKey: 8 characters; a WireGuard key is 44 characters"},
		{name: "certificate from another CA", mutate: func(c *nodeconfig.NodeConfig) { c.Kubernetes.NodeCert, c.Kubernetes.NodeKey = otherCert, otherKey },
			line: `kubernetes.nodeCert: not signed by the CA in kubernetes.caCert (issuer "CN=another CA")`},
		{name: "key not matching certificate", mutate: func(c *nodeconfig.NodeConfig) { c.Kubernetes.NodeKey = c.Kubernetes.KubeProxy.Key },
			line: "kubernetes.nodeKey: does not match the certificate in kubernetes.nodeCert"},
		{name: "expired certificate", mutate: func(c *nodeconfig.NodeConfig) { c.Kubernetes.NodeCert, c.Kubernetes.NodeKey = expiredCert, expiredKey },
			line: `kubernetes.nodeCert: certificate "system:node:worker01" expired on 2025-06-01 00:00:00 UTC`},
		{name: "wrong node name", mutate: func(c *nodeconfig.NodeConfig) {
			c.Kubernetes.NodeCert, c.Kubernetes.NodeKey = worker02Cert, worker02Key
		},
			line: `nodeName: "worker01" does not match the node certificate's subject CN "system:node:worker02"`},
		{name: "unknown field", raw: strings.Replace(valid, "  listenPort:", "  listenport: 1\n  listenPort:", 1),
			line: "wireguard.listenport: unknown field (line 7)"},
		{name: "bad YAML", raw: strings.Replace(valid, "nodeName: worker01", "nodeName: &a worker01", 1),
			line: "config: anchors (&) are not supported (line 3)"},
		{name: "unreadable config drive", setup: func(t *testing.T, root string) {
			os.Remove(filepath.Join(root, SystemCredentialsDir, CredentialName))
			writeFile(t, root, "/sys/class/block/vdb/size", []byte("128\n"))
			writeFile(t, root, "/sys/class/block/vdb/uevent", []byte("DEVNAME=vdb\n"))
			writeFile(t, root, "/dev/vdb", fatBootSector())
		}, line: "source: config-drive /dev/vdb: mounting vfat read-only: "},
		{name: "kernel command line path missing", setup: func(t *testing.T, root string) {
			writeFile(t, root, "/proc/cmdline", []byte("root=/dev/vda2 ro nodebake.config=/var/lib/node.yaml quiet\n"))
		}, line: "source: kernel-cmdline /var/lib/node.yaml: no such file or directory"},
		{name: "kernel command line path is a named pipe", setup: func(t *testing.T, root string) {
			writeFile(t, root, "/proc/cmdline", []byte("nodebake.config=/var/lib/node.yaml\n"))
			if err := nodeconfigtest.Place(filepath.Join(root, "/var/lib/node.yaml"), nodeconfigtest.Case{Source: nodeconfigtest.NamedPipe}); err != nil {
				t.Fatal(err)
			}
		}, line: "source: kernel-cmdline /var/lib/node.yaml: not a regular file but a named pipe"},
		{name: "kernel command line path is a directory", setup: func(t *testing.T, root string) {
			writeFile(t, root, "/proc/cmdline", []byte("nodebake.config=/usr/lib/nodebake\n"))
		}, line: "source: kernel-cmdline /usr/lib/nodebake: not a regular file but a directory"},
		{name: "kernel command line path too large", setup: func(t *testing.T, root string) {
			writeFile(t, root, "/proc/cmdline", []byte("nodebake.config=/var/lib/node.yaml\n"))
			writeFile(t, root, "/var/lib/node.yaml", make([]byte, nodeconfig.MaxSize+1))
		}, line: "config: kernel-cmdline /var/lib/node.yaml: larger than the limit of 1048576 bytes"},
		{name: "credential is a symbolic link to a named pipe", setup: func(t *testing.T, root string) {
			cred := filepath.Join(root, SystemCredentialsDir, CredentialName)
			os.Remove(cred)
			if err := nodeconfigtest.Place(cred, nodeconfigtest.Case{Source: nodeconfigtest.SymlinkToPipe}); err != nil {
				t.Fatal(err)
			}
		}, line: "source: credential /run/credentials/@system/nodebake.node: not a regular file but a named pipe"},
		{name: "kernel command line is not a regular file", setup: func(t *testing.T, root string) {
			if err := nodeconfigtest.Place(filepath.Join(root, "/proc/cmdline"), nodeconfigtest.Case{Source: nodeconfigtest.NamedPipe}); err != nil {
				t.Fatal(err)
			}
		}, line: "source: reading the kernel command line /proc/cmdline: not a regular file but a named pipe"},
		{name: "nothing found", setup: func(t *testing.T, root string) {
			os.Remove(filepath.Join(root, SystemCredentialsDir, CredentialName))
		}, line: "source: no node config found"},
		{name: "no image facts", setup: func(t *testing.T, root string) {
			os.Remove(filepath.Join(root, FactsPath))
		}, line: "facts: reading the image facts: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			node := []byte(valid)
			if tt.raw != "" {
				node = []byte(tt.raw)
			}
			if tt.mutate != nil {
				cfg := p.config()
				tt.mutate(cfg)
				node = marshal(t, cfg)
			}
			root := newRoot(t, node)
			if tt.setup != nil {
				tt.setup(t, root)
			}
			before := snapshot(t, root)
			opts := options(root)
			opts.DriveWait = 150 * time.Millisecond
			opts.SetHostname = func(string) error { t.Error("the hostname was set"); return nil }
			st, err := Run(context.Background(), opts)
			probs, ok := err.(nodeconfig.Problems)
			if !ok || len(probs) == 0 {
				t.Fatalf("Run: got %T %v, want Problems", err, err)
			}
			if got := probs[0].String(); !strings.HasPrefix(got, tt.line) {
				t.Errorf("first problem:\n got %s\nwant %s", got, tt.line)
			}
			after := snapshot(t, root)
			if w := written(before, after); len(w) != 1 || w[0] != StatusPath {
				t.Errorf("written: %v, want only %s", w, StatusPath)
			}
			var fromFile Status
			if err := json.Unmarshal([]byte(after[StatusPath].data), &fromFile); err != nil {
				t.Fatal(err)
			}
			if fromFile.OK || fromFile.Field != probs[0].Field || fromFile.Error != probs[0].Message || len(fromFile.Problems) != len(probs) || st.OK {
				t.Errorf("status file %+v", fromFile)
			}
			if _, err := os.Stat(filepath.Join(root, ReadyPath)); !os.IsNotExist(err) {
				t.Errorf("node-ready exists")
			}
			if left, _ := filepath.Glob(filepath.Join(root, "run/nodebake/configdrive-*")); len(left) > 0 {
				t.Errorf("mount points left: %v", left)
			}
		})
	}
}

func TestRunCorrectedAfterFailure(t *testing.T) {
	p := newPKI(t)
	good := p.config()
	root := newRoot(t, marshal(t, good))
	if _, err := Run(context.Background(), options(root)); err != nil {
		t.Fatal(err)
	}
	first := snapshot(t, root)

	bad := p.config()
	bad.WireGuard.Address = "10.32.0.9/24"
	writeFile(t, root, SystemCredentialsDir+"/"+CredentialName, marshal(t, bad))
	if _, err := Run(context.Background(), options(root)); err == nil {
		t.Fatal("bad config accepted")
	}
	if _, err := os.Stat(filepath.Join(root, ReadyPath)); !os.IsNotExist(err) {
		t.Fatal("node-ready survived a failed run")
	}
	mid := snapshot(t, root)
	// Only the status changed and node-ready went; the old config stays.
	delete(first, SystemCredentialsDir+"/"+CredentialName)
	delete(mid, SystemCredentialsDir+"/"+CredentialName)
	if w := written(first, mid); len(w) != 1 || w[0] != StatusPath || len(mid) != len(first)-1 {
		t.Errorf("failed run changed %v", w)
	}

	corrected := p.config()
	corrected.WireGuard.Address = "10.8.0.210/24"
	writeFile(t, root, SystemCredentialsDir+"/"+CredentialName, marshal(t, corrected))
	if _, err := Run(context.Background(), options(root)); err != nil {
		t.Fatalf("corrected config: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, ReadyPath)); err != nil {
		t.Fatal("no node-ready after the corrected run")
	}
	env, _ := os.ReadFile(filepath.Join(root, KubeletEnvPath))
	if string(env) != "KUBELET_NODE_ARGS=--node-ip=10.8.0.210\n" {
		t.Errorf("kubelet.env %q", env)
	}
}

func TestSources(t *testing.T) {
	p := newPKI(t)
	cfg := marshal(t, p.config())
	tests := []struct {
		name  string
		setup func(t *testing.T, root string, opts *Options)
		want  string
	}{
		{"system credential", func(t *testing.T, root string, _ *Options) {
			writeFile(t, root, SystemCredentialsDir+"/"+CredentialName, cfg)
		}, "credential /run/credentials/@system/nodebake.node"},
		{"service credential", func(t *testing.T, root string, opts *Options) {
			opts.CredentialsDir = "/run/credentials/nodebake-firstboot.service"
			writeFile(t, root, "/run/credentials/nodebake-firstboot.service/"+CredentialName, cfg)
		}, "credential /run/credentials/nodebake-firstboot.service/nodebake.node"},
		{"kernel command line first", func(t *testing.T, root string, _ *Options) {
			writeFile(t, root, SystemCredentialsDir+"/"+CredentialName, []byte("not: valid\n"))
			writeFile(t, root, "/proc/cmdline", []byte(`BOOT_IMAGE=/vmlinuz "nodebake.config=/var/lib/nodebake/node.yaml" ro -- nodebake.config=/x`+"\n"))
			writeFile(t, root, "/var/lib/nodebake/node.yaml", cfg)
		}, "kernel-cmdline /var/lib/nodebake/node.yaml"},
		{"JSON", func(t *testing.T, root string, _ *Options) {
			b, _ := json.Marshal(p.config())
			writeFile(t, root, SystemCredentialsDir+"/"+CredentialName, b)
		}, "credential /run/credentials/@system/nodebake.node"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := newRoot(t, nil)
			opts := options(root)
			tt.setup(t, root, &opts)
			st, err := Run(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			if st.Source != tt.want {
				t.Errorf("source %q, want %q", st.Source, tt.want)
			}
		})
	}
}

func TestUnits(t *testing.T) {
	b, err := fs.ReadFile(Units(), "nodebake-firstboot.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Type=oneshot", "RemainAfterExit=yes", "ExecStart=" + ProgramPath, "DefaultDependencies=no",
		"ImportCredential=" + CredentialName, "NotifyAccess=main", "ExecStartPost=-/usr/bin/systemctl reload systemd-networkd.service",
		// The line saying how it went on the console; progress lines go
		// to the journal through its socket.
		"StandardOutput=journal+console", "StandardError=journal+console",
		"WantedBy=multi-user.target"} {
		if !bytes.Contains(b, []byte(want+"\n")) {
			t.Errorf("unit lacks %q", want)
		}
	}

	// The ordering the clock wait needs, and none that could deadlock it.
	deps := unitDeps(string(b))
	for _, u := range []string{"local-fs.target", "systemd-networkd.service", "systemd-timesyncd.service"} {
		if !deps["After"][u] {
			t.Errorf("not After=%s", u)
		}
	}
	for _, u := range []string{"containerd.service", "kubelet.service", "kube-proxy.service"} {
		if !deps["Before"][u] {
			t.Errorf("not Before=%s", u)
		}
	}
	// Not before sysinit.target (nor wanted by it): a platform's lookup
	// or the clock wait would hold up the rest of the boot.
	if deps["Before"]["sysinit.target"] || deps["WantedBy"]["sysinit.target"] {
		t.Errorf("ordered before or wanted by sysinit.target")
	}
	// systemd-networkd is After=network-pre.target: first boot before
	// either would wait for itself. time-sync.target is held back,
	// without bound, by systemd-time-wait-sync.
	for _, key := range []string{"Before", "Wants", "Requires", "After"} {
		for _, u := range []string{"network-pre.target", "time-sync.target", "systemd-time-wait-sync.service"} {
			if deps[key][u] {
				t.Errorf("%s=%s", key, u)
			}
		}
	}
	for _, u := range []string{"systemd-networkd.service", "systemd-timesyncd.service", "network.target", "network-online.target"} {
		if deps["Before"][u] {
			t.Errorf("Before=%s", u)
		}
	}
}

// unitDeps returns a unit file's dependency lists by key (After, Before,
// Wants, ...), each as a set of unit names.
func unitDeps(unit string) map[string]map[string]bool {
	deps := map[string]map[string]bool{}
	for _, line := range strings.Split(unit, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		if deps[k] == nil {
			deps[k] = map[string]bool{}
		}
		for _, u := range strings.Fields(v) {
			deps[k][u] = true
		}
	}
	return deps
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run with -update):\n%s", name, got)
	}
}
