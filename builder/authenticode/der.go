package authenticode

import (
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"unicode/utf16"
)

// A few DER encoders: what Authenticode's SignedData needs, no more.

const (
	tagSequence = 0x30
	tagSet      = 0x31
)

// tlv encodes one DER element with a definite length.
func tlv(tag byte, content []byte) []byte {
	n := len(content)
	var out []byte
	switch {
	case n < 0x80:
		out = append(make([]byte, 0, 2+n), tag, byte(n))
	case n < 1<<8:
		out = append(make([]byte, 0, 3+n), tag, 0x81, byte(n))
	case n < 1<<16:
		out = append(make([]byte, 0, 4+n), tag, 0x82, byte(n>>8), byte(n))
	case n < 1<<24:
		out = append(make([]byte, 0, 5+n), tag, 0x83, byte(n>>16), byte(n>>8), byte(n))
	default:
		out = append(make([]byte, 0, 6+n), tag, 0x84, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(out, content...)
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func seq(parts ...[]byte) []byte { return tlv(tagSequence, cat(parts...)) }

// explicit wraps an element in a constructed context-specific tag [n].
func explicit(n byte, inner []byte) []byte { return tlv(0xa0|n, inner) }

// implicitPrim is a primitive context-specific [n] with the given content.
func implicitPrim(n byte, content []byte) []byte { return tlv(0x80|n, content) }

func octetString(b []byte) []byte { return tlv(0x04, b) }

// DER-encoded object identifiers (TestOIDs checks them).
var (
	oidSignedData      = []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02}
	oidSpcIndirectData = []byte{0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x01, 0x04}
	oidSpcPEImageData  = []byte{0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x01, 0x0f}
	oidContentType     = []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x03}
	oidMessageDigest   = []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x04}
	oidSHA256          = []byte{0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01}
	oidRSAEncryption   = []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01}

	asn1Null       = []byte{0x05, 0x00}
	integer1       = []byte{0x02, 0x01, 0x01}
	bitStringEmpty = []byte{0x03, 0x01, 0x00}
	sha256AlgID    = seq(oidSHA256, asn1Null)
	rsaAlgID       = seq(oidRSAEncryption, asn1Null)

	// obsoleteBMP is "<<<Obsolete>>>" in UTF-16BE, the SpcString every
	// Authenticode signer writes for the file link.
	obsoleteBMP = func() []byte {
		var b []byte
		for _, u := range utf16.Encode([]rune("<<<Obsolete>>>")) {
			b = append(b, byte(u>>8), byte(u))
		}
		return b
	}()
)

// derInteger encodes the certificate's serial number.
func derInteger(cert *x509.Certificate) ([]byte, error) {
	if cert.SerialNumber == nil {
		return nil, fmt.Errorf("authenticode: the certificate %q has no serial number", cert.Subject)
	}
	b, err := asn1.Marshal(cert.SerialNumber)
	if err != nil {
		return nil, fmt.Errorf("authenticode: encoding the certificate serial number: %w", err)
	}
	return b, nil
}
