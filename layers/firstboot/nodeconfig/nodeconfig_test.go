package nodeconfig_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/layers/firstboot/internal/testpki"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig/nodeconfigtest"
)

var update = flag.Bool("update", false, "rewrite golden files")

func facts() nodeconfig.ImageFacts { return nodeconfigtest.Facts() }

type pki struct {
	*nodeconfigtest.PKI
	ca, other           *testpki.CA
	nodeCert, nodeKey   string
	proxyCert, proxyKey string
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	p, err := nodeconfigtest.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	return &pki{PKI: p, ca: p.CA, other: p.Other, nodeCert: p.NodeCert, nodeKey: p.NodeKey, proxyCert: p.ProxyCert, proxyKey: p.ProxyKey}
}

func (p *pki) config() *nodeconfig.NodeConfig { return p.Config() }

func issue(t testing.TB, ca *testpki.CA, l testpki.Leaf) (string, string) {
	t.Helper()
	c, k, err := ca.Issue(l)
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

func TestValidateValid(t *testing.T) {
	p := newPKI(t)
	if err := nodeconfig.Validate(p.config(), facts(), testpki.Now()); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	accepted, err := nodeconfigtest.Accepted(p.PKI)
	if err != nil {
		t.Fatal(err)
	}
	for name, doc := range accepted {
		if _, err := nodeconfig.Load(doc, facts(), testpki.Now()); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := nodeconfig.Load(nodeconfigtest.Largest(p.PKI), facts(), testpki.Now()); err != nil {
		t.Errorf("the largest config: %v", err)
	}
}

func TestValidateKeyTypes(t *testing.T) {
	p := newPKI(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		key    crypto.Signer
		keyPEM func(string) string
	}{
		{"rsa pkcs8", rsaKey, func(s string) string { return s }},
		{"rsa pkcs1", rsaKey, func(string) string {
			return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}))
		}},
		{"ecdsa pkcs8", ecKey, func(s string) string { return s }},
		{"ecdsa sec1", ecKey, func(string) string {
			return string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaf := testpki.Leaf{CommonName: "system:node:worker01", Organization: []string{"system:nodes"}, Key: tt.key, Seed: 2}
			cert, key := issue(t, p.ca, leaf)
			cfg := p.config()
			cfg.Kubernetes.NodeCert, cfg.Kubernetes.NodeKey = cert, tt.keyPEM(key)
			if err := nodeconfig.Validate(cfg, facts(), testpki.Now()); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			cfg.Kubernetes.NodeKey = p.nodeKey // an Ed25519 key of another cert
			err := nodeconfig.Validate(cfg, facts(), testpki.Now())
			if err == nil || !strings.Contains(err.Error(), "kubernetes.nodeKey: does not match") {
				t.Fatalf("mismatched key: got %v", err)
			}
		})
	}
}

