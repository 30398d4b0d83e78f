package authenticode

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"encoding/pem"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodebake/nodebake/builder/internal/pecoff"
	"github.com/nodebake/nodebake/builder/internal/pecoff/pecofftest"
)

// testKey is an RSA key with a self-signed code signing certificate.
type testKey struct {
	key     *rsa.PrivateKey
	cert    *x509.Certificate
	keyPEM  []byte
	certPEM []byte
}

var testKeys = sync.OnceValue(func() [2]*testKey {
	var out [2]*testKey
	for i, cn := range []string{"nodebake test db", "someone else"} {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		out[i] = newTestKey(key, cn)
	}
	return out
})

func newTestKey(key *rsa.PrivateKey, cn string) *testKey {
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(0x1234567),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	return &testKey{
		key: key, cert: cert,
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}),
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	}
}

func (k *testKey) signer(t testing.TB) *Signer {
	t.Helper()
	s, err := ParseSigner(k.keyPEM, k.certPEM)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fakeImage is a synthetic EFI application of the given total size before
// signing (the tail makes sizes that are not multiples of 8).
func fakeImage(tail int) []byte {
	return pecofftest.Image{DllCharacteristics: 0x160, Sections: []pecofftest.Section{
		{Name: ".text", Data: bytes.Repeat([]byte{0xcc}, 3000)},
		{Name: ".data", Data: bytes.Repeat([]byte("data"), 1000)},
	}, Tail: bytes.Repeat([]byte{0xee}, tail)}.Bytes()
}

func sign(t testing.TB, s *Signer, img []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	n, err := s.Sign(&out, bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(out.Len()) {
		t.Fatalf("Sign returned %d, wrote %d bytes", n, out.Len())
	}
	return out.Bytes()
}

func digest(t testing.TB, b []byte) [32]byte {
	t.Helper()
	d, err := Digest(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// referenceChecksum is the PE checksum computed the textbook way over a
// whole file.
func referenceChecksum(b []byte, csOff int64) uint32 {
	var sum uint32
	for i := 0; i < len(b); i += 2 {
		if int64(i) == csOff || int64(i) == csOff+2 {
			continue
		}
		w := uint32(b[i])
		if i+1 < len(b) {
			w |= uint32(b[i+1]) << 8
		}
		sum += w
		sum = (sum & 0xffff) + (sum >> 16)
	}
	sum = (sum & 0xffff) + (sum >> 16)
	return sum + uint32(len(b))
}

// The PKCS#7 structures, as encoding/asn1 reads them back.
type contentInfo struct {
	Type    asn1.ObjectIdentifier
	Content asn1.RawValue `asn1:"explicit,tag:0"`
}

type signedData struct {
	Version          int
	DigestAlgorithms []pkix.AlgorithmIdentifier `asn1:"set"`
	ContentInfo      struct {
		Type    asn1.ObjectIdentifier
		Content asn1.RawValue `asn1:"explicit,tag:0"`
	}
	Certificates asn1.RawValue `asn1:"tag:0"`
	SignerInfos  []signerInfo  `asn1:"set"`
}

type signerInfo struct {
	Version         int
	IssuerAndSerial struct {
		Issuer asn1.RawValue
		Serial *big.Int
	}
	DigestAlgorithm  pkix.AlgorithmIdentifier
	AuthAttributes   asn1.RawValue `asn1:"tag:0"`
	EncryptionAlg    pkix.AlgorithmIdentifier
	EncryptedDigest  []byte
	UnauthAttributes asn1.RawValue `asn1:"optional,tag:1"`
}

type attribute struct {
	Type  asn1.ObjectIdentifier
	Value asn1.RawValue
}

type spcIndirectData struct {
	Data struct {
		Type  asn1.ObjectIdentifier
		Value asn1.RawValue
	}
	Digest struct {
		Algorithm pkix.AlgorithmIdentifier
		Digest    []byte
	}
}

// readSignature returns the single WIN_CERTIFICATE's DER of a signed image.
func readSignature(t *testing.T, signed []byte) []byte {
	t.Helper()
	f, err := pecoff.Parse(bytes.NewReader(signed), int64(len(signed)))
	if err != nil {
		t.Fatal(err)
	}
	if f.SecurityOffset%8 != 0 || int(f.SecurityOffset+f.SecuritySize) != len(signed) || f.SecuritySize%8 != 0 {
		t.Fatalf("certificate table %#x+%#x in a %d-byte file: not 8-aligned at the end", f.SecurityOffset, f.SecuritySize, len(signed))
	}
	table := signed[f.SecurityOffset:]
	le := binary.LittleEndian
	length, rev, typ := le.Uint32(table), le.Uint16(table[4:]), le.Uint16(table[6:])
	if rev != 0x0200 || typ != 0x0002 {
		t.Errorf("WIN_CERTIFICATE revision %#x type %#x, want 0x200 and 2", rev, typ)
	}
	if int(length) > len(table) || alignUp8(int64(length)) != int64(len(table)) {
		t.Fatalf("WIN_CERTIFICATE length %d for a %d-byte table", length, len(table))
	}
	if !allZero(table[length:]) {
		t.Error("the padding after the WIN_CERTIFICATE is not zero")
	}
	return table[8:length]
}

func allZero(b []byte) bool { return len(bytes.Trim(b, "\x00")) == 0 }

func TestSignStructure(t *testing.T) {
	k := testKeys()[0]
	for _, tail := range []int{0, 3, 8} {
		img := fakeImage(tail)
		signed := sign(t, k.signer(t), img)
		if !bytes.Equal(img, withoutChanges(t, signed, img)) {
			t.Fatal("the signed image changed bytes other than CheckSum and the certificate table entry")
		}
		if d0, d1 := digest(t, img), digest(t, signed); d0 != d1 {
			t.Errorf("tail %d: digest %x signed, %x unsigned", tail, d1, d0)
		}
		f, _ := pecoff.Parse(bytes.NewReader(signed), int64(len(signed)))
		if got, want := f.CheckSum, referenceChecksum(signed, f.CheckSumOffset()); got != want {
			t.Errorf("tail %d: CheckSum %#x, want %#x", tail, got, want)
		}
		if !allZero(signed[len(img):f.SecurityOffset]) {
			t.Errorf("tail %d: the padding before the certificate table is not zero", tail)
		}

		der := readSignature(t, signed)
		var ci contentInfo
		if rest, err := asn1.Unmarshal(der, &ci); err != nil || len(rest) != 0 {
			t.Fatalf("ContentInfo: %v (%d trailing bytes)", err, len(rest))
		}
		if !ci.Type.Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}) {
			t.Fatalf("content type %v, want signedData", ci.Type)
		}
		var sd signedData
		if _, err := asn1.Unmarshal(ci.Content.Bytes, &sd); err != nil {
			t.Fatalf("SignedData: %v", err)
		}
		if sd.Version != 1 || len(sd.DigestAlgorithms) != 1 || !sd.DigestAlgorithms[0].Algorithm.Equal(asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}) {
			t.Errorf("SignedData version %d, digest algorithms %v", sd.Version, sd.DigestAlgorithms)
		}
		if !bytes.Equal(sd.Certificates.Bytes, k.cert.Raw) {
			t.Error("the certificates are not exactly the signing certificate")
		}
		var spc spcIndirectData
		if _, err := asn1.Unmarshal(sd.ContentInfo.Content.Bytes, &spc); err != nil {
			t.Fatalf("SpcIndirectDataContent: %v", err)
		}
		if want := digest(t, img); !bytes.Equal(spc.Digest.Digest, want[:]) {
			t.Errorf("signed digest %x, want the image's %x", spc.Digest.Digest, want)
		}
		if !spc.Data.Type.Equal(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 15}) {
			t.Errorf("SpcAttributeTypeAndOptionalValue type %v", spc.Data.Type)
		}
		if len(sd.SignerInfos) != 1 {
			t.Fatalf("%d signer infos", len(sd.SignerInfos))
		}
		si := sd.SignerInfos[0]
		if si.Version != 1 || si.IssuerAndSerial.Serial.Cmp(k.cert.SerialNumber) != 0 || !bytes.Equal(si.IssuerAndSerial.Issuer.FullBytes, k.cert.RawIssuer) {
			t.Error("the SignerInfo does not name the certificate")
		}
		if len(si.UnauthAttributes.FullBytes) != 0 {
			t.Error("unauthenticated attributes present")
		}
		var attrs []attribute
		if _, err := asn1.UnmarshalWithParams(si.AuthAttributes.FullBytes, &attrs, "set,tag:0"); err != nil {
			t.Fatalf("authenticated attributes: %v", err)
		}
		if len(attrs) != 2 || !attrs[0].Type.Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}) || !attrs[1].Type.Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}) {
			t.Fatalf("authenticated attributes %v, want content type and message digest only", attrs)
		}
		var md []byte
		if _, err := asn1.UnmarshalWithParams(attrs[1].Value.FullBytes, &md, "set"); err != nil {
			// A SET holding one OCTET STRING.
			var mds [][]byte
			if _, err := asn1.UnmarshalWithParams(attrs[1].Value.FullBytes, &mds, "set"); err != nil || len(mds) != 1 {
				t.Fatalf("message digest attribute: %v", err)
			}
			md = mds[0]
		}
		body := sd.ContentInfo.Content.Bytes // SpcIndirectDataContent's contents
		var inner asn1.RawValue
		asn1.Unmarshal(body, &inner)
		if want := sha256.Sum256(inner.Bytes); !bytes.Equal(md, want[:]) {
			t.Errorf("message digest %x, want sha256 of the SpcIndirectDataContent contents %x", md, want)
		}
		// The signature covers the attributes re-tagged as a SET.
		set := append([]byte{0x31}, si.AuthAttributes.FullBytes[1:]...)
		h := sha256.Sum256(set)
		if err := rsa.VerifyPKCS1v15(&k.key.PublicKey, crypto.SHA256, h[:], si.EncryptedDigest); err != nil {
			t.Errorf("the signature does not verify over the authenticated attributes: %v", err)
		}
	}
}

