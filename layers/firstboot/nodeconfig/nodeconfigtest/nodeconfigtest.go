// Package nodeconfigtest is the hostile node config corpus that the
// first-boot program's and `nodebake node check`'s acceptance tests share:
// a cluster's certificates for worker01, a valid config, and cases in each
// category the first boot must refuse (bounds, keys, identities), each with
// the field and message its first problem must show. Standard library only;
// for tests.
package nodeconfigtest

import (
	"crypto"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/nodebake/nodebake/layers/firstboot/internal/testpki"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
)

// Facts are the image facts the corpus is written for: a spec's defaults
// (service CIDR 10.32.0.0/16, cluster CIDR 10.200.0.0/16) with the bridge
// pod network.
func Facts() nodeconfig.ImageFacts {
	return nodeconfig.ImageFacts{
		ServiceCIDR: "10.32.0.0/16", ClusterCIDR: "10.200.0.0/16", PodNetwork: nodeconfig.PodNetworkBridge,
		KubeletConfigTemplate:   "/usr/lib/nodebake/kubelet-config.json",
		KubeProxyConfigTemplate: "/usr/lib/nodebake/kube-proxy-config.json",
		KubernetesVersion:       "v1.35.4",
	}
}

// PKI is a cluster CA, another CA, and worker01's and kube-proxy's
// certificates and keys (Ed25519, valid 2025 to 2035).
type PKI struct {
	CA, Other           *testpki.CA
	NodeCert, NodeKey   string
	ProxyCert, ProxyKey string
}

// NewPKI makes the corpus's certificates.
func NewPKI() (*PKI, error) {
	ca, err := testpki.NewCA("kubernetes", 1)
	if err != nil {
		return nil, err
	}
	other, err := testpki.NewCA("another CA", 9)
	if err != nil {
		return nil, err
	}
	p := &PKI{CA: ca, Other: other}
	if p.NodeCert, p.NodeKey, err = ca.Issue(testpki.Leaf{CommonName: "system:node:worker01", Organization: []string{"system:nodes"}, Seed: 2}); err != nil {
		return nil, err
	}
	if p.ProxyCert, p.ProxyKey, err = ca.Issue(testpki.Leaf{CommonName: "system:kube-proxy", Organization: []string{"system:node-proxier"}, Seed: 3}); err != nil {
		return nil, err
	}
	return p, nil
}

// Config returns worker01's valid node config.
func (p *PKI) Config() *nodeconfig.NodeConfig {
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
			CACert:    p.CA.CertPEM,
			NodeCert:  p.NodeCert,
			NodeKey:   p.NodeKey,
			KubeProxy: nodeconfig.KubeProxy{Cert: p.ProxyCert, Key: p.ProxyKey},
			PodCIDR:   "10.200.1.0/24",
		},
	}
}

// YAML returns cfg in the canonical form.
func YAML(cfg *nodeconfig.NodeConfig) []byte {
	b, err := nodeconfig.Marshal(cfg)
	if err != nil {
		panic("nodeconfigtest: " + err.Error()) // the corpus's own configs always marshal
	}
	return b
}

// MemDir returns a new directory in memory (/dev/shm) when the system has
// one, else t.TempDir(). The acceptance tables and fault sweeps create and
// sync thousands of files; on a busy disk that takes minutes, and what
// they check is first boot's logic, not the disk.
func MemDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "nodebake-test-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// SourceKind is what the node config's source is on disk.
type SourceKind int

// The kinds of source a case can have.
const (
	RegularFile SourceKind = iota
	NamedPipe
	Directory
	SymlinkToPipe
	CharDevice // a symbolic link to /dev/null
)

func (k SourceKind) String() string {
	return [...]string{"regular file", "named pipe", "directory", "symbolic link to a named pipe", "character device"}[k]
}

// Place creates the source of a case at path: the config as a regular file,
// or the kind of file it is.
func Place(path string, c Case) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	switch c.Source {
	case NamedPipe:
		return syscall.Mkfifo(path, 0o600)
	case Directory:
		if err := os.Mkdir(path, 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(path, "node.yaml"), c.Config, 0o600)
	case SymlinkToPipe:
		if err := syscall.Mkfifo(path+".fifo", 0o600); err != nil {
			return err
		}
		return os.Symlink(filepath.Base(path)+".fifo", path)
	case CharDevice:
		return os.Symlink("/dev/null", path)
	}
	return os.WriteFile(path, c.Config, 0o600)
}