func TestValidateProblems(t *testing.T) {
	p := newPKI(t)
	otherCert, otherKey := issue(t, p.other, testpki.Leaf{CommonName: "system:node:worker01", Organization: []string{"system:nodes"}, Seed: 2})
	expiredCert, expiredKey := issue(t, p.ca, testpki.Leaf{CommonName: "system:node:worker01", Organization: []string{"system:nodes"}, Seed: 2,
		NotBefore: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)})
	futureCert, _ := issue(t, p.ca, testpki.Leaf{CommonName: "system:node:worker01", Organization: []string{"system:nodes"}, Seed: 2,
		NotBefore: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)})
	worker02Cert, worker02Key := issue(t, p.ca, testpki.Leaf{CommonName: "system:node:worker02", Organization: []string{"system:nodes"}, Seed: 4})
	noOrgCert, noOrgKey := issue(t, p.ca, testpki.Leaf{CommonName: "system:node:worker01", Seed: 5})
	proxyOther, proxyOtherKey := issue(t, p.other, testpki.Leaf{CommonName: "system:kube-proxy", Seed: 3})

	tests := []struct {
		name   string
		mutate func(*nodeconfig.NodeConfig)
		facts  func(*nodeconfig.ImageFacts)
		field  string
		msg    string
	}{
		{"missing apiVersion", func(c *nodeconfig.NodeConfig) { c.APIVersion = "" }, nil, "apiVersion", "required"},
		{"wrong apiVersion", func(c *nodeconfig.NodeConfig) { c.APIVersion = "nodebake.io/v2" }, nil, "apiVersion", "unsupported version"},
		{"wrong kind", func(c *nodeconfig.NodeConfig) { c.Kind = "Node" }, nil, "kind", "must be"},
		{"missing nodeName", func(c *nodeconfig.NodeConfig) { c.NodeName = "" }, nil, "nodeName", "required"},
		{"bad nodeName", func(c *nodeconfig.NodeConfig) { c.NodeName = "Worker_01" }, nil, "nodeName", "DNS-1123"},
		{"long nodeName", func(c *nodeconfig.NodeConfig) { c.NodeName = strings.Repeat("a", 65) }, nil, "nodeName", "at most 64"},
		{"missing address", func(c *nodeconfig.NodeConfig) { c.WireGuard.Address = "" }, nil, "wireguard.address", "required"},
		{"malformed address", func(c *nodeconfig.NodeConfig) { c.WireGuard.Address = "10.8.0.300/24" }, nil, "wireguard.address", "not an address in CIDR notation"},
		{"address without prefix", func(c *nodeconfig.NodeConfig) { c.WireGuard.Address = "10.8.0.203" }, nil, "wireguard.address", "CIDR"},
		{"network address", func(c *nodeconfig.NodeConfig) { c.WireGuard.Address = "10.8.0.0/24" }, nil, "wireguard.address", "network address"},
		{"broadcast address", func(c *nodeconfig.NodeConfig) { c.WireGuard.Address = "10.8.0.255/24" }, nil, "wireguard.address", "broadcast address"},
		{"address in service CIDR", func(c *nodeconfig.NodeConfig) { c.WireGuard.Address = "10.32.0.5/24" }, nil, "wireguard.address", "overlaps the service CIDR 10.32.0.0/16"},
		{"address in cluster CIDR", func(c *nodeconfig.NodeConfig) { c.WireGuard.Address = "10.200.9.5/24" }, nil, "wireguard.address", "overlaps the cluster (pod) CIDR"},
		{"subnet covering service CIDR", func(c *nodeconfig.NodeConfig) { c.WireGuard.Address = "10.8.0.203/8" }, nil, "wireguard.address", "overlaps the service CIDR"},
		{"missing private key", func(c *nodeconfig.NodeConfig) { c.WireGuard.PrivateKey = "" }, nil, "wireguard.privateKey", "required"},
		{"bad private key", func(c *nodeconfig.NodeConfig) { c.WireGuard.PrivateKey = "not-base64!" }, nil, "wireguard.privateKey", "11 characters; a WireGuard key is 44"},
		{"short private key", func(c *nodeconfig.NodeConfig) { c.WireGuard.PrivateKey = "AAAA" }, nil, "wireguard.privateKey", "4 characters"},
		{"missing listen port", func(c *nodeconfig.NodeConfig) { c.WireGuard.ListenPort = 0 }, nil, "wireguard.listenPort", "required"},
		{"bad listen port", func(c *nodeconfig.NodeConfig) { c.WireGuard.ListenPort = 70000 }, nil, "wireguard.listenPort", "not a port"},
		{"bad peer key", func(c *nodeconfig.NodeConfig) { c.WireGuard.Peers[1].PublicKey = "abc" }, nil, "wireguard.peers[1].publicKey", "3 characters"},
		{"endpoint zone with a line break", func(c *nodeconfig.NodeConfig) { c.WireGuard.Peers[0].Endpoint = "[fe80::1%eth0\nPrivateKey=x]:51820" }, nil, "wireguard.peers[0].endpoint", "is not an interface name"},
		{"duplicate peer key", func(c *nodeconfig.NodeConfig) { c.WireGuard.Peers[1].PublicKey = c.WireGuard.Peers[0].PublicKey }, nil, "wireguard.peers[1].publicKey", "same key as wireguard.peers[0]"},
		{"bad endpoint", func(c *nodeconfig.NodeConfig) { c.WireGuard.Peers[0].Endpoint = "192.0.2.10" }, nil, "wireguard.peers[0].endpoint", "not host:port"},
		{"bad endpoint port", func(c *nodeconfig.NodeConfig) { c.WireGuard.Peers[0].Endpoint = "192.0.2.10:0" }, nil, "wireguard.peers[0].endpoint", "not 1-65535"},
		{"bad endpoint host", func(c *nodeconfig.NodeConfig) { c.WireGuard.Peers[0].Endpoint = "bad_host:51820" }, nil, "wireguard.peers[0].endpoint", "neither an IP address nor a DNS name"},
		{"bad allowed IP", func(c *nodeconfig.NodeConfig) { c.WireGuard.Peers[0].AllowedIPs[1] = "10.200.2.0/33" }, nil, "wireguard.peers[0].allowedIPs[1]", "not a CIDR"},
		{"allowed IP host bits", func(c *nodeconfig.NodeConfig) { c.WireGuard.Peers[0].AllowedIPs[1] = "10.200.2.1/24" }, nil, "wireguard.peers[0].allowedIPs[1]", "host bits set"},
		{"allowed IPs overlap", func(c *nodeconfig.NodeConfig) { c.WireGuard.Peers[1].AllowedIPs[1] = "10.200.0.0/22" }, nil, "wireguard.peers[1].allowedIPs[1]", "overlaps wireguard.peers[0].allowedIPs[1]"},
		{"allowed IPs own address", func(c *nodeconfig.NodeConfig) { c.WireGuard.Peers[0].AllowedIPs[0] = "10.8.0.0/24" }, nil, "wireguard.peers[0].allowedIPs[0]", "own address"},
		{"allowed IPs own pod CIDR", func(c *nodeconfig.NodeConfig) { c.WireGuard.Peers[0].AllowedIPs[1] = "10.200.1.0/24" }, nil, "wireguard.peers[0].allowedIPs[1]", "overlaps this node's podCIDR"},
		{"no allowed IPs", func(c *nodeconfig.NodeConfig) { c.WireGuard.Peers[0].AllowedIPs = nil }, nil, "wireguard.peers[0].allowedIPs", "required"},
		{"bad keepalive", func(c *nodeconfig.NodeConfig) { c.WireGuard.Peers[0].PersistentKeepalive = -1 }, nil, "wireguard.peers[0].persistentKeepalive", "not 0-65535"},
		{"missing apiServer", func(c *nodeconfig.NodeConfig) { c.Kubernetes.APIServer = "" }, nil, "kubernetes.apiServer", "required"},
		{"http apiServer", func(c *nodeconfig.NodeConfig) { c.Kubernetes.APIServer = "http://10.8.0.1:6443" }, nil, "kubernetes.apiServer", "not an https URL"},
		{"apiServer by DNS name", func(c *nodeconfig.NodeConfig) { c.Kubernetes.APIServer = "https://api.example.net:6443" }, nil, "kubernetes.apiServer", `host "api.example.net" is not an IP address`},
		{"apiServer unspecified", func(c *nodeconfig.NodeConfig) { c.Kubernetes.APIServer = "https://0.0.0.0:6443" }, nil, "kubernetes.apiServer", "not a unicast address"},
		{"apiServer IPv4-mapped", func(c *nodeconfig.NodeConfig) { c.Kubernetes.APIServer = "https://[::ffff:10.8.0.1]:6443" }, nil, "kubernetes.apiServer", "without the ::ffff: prefix"},
		{"missing CA", func(c *nodeconfig.NodeConfig) { c.Kubernetes.CACert = "" }, nil, "kubernetes.caCert", "required"},
		{"garbage CA", func(c *nodeconfig.NodeConfig) { c.Kubernetes.CACert = "hello" }, nil, "kubernetes.caCert", "no PEM certificate"},
		{"key as CA", func(c *nodeconfig.NodeConfig) { c.Kubernetes.CACert = c.Kubernetes.NodeKey }, nil, "kubernetes.caCert", `unexpected PEM block "PRIVATE KEY"`},
		{"cert from another CA", func(c *nodeconfig.NodeConfig) { c.Kubernetes.NodeCert, c.Kubernetes.NodeKey = otherCert, otherKey }, nil, "kubernetes.nodeCert", "not signed by the CA in kubernetes.caCert"},
		{"key not matching cert", func(c *nodeconfig.NodeConfig) { c.Kubernetes.NodeKey = c.Kubernetes.KubeProxy.Key }, nil, "kubernetes.nodeKey", "does not match the certificate in kubernetes.nodeCert"},
		{"expired cert", func(c *nodeconfig.NodeConfig) { c.Kubernetes.NodeCert, c.Kubernetes.NodeKey = expiredCert, expiredKey }, nil, "kubernetes.nodeCert", "expired on 2025-06-01 00:00:00 UTC"},
		{"cert not yet valid", func(c *nodeconfig.NodeConfig) { c.Kubernetes.NodeCert = futureCert }, nil, "kubernetes.nodeCert", "not valid before 2027-01-01"},
		{"wrong node name", func(c *nodeconfig.NodeConfig) {
			c.Kubernetes.NodeCert, c.Kubernetes.NodeKey = worker02Cert, worker02Key
		}, nil, "nodeName", `does not match the node certificate's subject CN "system:node:worker02"`},
		{"missing organization", func(c *nodeconfig.NodeConfig) { c.Kubernetes.NodeCert, c.Kubernetes.NodeKey = noOrgCert, noOrgKey }, nil, "kubernetes.nodeCert", `must be in exactly "system:nodes"`},
		{"kube-proxy cert not from CA", func(c *nodeconfig.NodeConfig) {
			c.Kubernetes.KubeProxy.Cert, c.Kubernetes.KubeProxy.Key = proxyOther, proxyOtherKey
		}, nil, "kubernetes.kubeProxy.cert", "not signed by the CA"},
		{"kube-proxy key mismatch", func(c *nodeconfig.NodeConfig) { c.Kubernetes.KubeProxy.Key = c.Kubernetes.NodeKey }, nil, "kubernetes.kubeProxy.key", "does not match"},
		{"kube-proxy cert without key", func(c *nodeconfig.NodeConfig) { c.Kubernetes.KubeProxy.Key = "" }, nil, "kubernetes.kubeProxy.key", "required"},
		{"kube-proxy missing", func(c *nodeconfig.NodeConfig) { c.Kubernetes.KubeProxy = nodeconfig.KubeProxy{} }, nil, "kubernetes.kubeProxy", "either cert and key, or kubeconfig"},
		{"kube-proxy both", func(c *nodeconfig.NodeConfig) { c.Kubernetes.KubeProxy.Kubeconfig = "kind: Config\n" }, nil, "kubernetes.kubeProxy", "not both"},
		{"kube-proxy kubeconfig kind", func(c *nodeconfig.NodeConfig) {
			c.Kubernetes.KubeProxy = nodeconfig.KubeProxy{Kubeconfig: "kind: Pod\n"}
		}, nil, "kubernetes.kubeProxy.kubeconfig.kind", `is "Pod"`},
		{"pod CIDR missing for bridge", func(c *nodeconfig.NodeConfig) { c.Kubernetes.PodCIDR = "" }, nil, "kubernetes.podCIDR", "required"},
		{"pod CIDR outside cluster CIDR", func(c *nodeconfig.NodeConfig) { c.Kubernetes.PodCIDR = "10.201.1.0/24" }, nil, "kubernetes.podCIDR", "not inside the cluster CIDR 10.200.0.0/16"},
		{"pod CIDR larger than cluster CIDR", func(c *nodeconfig.NodeConfig) { c.Kubernetes.PodCIDR = "10.0.0.0/8" }, nil, "kubernetes.podCIDR", "not inside the cluster CIDR"},
		{"pod CIDR optional without bridge", func(c *nodeconfig.NodeConfig) { c.Kubernetes.PodCIDR = "" },
			func(f *nodeconfig.ImageFacts) { f.PodNetwork = nodeconfig.PodNetworkNone }, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := p.config()
			tt.mutate(cfg)
			f := facts()
			if tt.facts != nil {
				tt.facts(&f)
			}
			err := nodeconfig.Validate(cfg, f, testpki.Now())
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			probs, ok := err.(nodeconfig.Problems)
			if !ok {
				t.Fatalf("got %T %v, want Problems", err, err)
			}
			// Only a certificate's validity depends on the time: only
			// those problems carry KindValidity.
			wantKind := nodeconfig.ProblemKind("")
			if tt.name == "expired cert" || tt.name == "cert not yet valid" {
				wantKind = nodeconfig.KindValidity
			}
			for _, pr := range probs {
				if pr.Field == tt.field && strings.Contains(pr.Message, tt.msg) {
					if pr.Kind != wantKind {
						t.Errorf("%s: kind %q, want %q", pr, pr.Kind, wantKind)
					}
					return
				}
			}
			t.Errorf("got %v\nwant %s: ...%s...", err, tt.field, tt.msg)
		})
	}
}

