// Package authenticode signs PE/COFF images (systemd-boot, a Unified Kernel
// Image) for UEFI Secure Boot with Authenticode, in pure Go: an RSA key and
// its X.509 certificate, SHA-256, a PKCS#7 SignedData in the image's
// certificate table. Firmware whose db holds the certificate (or the CA
// that issued it) runs the signed image; sbverify and osslsigncode verify
// it in the tests.
//
// # What is signed
//
// The Authenticode digest is SHA-256 over the image as the PE/COFF
// specification and the firmware (EDK II) compute it: the headers up to
// SizeOfHeaders without the CheckSum field and the Certificate Table
// directory entry, then each section's raw data in file order, then any
// bytes after the last section up to the certificate table. An image whose
// size is not a multiple of 8 is zero-padded to one first, and the padding
// is hashed too (the table must start 8-byte aligned). Digest computes it
// for a signed or an unsigned image alike, so signing leaves it unchanged.
//
// # Output
//
// The signed image is the input, zero-padded to a multiple of 8 bytes,
// followed by one WIN_CERTIFICATE (revision 2.0, type PKCS_SIGNED_DATA)
// holding the DER SignedData, zero-padded to a multiple of 8; the
// Certificate Table directory entry points at it, and CheckSum is the PE
// checksum of the result (as sbsign sets it). The SignedData is version 1
// with the signing certificate only, SHA-256, and one SignerInfo whose
// authenticated attributes are the content type and the message digest,
// nothing else: no signing time, so the same image and key always give
// the same bytes (RSA PKCS#1 v1.5 signatures are deterministic).
//
// Sign refuses an image that is already signed. It reads the input twice
// (once to hash, once to copy) and holds only the headers in memory.
package authenticode

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"

	"github.com/nodebake/nodebake/builder/internal/pecoff"
)

// Limits.
const (
	// MaxImageSize bounds the images Sign and Digest accept; the
	// Certificate Table's file offset is a 32-bit field.
	MaxImageSize = 1<<32 - 1
	// MinRSABits is the smallest RSA key Sign accepts.
	MinRSABits = 2048
	// maxPEMSize bounds a key or certificate file.
	maxPEMSize = 1 << 20
)

// WIN_CERTIFICATE constants.
const (
	winCertRevision2       = 0x0200
	winCertTypePKCSSigned  = 0x0002
	winCertificateHeaderSz = 8
)

// Signer signs images with one key and certificate.
type Signer struct {
	key  crypto.Signer
	cert *x509.Certificate
}

// NewSigner returns a Signer for an RSA key (at least MinRSABits bits) and
// the certificate of its public key.
func NewSigner(key crypto.Signer, cert *x509.Certificate) (*Signer, error) {
	if key == nil || cert == nil {
		return nil, errors.New("authenticode: a signing key and a certificate are both required")
	}
	pub, ok := key.Public().(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("authenticode: the signing key is %T, want an RSA key (UEFI verifies RSA signatures only)", key.Public())
	}
	if pub.N.BitLen() < MinRSABits {
		return nil, fmt.Errorf("authenticode: the RSA key has %d bits, want at least %d", pub.N.BitLen(), MinRSABits)
	}
	certPub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok || !certPub.Equal(pub) {
		return nil, fmt.Errorf("authenticode: the certificate %q is not for the signing key", cert.Subject)
	}
	return &Signer{key: key, cert: cert}, nil
}

// ParseSigner reads an unencrypted RSA private key (PEM "RSA PRIVATE KEY"
// or "PRIVATE KEY") and its certificate (PEM "CERTIFICATE"). The certificate
// may be followed by others, which are ignored.
func ParseSigner(keyPEM, certPEM []byte) (*Signer, error) {
	if len(keyPEM) > maxPEMSize || len(certPEM) > maxPEMSize {
		return nil, fmt.Errorf("authenticode: key or certificate file larger than %d bytes", maxPEMSize)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, errors.New("authenticode: the key is not PEM")
	}
	var key crypto.Signer
	switch kb.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(kb.Bytes)
		if err != nil {
			return nil, fmt.Errorf("authenticode: parsing the RSA key: %w", err)
		}
		key = k
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
		if err != nil {
			return nil, fmt.Errorf("authenticode: parsing the PKCS#8 key: %w", err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("authenticode: the key is a %T, not a signing key", k)
		}
		key = s
	case "ENCRYPTED PRIVATE KEY":
		return nil, errors.New("authenticode: the key is encrypted; decrypt it first (openssl pkey)")
	default:
		return nil, fmt.Errorf("authenticode: the key is a PEM %q block, want RSA PRIVATE KEY or PRIVATE KEY", kb.Type)
	}
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, errors.New("authenticode: the certificate is not a PEM CERTIFICATE")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("authenticode: parsing the certificate: %w", err)
	}
	return NewSigner(key, cert)
}

// Certificate returns the signing certificate.
func (s *Signer) Certificate() *x509.Certificate { return s.cert }

