package nodeconfig

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"slices"
	"strings"
)

// The identities Kubernetes gives the node's two clients, from their
// certificates' subjects (CN is the user, each O a group).
const (
	// NodeUserPrefix + nodeName is the kubelet's user; the Node authorizer
	// and NodeRestriction admission only let it act for its own node.
	NodeUserPrefix = "system:node:"
	// NodesGroup is the kubelet's one group.
	NodesGroup = "system:nodes"
	// KubeProxyUser is kube-proxy's user: the built-in ClusterRoleBinding
	// system:node-proxier binds it to the ClusterRole of that name.
	KubeProxyUser = "system:kube-proxy"
	// KubeProxyGroup is the group the seed's CA gives kube-proxy (O in
	// cert-kube-proxy.pem); it is the only group kube-proxy may have.
	KubeProxyGroup = "system:node-proxier"
)

var oidCommonName = asn1.ObjectIdentifier{2, 5, 4, 3}

// checkCA checks that c may be kubernetes.caCert: a CA certificate that
// signs certificates.
func checkCA(c *x509.Certificate) error {
	switch {
	case !c.BasicConstraintsValid || !c.IsCA:
		return fmt.Errorf("certificate %q is not a CA certificate (basic constraints CA:TRUE missing); give the CA that signed the node's certificates", c.Subject.CommonName)
	case c.KeyUsage&x509.KeyUsageCertSign == 0:
		return fmt.Errorf("CA certificate %q may not sign certificates (key usage keyCertSign missing)", c.Subject.CommonName)
	}
	return nil
}

// checkClientLeaf checks that c is a client certificate and not a CA.
func checkClientLeaf(c *x509.Certificate) error {
	switch {
	case c.IsCA:
		return fmt.Errorf("is a CA certificate (basic constraints CA:TRUE); a client needs a leaf certificate")
	case c.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) != 0:
		return fmt.Errorf("may sign certificates or CRLs (key usage keyCertSign or cRLSign); a client needs a leaf certificate")
	case c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageDigitalSignature == 0:
		return fmt.Errorf("key usage lacks digitalSignature, which a TLS client needs")
	case len(c.ExtKeyUsage) > 0 && !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageClientAuth) && !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageAny):
		return fmt.Errorf("extended key usage does not allow client authentication (clientAuth)")
	case len(c.UnknownExtKeyUsage) > 0 && len(c.ExtKeyUsage) == 0:
		return fmt.Errorf("extended key usage does not allow client authentication (clientAuth)")
	}
	return nil
}

// commonNames returns every CN attribute of c's subject: Go and Kubernetes
// take the last one, so more than one is refused.
func commonNames(c *x509.Certificate) []string {
	var cns []string
	for _, a := range c.Subject.Names {
		if a.Type.Equal(oidCommonName) {
			cns = append(cns, fmt.Sprint(a.Value))
		}
	}
	return cns
}

// checkSubject checks that c's subject is exactly the user cn with the
// groups allowed (each O is a group); required groups must be present.
func checkSubject(c *x509.Certificate, cn string, allowed []string, required bool) error {
	if cns := commonNames(c); len(cns) > 1 {
		return fmt.Errorf("subject has %d common names %q; a Kubernetes client certificate has one", len(cns), cns)
	}
	if got := c.Subject.CommonName; got != cn {
		return fmt.Errorf("subject CN is %q; it must be %q", got, cn)
	}
	for _, o := range c.Subject.Organization {
		if !slices.Contains(allowed, o) {
			return fmt.Errorf("subject O (groups) %q include %q; %s may only be in %q", c.Subject.Organization, o, cn, strings.Join(allowed, ", "))
		}
	}
	if required && !slices.Equal(c.Subject.Organization, allowed) {
		return fmt.Errorf("subject O (groups) is %q; %s must be in exactly %q", c.Subject.Organization, cn, strings.Join(allowed, ", "))
	}
	return nil
}

// samePublicKey reports whether a and b carry the same public key.
func samePublicKey(a, b *x509.Certificate) bool {
	return bytes.Equal(a.RawSubjectPublicKeyInfo, b.RawSubjectPublicKeyInfo)
}