// Case is one node config to refuse.
type Case struct {
	Name string
	// Category is "bounds", "keys" or "identity".
	Category string
	Config   []byte
	Source   SourceKind
	// Field is the field the first problem names (or the start of it) and
	// Message a part of its message.
	Field, Message string
}

// issue signs a leaf with ca or panics: the corpus's certificates are
// fixed and always sign.
func issue(ca *testpki.CA, l testpki.Leaf) (string, string) {
	c, k, err := ca.Issue(l)
	if err != nil {
		panic("nodeconfigtest: " + err.Error())
	}
	return c, k
}

func node(l testpki.Leaf) testpki.Leaf {
	if l.CommonName == "" {
		l.CommonName = "system:node:worker01"
	}
	if l.Organization == nil {
		l.Organization = []string{"system:nodes"}
	}
	if l.Seed == 0 {
		l.Seed = 2
	}
	return l
}

func wgKey(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// kubeconfig returns a kube-proxy kubeconfig with creds, edited by edit.
func kubeconfig(server, ca, cert, key string, edit func(*nodeconfig.Kubeconfig)) string {
	k := nodeconfig.NewKubeconfig(server, ca, "system:kube-proxy", cert, key)
	if edit != nil {
		edit(k)
	}
	b, err := k.Marshal()
	if err != nil {
		panic("nodeconfigtest: " + err.Error())
	}
	return string(b)
}

// Cases returns the hostile corpus. It generates a few RSA and ECDSA keys.
func Cases(p *PKI) ([]Case, error) {
	valid := string(YAML(p.Config()))
	with := func(edit func(*nodeconfig.NodeConfig)) []byte {
		c := p.Config()
		edit(c)
		return YAML(c)
	}
	rsa1024, err := testpki.RSAKey(1024)
	if err != nil {
		return nil, err
	}
	p224, err := testpki.ECKey(elliptic.P224())
	if err != nil {
		return nil, err
	}
	weakCA, err := testpki.NewCAWith("weak CA", rsa1024, 70, nil)
	if err != nil {
		return nil, err
	}
	notCA, err := testpki.NewCAWith("kubernetes", testpki.Key(1), 71, func(c *x509.Certificate) {
		c.IsCA, c.KeyUsage = false, x509.KeyUsageDigitalSignature
	})
	if err != nil {
		return nil, err
	}
	noCertSign, err := testpki.NewCAWith("kubernetes", testpki.Key(1), 72, func(c *x509.Certificate) {
		c.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign
	})
	if err != nil {
		return nil, err
	}
	var cs []Case
	add := func(cat, name string, cfg []byte, field, msg string) {
		cs = append(cs, Case{Name: name, Category: cat, Config: cfg, Field: field, Message: msg})
	}

	// Bounds: size, depth, encoding, sources, the work an input can cause.
	add("bounds", "larger than MaxSize", []byte(valid+"# "+strings.Repeat("x", nodeconfig.MaxSize)+"\n"),
		"config", fmt.Sprintf("larger than the limit of %d bytes", nodeconfig.MaxSize))
	add("bounds", "deep compact sequences", []byte(strings.Replace(valid, "  peers:\n", "  peers:\n    - "+strings.Repeat("- ", 200_000)+"x\n", 1)),
		"config", "nested deeper than 32 levels")
	var deep strings.Builder
	deep.WriteString("apiVersion: nodebake.io/v1alpha1\nkind: NodeConfig\nwireguard:\n")
	for i := 1; i < 1000; i++ {
		deep.WriteString(strings.Repeat(" ", i) + "k:\n")
	}
	add("bounds", "deep block mappings", []byte(deep.String()), "config", "nested deeper than 32 levels")
	add("bounds", "deep JSON", []byte(`{"apiVersion": "nodebake.io/v1alpha1", "wireguard": {"peers": `+strings.Repeat("[", 400_000)+strings.Repeat("]", 400_000)+"}}"),
		"config", "nested deeper than 32 levels")
	add("bounds", "deep JSON kube-proxy kubeconfig", with(func(c *nodeconfig.NodeConfig) {
		c.Kubernetes.KubeProxy = nodeconfig.KubeProxy{Kubeconfig: `{"kind": "Config", "clusters": ` + strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000) + "}"}
	}), "kubernetes.kubeProxy.kubeconfig", "nested deeper than 32 levels")
	add("bounds", "anchor and alias", []byte(strings.Replace(valid, "  listenPort: 51820\n", "  listenPort: &p 51820\n", 1)), "config", "anchors (&) are not supported")
	add("bounds", "UTF-16", append([]byte{0xFF, 0xFE}, []byte("a\x00p\x00i\x00")...), "config", "UTF-16")
	add("bounds", "invalid UTF-8", []byte(strings.Replace(valid, "worker01", "worker\xff01", 1)), "config", "not valid UTF-8")
	// Disjoint allowed networks, then one that repeats: the overlap check
	// must not compare every pair (50 000 entries; 1.25e9 pairs).
	var ips strings.Builder
	for i := 0; i < 50_000; i++ {
		fmt.Fprintf(&ips, "10.%d.%d.%d/32, ", 100+i>>16, i>>8&255, i&255)
	}
	ips.WriteString("10.100.0.7/32")
	add("bounds", "50000 allowed IPs, one repeated", []byte(strings.Replace(valid, "[10.8.0.205/32, 10.200.3.0/24]", "["+ips.String()+"]", 1)),
		"wireguard.peers[1].allowedIPs[50000]", "overlaps wireguard.peers[1].allowedIPs[7] (10.100.0.7/32)")
	// A config cut short inside caCert: the truncated certificate is the
	// first problem, not the fields missing after it.
	cut := strings.Index(valid, "  caCert: |\n") + len("  caCert: |\n") + 100
	add("bounds", "truncated config", []byte(valid[:cut]+"\n"), "kubernetes.caCert", "is truncated")
	add("bounds", "truncated certificate", with(func(c *nodeconfig.NodeConfig) {
		c.Kubernetes.NodeCert = strings.TrimSuffix(strings.TrimSpace(c.Kubernetes.NodeCert), "-----END CERTIFICATE-----")
	}), "kubernetes.nodeCert", "PEM block 1 (CERTIFICATE) is truncated")
	for _, k := range []SourceKind{NamedPipe, Directory, SymlinkToPipe, CharDevice} {
		cs = append(cs, Case{Name: "source is a " + k.String(), Category: "bounds", Config: []byte(valid), Source: k,
			Field: "source", Message: "not a regular file"})
	}

	// Keys: WireGuard keys are canonical base64 of 32 bytes, compared as
	// bytes; low-order public keys are refused.
	key11 := testpki.WireGuardKey(0x11)
	add("keys", "private key with a line break", with(func(c *nodeconfig.NodeConfig) { c.WireGuard.PrivateKey = key11[:20] + "\n" + key11[20:] }),
		"wireguard.privateKey", "45 characters")
	add("keys", "private key with a space", with(func(c *nodeconfig.NodeConfig) { c.WireGuard.PrivateKey = key11[:20] + " " + key11[21:] }),
		"wireguard.privateKey", "character ' ' at position 21 is not standard base64")
	add("keys", "URL-safe base64", with(func(c *nodeconfig.NodeConfig) {
		c.WireGuard.PrivateKey = key11[:1] + "_" + key11[2:]
	}),
		"wireguard.privateKey", "character '_' at position 2 is not standard base64")
	add("keys", "peer key with stray bits", with(func(c *nodeconfig.NodeConfig) {
		k := c.WireGuard.Peers[0].PublicKey
		c.WireGuard.Peers[0].PublicKey = k[:42] + "J=" // "I" + a stray low bit
	}), "wireguard.peers[0].publicKey", "not canonical base64")
	add("keys", "duplicate peer key spelled differently", with(func(c *nodeconfig.NodeConfig) {
		k := c.WireGuard.Peers[0].PublicKey
		c.WireGuard.Peers[1].PublicKey = k[:42] + "J="
	}), "wireguard.peers[1].publicKey", "not canonical base64")
	add("keys", "all-zero peer key", with(func(c *nodeconfig.NodeConfig) { c.WireGuard.Peers[1].PublicKey = wgKey(make([]byte, 32)) }),
		"wireguard.peers[1].publicKey", "all zeros")
	order8 := []byte{0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a,
		0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00}
	add("keys", "low-order peer key", with(func(c *nodeconfig.NodeConfig) { c.WireGuard.Peers[0].PublicKey = wgKey(order8) }),
		"wireguard.peers[0].publicKey", "low-order point")
	high := append([]byte{0x22}, make([]byte, 31)...)
	high[31] = 0x80
	add("keys", "peer key with the top bit set", with(func(c *nodeconfig.NodeConfig) { c.WireGuard.Peers[0].PublicKey = wgKey(high) }),
		"wireguard.peers[0].publicKey", "not a canonical Curve25519 public key")
	ownPub, _ := nodeconfig.ParseWireGuardKey(key11)
	add("keys", "own key as a peer", with(func(c *nodeconfig.NodeConfig) { c.WireGuard.Peers[1].PublicKey = ownPub.PublicKey().String() }),
		"wireguard.peers[1].publicKey", "this node's own public key")
	add("keys", "all-zero private key", with(func(c *nodeconfig.NodeConfig) { c.WireGuard.PrivateKey = wgKey(make([]byte, 32)) }),
		"wireguard.privateKey", "all zeros")

	// Identities: key strength, the node's certificate, the CA, kube-proxy.
	cert, key := issue(p.CA, node(testpki.Leaf{Key: rsa1024}))
	add("identity", "RSA-1024 node key", with(func(c *nodeconfig.NodeConfig) { c.Kubernetes.NodeCert, c.Kubernetes.NodeKey = cert, key }),
		"kubernetes.nodeCert", "an RSA key of 1024 bits is too weak")
	cert224, key224 := issue(p.CA, node(testpki.Leaf{Key: p224}))
	add("identity", "P-224 node key", with(func(c *nodeconfig.NodeConfig) { c.Kubernetes.NodeCert, c.Kubernetes.NodeKey = cert224, key224 }),
		"kubernetes.nodeCert", "an ECDSA key on P-224 is too weak")
	huge, _ := issue(p.CA, node(testpki.Leaf{PublicKey: testpki.FakeRSAPublicKey(16384)}))
	add("identity", "RSA-16384 node certificate", with(func(c *nodeconfig.NodeConfig) { c.Kubernetes.NodeCert = huge }),
		"kubernetes.nodeCert", "an RSA key of 16384 bits; at most 8192")
	add("identity", "hostile RSA private key (200 000-bit modulus)", with(func(c *nodeconfig.NodeConfig) { c.Kubernetes.NodeKey = testpki.FakeRSAPrivateKeyPEM(200_000) }),
		"kubernetes.nodeKey", "an RSA key of 200000 bits; at most 8192")
	masters, mastersKey := issue(p.CA, node(testpki.Leaf{Organization: []string{"system:nodes", "system:masters"}}))
	add("identity", "node certificate in system:masters", with(func(c *nodeconfig.NodeConfig) { c.Kubernetes.NodeCert, c.Kubernetes.NodeKey = masters, mastersKey }),
		"kubernetes.nodeCert", `include "system:masters"`)
	caLeaf, caLeafKey := issue(p.CA, node(testpki.Leaf{Edit: testpki.MakeCA}))
	add("identity", "node certificate is a CA", with(func(c *nodeconfig.NodeConfig) { c.Kubernetes.NodeCert, c.Kubernetes.NodeKey = caLeaf, caLeafKey }),
		"kubernetes.nodeCert", "is a CA certificate")
	signer, signerKey := issue(p.CA, node(testpki.Leaf{Edit: func(c *x509.Certificate) { c.KeyUsage |= x509.KeyUsageCertSign }}))
	add("identity", "node certificate with keyCertSign", with(func(c *nodeconfig.NodeConfig) { c.Kubernetes.NodeCert, c.Kubernetes.NodeKey = signer, signerKey }),
		"kubernetes.nodeCert", "may sign certificates")
	server, serverKey := issue(p.CA, node(testpki.Leaf{Edit: func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} }}))
	add("identity", "node certificate for servers only", with(func(c *nodeconfig.NodeConfig) { c.Kubernetes.NodeCert, c.Kubernetes.NodeKey = server, serverKey }),
		"kubernetes.nodeCert", "does not allow client authentication")
	// Two CNs: Go (and so Kubernetes) reads the last, other parsers the
	// first.
	twoCN, twoCNKey := issue(p.CA, node(testpki.Leaf{Edit: func(c *x509.Certificate) {
		cn := asn1.ObjectIdentifier{2, 5, 4, 3}
		c.RawSubject, _ = asn1.Marshal(pkix.RDNSequence{
			{{Type: asn1.ObjectIdentifier{2, 5, 4, 10}, Value: "system:nodes"}},
			{{Type: cn, Value: "admin"}},
			{{Type: cn, Value: "system:node:worker01"}},
		})
	}}))
	add("identity", "node certificate with two CNs", with(func(c *nodeconfig.NodeConfig) { c.Kubernetes.NodeCert, c.Kubernetes.NodeKey = twoCN, twoCNKey }),
		"kubernetes.nodeCert", "2 common names")
	add("identity", "caCert is the node certificate", with(func(c *nodeconfig.NodeConfig) { c.Kubernetes.CACert = c.Kubernetes.NodeCert }),
		"kubernetes.caCert", "holds the certificate of kubernetes.nodeCert")
	add("identity", "caCert is the kube-proxy certificate", with(func(c *nodeconfig.NodeConfig) { c.Kubernetes.CACert = c.Kubernetes.KubeProxy.Cert }),
		"kubernetes.caCert", "holds the certificate of kubernetes.kubeProxy.cert")
	add("identity", "caCert is not a CA", with(func(c *nodeconfig.NodeConfig) { c.Kubernetes.CACert = notCA.CertPEM }),
		"kubernetes.caCert", "is not a CA certificate")
	add("identity", "caCert may not sign certificates", with(func(c *nodeconfig.NodeConfig) { c.Kubernetes.CACert = noCertSign.CertPEM }),
		"kubernetes.caCert", "keyCertSign missing")
	weakCert, weakKey := issue(weakCA, node(testpki.Leaf{}))
	add("identity", "RSA-1024 CA", with(func(c *nodeconfig.NodeConfig) {
		c.Kubernetes.CACert, c.Kubernetes.NodeCert, c.Kubernetes.NodeKey = weakCA.CertPEM, weakCert, weakKey
	}), "kubernetes.caCert", "an RSA key of 1024 bits is too weak")
	add("identity", "kube-proxy given the node's certificate", with(func(c *nodeconfig.NodeConfig) {
		c.Kubernetes.KubeProxy = nodeconfig.KubeProxy{Cert: c.Kubernetes.NodeCert, Key: c.Kubernetes.NodeKey}
	}), "kubernetes.kubeProxy.cert", "is the node certificate")
	sameKey, _ := issue(p.CA, testpki.Leaf{CommonName: "system:kube-proxy", Organization: []string{"system:node-proxier"}, Seed: 2})
	add("identity", "kube-proxy with the node's key", with(func(c *nodeconfig.NodeConfig) {
		c.Kubernetes.KubeProxy = nodeconfig.KubeProxy{Cert: sameKey, Key: c.Kubernetes.NodeKey}
	}), "kubernetes.kubeProxy.cert", "same key as the node certificate")
	asNode, asNodeKey := issue(p.CA, node(testpki.Leaf{Seed: 5}))
	add("identity", "kube-proxy certificate for a node", with(func(c *nodeconfig.NodeConfig) {
		c.Kubernetes.KubeProxy = nodeconfig.KubeProxy{Cert: asNode, Key: asNodeKey}
	}), "kubernetes.kubeProxy.cert", `subject CN is "system:node:worker01"; it must be "system:kube-proxy"`)
	proxyMasters, proxyMastersKey := issue(p.CA, testpki.Leaf{CommonName: "system:kube-proxy", Organization: []string{"system:masters"}, Seed: 6})
	add("identity", "kube-proxy in system:masters", with(func(c *nodeconfig.NodeConfig) {
		c.Kubernetes.KubeProxy = nodeconfig.KubeProxy{Cert: proxyMasters, Key: proxyMastersKey}
	}), "kubernetes.kubeProxy.cert", `include "system:masters"`)
	proxyCA, proxyCAKey := issue(p.CA, testpki.Leaf{CommonName: "system:kube-proxy", Seed: 7, Edit: testpki.MakeCA})
	add("identity", "kube-proxy certificate is a CA", with(func(c *nodeconfig.NodeConfig) {
		c.Kubernetes.KubeProxy = nodeconfig.KubeProxy{Cert: proxyCA, Key: proxyCAKey}
	}), "kubernetes.kubeProxy.cert", "is a CA certificate")

	// The API server is allowed through the units' IPAddressAllow= by its
	// address, which first boot cannot resolve from a name.
	add("identity", "API server by DNS name", with(func(c *nodeconfig.NodeConfig) {
		c.Kubernetes.APIServer = "https://api.example.net:6443"
	}), "kubernetes.apiServer", `host "api.example.net" is not an IP address`)

	// kube-proxy kubeconfigs: parsed fully and held to the same checks.
	kc := func(name, kubeconfig, field, msg string) {
		add("identity", name, with(func(c *nodeconfig.NodeConfig) { c.Kubernetes.KubeProxy = nodeconfig.KubeProxy{Kubeconfig: kubeconfig} }), field, msg)
	}
	const kf = "kubernetes.kubeProxy.kubeconfig"
	good := func(edit func(*nodeconfig.Kubeconfig)) string {
		return kubeconfig("https://10.8.0.1:6443", p.CA.CertPEM, p.ProxyCert, p.ProxyKey, edit)
	}
	kc("kubeconfig of garbage", "hello, world\n", kf, "must be a mapping")
	kc("kubeconfig of another kind (JSON)", `{"apiVersion": "v1", "kind": "Pod"}`, kf+".kind", `is "Pod"; a kubeconfig has kind Config`)
	kc("kubeconfig with unknown fields (JSON)", `{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {}}`, kf+".metadata", "unknown field")
	kc("kubeconfig over http", kubeconfig("http://10.8.0.1:8080", p.CA.CertPEM, p.ProxyCert, p.ProxyKey, nil), kf+".clusters[0].cluster.server", "not an https URL")
	kc("kubeconfig naming its server by DNS name", kubeconfig("https://api.example.net:6443", p.CA.CertPEM, p.ProxyCert, p.ProxyKey, nil), kf+".clusters[0].cluster.server", "is not an IP address")
	kc("kubeconfig with another CA", kubeconfig("https://10.8.0.1:6443", p.Other.CertPEM, p.ProxyCert, p.ProxyKey, nil),
		kf+".clusters[0].cluster.certificate-authority-data", "does not match kubernetes.caCert")
	kc("kubeconfig with a token", strings.Replace(good(nil), "      client-key-data:", "      token: abc\n      client-key-data:", 1), kf+".users[0].user.token", "not supported")
	kc("kubeconfig skipping TLS verification", strings.Replace(good(nil), "      server:", "      insecure-skip-tls-verify: true\n      server:", 1),
		kf+".clusters[0].cluster.insecure-skip-tls-verify", "not supported")
	kc("kubeconfig with a dangling current-context", good(func(k *nodeconfig.Kubeconfig) { k.CurrentContext = "admin" }), kf+".current-context", `"admin" names no context`)
	kc("kubeconfig with two clusters", good(func(k *nodeconfig.Kubeconfig) { k.Clusters = append(k.Clusters, k.Clusters[0]) }), kf+".clusters", "has 2 entries")
	kc("kubeconfig with the node's certificate", kubeconfig("https://10.8.0.1:6443", p.CA.CertPEM, p.NodeCert, p.NodeKey, nil),
		kf+".users[0].user.client-certificate-data", "is the node certificate")
	kc("kubeconfig with an RSA-1024 key", kubeconfig("https://10.8.0.1:6443", p.CA.CertPEM, cert, key, nil),
		kf+".users[0].user.client-certificate-data", "an RSA key of 1024 bits is too weak")
	return cs, nil
}

