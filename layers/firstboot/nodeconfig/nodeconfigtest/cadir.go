package nodeconfigtest

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nodebake/nodebake/layers/firstboot/internal/testpki"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
)

// Now is a time inside the validity of every certificate this package
// makes.
func Now() time.Time { return testpki.Now() }

// Host is a worker in a CA directory: the inventory host names its files,
// its certificate names the node (CN system:node:NODE).
type Host struct {
	Host, Node string
}

// WriteCADir writes a cluster CA's output into dir (created 0700), as the
// seed's CA role writes it and under nodeconfig's file names: the CA
// certificate and its key, each host's kubelet certificate and key,
// kube-proxy's, and the API server's (which the seed copies to workers and
// nodebake does not). Keys are Ed25519 from fixed seeds, so the files are
// the same every time.
func WriteCADir(dir string, hosts []Host) error {
	if len(hosts) > 200 {
		return fmt.Errorf("writing a CA directory: %d hosts, at most 200", len(hosts))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	ca, err := testpki.NewCA("Kubernetes", 1)
	if err != nil {
		return err
	}
	write := func(name, data string) error {
		return os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600)
	}
	if err := write(nodeconfig.CACertFileName, ca.CertPEM); err != nil {
		return err
	}
	if err := write("ca-k8s-apiserver-key.pem", testpki.KeyPEM(ca.Key)); err != nil {
		return err
	}
	leaf := func(certFile, keyFile, cn, org string, seed byte) error {
		cert, key, err := ca.Issue(testpki.Leaf{CommonName: cn, Organization: []string{org}, Seed: seed})
		if err != nil {
			return err
		}
		if err := write(certFile, cert); err != nil {
			return err
		}
		return write(keyFile, key)
	}
	for i, h := range hosts {
		if err := leaf(nodeconfig.NodeCertFileName(h.Host), nodeconfig.NodeKeyFileName(h.Host), nodeconfig.NodeUserPrefix+h.Node, nodeconfig.NodesGroup, byte(20+i)); err != nil {
			return err
		}
	}
	if err := leaf(nodeconfig.KubeProxyCertFileName, nodeconfig.KubeProxyKeyFileName, nodeconfig.KubeProxyUser, nodeconfig.KubeProxyGroup, 3); err != nil {
		return err
	}
	return leaf("cert-k8s-apiserver.pem", "cert-k8s-apiserver-key.pem", "kubernetes", "Kubernetes", 4)
}
