package cache

import (
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"strings"
)

// Digest names content by its hash: an algorithm ("sha256" or "sha512")
// and the lower-case hexadecimal sum.
type Digest struct {
	Algorithm string
	Hex       string
}

// hexLen returns the length of a hex sum for a supported algorithm, or 0.
func hexLen(algorithm string) int {
	switch algorithm {
	case "sha256":
		return 64
	case "sha512":
		return 128
	}
	return 0
}

// ParseDigest parses "sha256:<hex>" or "sha512:<hex>".
func ParseDigest(s string) (Digest, error) {
	algo, hex, ok := strings.Cut(s, ":")
	if !ok {
		return Digest{}, fmt.Errorf("parsing digest %q: missing algorithm prefix (want sha256:<hex> or sha512:<hex>)", s)
	}
	d := Digest{Algorithm: algo, Hex: hex}
	if err := d.Validate(); err != nil {
		return Digest{}, fmt.Errorf("parsing digest %q: %w", s, err)
	}
	return d, nil
}

// Validate reports whether d has a supported algorithm and a well-formed
// lower-case hex sum of the right length.
func (d Digest) Validate() error {
	n := hexLen(d.Algorithm)
	if n == 0 {
		return fmt.Errorf("unsupported digest algorithm %q (want sha256 or sha512)", d.Algorithm)
	}
	if len(d.Hex) != n {
		return fmt.Errorf("%s hex sum must be %d characters, got %d", d.Algorithm, n, len(d.Hex))
	}
	for i, r := range d.Hex {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return fmt.Errorf("%s hex sum has invalid character %q at offset %d (want lower-case hex)", d.Algorithm, r, i)
		}
	}
	return nil
}

// String returns "algorithm:hex".
func (d Digest) String() string { return d.Algorithm + ":" + d.Hex }

// IsZero reports whether d is the zero Digest.
func (d Digest) IsZero() bool { return d == Digest{} }

// newHash returns a fresh hash for d's algorithm; d must be valid.
func newHash(algorithm string) hash.Hash {
	if algorithm == "sha512" {
		return sha512.New()
	}
	return sha256.New()
}

// sum returns the Digest of the content written to h.
func sum(algorithm string, h hash.Hash) Digest {
	return Digest{Algorithm: algorithm, Hex: fmt.Sprintf("%x", h.Sum(nil))}
}

// ChecksumError reports content whose hash differs from the expected one.
type ChecksumError struct {
	// Artifact names what was checked, for messages (may be empty).
	Artifact string
	Expected Digest
	Actual   Digest
}

func (e *ChecksumError) Error() string {
	what := "checksum mismatch"
	if e.Artifact != "" {
		what += " for " + e.Artifact
	}
	return fmt.Sprintf("%s: expected %s, got %s", what, e.Expected, e.Actual)
}