// TestValidityKind checks every certificate of a node config, each valid
// only in its own window, at times before, inside and after the windows:
// outside, every problem is KindValidity and names its certificate;
// inside all of them, the config is valid.
func TestValidityKind(t *testing.T) {
	day := func(m time.Month, d int) time.Time { return time.Date(2026, m, d, 0, 0, 0, 0, time.UTC) }
	ca, err := testpki.NewCAWith("kubernetes", testpki.Key(1), 1, func(c *x509.Certificate) { c.NotBefore, c.NotAfter = day(1, 1), day(12, 31) })
	if err != nil {
		t.Fatal(err)
	}
	cfg := newPKI(t).config()
	k := &cfg.Kubernetes
	k.CACert = ca.CertPEM
	k.NodeCert, k.NodeKey = issue(t, ca, testpki.Leaf{CommonName: "system:node:worker01", Organization: []string{"system:nodes"}, Seed: 2,
		NotBefore: day(3, 1), NotAfter: day(9, 1)})
	k.KubeProxy.Cert, k.KubeProxy.Key = issue(t, ca, testpki.Leaf{CommonName: "system:kube-proxy", Organization: []string{"system:node-proxier"}, Seed: 3,
		NotBefore: day(2, 1), NotAfter: day(10, 1)})

	if err := nodeconfig.Validate(cfg, facts(), day(6, 1)); err != nil {
		t.Fatalf("inside every window: %v", err)
	}
	for _, tt := range []struct {
		at     time.Time
		fields []string
	}{
		{day(2, 15), []string{"kubernetes.nodeCert"}},
		{day(1, 15), []string{"kubernetes.nodeCert", "kubernetes.kubeProxy.cert"}},
		{time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), []string{"kubernetes.caCert", "kubernetes.nodeCert", "kubernetes.kubeProxy.cert"}},
		{day(9, 15), []string{"kubernetes.nodeCert"}},
		{time.Date(2027, 1, 2, 0, 0, 0, 0, time.UTC), []string{"kubernetes.caCert", "kubernetes.nodeCert", "kubernetes.kubeProxy.cert"}},
	} {
		err := nodeconfig.Validate(cfg, facts(), tt.at)
		probs, ok := err.(nodeconfig.Problems)
		if !ok {
			t.Fatalf("at %s: got %T %v, want Problems", tt.at, err, err)
		}
		var fields []string
		for _, pr := range probs {
			fields = append(fields, pr.Field)
			if pr.Kind != nodeconfig.KindValidity {
				t.Errorf("at %s: %s: kind %q, want %q", tt.at, pr, pr.Kind, nodeconfig.KindValidity)
			}
		}
		if !reflect.DeepEqual(fields, tt.fields) {
			t.Errorf("at %s: problems of %q, want %q (%v)", tt.at, fields, tt.fields, err)
		}
	}
}

