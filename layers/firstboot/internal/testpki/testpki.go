// Package testpki makes deterministic certificates for tests: Ed25519 keys
// from fixed seeds and fixed validity periods, so that golden files stay
// stable.
package testpki

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"
)

// Now is the fixed clock the tests validate at.
func Now() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }

// NotBefore and NotAfter are the default validity of test certificates.
func NotBefore() time.Time { return time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC) }

// NotAfter is the default end of validity of test certificates.
func NotAfter() time.Time { return time.Date(2035, 1, 1, 0, 0, 0, 0, time.UTC) }

// Key returns the Ed25519 key derived from seed.
func Key(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

// KeyPEM returns a key as PKCS #8 PEM.
func KeyPEM(k crypto.Signer) string {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return "invalid key: " + err.Error()
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// WireGuardKey returns a base64 32-byte key derived from seed.
func WireGuardKey(seed byte) string {
	return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{seed}, 32))
}

// CA is a test certificate authority.
type CA struct {
	Cert    *x509.Certificate
	Key     ed25519.PrivateKey
	CertPEM string
}

// NewCA makes a self-signed CA with a key from seed.
func NewCA(name string, seed byte) (*CA, error) {
	key := Key(seed)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(int64(seed)),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             NotBefore(),
		NotAfter:              NotAfter(),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("creating the test CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, CertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}, nil
}

// Leaf describes a certificate to issue.
type Leaf struct {
	CommonName   string
	Organization []string
	// Key is the certificate's key; nil derives an Ed25519 key from Seed.
	Key  crypto.Signer
	Seed byte
	// NotBefore and NotAfter default to the package's fixed validity.
	NotBefore, NotAfter time.Time
}

// Issue signs a client and server certificate and returns it and its key
// as PEM.
func (ca *CA) Issue(l Leaf) (certPEM, keyPEM string, err error) {
	key := l.Key
	if key == nil {
		key = Key(l.Seed)
	}
	if l.NotBefore.IsZero() {
		l.NotBefore = NotBefore()
	}
	if l.NotAfter.IsZero() {
		l.NotAfter = NotAfter()
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1000 + int64(l.Seed)),
		Subject:      pkix.Name{CommonName: l.CommonName, Organization: l.Organization},
		NotBefore:    l.NotBefore,
		NotAfter:     l.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(nil, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return "", "", fmt.Errorf("issuing %q: %w", l.CommonName, err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), KeyPEM(key), nil
}
