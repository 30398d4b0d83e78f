package nodeconfig

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

var (
	dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	hostnameRE       = regexp.MustCompile(`^(?i)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*\.?$`)
	zoneRE           = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)
)

// Load parses and validates a node config at time now against the image's
// facts: what the first-boot program and `nodebake node check` both do. The
// error is Problems in document order: each problem carries its field's
// line, and problems of absent fields follow those of present ones in the
// order of the format, so that the first problem is the first cause in the
// document rather than a consequence of it (a truncated config shows the
// truncated field first, not the fields missing after it).
func Load(data []byte, facts ImageFacts, now time.Time) (*NodeConfig, error) {
	cfg, lines, err := parse(data)
	if err != nil {
		return nil, err
	}
	v := &validator{now: now, lines: lines}
	v.config(cfg, facts)
	if probs := v.probs.result(); len(probs) > 0 {
		return nil, probs
	}
	return cfg, nil
}

// Validate checks cfg against the image's facts at time now and returns
// every problem as Problems (nil when there are none), in the order of the
// format's fields. Zero facts skip the checks that need them (CIDR clashes,
// podCIDR requirement).
func Validate(cfg *NodeConfig, facts ImageFacts, now time.Time) error {
	v := &validator{now: now}
	v.config(cfg, facts)
	if probs := v.probs.result(); len(probs) > 0 {
		return probs
	}
	return nil
}

type validator struct {
	now time.Time
	// lines gives the document line of each field, when known.
	lines *fieldLines
	probs collector
}

func (v *validator) add(field, format string, args ...any) {
	v.probs.add(Problem{Field: field, Message: fmt.Sprintf(format, args...), Line: v.line(field)})
}

// kubeProxyKubeconfigField is the field whose fields are a document of
// their own.
const kubeProxyKubeconfigField = "kubernetes.kubeProxy.kubeconfig"

// line returns the document line of a field: its own, or for the fields of
// the kubeconfig inside the node config, the kubeconfig's; 0 for fields
// that are absent.
func (v *validator) line(field string) int {
	if l, ok := v.lines.line(field); ok {
		return l
	}
	if strings.HasPrefix(field, kubeProxyKubeconfigField+".") {
		l, _ := v.lines.line(kubeProxyKubeconfigField)
		return l
	}
	return 0
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
	v.probs.ordered = v.lines != nil
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
	// The pod CIDR is needed by the WireGuard checks; its own problems are
	// reported in its place, last.
	podCIDR, podProblems := podCIDR(cfg.Kubernetes.PodCIDR, facts, service, cluster)
	v.wireGuard(&cfg.WireGuard, service, cluster, podCIDR)
	v.kubernetes(cfg)
	for _, msg := range podProblems {
		v.add("kubernetes.podCIDR", "%s", msg)
	}
}

func podCIDR(s string, facts ImageFacts, service, cluster netip.Prefix) (netip.Prefix, []string) {
	if s == "" {
		if facts.PodNetwork == PodNetworkBridge {
			return netip.Prefix{}, []string{fmt.Sprintf("required: the image's pod network is %q", PodNetworkBridge)}
		}
		return netip.Prefix{}, nil
	}
	p, err := parseNetwork(s)
	if err != nil {
		return netip.Prefix{}, []string{err.Error()}
	}
	var probs []string
	if cluster.IsValid() && !(cluster.Contains(p.Addr()) && p.Bits() >= cluster.Bits()) {
		probs = append(probs, fmt.Sprintf("%s is not inside the cluster CIDR %s", p, cluster))
	}
	if service.IsValid() && p.Overlaps(service) {
		probs = append(probs, fmt.Sprintf("%s overlaps the service CIDR %s", p, service))
	}
	return p, probs
}

// allowedIP is one peer's allowed network, with its place.
type allowedIP struct {
	prefix     netip.Prefix
	peer, item int
	index      int // in document order
}

func (a allowedIP) field() string {
	return fmt.Sprintf("wireguard.peers[%d].allowedIPs[%d]", a.peer, a.item)
}