func TestValidateReportsEverything(t *testing.T) {
	err := nodeconfig.Validate(&nodeconfig.NodeConfig{}, facts(), testpki.Now())
	var fields []string
	for _, p := range err.(nodeconfig.Problems) {
		fields = append(fields, p.Field)
	}
	want := []string{"apiVersion", "kind", "nodeName", "wireguard.address", "wireguard.privateKey",
		"wireguard.listenPort", "kubernetes.apiServer", "kubernetes.caCert", "kubernetes.nodeCert", "kubernetes.nodeKey", "kubernetes.kubeProxy", "kubernetes.podCIDR"}
	if !reflect.DeepEqual(fields, want) {
		t.Errorf("fields %q\nwant   %q", fields, want)
	}
}

func TestParseProblems(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"unknown field", "apiVersion: x\nwireguard:\n  peers:\n    - publicKey: k\n      allowedIP: [a]\n", "wireguard.peers[0].allowedIP: unknown field (line 5)"},
		{"unknown top-level field", "nodename: x\n", "nodename: unknown field (line 1)"},
		{"string for mapping", "wireguard: x\n", "wireguard: must be a mapping, not a scalar (line 1)"},
		{"quoted port", "wireguard:\n  listenPort: \"51820\"\n", "wireguard.listenPort: must be an integer (line 2)"},
		{"port with sign", "wireguard:\n  listenPort: +1\n", "wireguard.listenPort: must be an integer"},
		{"list for string", "nodeName: [a]\n", "nodeName: must be a string, not a sequence"},
		{"string for list", "wireguard:\n  peers: x\n", "wireguard.peers: must be a list"},
		{"empty", "# nothing\n", "config: the node config is empty"},
		{"bad yaml", "nodeName: a\n\twireguard:\n", "config: tabs are not allowed in indentation (line 2)"},
		{"anchor", "nodeName: &n a\n", "config: anchors (&) are not supported (line 1)"},
		{"duplicate key", "nodeName: a\nnodeName: b\n", `config: duplicate key "nodeName" (first on line 1) (line 2)`},
		{"sequence document", "- a\n", "config: must be a mapping, not a sequence (line 1)"},
		{"too large", "nodeName: " + strings.Repeat("a", nodeconfig.MaxSize) + "\n", "config: the node config is 1048587 bytes, larger than the limit of 1048576 bytes"},
		{"too deep", "a:\n" + strings.Repeat("- ", 40) + "x\n", "config: collections nested deeper than 32 levels (line 2)"},
		{"too deep JSON", "{\"a\":\n" + strings.Repeat("[", 40), "config: collections nested deeper than 32 levels (line 2)"},
		{"UTF-16", "\xff\xfen\x00", "config: the node config is UTF-16"},
		{"invalid UTF-8 in JSON", "{\"nodeName\":\n\"\xc3\"}", "config: not valid UTF-8 (line 2)"},
		{"JSON with byte order mark", "\uFEFF{\"nodeName\": [1]}", "nodeName: must be a string, not a sequence (line 1)"},
		{"json unknown field", `{"apiVersion": "x", "wireguard": {"listenport": 1}}`, "wireguard.listenport: unknown field (line 1)"},
		{"json duplicate", "{\"nodeName\": \"a\",\n \"nodeName\": \"b\"}", `duplicate key "nodeName" (first on line 1) (line 2)`},
		{"json string port", `{"wireguard": {"listenPort": "1"}}`, "wireguard.listenPort: must be an integer"},
		{"json float port", `{"wireguard": {"listenPort": 1.5}}`, "wireguard.listenPort: must be an integer"},
		{"json syntax", "{\"nodeName\": \n\"a\",}", "config: invalid character '}' looking for beginning of object key string (line 2)"},
		{"json trailing", `{"nodeName": "a"} x`, "unexpected data after the JSON document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := nodeconfig.Parse([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v\nwant %q", err, tt.want)
			}
		})
	}
}