// Accepted returns configs that must be accepted: the valid one in
// several spellings (a UTF-8 byte order mark, JSON, a kube-proxy
// kubeconfig in YAML and in JSON, RSA and ECDSA keys).
func Accepted(p *PKI) (map[string][]byte, error) {
	valid := YAML(p.Config())
	js, err := json.Marshal(p.Config())
	if err != nil {
		return nil, err
	}
	kcCfg := p.Config()
	kcCfg.Kubernetes.KubeProxy = nodeconfig.KubeProxy{Kubeconfig: kubeconfig("https://10.8.0.1:6443", p.CA.CertPEM, p.ProxyCert, p.ProxyKey, nil) +
		"preferences: {}\n"}
	kcJSON := p.Config()
	kcJSON.Kubernetes.KubeProxy = nodeconfig.KubeProxy{Kubeconfig: string(must(json.Marshal(nodeconfig.NewKubeconfig("https://10.8.0.2:6443", p.CA.CertPEM, "kp", p.ProxyCert, p.ProxyKey))))}
	rsa2048, err := testpki.RSAKey(2048)
	if err != nil {
		return nil, err
	}
	p384, err := testpki.ECKey(elliptic.P384())
	if err != nil {
		return nil, err
	}
	keys := p.Config()
	keys.Kubernetes.NodeCert, keys.Kubernetes.NodeKey = issue(p.CA, node(testpki.Leaf{Key: crypto.Signer(rsa2048)}))
	keys.Kubernetes.KubeProxy.Cert, keys.Kubernetes.KubeProxy.Key = issue(p.CA, testpki.Leaf{CommonName: "system:kube-proxy", Key: p384})
	return map[string][]byte{
		"canonical YAML":                valid,
		"byte order mark":               append([]byte("\uFEFF"), valid...),
		"JSON with byte order mark":     append([]byte("\uFEFF"), js...),
		"kube-proxy kubeconfig":         YAML(kcCfg),
		"kube-proxy kubeconfig in JSON": YAML(kcJSON),
		"RSA-2048 and P-384 keys":       YAML(keys),
	}, nil
}