func (v *validator) wireGuard(wg *WireGuard, service, cluster, podCIDR netip.Prefix) {
	var addr netip.Prefix
	if v.required("wireguard.address", wg.Address) {
		addr = v.address(wg.Address, service, cluster)
	}
	var ownPublic WireGuardKey
	haveOwn := false
	if v.required("wireguard.privateKey", wg.PrivateKey) {
		key, err := ParseWireGuardKey(wg.PrivateKey)
		if err == nil {
			err = key.CheckPrivateKey()
		}
		if err != nil {
			v.add("wireguard.privateKey", "%v", err)
		} else {
			ownPublic, haveOwn = key.PublicKey(), true
		}
	}
	switch {
	case wg.ListenPort == 0:
		v.add("wireguard.listenPort", "required")
	case wg.ListenPort < 1 || wg.ListenPort > 65535:
		v.add("wireguard.listenPort", "%d is not a port (1-65535)", wg.ListenPort)
	}
	var allowed []allowedIP
	keys := map[WireGuardKey]int{}
	for i, p := range wg.Peers {
		f := fmt.Sprintf("wireguard.peers[%d]", i)
		if v.required(f+".publicKey", p.PublicKey) {
			key, err := ParseWireGuardKey(p.PublicKey)
			if err == nil {
				err = key.CheckPublicKey()
			}
			if err != nil {
				v.add(f+".publicKey", "%v", err)
			} else if first, dup := keys[key]; dup {
				v.add(f+".publicKey", "the same key as wireguard.peers[%d]", first)
			} else {
				keys[key] = i
				if haveOwn && key == ownPublic {
					v.add(f+".publicKey", "is this node's own public key (from wireguard.privateKey)")
				}
			}
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
			ai := allowedIP{peer: i, item: j, index: len(allowed)}
			a, err := parseNetwork(s)
			if err != nil {
				v.add(ai.field(), "%v", err)
				continue
			}
			switch {
			case addr.IsValid() && a.Contains(addr.Addr()):
				v.add(ai.field(), "%s contains this node's own address %s", a, addr.Addr())
			case podCIDR.IsValid() && a.Overlaps(podCIDR):
				v.add(ai.field(), "%s overlaps this node's podCIDR %s", a, podCIDR)
			}
			ai.prefix = a
			allowed = append(allowed, ai)
		}
		if p.PersistentKeepalive < 0 || p.PersistentKeepalive > 65535 {
			v.add(f+".persistentKeepalive", "%d is not 0-65535 seconds", p.PersistentKeepalive)
		}
	}
	v.overlaps(allowed)
}

