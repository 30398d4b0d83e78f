package nodeconfig

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// WireGuardKey is a WireGuard key as bytes: keys are compared as bytes,
// never as text.
type WireGuardKey [32]byte

func (k WireGuardKey) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

const base64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// ParseWireGuardKey reads a key as `wg genkey` and `wg pubkey` write it:
// exactly 44 characters of standard base64, the last one '=', decoding to
// 32 bytes, in canonical form (re-encoding gives the same text). Line
// breaks, spaces, URL-safe or unpadded base64 and stray bits in the last
// character are refused, so that one key has one spelling.
func ParseWireGuardKey(s string) (WireGuardKey, error) {
	var k WireGuardKey
	if len(s) != 44 {
		return k, fmt.Errorf("%d characters; a WireGuard key is 44 characters of base64 (32 bytes), as wg genkey writes it", len(s))
	}
	for i := 0; i < 43; i++ {
		if strings.IndexByte(base64Alphabet, s[i]) < 0 {
			return k, fmt.Errorf("character %q at position %d is not standard base64", s[i], i+1)
		}
	}
	if s[43] != '=' {
		return k, fmt.Errorf("must end in '=' (44 characters of base64 for 32 bytes)")
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != 32 {
		return k, fmt.Errorf("not canonical base64: its last character before '=' has bits set beyond the 32 bytes")
	}
	copy(k[:], b)
	if k.String() != s {
		return k, fmt.Errorf("not canonical base64")
	}
	return k, nil
}

// curve25519P is 2^255-19, little-endian.
var curve25519P = [32]byte{
	0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
}

// lowOrderPoints are the canonical u-coordinates (little-endian) of the
// Curve25519 points whose order divides 8 (libsodium's list, less the
// encodings of p and p+1, which are not canonical): 0, 1, the two points of
// order 8, and p-1. X25519 with any such public key gives an all-zero
// shared secret, which WireGuard refuses: a peer with one can never
// complete a handshake. TestLowOrderPoints checks each against crypto/ecdh.
var lowOrderPoints = [][32]byte{
	{},
	{1},
	{0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a,
		0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00},
	{0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef, 0x5b,
		0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57},
	{0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
}

// CheckPublicKey refuses WireGuard public keys no peer can have: all zeros
// and the other low-order points, and encodings that are not canonical
// (u >= 2^255-19, including a set top bit, which X25519 ignores: a second
// spelling of another key) — wg pubkey never writes those.
func (k WireGuardKey) CheckPublicKey() error {
	if k == (WireGuardKey{}) {
		return errors.New("all zeros: not a public key")
	}
	for i := 31; i >= 0; i-- { // compare with p, most significant byte first
		if k[i] != curve25519P[i] {
			if k[i] > curve25519P[i] {
				return errors.New("not a canonical Curve25519 public key (at least 2^255-19); wg pubkey never writes it")
			}
			break
		}
		if i == 0 {
			return errors.New("not a canonical Curve25519 public key (2^255-19); wg pubkey never writes it")
		}
	}
	for _, p := range lowOrderPoints {
		if k == p {
			return errors.New("a low-order point: X25519 with it gives an all-zero secret, so no handshake can complete")
		}
	}
	return nil
}

// CheckPrivateKey refuses an all-zero private key (no generator writes it).
func (k WireGuardKey) CheckPrivateKey() error {
	if k == (WireGuardKey{}) {
		return errors.New("all zeros: not a private key (wg genkey writes a random one)")
	}
	return nil
}

// PublicKey returns the public key of the private key k.
func (k WireGuardKey) PublicKey() WireGuardKey {
	var pub WireGuardKey
	priv, err := ecdh.X25519().NewPrivateKey(k[:])
	if err != nil {
		return pub // cannot happen: every 32 bytes are an X25519 private key
	}
	copy(pub[:], priv.PublicKey().Bytes())
	return pub
}

// Key sizes accepted for certificates and TLS keys.
const (
	// MinRSABits is the smallest RSA modulus accepted (NIST SP 800-131A).
	MinRSABits = 2048
	// MaxRSABits is the largest: Go's TLS refuses peer RSA keys beyond
	// 8192 bits, so a larger key could never authenticate, and it bounds
	// the work a hostile key can cause.
	MaxRSABits = 8192
)

// checkPublicKey enforces the key strength floor: RSA of MinRSABits to
// MaxRSABits, ECDSA on P-256, P-384 or P-521, or Ed25519.
func checkPublicKey(pub any) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		switch bits := k.N.BitLen(); {
		case bits < MinRSABits:
			return fmt.Errorf("an RSA key of %d bits is too weak; at least %d are needed", bits, MinRSABits)
		case bits > MaxRSABits:
			return fmt.Errorf("an RSA key of %d bits; at most %d are accepted (Go's TLS refuses larger ones)", bits, MaxRSABits)
		}
		return nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return fmt.Errorf("an ECDSA key on %s is too weak; P-256, P-384 or P-521 are needed", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return nil
	}
	return fmt.Errorf("a %s key; RSA, ECDSA or Ed25519 keys are needed", keyType(pub))
}

func keyType(pub any) string {
	return strings.TrimPrefix(fmt.Sprintf("%T", pub), "*")
}

// parseKey parses one PEM private key: PKCS #8, PKCS #1 (RSA) or SEC 1
// (EC), and checks its strength. An RSA modulus is measured before the key
// is parsed and validated, so that a huge key costs no more than reading it.
func parseKey(s string) (crypto.Signer, error) {
	blocks, err := pemBlocks(s, "private key")
	if err != nil {
		return nil, err
	}
	if len(blocks) != 1 {
		return nil, fmt.Errorf("%d PEM blocks; want one private key", len(blocks))
	}
	b := blocks[0]
	if b.Type == "ENCRYPTED PRIVATE KEY" || b.Headers["Proc-Type"] != "" {
		return nil, fmt.Errorf("encrypted private keys are not supported")
	}
	var k any
	switch b.Type {
	case "PRIVATE KEY":
		if err := rsaSizePKCS8(b.Bytes); err != nil {
			return nil, err
		}
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		if err := rsaSizePKCS1(b.Bytes); err != nil {
			return nil, err
		}
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("unexpected PEM block %q; want a private key", b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parsing the private key: %w", err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported private key type %T", k)
	}
	if err := checkPublicKey(signer.Public()); err != nil {
		return nil, err
	}
	return signer, nil
}

var oidRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}

// rsaSizePKCS8 checks the modulus of an RSA key in PKCS #8; other keys pass.
func rsaSizePKCS8(der []byte) error {
	var p8 struct {
		Version    int
		Algo       pkix.AlgorithmIdentifier
		PrivateKey []byte
	}
	if _, err := asn1.Unmarshal(der, &p8); err != nil || !p8.Algo.Algorithm.Equal(oidRSA) {
		return nil // not RSA, or malformed: the real parser says which
	}
	return rsaSizePKCS1(p8.PrivateKey)
}

// rsaSizePKCS1 checks the modulus of a PKCS #1 RSA private key.
func rsaSizePKCS1(der []byte) error {
	var k struct {
		Version int
		N       *big.Int
	}
	if _, err := asn1.Unmarshal(der, &k); err != nil || k.N == nil {
		return nil // malformed: the real parser says why
	}
	return checkPublicKey(&rsa.PublicKey{N: k.N})
}
