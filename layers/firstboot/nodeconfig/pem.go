package nodeconfig

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
)

// pemBlocks splits s into its PEM blocks. Only blank space may surround
// them. A block whose END line is missing is reported as truncated, and a
// block that does not decode as bad, each naming the block: the cause, not
// what it leads to further down. what names the blocks ("certificate").
func pemBlocks(s, what string) ([]*pem.Block, error) {
	const begin, end, dashes = "-----BEGIN ", "-----END ", "-----"
	var blocks []*pem.Block
	rest := s
	for n := 1; ; n++ {
		i := strings.Index(rest, begin)
		if i < 0 {
			if strings.TrimSpace(rest) != "" {
				if n == 1 {
					return nil, fmt.Errorf("no PEM %s found", what)
				}
				return nil, fmt.Errorf("unexpected text after PEM block %d", n-1)
			}
			break
		}
		if strings.TrimSpace(rest[:i]) != "" {
			return nil, fmt.Errorf("unexpected text before PEM block %d", n)
		}
		rest = rest[i:]
		typ, _, ok := strings.Cut(rest[len(begin):], "\n")
		typ = strings.TrimRight(typ, " \t\r")
		if !ok || !strings.HasSuffix(typ, dashes) {
			return nil, fmt.Errorf("PEM block %d is truncated: its BEGIN line is incomplete", n)
		}
		typ = strings.TrimSuffix(typ, dashes)
		endLine := end + typ + dashes
		j := strings.Index(rest, endLine)
		if j < 0 {
			return nil, fmt.Errorf("PEM block %d (%s) is truncated: no %q line", n, typ, endLine)
		}
		if k := strings.Index(rest[len(begin):j], begin); k >= 0 {
			return nil, fmt.Errorf("PEM block %d (%s) is truncated: a BEGIN line comes before its %q line", n, typ, endLine)
		}
		b, _ := pem.Decode([]byte(rest[:j+len(endLine)]))
		if b == nil || b.Type != typ {
			return nil, fmt.Errorf("PEM block %d (%s) is malformed (bad base64 or headers)", n, typ)
		}
		blocks = append(blocks, b)
		rest = rest[j+len(endLine):]
	}
	if len(blocks) == 0 {
		return nil, fmt.Errorf("no PEM %s found", what)
	}
	return blocks, nil
}

// parseCerts parses one or more PEM certificates and nothing else, and
// checks each one's key strength.
func parseCerts(s string) ([]*x509.Certificate, error) {
	blocks, err := pemBlocks(s, "certificate")
	if err != nil {
		return nil, err
	}
	certs := make([]*x509.Certificate, 0, len(blocks))
	for i, b := range blocks {
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("unexpected PEM block %q; want CERTIFICATE", b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing certificate %d: %w", i+1, err)
		}
		if err := checkPublicKey(c.PublicKey); err != nil {
			return nil, fmt.Errorf("certificate %d (%q): %w", i+1, c.Subject.CommonName, err)
		}
		certs = append(certs, c)
	}
	return certs, nil
}
