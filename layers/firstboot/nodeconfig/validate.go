package nodeconfig

import (
	"crypto"
	"crypto/ecdh"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/nodebake/nodebake/layers/firstboot/strictyaml"
)

var (
	dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	hostnameRE       = regexp.MustCompile(`^(?i)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*\.?$`)
)

// Validate checks cfg against the image's facts at time now and returns
// every problem as Problems (nil when there are none). Zero facts skip the
// checks that need them (CIDR clashes, podCIDR requirement).
func Validate(cfg *NodeConfig, facts ImageFacts, now time.Time) error {
	v := &validator{now: now}
	v.config(cfg, facts)
	if len(v.probs) > 0 {
		return v.probs
	}
	return nil
}

type validator struct {
	now   time.Time
	probs Problems
}

func (v *validator) add(field, format string, args ...any) {
	v.probs = append(v.probs, Problem{Field: field, Message: fmt.Sprintf(format, args...)})
}

// required adds a problem when s is empty and reports whether it is set.
func (v *validator) required(field, s string) bool {
	if strings.TrimSpace(s) == "" {
		v.add(field, "required")
		return false
	}
	return true
}

func (v *validator) config(cfg *NodeConfig, facts ImageFacts) {
	if v.required("apiVersion", cfg.APIVersion) && cfg.APIVersion != APIVersion {
		v.add("apiVersion", "unsupported version %q; want %q", cfg.APIVersion, APIVersion)
	}
	if v.required("kind", cfg.Kind) && cfg.Kind != Kind {
		v.add("kind", "must be %q, not %q", Kind, cfg.Kind)
	}
	if v.required("nodeName", cfg.NodeName) {
		switch {
		case len(cfg.NodeName) > 64:
			v.add("nodeName", "%d characters long; a hostname has at most 64", len(cfg.NodeName))
		case !dns1123Subdomain.MatchString(cfg.NodeName):
			v.add("nodeName", "%q is not a DNS-1123 subdomain (lower-case letters, digits, '-' and '.')", cfg.NodeName)
		}
	}

	service, _ := parseNetwork(facts.ServiceCIDR)
	cluster, _ := parseNetwork(facts.ClusterCIDR)
	podCIDR := v.podCIDR(cfg.Kubernetes.PodCIDR, facts, service, cluster)
	v.wireGuard(&cfg.WireGuard, service, cluster, podCIDR)
	v.kubernetes(cfg)
}

func (v *validator) podCIDR(s string, facts ImageFacts, service, cluster netip.Prefix) netip.Prefix {
	const field = "kubernetes.podCIDR"
	if s == "" {
		if facts.PodNetwork == PodNetworkBridge {
			v.add(field, "required: the image's pod network is %q", PodNetworkBridge)
		}
		return netip.Prefix{}
	}
	p, err := parseNetwork(s)
	if err != nil {
		v.add(field, "%v", err)
		return netip.Prefix{}
	}
	if cluster.IsValid() && !(cluster.Contains(p.Addr()) && p.Bits() >= cluster.Bits()) {
		v.add(field, "%s is not inside the cluster CIDR %s", p, cluster)
	}
	if service.IsValid() && p.Overlaps(service) {
		v.add(field, "%s overlaps the service CIDR %s", p, service)
	}
	return p
}

func (v *validator) wireGuard(wg *WireGuard, service, cluster, podCIDR netip.Prefix) {
	var addr netip.Prefix
	if v.required("wireguard.address", wg.Address) {
		addr = v.address(wg.Address, service, cluster)
	}
	var ownPublic string
	if v.required("wireguard.privateKey", wg.PrivateKey) {
		if key, err := decodeKey(wg.PrivateKey); err != nil {
			v.add("wireguard.privateKey", "%v", err)
		} else if priv, err := ecdh.X25519().NewPrivateKey(key); err == nil {
			ownPublic = base64.StdEncoding.EncodeToString(priv.PublicKey().Bytes())
		}
	}
	switch {
	case wg.ListenPort == 0:
		v.add("wireguard.listenPort", "required")
	case wg.ListenPort < 1 || wg.ListenPort > 65535:
		v.add("wireguard.listenPort", "%d is not a port (1-65535)", wg.ListenPort)
	}
	type owner struct {
		field  string
		prefix netip.Prefix
	}
	var allowed []owner
	keys := map[string]int{}
	for i, p := range wg.Peers {
		f := fmt.Sprintf("wireguard.peers[%d]", i)
		if v.required(f+".publicKey", p.PublicKey) {
			if _, err := decodeKey(p.PublicKey); err != nil {
				v.add(f+".publicKey", "%v", err)
			} else if first, dup := keys[p.PublicKey]; dup {
				v.add(f+".publicKey", "the same key as wireguard.peers[%d]", first)
			} else if p.PublicKey == ownPublic {
				v.add(f+".publicKey", "is this node's own public key")
			}
			keys[p.PublicKey] = i
		}
		if p.Endpoint != "" {
			if err := checkEndpoint(p.Endpoint); err != nil {
				v.add(f+".endpoint", "%v", err)
			}
		}
		if len(p.AllowedIPs) == 0 {
			v.add(f+".allowedIPs", "required: a peer without allowed IPs gets no traffic")
		}
		for j, s := range p.AllowedIPs {
			af := fmt.Sprintf("%s.allowedIPs[%d]", f, j)
			a, err := parseNetwork(s)
			if err != nil {
				v.add(af, "%v", err)
				continue
			}
			switch {
			case addr.IsValid() && a.Contains(addr.Addr()):
				v.add(af, "%s contains this node's own address %s", a, addr.Addr())
			case podCIDR.IsValid() && a.Overlaps(podCIDR):
				v.add(af, "%s overlaps this node's podCIDR %s", a, podCIDR)
			}
			for _, o := range allowed {
				if o.prefix.Overlaps(a) {
					v.add(af, "%s overlaps %s (%s)", a, o.field, o.prefix)
					break
				}
			}
			allowed = append(allowed, owner{af, a})
		}
		if p.PersistentKeepalive < 0 || p.PersistentKeepalive > 65535 {
			v.add(f+".persistentKeepalive", "%d is not 0-65535 seconds", p.PersistentKeepalive)
		}
	}
}

