package ansible

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdh"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodebake/nodebake/layers/failure"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig/nodeconfigtest"
	"github.com/nodebake/nodebake/layers/spec"
	"github.com/nodebake/nodebake/layers/worker"
)

var update = flag.Bool("update", false, "rewrite golden files")

var seedWorkers = []string{"worker01", "worker02", "worker03"}

const seedDomain = ".i.domain.tld"

// detRand is a deterministic byte stream for generated keys.
type detRand struct {
	seed string
	n    int
	buf  []byte
}

func (r *detRand) Read(p []byte) (int, error) {
	for len(r.buf) < len(p) {
		sum := sha256.Sum256([]byte(r.seed + string(rune(r.n))))
		r.n++
		r.buf = append(r.buf, sum[:]...)
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// writeCA writes the test CA's output for the seed's workers into dir.
func writeCA(t *testing.T, dir string) {
	t.Helper()
	var ws []nodeconfigtest.Host
	for _, w := range seedWorkers {
		ws = append(ws, nodeconfigtest.Host{Host: w + seedDomain, Node: w})
	}
	if err := nodeconfigtest.WriteCADir(dir, ws); err != nil {
		t.Fatal(err)
	}
}

func loadBase(t *testing.T) *spec.Spec {
	t.Helper()
	b, err := spec.Load("testdata/base.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixture is a copy of the seed's tree with edits, a home holding the CA's
// output at ~/k8s/certs (where k8s_ca_conf_directory points) and an empty
// output directory.
type fixture struct {
	dir, home, out string
}

func newFixture(t *testing.T, edits map[string]string) *fixture {
	t.Helper()
	root := t.TempDir()
	f := &fixture{dir: filepath.Join(root, "tree"), home: filepath.Join(root, "home"), out: filepath.Join(root, "out")}
	err := filepath.WalkDir("testdata/seed", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel("testdata/seed", p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		dst := filepath.Join(f.dir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	for rel, content := range edits {
		p := filepath.Join(f.dir, rel)
		if content == "" {
			os.Remove(p)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeCA(t, filepath.Join(f.home, "k8s", "certs"))
	if err := os.MkdirAll(f.out, 0o755); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) options(t *testing.T) Options {
	return Options{
		GroupVars: filepath.Join(f.dir, "group_vars"),
		HostVars:  filepath.Join(f.dir, "host_vars"),
		Inventory: filepath.Join(f.dir, "hosts"),
		Base:      loadBase(t),
		BaseName:  "testdata/base.yaml",
		OutputDir: f.out,
		HomeDir:   f.home,
		Now:       nodeconfigtest.Now(),
		Rand:      &detRand{seed: t.Name()},
	}
}

// editFile returns a fixture file with old replaced by new.
func editFile(t *testing.T, rel, old, new string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata/seed", rel))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s does not contain %q", rel, old)
	}
	return strings.Replace(string(b), old, new, 1)
}

// TestSeedReport imports the seed's tree and holds the report to a golden
// file (go test -update rewrites it).
func TestSeedReport(t *testing.T) {
	home := t.TempDir()
	writeCA(t, filepath.Join(home, "k8s", "certs"))
	out := t.TempDir()
	res, err := Import(context.Background(), Options{
		GroupVars: "testdata/seed/group_vars", HostVars: "testdata/seed/host_vars", Inventory: "testdata/seed/hosts",
		Base: loadBase(t), BaseName: "testdata/base.yaml", OutputDir: out, HomeDir: home, Now: nodeconfigtest.Now(),
		Rand: &detRand{seed: "seed"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.ReplaceAll(res.Report, home, "$HOME")
	written, err := os.ReadFile(filepath.Join(out, ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	if string(written) != res.Report {
		t.Error("the report file differs from the returned report")
	}
	golden := "testdata/seed.report.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if d := cmp.Diff(string(want), got); d != "" {
		t.Errorf("report differs from %s (-want +got):\n%s", golden, d)
	}
	// Every variable of the tree is in the report, in one bucket.
	for _, name := range []string{"k8s_release", "k8s_worker_download_dir", "ansible_host", "wireguard_addresses", "containerd_flavor"} {
		if !strings.Contains(got, "\n  "+name+"\n") {
			t.Errorf("the report lacks %s", name)
		}
	}
}

// TestSeedSpecIsDefaults: the imported spec, read back as nodebake spec
// print reads it, is the base spec with the seed's Kubernetes version and
// nothing else changed.
func TestSeedSpecIsDefaults(t *testing.T) {
	f := newFixture(t, nil)
	if _, err := Import(context.Background(), f.options(t)); err != nil {
		t.Fatal(err)
	}
	got, err := spec.LoadAndValidate(filepath.Join(f.out, SpecFile))
	if err != nil {
		t.Fatalf("nodebake spec validate refuses the written spec: %v", err)
	}
	want := loadBase(t)
	want.Kubernetes.Version = "v1.23.3"
	want.Default()
	gotDump, _ := got.Dump()
	wantDump, _ := want.Dump()
	if d := cmp.Diff(string(wantDump), string(gotDump)); d != "" {
		t.Errorf("spec print differs from the defaults with kubernetes.version v1.23.3 (-want +got):\n%s", d)
	}
}

// TestChangedSpec: what a tree changes against the seed shows up in the
// spec, and nothing else does.
func TestChangedSpec(t *testing.T) {
	const w = "group_vars/k8s_worker.yml"
	kubelet := editFile(t, w, `  failSwapOn: true`, "  failSwapOn: true\n  maxPods: 50")
	kubelet = strings.Replace(kubelet, `    - "10.32.0.254"`, `    - "10.96.0.10"`, 1)
	kubelet = strings.Replace(kubelet, `  "register-node": "true"`, "  \"register-node\": \"true\"\n  \"v\": 2", 1)
	kubelet = strings.Replace(kubelet, `  mode: "ipvs"`, `  mode: "iptables"`, 1)
	kubelet = strings.Replace(kubelet, `  clusterCIDR: "10.200.0.0/16"`, `  clusterCIDR: "10.244.0.0/16"`, 1)
	f := newFixture(t, map[string]string{
		w: kubelet,
		"group_vars/k8s_controller.yml": `k8s_apiserver_settings:
  "service-cluster-ip-range": "10.96.0.0/12"
  "etcd-servers": "{{ groups['etcd'] | join(',') }}"
k8s_controller_manager_settings:
  "cluster-cidr": "10.244.0.0/16"
k8s_apiserver_secure_port: "6443"
`,
		"group_vars/all.yml": editFile(t, "group_vars/all.yml", `k8s_release: "1.23.3"`, `k8s_release: "1.35.4"`),
	})
	res, err := Import(context.Background(), f.options(t))
	if err != nil {
		t.Fatal(err)
	}
	got, err := spec.LoadAndValidate(filepath.Join(f.out, SpecFile))
	if err != nil {
		t.Fatal(err)
	}
	want := loadBase(t)
	want.Kubernetes.ServiceCIDR = "10.96.0.0/12"
	want.Kubernetes.ClusterCIDR = "10.244.0.0/16"
	want.Kubelet.Config = map[string]any{"maxPods": int64(50), "clusterDNS": []any{"10.96.0.10"}}
	v := "2"
	want.Kubelet.Settings = map[string]*string{"v": &v}
	want.KubeProxy.Config = map[string]any{"mode": "iptables"}
	want.Default()
	gotDump, _ := got.Dump()
	wantDump, _ := want.Dump()
	if d := cmp.Diff(string(wantDump), string(gotDump)); d != "" {
		t.Errorf("spec (-want +got):\n%s", d)
	}
	for _, line := range []string{
		"kubelet.config.maxPods: 50 (added)",
		"kubernetes.serviceCIDR: 10.96.0.0/12 (was 10.32.0.0/16)",
		"kubeProxy.config.mode: iptables (was ipvs)",
		"maxPods = 50 (added: nodebake has no default)",
		"the API server's port",
		"Kubernetes maintains 1.35 to 1.37",
	} {
		if !strings.Contains(res.Report, line) {
			t.Errorf("the report lacks %q", line)
		}
	}
	if strings.Contains(res.Report, "out of support") {
		t.Error("v1.35.4 is reported out of support")
	}
}

// TestNodeConfigs: three workers and three controllers give three node
// configs that nodebake node check accepts, each with five peers whose
// public keys are the other hosts' private keys'.
func TestNodeConfigs(t *testing.T) {
	f := newFixture(t, nil)
	opts := f.options(t)
	opts.ConfigDrives, opts.UserData = true, true
	res, err := Import(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Nodes) != 3 {
		t.Fatalf("%d node configs, want 3", len(res.Nodes))
	}
	// The public key of every host, from its private key file.
	pubs := map[string]string{}
	hosts := []string{"controller01", "controller02", "controller03", "worker01", "worker02", "worker03"}
	for _, h := range hosts {
		kf := filepath.Join(f.out, KeysDir, h+seedDomain+".key")
		fi, err := os.Stat(kf)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %04o, want 0600", kf, fi.Mode().Perm())
		}
		b, _ := os.ReadFile(kf)
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		k, err := ecdh.X25519().NewPrivateKey(raw)
		if err != nil {
			t.Fatal(err)
		}
		pubs[h] = base64.StdEncoding.EncodeToString(k.PublicKey().Bytes())
	}
	s, err := spec.LoadAndValidate(filepath.Join(f.out, SpecFile))
	if err != nil {
		t.Fatal(err)
	}
	facts := worker.ImageFacts(s)
	for i, n := range res.Nodes {
		w := seedWorkers[i]
		if n.Name != w || n.Host != w+seedDomain {
			t.Errorf("node %d: %s (host %s), want %s", i, n.Name, n.Host, w)
		}
		b, err := os.ReadFile(filepath.Join(f.out, n.Config))
		if err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Stat(filepath.Join(f.out, n.Config)); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %04o, want 0600", n.Config, fi.Mode().Perm())
		}
		// What nodebake node check does.
		cfg, err := nodeconfig.Parse(b)
		if err != nil {
			t.Fatalf("%s does not parse: %v", n.Config, err)
		}
		if err := nodeconfig.Validate(cfg, facts, nodeconfigtest.Now()); err != nil {
			t.Errorf("%s does not validate: %v", n.Config, err)
		}
		if cfg.NodeName != w || cfg.WireGuard.Address != []string{"10.8.0.203/24", "10.8.0.204/24", "10.8.0.205/24"}[i] ||
			cfg.WireGuard.ListenPort != 51820 || cfg.Kubernetes.APIServer != "https://10.8.0.101:6443" {
			t.Errorf("%s: name %s, address %s, port %d, API server %s", n.Config, cfg.NodeName, cfg.WireGuard.Address, cfg.WireGuard.ListenPort, cfg.Kubernetes.APIServer)
		}
		own, _ := base64.StdEncoding.DecodeString(cfg.WireGuard.PrivateKey)
		ownKey, _ := ecdh.X25519().NewPrivateKey(own)
		if base64.StdEncoding.EncodeToString(ownKey.PublicKey().Bytes()) != pubs[w] {
			t.Errorf("%s: its private key is not the one in its key file", n.Config)
		}
		if len(cfg.WireGuard.Peers) != 5 {
			t.Fatalf("%s: %d peers, want 5", n.Config, len(cfg.WireGuard.Peers))
		}
		var want, got []string
		for _, h := range hosts {
			if h != w {
				want = append(want, pubs[h])
			}
		}
		for _, p := range cfg.WireGuard.Peers {
			got = append(got, p.PublicKey)
			host := strings.TrimSuffix(strings.Split(p.Endpoint, ".")[0], "")
			if p.Endpoint != host+".p.domain.tld:51820" {
				t.Errorf("%s: peer endpoint %s", n.Config, p.Endpoint)
			}
			if len(p.AllowedIPs) != 1 || !strings.HasPrefix(p.AllowedIPs[0], "10.8.0.") || !strings.HasSuffix(p.AllowedIPs[0], "/32") {
				t.Errorf("%s: peer %s allowed IPs %v, want its /32", n.Config, host, p.AllowedIPs)
			}
			if wantKA := map[bool]int{true: 30, false: 0}[strings.HasPrefix(host, "worker")]; p.PersistentKeepalive != wantKA {
				t.Errorf("%s: peer %s keepalive %d, want %d", n.Config, host, p.PersistentKeepalive, wantKA)
			}
		}
		sort.Strings(want)
		sort.Strings(got)
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s: peer keys are not the other hosts' (-want +got):\n%s", n.Config, d)
		}
		// The user data is the node config, gzip'd; the drive is there.
		gz, err := os.ReadFile(filepath.Join(f.out, n.UserData))
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			t.Fatal(err)
		}
		ud, _ := io.ReadAll(zr)
		if !bytes.Equal(ud, b) {
			t.Errorf("%s does not hold %s", n.UserData, n.Config)
		}
		if fi, err := os.Stat(filepath.Join(f.out, n.Drive)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("config drive %s: %v", n.Drive, err)
		}
	}
	// The same tree and key directory give the same bytes again.
	before := readTree(t, f.out)
	opts2 := f.options(t) // the drives and user data of the first run stay as they are
	opts2.Rand = failingRand{}
	if _, err := Import(context.Background(), opts2); err != nil {
		t.Fatalf("a second import with the keys in place: %v", err)
	}
	after := readTree(t, f.out)
	delete(before, ReportFile) // it says where the keys came from
	delete(after, ReportFile)
	if d := cmp.Diff(before, after); d != "" {
		t.Errorf("a second import changed the output (-first +second):\n%s", d)
	}
	if rep, _ := os.ReadFile(filepath.Join(f.out, ReportFile)); !strings.Contains(string(rep), "private key: wireguard/worker01.i.domain.tld.key") {
		t.Error("the second report does not say the keys were read from the key directory")
	}
}

// failingRand fails: a run that reuses every key must not generate one.
type failingRand struct{}

func (failingRand) Read([]byte) (int, error) { return 0, errors.New("no randomness for this run") }

func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(dir, p)
			sum := sha256.Sum256(b)
			out[rel] = base64.StdEncoding.EncodeToString(sum[:])
		}
		return nil
	})
	return out
}

// TestRefusals: each kind of bad input is refused naming the variable and
// its file, and nothing is written.
func TestRefusals(t *testing.T) {
	const (
		all    = "group_vars/all.yml"
		worker = "group_vars/k8s_worker.yml"
		w2     = "host_vars/worker02.i.domain.tld.yml"
		w3     = "host_vars/worker03.i.domain.tld.yml"
	)
	for _, tc := range []struct {
		name     string
		edits    func(t *testing.T) map[string]string
		variable string
		file     string
		want     string
	}{
		{"wrong type: a number for a version", func(t *testing.T) map[string]string {
			return map[string]string{all: editFile(t, all, `k8s_release: "1.23.3"`, `k8s_release: 1.23`)}
		}, "k8s_release", all, "wrong type"},
		{"wrong type: a list of settings", func(t *testing.T) map[string]string {
			return map[string]string{worker: editFile(t, worker, "k8s_worker_kubeproxy_settings:\n", "k8s_worker_kubeproxy_settings:\n  - config\nunused:\n")}
		}, "k8s_worker_kubeproxy_settings", worker, "wrong type: want a mapping"},
		{"wrong type: a mapping for a YAML document", func(t *testing.T) map[string]string {
			return map[string]string{worker: editFile(t, worker, "k8s_worker_kubeproxy_conf_yaml: |", "k8s_worker_kubeproxy_conf_yaml: {mode: ipvs}\nunused_text: |")}
		}, "k8s_worker_kubeproxy_conf_yaml", worker, "want a YAML document as text"},
		{"wrong type inside the kubelet config", func(t *testing.T) map[string]string {
			return map[string]string{worker: editFile(t, worker, "  failSwapOn: true", `  failSwapOn: "maybe"`)}
		}, "k8s_worker_kubelet_conf_yaml", worker, "kubelet.config.failSwapOn: expected a boolean"},
		{"unknown filter", func(t *testing.T) map[string]string {
			return map[string]string{worker: editFile(t, worker, `"{{k8s_worker_kubelet_conf_dir}}/kubeconfig"`, `"{{ k8s_worker_kubelet_conf_dir | default('/var/lib/kubelet') }}/kubeconfig"`)}
		}, "k8s_worker_kubelet_settings", worker, `unknown filter "default"`},
		{"statement block", func(t *testing.T) map[string]string {
			return map[string]string{worker: editFile(t, worker, "  failSwapOn: true", "  {% if true %}failSwapOn: true{% endif %}")}
		}, "k8s_worker_kubelet_conf_yaml", worker, "statement blocks"},
		{"a test", func(t *testing.T) map[string]string {
			return map[string]string{all: editFile(t, all, `k8s_bin_dir: "/usr/local/bin"`, `k8s_bin_dir: "{{ '/usr/local/bin' if k8s_interface is defined }}"`)}
		}, "k8s_bin_dir", all, `unsupported Jinja "if"`},
		{"missing variable", func(t *testing.T) map[string]string {
			return map[string]string{worker: editFile(t, worker, `"{{k8s_worker_kubelet_conf_dir}}/kubeconfig"`, `"{{k8s_kubelet_dir}}/kubeconfig"`)}
		}, "k8s_worker_kubelet_settings", worker, "refers to k8s_kubelet_dir, which is not defined"},
		{"a variable referring to itself", func(t *testing.T) map[string]string {
			return map[string]string{all: editFile(t, all, `k8s_conf_dir: "/var/lib/kubernetes"`, `k8s_conf_dir: "{{ k8s_conf_dir }}"`)}
		}, "k8s_conf_dir", all, "refers to itself"},
		{"two variables referring to each other", func(t *testing.T) map[string]string {
			return map[string]string{all: editFile(t, all, `k8s_bin_dir: "/usr/local/bin"`, `k8s_bin_dir: "{{ k8s_ping }}"`+"\nk8s_ping: \"{{ k8s_bin_dir }}\"")}
		}, "k8s_bin_dir", all, "k8s_bin_dir → k8s_ping → k8s_bin_dir"},
		{"a host without a WireGuard address", func(t *testing.T) map[string]string {
			return map[string]string{w2: editFile(t, w2, "wireguard_addresses:\n  - \"10.8.0.204/24\"\n", "")}
		}, "wireguard_address", "hosts", "no WireGuard address"},
		{"two hosts with the same address", func(t *testing.T) map[string]string {
			return map[string]string{w3: editFile(t, w3, "10.8.0.205/24", "10.8.0.101/24")}
		}, "wireguard_addresses", w3, "the same WireGuard address as controller01.i.domain.tld"},
		{"the wrong interface", func(t *testing.T) map[string]string {
			return map[string]string{all: editFile(t, all, `k8s_interface: "wg0"`, `k8s_interface: "tap0"`)}
		}, "k8s_interface", all, "must be wg0"},
		{"settings that differ between workers", func(t *testing.T) map[string]string {
			return map[string]string{w2: editFile(t, w2, "---\n", "---\nk8s_worker_kubelet_conf_dir: /srv/kubelet\n")}
		}, "k8s_worker_kubelet_conf_dir", worker, "differs between workers"},
		{"a misspelt variable", func(t *testing.T) map[string]string {
			return map[string]string{worker: editFile(t, worker, "k8s_worker_kubeproxy_settings:", "k8s_worker_kubeproxy_setings:")}
		}, "k8s_worker_kubeproxy_setings", worker, "did you mean k8s_worker_kubeproxy_settings?"},
		{"another interface's address", func(t *testing.T) map[string]string {
			return map[string]string{worker: editFile(t, worker, `"node-ip": "{{hostvars[inventory_hostname]['ansible_' + k8s_interface].ipv4.address}}"`, `"node-ip": "{{ ansible_eth0.ipv4.address }}"`)}
		}, "k8s_worker_kubelet_settings", worker, "fills in only wg0's address"},
		{"a per-node value where first boot fills nothing in", func(t *testing.T) map[string]string {
			return map[string]string{worker: editFile(t, worker, "  failSwapOn: true", "  failSwapOn: true\n  providerID: \"static://{{ inventory_hostname }}\"")}
		}, "k8s_worker_kubelet_conf_yaml", worker, "providerID = static://<node name> depends on the host"},
		{"another certificate path", func(t *testing.T) map[string]string {
			return map[string]string{worker: editFile(t, worker, `"{{k8s_conf_dir}}/cert-{{inventory_hostname}}.pem"`, `"/etc/ssl/{{inventory_hostname}}.pem"`)}
		}, "k8s_worker_kubelet_conf_yaml", worker, "first boot sets it to /var/lib/kubernetes/cert-<node name>.pem"},
		{"docker", func(t *testing.T) map[string]string {
			return map[string]string{worker: editFile(t, worker, `"container-runtime": "remote"`, `"container-runtime": "docker"`)}
		}, "k8s_worker_kubelet_settings", worker, "container-runtime = docker"},
		{"a WireGuard setting first boot cannot carry", func(t *testing.T) map[string]string {
			return map[string]string{w2: editFile(t, w2, "---\n", "---\nwireguard_mtu: 1420\n")}
		}, "wireguard_mtu", w2, "default MTU"},
		{"a port that is not a number", func(t *testing.T) map[string]string {
			return map[string]string{"group_vars/vpn.yml": editFile(t, "group_vars/vpn.yml", `wireguard_port: "51820"`, `wireguard_port: "fifty"`)}
		}, "wireguard_port", "group_vars/vpn.yml", "is not a number"},
		{"a vault-encrypted value", func(t *testing.T) map[string]string {
			return map[string]string{all: editFile(t, all, `k8s_release: "1.23.3"`, "k8s_release: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6162")}
		}, "k8s_release", all, "Ansible Vault"},
		{"a worker outside the VPN", func(t *testing.T) map[string]string {
			return map[string]string{"hosts": editFile(t, "hosts", "worker0[1:3].i.domain.tld\n\n[k8s_controller]", "worker0[1:2].i.domain.tld\n\n[k8s_controller]")}
		}, "wireguard_address", "hosts", "not in the vpn group"},
		{"templates that render too much", func(t *testing.T) map[string]string {
			bomb := "k8s_kilo: \"" + strings.Repeat("x", 1000) + "\"\nk8s_mega: \"" + strings.Repeat("{{ k8s_kilo }}", 1000) + "\"\n"
			settings := "k8s_worker_kubelet_settings:\n"
			for i := 0; i < 100; i++ {
				settings += fmt.Sprintf("  \"flag-%d\": \"a{{ k8s_mega }}\"\n", i)
			}
			return map[string]string{worker: editFile(t, worker, "k8s_worker_kubelet_settings:\n", bomb+settings+"unused:\n")}
		}, "k8s_worker_kubelet_settings", worker, "render more than 64 MiB"},
		{"some workers with a pod CIDR", func(t *testing.T) map[string]string {
			return map[string]string{w2: editFile(t, w2, "---\n", "---\npod_cidr: 10.200.1.0/24\n")}
		}, PodCIDRVar, w2, "the bridge pod network needs a pod CIDR on every worker"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.edits(t))
			_, err := Import(context.Background(), f.options(t))
			var ae *Error
			if !errors.As(err, &ae) {
				t.Fatalf("got %v, want a refusal", err)
			}
			if k := failure.KindOf(err); k != failure.Invalid {
				t.Errorf("a refusal is of kind %v, want %v", k, failure.Invalid)
			}
			var found *Problem
			for i, p := range ae.Problems {
				if p.Variable == tc.variable && strings.Contains(p.Msg, tc.want) {
					found = &ae.Problems[i]
				}
			}
			if found == nil {
				t.Fatalf("no refusal of %s with %q in:\n%v", tc.variable, tc.want, err)
			}
			if want := filepath.Join(f.dir, tc.file); found.Source.File != want {
				t.Errorf("the refusal names %q, want %q: %v", found.Source.File, want, found)
			}
			if !strings.Contains(err.Error(), tc.variable) {
				t.Errorf("the error does not name %s: %v", tc.variable, err)
			}
			if entries, _ := os.ReadDir(f.out); len(entries) != 0 {
				t.Errorf("a refused import wrote %v", entries)
			}
		})
	}
}

// TestInputErrorsAreInvalid: inputs that cannot be read or parsed, and
// missing options, are the caller's to fix (failure.Invalid); the import
// writes nothing.
func TestInputErrorsAreInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(t *testing.T, f *fixture, o *Options)
	}{
		{"no group_vars", func(t *testing.T, f *fixture, o *Options) { o.GroupVars = filepath.Join(f.dir, "missing") }},
		{"no inventory file", func(t *testing.T, f *fixture, o *Options) { o.Inventory = filepath.Join(f.dir, "missing") }},
		{"an inventory that does not parse", func(t *testing.T, f *fixture, o *Options) {
			p := filepath.Join(f.dir, "bad-hosts")
			if err := os.WriteFile(p, []byte("[k8s_worker\nworker01\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			o.Inventory = p
		}},
		{"a group_vars file that does not parse", func(t *testing.T, f *fixture, o *Options) {
			p := filepath.Join(f.dir, "group_vars", "all.yml")
			if err := os.WriteFile(p, []byte("k8s_release: [\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"no base spec", func(t *testing.T, f *fixture, o *Options) { o.Base = nil }},
		{"no time", func(t *testing.T, f *fixture, o *Options) { o.Now = time.Time{} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			o := f.options(t)
			tc.edit(t, f, &o)
			_, err := Import(context.Background(), o)
			if err == nil {
				t.Fatal("the import succeeded")
			}
			if k := failure.KindOf(err); k != failure.Invalid {
				t.Errorf("%v: kind %v, want %v", err, k, failure.Invalid)
			}
			if entries, _ := os.ReadDir(f.out); len(entries) != 0 {
				t.Errorf("a failed import wrote %v", entries)
			}
		})
	}
}

// TestSameKey: two hosts with one key are refused.
func TestSameKey(t *testing.T) {
	f := newFixture(t, nil)
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)) + "\n"
	for _, h := range []string{"worker01", "controller02"} {
		p := filepath.Join(f.out, KeysDir, h+seedDomain+".key")
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte(key), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, err := Import(context.Background(), f.options(t))
	var ae *Error
	if !errors.As(err, &ae) || !ae.Has("wireguard_private_key") || !strings.Contains(err.Error(), "the same WireGuard key") {
		t.Fatalf("got %v, want the same key refused", err)
	}
	// Nothing beyond the two key files: no public keys, no configs.
	if got := readTree(t, f.out); len(got) != 2 {
		t.Errorf("a refused import left %v", got)
	}
}

// TestPodCIDRs: pod CIDRs in the inventory give the bridge pod network and
// routes to the other workers' pods.
func TestPodCIDRs(t *testing.T) {
	edits := map[string]string{}
	for i, w := range seedWorkers {
		rel := "host_vars/" + w + seedDomain + ".yml"
		edits[rel] = editFile(t, rel, "---\n", "---\npod_cidr: 10.200."+string(rune('0'+i))+".0/24\n")
	}
	f := newFixture(t, edits)
	res, err := Import(context.Background(), f.options(t))
	if err != nil {
		t.Fatal(err)
	}
	if res.Spec.Kubernetes.PodNetwork != spec.PodNetworkBridge {
		t.Errorf("pod network %s, want bridge", res.Spec.Kubernetes.PodNetwork)
	}
	b, _ := os.ReadFile(filepath.Join(f.out, NodesDir, "worker02.yaml"))
	cfg, err := nodeconfig.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Kubernetes.PodCIDR != "10.200.1.0/24" {
		t.Errorf("worker02's pod CIDR %s", cfg.Kubernetes.PodCIDR)
	}
	var routes []string
	for _, p := range cfg.WireGuard.Peers {
		routes = append(routes, strings.Join(p.AllowedIPs, ","))
	}
	want := []string{"10.8.0.101/32", "10.8.0.102/32", "10.8.0.103/32", "10.8.0.203/32,10.200.0.0/24", "10.8.0.205/32,10.200.2.0/24"}
	if d := cmp.Diff(want, routes); d != "" {
		t.Errorf("worker02's peers' allowed IPs (-want +got):\n%s", d)
	}
	if res.Spec.Kubernetes.PodNetwork != spec.PodNetworkBridge {
		t.Errorf("pod network %q, want bridge (every worker has a pod_cidr)", res.Spec.Kubernetes.PodNetwork)
	}
	facts := worker.ImageFacts(res.Spec)
	if err := nodeconfig.Validate(cfg, facts, nodeconfigtest.Now()); err != nil {
		t.Error(err)
	}
}

// TestYAMLInventory: the same inventory as YAML gives the same outputs.
func TestYAMLInventory(t *testing.T) {
	ini := newFixture(t, nil)
	if _, err := Import(context.Background(), ini.options(t)); err != nil {
		t.Fatal(err)
	}
	y := newFixture(t, map[string]string{"hosts": "", "hosts.yml": `all:
  children:
    vpn:
      hosts:
        controller0[1:3].i.domain.tld:
        worker0[1:3].i.domain.tld:
    k8s:
      children:
        k8s_controller:
          hosts:
            controller0[1:3].i.domain.tld:
        k8s_worker:
          hosts:
            worker0[1:3].i.domain.tld:
`})
	opts := y.options(t)
	opts.Inventory = filepath.Join(y.dir, "hosts.yml")
	opts.Rand = &detRand{seed: "TestYAMLInventory"}
	if _, err := Import(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	a, b := readTree(t, ini.out), readTree(t, y.out)
	delete(a, ReportFile)
	delete(b, ReportFile)
	if d := cmp.Diff(a, b); d != "" {
		t.Errorf("INI and YAML inventories give different outputs (-INI +YAML):\n%s", d)
	}
}

// TestNoInventory: without an inventory, the spec and the report only.
func TestNoInventory(t *testing.T) {
	f := newFixture(t, map[string]string{"group_vars/k8s_controller.yml": "k8s_controller_manager_settings: {cluster-cidr: 10.99.0.0/16}\n"})
	opts := f.options(t)
	opts.Inventory, opts.HostVars = "", ""
	res, err := Import(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Nodes) != 0 {
		t.Errorf("%d node configs without an inventory", len(res.Nodes))
	}
	if res.Spec.Kubernetes.ClusterCIDR != "10.200.0.0/16" {
		t.Errorf("cluster CIDR %s: group_vars of another group applied to workers", res.Spec.Kubernetes.ClusterCIDR)
	}
	for _, s := range []string{"group_vars for k8s_controller: without an inventory, not applied to workers", "node configs: none (no inventory)"} {
		if !strings.Contains(res.Report, s) {
			t.Errorf("report lacks %q", s)
		}
	}
}

// TestGivenKeys: wireguard_private_key and public-key-only controllers.
func TestGivenKeys(t *testing.T) {
	priv := bytes.Repeat([]byte{9}, 32)
	f := newFixture(t, map[string]string{
		"host_vars/worker01.i.domain.tld.yml": editFile(t, "host_vars/worker01.i.domain.tld.yml", "---\n", "---\nwireguard_private_key: "+base64.StdEncoding.EncodeToString(priv)+"\n"),
	})
	ctrlKey, _ := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{5}, 32))
	ctrlPub := base64.StdEncoding.EncodeToString(ctrlKey.PublicKey().Bytes())
	kd := filepath.Join(f.out, KeysDir)
	os.MkdirAll(kd, 0o700)
	os.WriteFile(filepath.Join(kd, "controller01"+seedDomain+".pub"), []byte(ctrlPub+"\n"), 0o644)
	res, err := Import(context.Background(), f.options(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(kd, "worker01"+seedDomain+".key")); !errors.Is(err, os.ErrNotExist) {
		t.Error("a key from wireguard_private_key was written to the key directory")
	}
	if _, err := os.Stat(filepath.Join(kd, "controller01"+seedDomain+".key")); !errors.Is(err, os.ErrNotExist) {
		t.Error("a controller with a public key got a new private key")
	}
	b, _ := os.ReadFile(filepath.Join(f.out, NodesDir, "worker01.yaml"))
	cfg, _ := nodeconfig.Parse(b)
	if cfg.WireGuard.PrivateKey != base64.StdEncoding.EncodeToString(priv) {
		t.Error("worker01's node config does not hold its wireguard_private_key")
	}
	b, _ = os.ReadFile(filepath.Join(f.out, NodesDir, "worker02.yaml"))
	cfg, _ = nodeconfig.Parse(b)
	if cfg.WireGuard.Peers[0].PublicKey != ctrlPub {
		t.Errorf("worker02's peer controller01 has key %s, want the given %s", cfg.WireGuard.Peers[0].PublicKey, ctrlPub)
	}
	if strings.Contains(res.Report, "controller01.i.domain.tld has a new WireGuard key") {
		t.Error("the report says controller01 got a new key")
	}
	// A worker with only a public key is refused.
	os.WriteFile(filepath.Join(kd, "worker03"+seedDomain+".pub"), []byte(ctrlPub+"\n"), 0o644)
	os.Remove(filepath.Join(kd, "worker03"+seedDomain+".key"))
	_, err = Import(context.Background(), f.options(t))
	if err == nil || !strings.Contains(err.Error(), "needs its private key") {
		t.Errorf("a worker with only a public key: got %v", err)
	}
}

// TestHostileNodeName: a certificate whose CN would make a path is refused
// before anything is named after it.
func TestHostileNodeName(t *testing.T) {
	f := newFixture(t, nil)
	ws := []nodeconfigtest.Host{{Host: "worker01" + seedDomain, Node: "worker01"}, {Host: "worker02" + seedDomain, Node: "../../evil"}, {Host: "worker03" + seedDomain, Node: "worker03"}}
	if err := nodeconfigtest.WriteCADir(filepath.Join(f.home, "k8s", "certs"), ws); err != nil {
		t.Fatal(err)
	}
	_, err := Import(context.Background(), f.options(t))
	if err == nil || !strings.Contains(err.Error(), `names the node "../../evil"`) {
		t.Fatalf("got %v, want the node name refused", err)
	}
	if got := readTree(t, filepath.Dir(f.out)); len(got) != len(readTree(t, f.dir))+len(readTree(t, f.home)) {
		t.Errorf("files appeared next to the output: %v", got)
	}
}

// TestUnmanagedPeersAndOneFile: wireguard_unmanaged_peers become extra
// peers; a single group_vars file is a group_vars input too.
func TestUnmanagedPeersAndOneFile(t *testing.T) {
	peerKey := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{3}, 32))
	f := newFixture(t, map[string]string{
		"group_vars/vpn.yml": editFile(t, "group_vars/vpn.yml", "---\n", "---\nwireguard_unmanaged_peers:\n  workstation:\n    public_key: "+peerKey+"\n    allowed_ips: [10.8.0.2/32]\n    persistent_keepalive: 25\n"),
	})
	res, err := Import(context.Background(), f.options(t))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(f.out, res.Nodes[0].Config))
	cfg, _ := nodeconfig.Parse(b)
	last := cfg.WireGuard.Peers[len(cfg.WireGuard.Peers)-1]
	if len(cfg.WireGuard.Peers) != 6 || last.PublicKey != peerKey || last.AllowedIPs[0] != "10.8.0.2/32" || last.PersistentKeepalive != 25 || last.Endpoint != "" {
		t.Errorf("peers %+v, want the five hosts and the workstation", cfg.WireGuard.Peers)
	}
	if !strings.Contains(res.Report, "workstation (wireguard_unmanaged_peers)") {
		t.Error("the report does not list the unmanaged peer")
	}

	one := newFixture(t, nil)
	opts := one.options(t)
	opts.GroupVars = filepath.Join(one.dir, "group_vars", "k8s_worker.yml")
	opts.Inventory, opts.HostVars = "", ""
	_, err = Import(context.Background(), opts)
	var ae *Error
	if !errors.As(err, &ae) || !ae.Has("k8s_worker_kubelet_settings") || !strings.Contains(err.Error(), "refers to k8s_worker_kubelet_conf_dir") && !strings.Contains(err.Error(), "refers to k8s_interface, which is not defined") {
		t.Errorf("k8s_worker.yml alone (its variables refer to all.yml's): got %v", err)
	}
}

func TestRebase(t *testing.T) {
	digest := "sha256:" + strings.Repeat("a", 64)
	s := &spec.Spec{
		Base:   spec.Base{Image: "oci:../build/base@" + digest},
		Images: []spec.Image{{Ref: "p:1", Image: "tarball:img/pause.tar"}, {Ref: "q:1", Image: "registry.example/q:1"}},
		Files:  []spec.File{{Path: "/etc/motd", Source: "files/motd"}, {Path: "/etc/x", Source: "/abs/x"}},
	}
	s.SetComponent("kubelet", spec.Component{Image: "oci:layouts/kubelet"})
	if err := rebase(s, "/src/images", "/src/out/imported"); err != nil {
		t.Fatal(err)
	}
	got := []string{s.Base.Image, s.Images[0].Image, s.Images[1].Image, s.Files[0].Source, s.Files[1].Source, s.Components["kubelet"].Image}
	want := []string{"oci:../../build/base@" + digest, "tarball:../../images/img/pause.tar", "registry.example/q:1", "../../images/files/motd", "/abs/x", "oci:../../images/layouts/kubelet"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("rebased (-want +got):\n%s", d)
	}
	s.Base.Image = "oci:base"
	if err := rebase(s, "/a/b", "/x/y/z"); err != nil || s.Base.Image != "oci:/a/b/base" {
		t.Errorf("a path that would climb to the root: %s, want it absolute", s.Base.Image)
	}
}

// TestNamedPipes: a named pipe where the import reads a file (a worker's
// certificate, a WireGuard key, a vars file inside a group's directory) is
// refused or passed over at once, never waited on.
func TestNamedPipes(t *testing.T) {
	for _, tc := range []struct {
		name string
		// fifo is where the pipe goes, relative to the fixture's root.
		fifo func(f *fixture) string
		want string
	}{
		{"a worker's certificate", func(f *fixture) string {
			return filepath.Join(f.home, "k8s", "certs", nodeconfig.NodeCertFileName("worker02"+seedDomain))
		}, "named pipe"},
		{"a WireGuard key", func(f *fixture) string {
			return filepath.Join(f.out, KeysDir, "worker01"+seedDomain+".key")
		}, "not a key file"},
		{"the inventory", func(f *fixture) string { return filepath.Join(f.dir, "hosts") }, "regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			p := tc.fifo(f)
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			os.Remove(p)
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				_, err := Import(context.Background(), f.options(t))
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), filepath.Base(p)) {
					t.Errorf("got %v, want an error naming %s with %q", err, filepath.Base(p), tc.want)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("the import waits on the named pipe %s", p)
			}
		})
	}
	// In a group's directory, a pipe is passed over (and reported), like
	// any file Ansible would not read.
	f := newFixture(t, nil)
	dir := filepath.Join(f.dir, "group_vars", "k8s_worker.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe.yml"), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := Import(context.Background(), f.options(t))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Report, "pipe.yml") {
		t.Errorf("the report does not name the pipe it passed over:\n%s", res.Report)
	}
}
