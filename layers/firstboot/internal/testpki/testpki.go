// Package testpki makes certificates for tests: Ed25519 keys from fixed
// seeds and fixed validity periods, so that golden files stay stable, and
// the variants hostile tests need (weak RSA and ECDSA keys, oversized RSA
// moduli, CA certificates where leaves belong, other groups).
package testpki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
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

// RSAKey returns a new RSA key of bits (at least 1024: Go refuses to make
// smaller ones).
func RSAKey(bits int) (*rsa.PrivateKey, error) {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return nil, fmt.Errorf("generating an RSA-%d key: %w", bits, err)
	}
	return k, nil
}

// ECKey returns a new ECDSA key on curve.
func ECKey(curve elliptic.Curve) (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating an ECDSA key on %s: %w", curve.Params().Name, err)
	}
	return k, nil
}

// FakeRSAPublicKey returns an RSA public key whose modulus has bits bits.
// It is not half of any private key: certificates carrying it test size
// bounds without the cost of generating such a key.
func FakeRSAPublicKey(bits int) *rsa.PublicKey {
	n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
	n.Or(n, big.NewInt(0xFFFF)) // odd, and of exactly bits bits
	return &rsa.PublicKey{N: n, E: 65537}
}

// FakeRSAPrivateKeyPEM returns a PKCS #1 "RSA PRIVATE KEY" whose modulus
// has bits bits and whose other numbers are made up: a parser that
// validates it before measuring it does a lot of work for nothing.
func FakeRSAPrivateKeyPEM(bits int) string {
	n := FakeRSAPublicKey(bits).N
	half := new(big.Int).Rsh(n, uint(bits/2))
	der, err := asn1.Marshal(struct {
		Version               int
		N                     *big.Int
		E                     int
		D, P, Q, Dp, Dq, Qinv *big.Int
	}{0, n, 65537, n, half, half, half, half, half})
	if err != nil {
		return "invalid key: " + err.Error()
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: der}))
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
	Key     crypto.Signer
	CertPEM string
}

// NewCA makes a self-signed CA with an Ed25519 key from seed.
func NewCA(name string, seed byte) (*CA, error) {
	return NewCAWith(name, Key(seed), int64(seed), nil)
}

// NewCAWith makes a self-signed certificate with key, by default a CA
// (basic constraints CA:TRUE, keyCertSign, cRLSign, digitalSignature);
// edit, if set, changes the template first (e.g. to make it no CA).
func NewCAWith(name string, key crypto.Signer, serial int64, edit func(*x509.Certificate)) (*CA, error) {
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             NotBefore(),
		NotAfter:              NotAfter(),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	if edit != nil {
		edit(tmpl)
	}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("creating the test CA %q: %w", name, err)
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
	// PublicKey, if set, is certified instead of Key's public half (for
	// keys no private key exists for, see FakeRSAPublicKey).
	PublicKey crypto.PublicKey
	// NotBefore and NotAfter default to the package's fixed validity.
	NotBefore, NotAfter time.Time
	// Edit, if set, changes the template last: a CA where a leaf belongs,
	// other key usages, extra subject attributes.
	Edit func(*x509.Certificate)
}

// Issue signs a client and server certificate (digitalSignature,
// keyEncipherment; clientAuth, serverAuth) and returns it and its key as
// PEM.
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
	if l.Edit != nil {
		l.Edit(tmpl)
	}
	pub := l.PublicKey
	if pub == nil {
		pub = key.Public()
	}
	der, err := x509.CreateCertificate(nil, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return "", "", fmt.Errorf("issuing %q: %w", l.CommonName, err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), KeyPEM(key), nil
}

// MakeCA is a Leaf.Edit that makes the certificate a CA.
func MakeCA(c *x509.Certificate) {
	c.BasicConstraintsValid, c.IsCA = true, true
	c.KeyUsage |= x509.KeyUsageCertSign
}