// image is a parsed input with its hashed ranges.
type image struct {
	pe *pecoff.File
	// end is where the hashed content ends: the file size padded to 8
	// for an unsigned image, the certificate table's offset for a signed
	// one.
	end int64
}

// parse reads the headers and checks the layout Authenticode needs.
func parse(r io.ReaderAt, size int64) (*image, error) {
	if size > MaxImageSize {
		return nil, fmt.Errorf("authenticode: image is %d bytes, more than %d", size, int64(MaxImageSize))
	}
	f, err := pecoff.Parse(r, size)
	if err != nil {
		return nil, fmt.Errorf("authenticode: %w", err)
	}
	if f.NumberOfRvaAndSizes <= pecoff.DirSecurity {
		return nil, fmt.Errorf("authenticode: the image has %d data directories, none for a certificate table", f.NumberOfRvaAndSizes)
	}
	im := &image{pe: f, end: alignUp8(size)}
	if f.SecuritySize != 0 {
		if int64(f.SecurityOffset)+int64(f.SecuritySize) != size || f.SecurityOffset%8 != 0 {
			return nil, fmt.Errorf("authenticode: the certificate table %#x+%#x is not 8-byte aligned at the end of the file (%d bytes)", f.SecurityOffset, f.SecuritySize, size)
		}
		im.end = int64(f.SecurityOffset)
	}
	// Sections in file order must not overlap and leave no gaps: the
	// firmware hashes the bytes after the last section by count, and
	// implementations disagree on gaps.
	secs := slices.Clone(f.Sections)
	slices.SortStableFunc(secs, func(a, b pecoff.Section) int { return int(a.PointerToRawData) - int(b.PointerToRawData) })
	pos := int64(f.SizeOfHeaders)
	for _, s := range secs {
		if s.SizeOfRawData == 0 {
			continue
		}
		if int64(s.PointerToRawData) != pos {
			return nil, fmt.Errorf("authenticode: section %q raw data starts at %#x, want %#x right after the previous one (no gaps or overlaps)", s.Name, s.PointerToRawData, pos)
		}
		pos += int64(s.SizeOfRawData)
	}
	if pos > im.end {
		return nil, fmt.Errorf("authenticode: the sections end at %#x, inside the certificate table at %#x", pos, im.end)
	}
	return im, nil
}

func alignUp8(v int64) int64 { return (v + 7) &^ 7 }

// Digest returns the Authenticode SHA-256 digest of the size-byte image r,
// signed or not.
func Digest(r io.ReaderAt, size int64) ([sha256.Size]byte, error) {
	im, err := parse(r, size)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	h := sha256.New()
	if err := im.hash(r, size, h, nil); err != nil {
		return [sha256.Size]byte{}, err
	}
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d, nil
}

// hash feeds the hashed bytes of the image to h and, when sum is not nil,
// every byte of [0, im.end) except the CheckSum field to the PE checksum.
// Bytes past size (the padding to 8) are zeros.
func (im *image) hash(r io.ReaderAt, size int64, h hash.Hash, sum *checksum) error {
	cs := im.pe.CheckSumOffset()
	dir := im.pe.DataDirectoryOffset(pecoff.DirSecurity)
	// Skipped ranges, in order: CheckSum and the directory entry.
	skips := [][2]int64{{cs, cs + 4}, {dir, dir + 8}}
	buf := make([]byte, 1<<20)
	for pos := int64(0); pos < im.end; {
		n := min(int64(len(buf)), im.end-pos)
		chunk := buf[:n]
		clear(chunk)
		if pos < size {
			want := min(n, size-pos)
			if got, err := r.ReadAt(chunk[:want], pos); int64(got) < want {
				if err == nil || errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				return fmt.Errorf("authenticode: reading the image at %d: %w", pos+int64(got), err)
			}
		}
		// Feed chunk minus the skipped ranges.
		start := pos
		for _, s := range skips {
			if s[1] <= start || s[0] >= pos+n {
				continue
			}
			if s[0] > start {
				h.Write(chunk[start-pos : s[0]-pos])
			}
			start = max(start, s[1])
		}
		if start < pos+n {
			h.Write(chunk[start-pos:])
		}
		if sum != nil {
			sum.add(chunk, pos, cs)
		}
		pos += n
	}
	return nil
}

// checksum is the PE image checksum: the 16-bit words of the file summed
// with end-around carry (the CheckSum field counted as zero), plus the
// file size.
type checksum struct{ sum uint64 }