func must[T any](v T, err error) T {
	if err != nil {
		panic("nodeconfigtest: " + err.Error())
	}
	return v
}

// Largest returns the largest config the corpus accepts: the valid one
// with as many peers as fit in MaxSize, each with two allowed networks.
func Largest(p *PKI) []byte {
	cfg := p.Config()
	base := len(YAML(cfg))
	per := len(YAML(&nodeconfig.NodeConfig{WireGuard: nodeconfig.WireGuard{Peers: []nodeconfig.Peer{peer(1)}}})) - len("wireguard:\n  peers:\n")
	n := (nodeconfig.MaxSize - base) / per
	for {
		cfg.WireGuard.Peers = cfg.WireGuard.Peers[:2]
		for i := 1; i <= n; i++ {
			cfg.WireGuard.Peers = append(cfg.WireGuard.Peers, peer(i))
		}
		if b := YAML(cfg); len(b) <= nodeconfig.MaxSize {
			return b
		}
		n -= 10
	}
}

// peer returns the i-th extra peer of Largest: node 10.9.x.y with pod
// network 10.201.x.y/30... outside everything else in the config.
func peer(i int) nodeconfig.Peer {
	key := make([]byte, 32)
	key[0], key[1], key[2], key[3] = 0x40, byte(i>>16), byte(i>>8), byte(i)
	return nodeconfig.Peer{
		PublicKey:           wgKey(key),
		Endpoint:            fmt.Sprintf("198.18.%d.%d:51820", i>>8&255, i&255),
		AllowedIPs:          []string{fmt.Sprintf("10.9.%d.%d/32", i>>8&255, i&255), fmt.Sprintf("10.%d.%d.%d/30", 64+i>>14, i>>6&255, (i&63)<<2)},
		PersistentKeepalive: 25,
	}
}