// withoutChanges returns the first len(img) bytes of signed with the
// fields signing may change copied back from img.
func withoutChanges(t *testing.T, signed, img []byte) []byte {
	t.Helper()
	f, err := pecoff.Parse(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	b := bytes.Clone(signed[:len(img)])
	cs, dir := f.CheckSumOffset(), f.DataDirectoryOffset(pecoff.DirSecurity)
	copy(b[cs:cs+4], img[cs:cs+4])
	copy(b[dir:dir+8], img[dir:dir+8])
	return b
}

func TestDeterministic(t *testing.T) {
	k := testKeys()[0]
	img := fakeImage(5)
	a, b := sign(t, k.signer(t), img), sign(t, k.signer(t), img)
	if !bytes.Equal(a, b) {
		t.Error("signing twice gave different bytes")
	}
	other := sign(t, testKeys()[1].signer(t), img)
	if bytes.Equal(a, other) {
		t.Error("two keys gave the same signed image")
	}
}

func TestDigestCovers(t *testing.T) {
	img := fakeImage(16)
	base := digest(t, img)
	f, _ := pecoff.Parse(bytes.NewReader(img), int64(len(img)))
	changed := func(off int64) bool {
		b := bytes.Clone(img)
		b[off] ^= 0xff
		return digest(t, b) != base
	}
	for name, off := range map[string]int64{
		"DOS header":         2,
		"section header":     f.Sections[0].HeaderOffset,
		"first section":      int64(f.Sections[0].PointerToRawData) + 10,
		"last section":       int64(f.Sections[1].PointerToRawData+f.Sections[1].SizeOfRawData) - 1,
		"data after the end": int64(len(img)) - 1,
	} {
		if !changed(off) {
			t.Errorf("changing the %s (byte %d) did not change the digest", name, off)
		}
	}
	// The certificate table entry is left out too: TestSignStructure
	// compares the digests of signed and unsigned images.
	if changed(f.CheckSumOffset()) || changed(f.CheckSumOffset()+3) {
		t.Error("changing CheckSum changed the digest")
	}
}

func TestSignRefuses(t *testing.T) {
	k := testKeys()[0]
	signed := sign(t, k.signer(t), fakeImage(0))
	if _, err := k.signer(t).Sign(&bytes.Buffer{}, bytes.NewReader(signed), int64(len(signed))); err == nil || !strings.Contains(err.Error(), "already signed") {
		t.Errorf("signing a signed image: %v", err)
	}
	gap := fakeImage(0)
	f, _ := pecoff.Parse(bytes.NewReader(gap), int64(len(gap)))
	// Move the second section's raw data pointer on by one alignment unit.
	binary.LittleEndian.PutUint32(gap[f.Sections[1].HeaderOffset+20:], f.Sections[1].PointerToRawData+0x200)
	gap = append(gap, make([]byte, 0x200)...)
	if _, err := k.signer(t).Sign(&bytes.Buffer{}, bytes.NewReader(gap), int64(len(gap))); err == nil || !strings.Contains(err.Error(), "no gaps") {
		t.Errorf("signing an image with a gap between sections: %v", err)
	}
	if _, err := Digest(bytes.NewReader([]byte("MZ nonsense")), 11); err == nil {
		t.Error("Digest accepted a non-PE")
	}
}

func TestParseSigner(t *testing.T) {
	k := testKeys()[0]
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(k.key)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	smallKey := newTestKey(small, "small")
	pemOf := func(typ string, b []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}) }
	tests := []struct {
		name      string
		key, cert []byte
		want      string // "" for success
	}{
		{"PKCS#1", k.keyPEM, k.certPEM, ""},
		{"PKCS#8", pemOf("PRIVATE KEY", pkcs8), k.certPEM, ""},
		{"cert of another key", k.keyPEM, testKeys()[1].certPEM, "not for the signing key"},
		{"encrypted", pemOf("ENCRYPTED PRIVATE KEY", []byte{1}), k.certPEM, "encrypted"},
		{"EC key", pemOf("PRIVATE KEY", ecDER), k.certPEM, "want an RSA key"},
		{"1024-bit RSA", smallKey.keyPEM, smallKey.certPEM, "1024 bits"},
		{"not PEM", []byte("hello"), k.certPEM, "not PEM"},
		{"cert not PEM", k.keyPEM, []byte("x"), "not a PEM CERTIFICATE"},
		{"wrong PEM type", pemOf("PUBLIC KEY", []byte{1}), k.certPEM, "PUBLIC KEY"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSigner(tc.key, tc.cert)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("ParseSigner: %v, want %q", err, tc.want)
			}
		})
	}
}

func TestOIDs(t *testing.T) {
	for _, tc := range []struct {
		der []byte
		oid asn1.ObjectIdentifier
	}{
		{oidSignedData, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}},
		{oidSpcIndirectData, asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 4}},
		{oidSpcPEImageData, asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 15}},
		{oidContentType, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}},
		{oidMessageDigest, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}},
		{oidSHA256, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}},
		{oidRSAEncryption, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}},
	} {
		if want, _ := asn1.Marshal(tc.oid); !bytes.Equal(tc.der, want) {
			t.Errorf("%v encodes as %x, want %x", tc.oid, tc.der, want)
		}
	}
	for _, n := range []int{0, 1, 127, 128, 255, 256, 65535, 65536, 1 << 24} {
		var v asn1.RawValue
		if _, err := asn1.Unmarshal(tlv(0x04, make([]byte, n)), &v); err != nil || len(v.Bytes) != n {
			t.Errorf("tlv length %d: %v", n, err)
		}
	}
}