func TestCanonicalYAML(t *testing.T) {
	p := newPKI(t)
	cfg := p.config()
	out, err := nodeconfig.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "node.yaml", out)
	back, err := nodeconfig.Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, cfg) {
		t.Errorf("round trip changed the config")
	}
	// The same config as JSON parses to the same value.
	js, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := nodeconfig.Parse(js)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromJSON, cfg) {
		t.Errorf("JSON parse differs")
	}
}

func TestMarshalQuotesTypedStrings(t *testing.T) {
	cfg := &nodeconfig.NodeConfig{NodeName: "123", Kind: "true", APIVersion: "null"}
	out, err := nodeconfig.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := "apiVersion: \"null\"\nkind: \"true\"\nnodeName: \"123\"\n"
	if string(out) != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
}

func TestAssemble(t *testing.T) {
	p := newPKI(t)
	dir := t.TempDir()
	files := map[string]string{
		"ca-k8s-apiserver.pem":    p.ca.CertPEM,
		"cert-worker01.pem":       p.nodeCert,
		"cert-worker01-key.pem":   p.nodeKey,
		"cert-kube-proxy.pem":     p.proxyCert,
		"cert-kube-proxy-key.pem": p.proxyKey,
		"wg.key":                  testpki.WireGuardKey(0x11) + "\n",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := nodeconfig.Assemble(nodeconfig.AssembleOptions{
		NodeName: "worker01", CertDir: dir, APIServer: "https://10.8.0.1:6443", PodCIDR: "10.200.1.0/24",
		WireGuardAddress: "10.8.0.203/24", WireGuardKeyFile: filepath.Join(dir, "wg.key"),
		Peers: []string{
			"publicKey=" + testpki.WireGuardKey(0x22) + ",endpoint=192.0.2.10:51820,allowedIPs=10.8.0.204/32,10.200.2.0/24,persistentKeepalive=25",
			"publicKey=" + testpki.WireGuardKey(0x33) + ",endpoint=worker03.example.net:51820,allowedIPs=10.8.0.205/32,10.200.3.0/24",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, p.config()) {
		a, _ := nodeconfig.Marshal(cfg)
		b, _ := nodeconfig.Marshal(p.config())
		t.Errorf("assembled\n%s\nwant\n%s", a, b)
	}
	_, err = nodeconfig.Assemble(nodeconfig.AssembleOptions{NodeName: "worker09", CertDir: dir})
	if err == nil || !strings.Contains(err.Error(), "cert-worker09.pem") {
		t.Errorf("missing node cert: got %v", err)
	}
}

func TestParsePeer(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"publicKey=k=,allowedIPs=a/32", ""},
		{"endpoint=h:1", "publicKey is required"},
		{"publicKey=k,foo=1", `unknown field "foo"`},
		{"publicKey=k,10.0.0.1/32", "not key=value"},
		{"publicKey=k,persistentKeepalive=x", "not a number"},
		{"publicKey=k,publicKey=l", "given twice"},
	}
	for _, tt := range tests {
		_, err := nodeconfig.ParsePeer(tt.in)
		if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("ParsePeer(%q) = %v, want %q", tt.in, err, tt.want)
		}
	}
}

