// Package testpki writes a cluster CA's output for tests, under the seed's
// file names (ca-k8s-apiserver.pem, cert-HOST.pem, cert-HOST-key.pem,
// cert-kube-proxy.pem, ...), made with crypto/x509 from fixed Ed25519
// seeds and a fixed validity, so that what tests write is stable.
package testpki

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// NotBefore and NotAfter bound every certificate's validity.
var (
	NotBefore = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	NotAfter  = time.Date(2035, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Now is a time inside the validity.
var Now = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// Worker is a worker's certificate: the inventory host names the files,
// the node name is in its subject (CN system:node:NODE).
type Worker struct {
	Host, Node string
}

func key(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func keyPEM(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// WriteCA writes a CA and its leaves into dir: the CA (and its key), each
// worker's kubelet certificate, kube-proxy's, and the API server's (which
// the seed copies to workers and nodebake does not).
func WriteCA(dir string, workers []Worker) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	caKey := key(1)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Kubernetes", Organization: []string{"Kubernetes"}},
		NotBefore: NotBefore, NotAfter: NotAfter, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(nil, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return fmt.Errorf("making the test CA: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	write := func(name string, data []byte) error {
		return os.WriteFile(filepath.Join(dir, name), data, 0o600)
	}
	if err := write("ca-k8s-apiserver.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})); err != nil {
		return err
	}
	kp, err := keyPEM(caKey)
	if err != nil {
		return err
	}
	if err := write("ca-k8s-apiserver-key.pem", kp); err != nil {
		return err
	}
	serial := int64(10)
	leaf := func(base, cn string, org []string, seed byte) error {
		serial++
		k := key(seed)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn, Organization: org},
			NotBefore: NotBefore, NotAfter: NotAfter, KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		}
		der, err := x509.CreateCertificate(nil, tmpl, ca, k.Public(), caKey)
		if err != nil {
			return fmt.Errorf("making the test certificate %s: %w", cn, err)
		}
		if err := write(base+".pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})); err != nil {
			return err
		}
		kp, err := keyPEM(k)
		if err != nil {
			return err
		}
		return write(base+"-key.pem", kp)
	}
	for i, w := range workers {
		if err := leaf("cert-"+w.Host, "system:node:"+w.Node, []string{"system:nodes"}, byte(20+i)); err != nil {
			return err
		}
	}
	if err := leaf("cert-kube-proxy", "system:kube-proxy", []string{"system:node-proxier"}, 3); err != nil {
		return err
	}
	return leaf("cert-k8s-apiserver", "kubernetes", []string{"Kubernetes"}, 4)
}