func (v *validator) address(s string, service, cluster netip.Prefix) netip.Prefix {
	const field = "wireguard.address"
	p, err := netip.ParsePrefix(s)
	if err != nil {
		v.add(field, "%q is not an address in CIDR notation (e.g. 10.8.0.203/24)", s)
		return netip.Prefix{}
	}
	a := p.Addr()
	switch {
	case a.Is4In6():
		v.add(field, "write IPv4 addresses without the ::ffff: prefix")
		return netip.Prefix{}
	case a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() || a.IsLinkLocalUnicast():
		v.add(field, "%s is not a usable unicast address", a)
		return netip.Prefix{}
	case p.Bits() < a.BitLen()-1 && a == p.Masked().Addr():
		v.add(field, "%s is the network address of %s, not a host address", a, p.Masked())
		return netip.Prefix{}
	case a.Is4() && p.Bits() < 31 && a == broadcast(p):
		v.add(field, "%s is the broadcast address of %s, not a host address", a, p.Masked())
		return netip.Prefix{}
	}
	if service.IsValid() && p.Overlaps(service) {
		v.add(field, "%s overlaps the service CIDR %s", p, service)
	}
	if cluster.IsValid() && p.Overlaps(cluster) {
		v.add(field, "%s overlaps the cluster (pod) CIDR %s", p, cluster)
	}
	return p
}

func broadcast(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n |= 1<<(32-p.Bits()) - 1
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

// decodeKey decodes a base64 WireGuard key.
func decodeKey(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not base64 (a WireGuard key is 44 characters ending in '=')")
	}
	if len(b) != 32 {
		return nil, fmt.Errorf("decodes to %d bytes; a WireGuard key has 32", len(b))
	}
	return b, nil
}

func checkEndpoint(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: port %q is not 1-65535", s, port)
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if len(host) > 253 || !hostnameRE.MatchString(host) {
		return fmt.Errorf("%q: %q is neither an IP address nor a DNS name", s, host)
	}
	return nil
}

func (v *validator) kubernetes(cfg *NodeConfig) {
	k := &cfg.Kubernetes
	if v.required("kubernetes.apiServer", k.APIServer) {
		if err := checkAPIServer(k.APIServer); err != nil {
			v.add("kubernetes.apiServer", "%v", err)
		}
	}
	var roots *x509.CertPool
	if v.required("kubernetes.caCert", k.CACert) {
		cas, err := parseCerts(k.CACert)
		if err != nil {
			v.add("kubernetes.caCert", "%v", err)
		} else {
			roots = x509.NewCertPool()
			for _, c := range cas {
				roots.AddCert(c)
				v.validity("kubernetes.caCert", c)
			}
		}
	}
	nodeCert := v.certAndKey("kubernetes.nodeCert", k.NodeCert, "kubernetes.nodeKey", k.NodeKey, roots)
	if nodeCert != nil && cfg.NodeName != "" {
		want := "system:node:" + cfg.NodeName
		switch cn := nodeCert.Subject.CommonName; {
		case cn == want:
		case strings.HasPrefix(cn, "system:node:"):
			v.add("nodeName", "%q does not match the node certificate's subject CN %q", cfg.NodeName, cn)
		default:
			v.add("kubernetes.nodeCert", "subject CN is %q; a kubelet certificate needs %q", cn, want)
		}
		if !contains(nodeCert.Subject.Organization, "system:nodes") {
			v.add("kubernetes.nodeCert", "subject O is %q; a kubelet certificate needs \"system:nodes\"", nodeCert.Subject.Organization)
		}
	}

	kp := k.KubeProxy
	const f = "kubernetes.kubeProxy"
	switch {
	case kp.Kubeconfig != "" && (kp.Cert != "" || kp.Key != ""):
		v.add(f, "give either cert and key, or kubeconfig, not both")
	case kp.Kubeconfig != "":
		if err := checkKubeconfig(kp.Kubeconfig); err != nil {
			v.add(f+".kubeconfig", "%v", err)
		}
	case kp.Cert == "" && kp.Key == "":
		v.add(f, "required: either cert and key, or kubeconfig")
	default:
		v.certAndKey(f+".cert", kp.Cert, f+".key", kp.Key, roots)
	}
}