// add sums b, which sits at file offset off (even), skipping the four bytes
// at skip.
func (c *checksum) add(b []byte, off, skip int64) {
	for i := 0; i+1 < len(b); i += 2 {
		if o := off + int64(i); o >= skip && o < skip+4 {
			continue
		}
		c.sum += uint64(binary.LittleEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		c.sum += uint64(b[len(b)-1])
	}
	c.sum = (c.sum & 0xffffffff) + (c.sum >> 32)
}

func (c *checksum) value(fileSize int64) uint32 {
	s := c.sum
	for s > 0xffff {
		s = (s & 0xffff) + (s >> 16)
	}
	return uint32(s) + uint32(fileSize)
}

// Sign writes the signed image of the size-byte unsigned image src to dst
// and returns the number of bytes written.
func (s *Signer) Sign(dst io.Writer, src io.ReaderAt, size int64) (int64, error) {
	im, err := parse(src, size)
	if err != nil {
		return 0, err
	}
	if im.pe.SecuritySize != 0 || im.pe.SecurityOffset != 0 {
		return 0, errors.New("authenticode: the image is already signed")
	}
	h := sha256.New()
	var sum checksum
	if err := im.hash(src, size, h, &sum); err != nil {
		return 0, err
	}
	signed, err := s.signedData(h.Sum(nil))
	if err != nil {
		return 0, err
	}
	entryLen := winCertificateHeaderSz + len(signed)
	table := make([]byte, alignUp8(int64(entryLen)))
	binary.LittleEndian.PutUint32(table[0:], uint32(entryLen))
	binary.LittleEndian.PutUint16(table[4:], winCertRevision2)
	binary.LittleEndian.PutUint16(table[6:], winCertTypePKCSSigned)
	copy(table[winCertificateHeaderSz:], signed)
	total := im.end + int64(len(table))
	if total > MaxImageSize {
		return 0, fmt.Errorf("authenticode: the signed image would be %d bytes, more than %d", total, int64(MaxImageSize))
	}

	// The header fields that change: the directory entry and CheckSum.
	var dirEntry [8]byte
	binary.LittleEndian.PutUint32(dirEntry[0:], uint32(im.end))
	binary.LittleEndian.PutUint32(dirEntry[4:], uint32(len(table)))
	sum.add(dirEntry[:], 0, -8) // the entry was zero in the input
	sum.add(table, 0, -8)
	var csField [4]byte
	binary.LittleEndian.PutUint32(csField[:], sum.value(total))

	head := make([]byte, im.pe.SizeOfHeaders)
	if _, err := src.ReadAt(head, 0); err != nil {
		return 0, fmt.Errorf("authenticode: reading the headers: %w", err)
	}
	copy(head[im.pe.DataDirectoryOffset(pecoff.DirSecurity):], dirEntry[:])
	copy(head[im.pe.CheckSumOffset():], csField[:])

	cw := &countWriter{w: dst}
	if _, err := cw.Write(head); err != nil {
		return cw.n, fmt.Errorf("authenticode: writing: %w", err)
	}
	if _, err := io.Copy(cw, io.NewSectionReader(src, int64(len(head)), size-int64(len(head)))); err != nil {
		return cw.n, fmt.Errorf("authenticode: copying the image: %w", err)
	}
	if cw.n != size {
		return cw.n, fmt.Errorf("authenticode: copied %d bytes of a %d-byte image", cw.n, size)
	}
	if _, err := cw.Write(make([]byte, im.end-size)); err != nil {
		return cw.n, fmt.Errorf("authenticode: writing: %w", err)
	}
	if _, err := cw.Write(table); err != nil {
		return cw.n, fmt.Errorf("authenticode: writing the certificate table: %w", err)
	}
	return cw.n, nil
}

// signedData returns the DER PKCS#7 ContentInfo for an image digest.
func (s *Signer) signedData(digest []byte) ([]byte, error) {
	// SpcIndirectDataContent: the PE image data and the digest.
	spcBody := cat(
		seq(oidSpcPEImageData, seq(
			bitStringEmpty,
			explicit(0, explicit(2, implicitPrim(0, obsoleteBMP))),
		)),
		seq(sha256AlgID, octetString(digest)),
	)
	spc := tlv(tagSequence, spcBody)
	// messageDigest covers the content octets, without tag and length.
	contentDigest := sha256.Sum256(spcBody)
	attrs := setOf(
		seq(oidContentType, tlv(tagSet, oidSpcIndirectData)),
		seq(oidMessageDigest, tlv(tagSet, octetString(contentDigest[:]))),
	)
	attrDigest := sha256.Sum256(attrs)
	sig, err := s.key.Sign(rand.Reader, attrDigest[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("authenticode: signing: %w", err)
	}
	serial, err := derInteger(s.cert)
	if err != nil {
		return nil, err
	}
	signerInfo := seq(
		integer1,
		seq(s.cert.RawIssuer, serial),
		sha256AlgID,
		// The same attributes, tagged [0] IMPLICIT instead of SET.
		append([]byte{0xa0}, attrs[1:]...),
		rsaAlgID,
		octetString(sig),
	)
	signedData := seq(
		integer1,
		tlv(tagSet, sha256AlgID),
		seq(oidSpcIndirectData, explicit(0, spc)),
		tlv(0xa0, s.cert.Raw),
		tlv(tagSet, signerInfo),
	)
	return seq(oidSignedData, explicit(0, signedData)), nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// setOf encodes a DER SET OF: the elements sorted by their encodings.
func setOf(elems ...[]byte) []byte {
	sorted := slices.Clone(elems)
	slices.SortFunc(sorted, bytes.Compare)
	return tlv(tagSet, cat(sorted...))
}
