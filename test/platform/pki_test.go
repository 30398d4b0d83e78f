package platform

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
)

// testCA is the cluster CA the boots' node configs are signed by. It
// also signs the https server of the network-boot source, and the image
// trusts it (baked into /etc/ssl/certs through the spec's files).
type testCA struct {
	cert    *x509.Certificate
	key     crypto.Signer
	certPEM string
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key := ecKey(t)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "nodebake platform test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(48 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, certPEM: pemOf("CERTIFICATE", der)}
}

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func serial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func pemOf(typ string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

// issue signs a leaf certificate: a client certificate for cn/org, or,
// with ips, a server certificate for those addresses.
func (ca *testCA) issue(t *testing.T, cn string, org []string, ips ...net.IP) (certPEM, keyPEM string, key crypto.Signer, der []byte) {
	t.Helper()
	k := ecKey(t)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: cn, Organization: org},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if len(ips) > 0 {
		tmpl.ExtKeyUsage, tmpl.IPAddresses = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, ips
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, k.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pemOf("CERTIFICATE", der), pemOf("PRIVATE KEY", kd), k, der
}

// serverTLS is a TLS configuration for a server at ip, signed by ca.
func (ca *testCA) serverTLS(t *testing.T, ip net.IP) *tls.Config {
	t.Helper()
	_, _, key, der := ca.issue(t, ip.String(), nil, ip)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}

// wgKeys returns a WireGuard private key and its public key, as wg genkey
// and wg pubkey write them.
func wgKeys(t *testing.T) (priv, pub string) {
	t.Helper()
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(k.Bytes()), base64.StdEncoding.EncodeToString(k.PublicKey().Bytes())
}

// node is a node config for one boot and the secrets in it, which must
// never show up in a log, a console, a status file or a report.
type node struct {
	name    string
	addr    string // wg0's address, without the prefix length
	yaml    []byte
	secrets []string
}

// nodeConfig makes a valid node config for a worker named name with wg0
// address addr (in 10.8.0.0/24), its pods in podCIDR, and a peer at the
// lab's gateway.
func (ca *testCA) nodeConfig(t *testing.T, name, addr, podCIDR, peerEndpoint string) node {
	t.Helper()
	wgPriv, _ := wgKeys(t)
	_, peerPub := wgKeys(t)
	nodeCert, nodeKey, _, _ := ca.issue(t, "system:node:"+name, []string{"system:nodes"})
	proxyCert, proxyKey, _, _ := ca.issue(t, "system:kube-proxy", []string{"system:node-proxier"})
	cfg := &nodeconfig.NodeConfig{
		APIVersion: nodeconfig.APIVersion,
		Kind:       nodeconfig.Kind,
		NodeName:   name,
		WireGuard: nodeconfig.WireGuard{
			Address:    addr + "/24",
			PrivateKey: wgPriv,
			ListenPort: 51820,
			Peers: []nodeconfig.Peer{{
				PublicKey:  peerPub,
				Endpoint:   peerEndpoint,
				AllowedIPs: []string{"10.8.0.1/32", "10.200.9.0/24"},
			}},
		},
		Kubernetes: nodeconfig.Kubernetes{
			APIServer: "https://10.8.0.1:6443",
			CACert:    ca.certPEM,
			NodeCert:  nodeCert,
			NodeKey:   nodeKey,
			KubeProxy: nodeconfig.KubeProxy{Cert: proxyCert, Key: proxyKey},
			PodCIDR:   podCIDR,
		},
	}
	b, err := nodeconfig.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A line of base64 from the middle of each private key stands for it.
	secret := func(pemKey string) string {
		blk, _ := pem.Decode([]byte(pemKey))
		return base64.StdEncoding.EncodeToString(blk.Bytes)[20:60]
	}
	return node{name: name, addr: addr, yaml: b, secrets: []string{wgPriv, secret(nodeKey), secret(proxyKey)}}
}