func TestParseImageFacts(t *testing.T) {
	good := `{"serviceCIDR":"10.32.0.0/16","clusterCIDR":"10.200.0.0/16","podNetwork":"bridge",
 "kubeletConfigTemplate":"/usr/lib/nodebake/kubelet-config.json","kubeProxyConfigTemplate":"/usr/lib/nodebake/kube-proxy-config.json",
 "kubernetesVersion":"v1.35.4"}`
	f, err := nodeconfig.ParseImageFacts([]byte(good))
	if err != nil || f != facts() {
		t.Fatalf("got %+v, %v", f, err)
	}
	for in, want := range map[string]string{
		`{"serviceCIDR":"10.32.0.0/16","extra":1}`:                                            `unknown field "extra"`,
		strings.Replace(good, "bridge", "flannel", 1):                                         `podNetwork: must be "none" or "bridge"`,
		strings.Replace(good, "10.32.0.0/16", "10.32.0.1/16", 1):                              "serviceCIDR: 10.32.0.1/16 has host bits set",
		strings.Replace(good, "10.32.0.0/16", "10.200.0.0/24", 1):                             "overlaps clusterCIDR",
		strings.Replace(good, `"/usr/lib/nodebake/kubelet-config.json"`, `"kubelet.json"`, 1): "kubeletConfigTemplate: must be a clean absolute path",
	} {
		if _, err := nodeconfig.ParseImageFacts([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want %q", err, want)
		}
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
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
	if string(got) != string(want) {
		t.Errorf("%s differs from the golden file (run with -update):\n%s", name, got)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"apiVersion: nodebake.io/v1alpha1\nkind: NodeConfig\nnodeName: w\nwireguard:\n  listenPort: 5\n  peers:\n    - publicKey: k\n      allowedIPs: [a, 'b']\n    -\n",
		"kubernetes:\n  caCert: |\n    x\n  kubeProxy:\n    kubeconfig: |-\n      y\n",
		`{"nodeName": "a", "wireguard": {"peers": [null, {"allowedIPs": ["", null]}]}}`,
	} {
		f.Add([]byte(s))
	}
	if b, err := os.ReadFile(filepath.Join("testdata", "node.yaml")); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := nodeconfig.Parse(data)
		if err != nil {
			return
		}
		out, err := nodeconfig.Marshal(cfg)
		if err != nil {
			if reflect.DeepEqual(cfg, &nodeconfig.NodeConfig{}) {
				return // nothing to write
			}
			t.Fatalf("Marshal: %v", err)
		}
		back, err := nodeconfig.Parse(out)
		if err != nil {
			t.Fatalf("re-parse of\n%s\nfailed: %v", out, err)
		}
		if !reflect.DeepEqual(cfg, back) {
			t.Fatalf("round trip changed the config:\n%#v\n%#v\n%s", cfg, back, out)
		}
	})
}