// overlaps reports allowed networks that overlap, in O(n log n): two
// prefixes overlap exactly when one contains the other, so after sorting by
// first address (wider prefixes first on ties), a prefix overlaps an
// earlier one exactly when the last prefix not inside another contains it.
// Each problem names the entry later in the document and the one it
// overlaps.
func (v *validator) overlaps(allowed []allowedIP) {
	sorted := slices.Clone(allowed)
	slices.SortFunc(sorted, func(a, b allowedIP) int {
		if c := a.prefix.Addr().Compare(b.prefix.Addr()); c != 0 {
			return c
		}
		return a.prefix.Bits() - b.prefix.Bits()
	})
	type pair struct{ later, earlier allowedIP }
	var found []pair
	var top *allowedIP
	for i := range sorted {
		a := &sorted[i]
		if top == nil || !top.prefix.Contains(a.prefix.Addr()) {
			top = a
			continue
		}
		if a.index > top.index {
			found = append(found, pair{*a, *top})
		} else {
			found = append(found, pair{*top, *a})
		}
	}
	slices.SortStableFunc(found, func(x, y pair) int { return x.later.index - y.later.index })
	for _, p := range found {
		v.add(p.later.field(), "%s overlaps %s (%s)", p.later.prefix, p.earlier.field(), p.earlier.prefix)
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

func checkEndpoint(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return fmt.Errorf("%q: port %q is not 1-65535", s, port)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if z := a.Zone(); z != "" && !zoneRE.MatchString(z) {
			return fmt.Errorf("%q: zone %q is not an interface name", s, z)
		}
		return nil
	}
	if len(host) > 253 || !hostnameRE.MatchString(host) {
		return fmt.Errorf("%q: %q is neither an IP address nor a DNS name", s, host)
	}
	return nil
}

// credential is a client certificate (leaf first, then intermediates) and
// its private key, as parsed.
type credential struct {
	certField, keyField string
	leaf                *x509.Certificate
	intermediates       []*x509.Certificate
	key                 crypto.Signer
}

// parseCredential parses a certificate and key, reporting what does not
// parse; the result's leaf or key is nil when it did not.
func (v *validator) parseCredential(certField, certPEM, keyField, keyPEM string) *credential {
	c := &credential{certField: certField, keyField: keyField}
	if v.required(certField, certPEM) {
		certs, err := parseCerts(certPEM)
		if err != nil {
			v.add(certField, "%v", err)
		} else {
			c.leaf, c.intermediates = certs[0], certs[1:]
		}
	}
	if v.required(keyField, keyPEM) {
		k, err := parseKey(keyPEM)
		if err != nil {
			v.add(keyField, "%v", err)
		} else {
			c.key = k
		}
	}
	return c
}

// checkCredential checks a client credential: a leaf (not a CA) for client
// authentication, valid now, signed by roots (when known), matching its key.
func (v *validator) checkCredential(c *credential, roots *x509.CertPool) {
	if c.leaf == nil {
		return
	}
	leaf := c.leaf
	if err := checkClientLeaf(leaf); err != nil {
		v.add(c.certField, "certificate %q %v", leaf.Subject.CommonName, err)
	}
	v.validity(c.certField, leaf)
	if roots != nil {
		pool := x509.NewCertPool()
		for _, i := range c.intermediates {
			pool.AddCert(i)
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
			v.add(c.certField, "not signed by the CA in kubernetes.caCert (issuer %q)", leaf.Issuer.String())
		case err != nil:
			v.add(c.certField, "does not verify against kubernetes.caCert: %v", err)
		}
	}
	if c.key != nil {
		pub, ok := c.key.Public().(interface{ Equal(crypto.PublicKey) bool })
		if !ok || !pub.Equal(leaf.PublicKey) {
			v.add(c.keyField, "does not match the certificate in %s", c.certField)
		}
	}
}

func (v *validator) kubernetes(cfg *NodeConfig) {
	k := &cfg.Kubernetes
	if v.required("kubernetes.apiServer", k.APIServer) {
		if err := checkAPIServer(k.APIServer); err != nil {
			v.add("kubernetes.apiServer", "%v", err)
		}
	}

	// Everything is parsed first, so that each certificate can be checked
	// against the others' roles; problems are then reported field by field.
	var cas []*x509.Certificate
	var caErr error
	caSet := v.required("kubernetes.caCert", k.CACert)
	if caSet {
		cas, caErr = parseCerts(k.CACert)
	}
	node := v.parseCredential("kubernetes.nodeCert", k.NodeCert, "kubernetes.nodeKey", k.NodeKey)
	proxy, proxyCA := v.kubeProxyCredential(k)

	var roots *x509.CertPool
	if caErr != nil {
		v.add("kubernetes.caCert", "%v", caErr)
	} else if caSet {
		ok := true
		for _, ca := range cas {
			if err := v.checkCACert(ca, node, proxy); err != nil {
				v.add("kubernetes.caCert", "%v", err)
				ok = false
			}
			v.validity("kubernetes.caCert", ca)
		}
		if ok { // a CA with problems vouches for nothing
			roots = x509.NewCertPool()
			for _, ca := range cas {
				roots.AddCert(ca)
			}
		}
	}

	v.checkCredential(node, roots)
	if node.leaf != nil && cfg.NodeName != "" {
		want := NodeUserPrefix + cfg.NodeName
		if cn := node.leaf.Subject.CommonName; cn != want && strings.HasPrefix(cn, NodeUserPrefix) && len(commonNames(node.leaf)) == 1 {
			// The certificate is some node's: which one is wrong is for
			// the user to say; its groups are checked all the same.
			v.add("nodeName", "%q does not match the node certificate's subject CN %q", cfg.NodeName, cn)
			want = cn
		}
		if err := checkSubject(node.leaf, want, []string{NodesGroup}, true); err != nil {
			v.add(node.certField, "%v", err)
		}
	}

	if proxy == nil {
		return
	}
	if proxyCA != nil && cas != nil && !sameCerts(proxyCA.certs, cas) {
		v.add(proxyCA.field, "does not match kubernetes.caCert")
	}
	v.checkCredential(proxy, roots)
	if l := proxy.leaf; l != nil {
		switch {
		case node.leaf != nil && bytes.Equal(l.Raw, node.leaf.Raw):
			v.add(proxy.certField, "is the node certificate (kubernetes.nodeCert); kube-proxy needs its own certificate, CN %s", KubeProxyUser)
		case node.leaf != nil && samePublicKey(l, node.leaf):
			v.add(proxy.certField, "has the same key as the node certificate (kubernetes.nodeCert); kube-proxy needs its own key")
		default:
			if err := checkSubject(l, KubeProxyUser, []string{KubeProxyGroup}, false); err != nil {
				v.add(proxy.certField, "%v", err)
			}
		}
	}
}

// caBundle is a kubeconfig's certificate-authority-data, parsed.
type caBundle struct {
	field string
	certs []*x509.Certificate
}

// kubeProxyCredential parses kube-proxy's certificate and key, given
// directly or in a kubeconfig (whose structure it checks), and the
// kubeconfig's CA. It returns nil when there is nothing to check.
func (v *validator) kubeProxyCredential(k *Kubernetes) (*credential, *caBundle) {
	kp := k.KubeProxy
	const f = "kubernetes.kubeProxy"
	switch {
	case kp.Kubeconfig != "" && (kp.Cert != "" || kp.Key != ""):
		v.add(f, "give either cert and key, or kubeconfig, not both")
		return nil, nil
	case kp.Kubeconfig != "":
		const kf = kubeProxyKubeconfigField
		kc, err := ParseKubeconfig(kp.Kubeconfig, kf)
		var probs Problems
		if errors.As(err, &probs) {
			for _, p := range probs {
				if p.Line == 0 {
					p.Line = v.line(p.Field)
				}
				v.probs.add(p)
			}
			return nil, nil
		}
		creds, ok := kc.credentials(kf, v.add)
		if !ok {
			return nil, nil
		}
		ca := &caBundle{field: kf + ".clusters[0].cluster.certificate-authority-data"}
		if certs, err := parseCerts(creds.caPEM); err != nil {
			v.add(ca.field, "%v", err)
			ca = nil
		} else {
			ca.certs = certs
		}
		u := kf + ".users[0].user."
		return v.parseCredential(u+"client-certificate-data", creds.certPEM, u+"client-key-data", creds.keyPEM), ca
	case kp.Cert == "" && kp.Key == "":
		v.add(f, "required: either cert and key, or kubeconfig")
		return nil, nil
	}
	return v.parseCredential(f+".cert", kp.Cert, f+".key", kp.Key), nil
}

// checkCACert checks one certificate of kubernetes.caCert: not one of the
// client certificates, not sharing their keys, a CA.
func (v *validator) checkCACert(ca *x509.Certificate, clients ...*credential) error {
	for _, c := range clients {
		if c == nil || c.leaf == nil {
			continue
		}
		if bytes.Equal(ca.Raw, c.leaf.Raw) {
			return fmt.Errorf("holds the certificate of %s, not the CA that signed it", c.certField)
		}
		if samePublicKey(ca, c.leaf) {
			return fmt.Errorf("CA certificate %q has the same key as %s: a client must not hold the CA's key", ca.Subject.CommonName, c.certField)
		}
	}
	return checkCA(ca)
}

// sameCerts reports whether a and b hold the same certificates.
func sameCerts(a, b []*x509.Certificate) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.ContainsFunc(b, func(y *x509.Certificate) bool { return bytes.Equal(x.Raw, y.Raw) }) {
			return false
		}
	}
	return true
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
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return fmt.Errorf("%q must not have user info, a query or a fragment", s)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q: port %q is not 1-65535", s, p)
		}
	}
	if _, err := apiServerAddr(u.Hostname()); err != nil {
		return fmt.Errorf("%q: %w", s, err)
	}
	return nil
}

// validity checks that c is valid at the time checked. Its problems are
// KindValidity: nothing else depends on that time.
func (v *validator) validity(field string, c *x509.Certificate) {
	const layout = "2006-01-02 15:04:05 UTC"
	var msg string
	switch {
	case v.now.Before(c.NotBefore):
		msg = fmt.Sprintf("certificate %q is not valid before %s", c.Subject.CommonName, c.NotBefore.UTC().Format(layout))
	case v.now.After(c.NotAfter):
		msg = fmt.Sprintf("certificate %q expired on %s", c.Subject.CommonName, c.NotAfter.UTC().Format(layout))
	default:
		return
	}
	v.probs.add(Problem{Field: field, Message: msg, Line: v.line(field), Kind: KindValidity})
}

// order is a problem's place when problems are put in document order:
// its line, and after every line for fields without one.
func order(p Problem) int {
	if p.Line > 0 {
		return p.Line
	}
	return math.MaxInt
}

// sortProblems puts problems in document order, keeping the order of
// problems on one line.
func sortProblems(ps Problems) {
	sort.SliceStable(ps, func(i, j int) bool { return order(ps[i]) < order(ps[j]) })
}