func checkAPIServer(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL", s)
	}
	switch {
	case u.Scheme != "https":
		return fmt.Errorf("%q is not an https URL", s)
	case u.Hostname() == "":
		return fmt.Errorf("%q has no host", s)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("%q must not have user info, a query or a fragment", s)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q: port %q is not 1-65535", s, p)
		}
	}
	return nil
}

// checkKubeconfig does what can be done with a kubeconfig given verbatim:
// when it is in the strict subset (or JSON), it must be a kind: Config.
func checkKubeconfig(s string) error {
	if strings.TrimSpace(s) == "" {
		return fmt.Errorf("empty")
	}
	n, err := strictyaml.Parse([]byte(s))
	if err != nil || n == nil || n.Kind != strictyaml.MappingNode {
		return nil // a richer YAML than we read: taken as is
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "kind" && n.Content[i+1].Value != "Config" {
			return fmt.Errorf("kind is %q, not Config", n.Content[i+1].Value)
		}
	}
	return nil
}

// certAndKey checks a PEM certificate (leaf first, then intermediates) and
// its key, and returns the leaf when it parsed.
func (v *validator) certAndKey(certField, certPEM, keyField, keyPEM string, roots *x509.CertPool) *x509.Certificate {
	var leaf *x509.Certificate
	var inter []*x509.Certificate
	if v.required(certField, certPEM) {
		certs, err := parseCerts(certPEM)
		if err != nil {
			v.add(certField, "%v", err)
		} else {
			leaf, inter = certs[0], certs[1:]
		}
	}
	var key crypto.Signer
	if v.required(keyField, keyPEM) {
		k, err := parseKey(keyPEM)
		if err != nil {
			v.add(keyField, "%v", err)
		} else {
			key = k
		}
	}
	if leaf == nil {
		return nil
	}
	v.validity(certField, leaf)
	if roots != nil {
		pool := x509.NewCertPool()
		for _, c := range inter {
			pool.AddCert(c)
		}
		// Verify at a time the leaf is valid, so that expiry (reported
		// above) and trust are told apart.
		at := v.now
		if at.Before(leaf.NotBefore) {
			at = leaf.NotBefore
		}
		if at.After(leaf.NotAfter) {
			at = leaf.NotAfter
		}
		_, err := leaf.Verify(x509.VerifyOptions{
			Roots: roots, Intermediates: pool, CurrentTime: at,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		})
		var unknown x509.UnknownAuthorityError
		switch {
		case errors.As(err, &unknown):
			v.add(certField, "not signed by the CA in kubernetes.caCert (issuer %q)", leaf.Issuer.String())
		case err != nil:
			v.add(certField, "does not verify against kubernetes.caCert: %v", err)
		}
	}
	if key != nil {
		pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
		if !ok || !pub.Equal(leaf.PublicKey) {
			v.add(keyField, "does not match the certificate in %s", certField)
		}
	}
	return leaf
}

func (v *validator) validity(field string, c *x509.Certificate) {
	const layout = "2006-01-02 15:04:05 UTC"
	switch {
	case v.now.Before(c.NotBefore):
		v.add(field, "certificate %q is not valid before %s", c.Subject.CommonName, c.NotBefore.UTC().Format(layout))
	case v.now.After(c.NotAfter):
		v.add(field, "certificate %q expired on %s", c.Subject.CommonName, c.NotAfter.UTC().Format(layout))
	}
}

// parseCerts parses one or more PEM certificates and nothing else.
func parseCerts(s string) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := []byte(s)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("unexpected PEM block %q; want CERTIFICATE", b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("no PEM certificate found")
	}
	if strings.TrimSpace(string(rest)) != "" {
		return nil, fmt.Errorf("unexpected text after the PEM certificates")
	}
	return certs, nil
}

// parseKey parses one PEM private key: PKCS #8, PKCS #1 (RSA) or SEC 1 (EC).
func parseKey(s string) (crypto.Signer, error) {
	b, rest := pem.Decode([]byte(s))
	if b == nil {
		return nil, fmt.Errorf("no PEM private key found")
	}
	if strings.TrimSpace(string(rest)) != "" {
		return nil, fmt.Errorf("unexpected text after the PEM private key")
	}
	if b.Type == "ENCRYPTED PRIVATE KEY" || b.Headers["Proc-Type"] != "" {
		return nil, fmt.Errorf("encrypted private keys are not supported")
	}
	var k any
	var err error
	switch b.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
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
	return signer, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
