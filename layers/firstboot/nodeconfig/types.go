// Package nodeconfig is the node config: the per-node data (WireGuard wg0,
// certificates, API server) that the first-boot program fills into an
// image. It parses the strict, versioned YAML (or JSON) format, validates
// it against the image's facts, writes it back canonically and assembles
// it from the files a cluster's CA produced. Standard library only.
package nodeconfig

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// APIVersion and Kind identify a node config document.
const (
	APIVersion = "nodebake.io/v1alpha1"
	Kind       = "NodeConfig"
)

// NodeConfig is one node's config.
type NodeConfig struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	NodeName   string     `json:"nodeName"`
	WireGuard  WireGuard  `json:"wireguard"`
	Kubernetes Kubernetes `json:"kubernetes"`
}

// WireGuard is the node's wg0 interface.
type WireGuard struct {
	// Address is wg0's address in CIDR notation, e.g. 10.8.0.203/24.
	Address string `json:"address"`
	// PrivateKey is the base64 of the 32-byte private key.
	PrivateKey string `json:"privateKey"`
	ListenPort int    `json:"listenPort,omitempty"`
	Peers      []Peer `json:"peers,omitempty"`
}

// Peer is another WireGuard node.
type Peer struct {
	// PublicKey is the base64 of the peer's 32-byte public key.
	PublicKey string `json:"publicKey"`
	// Endpoint is host:port, the host an IP address or a DNS name.
	Endpoint   string   `json:"endpoint,omitempty"`
	AllowedIPs []string `json:"allowedIPs,omitempty"`
	// PersistentKeepalive is in seconds; 0 turns it off.
	PersistentKeepalive int `json:"persistentKeepalive,omitempty"`
}

// Kubernetes is the node's cluster credentials.
type Kubernetes struct {
	// APIServer is the https URL of the API server.
	APIServer string `json:"apiServer"`
	// CACert is the PEM of the cluster CA (the seed's ca-k8s-apiserver.pem).
	CACert string `json:"caCert"`
	// NodeCert and NodeKey are the kubelet's PEM certificate (CN
	// system:node:<nodeName>, O system:nodes) and private key.
	NodeCert  string    `json:"nodeCert"`
	NodeKey   string    `json:"nodeKey"`
	KubeProxy KubeProxy `json:"kubeProxy"`
	// PodCIDR is this node's pod range, inside the cluster CIDR; required
	// when the image's pod network is "bridge".
	PodCIDR string `json:"podCIDR,omitempty"`
}

// KubeProxy is kube-proxy's credentials: either Cert and Key, or a whole
// Kubeconfig.
type KubeProxy struct {
	Cert       string `json:"cert,omitempty"`
	Key        string `json:"key,omitempty"`
	Kubeconfig string `json:"kubeconfig,omitempty"`
}

// Problem is one thing wrong with a node config, named by its field path
// (e.g. "wireguard.peers[0].publicKey").
type Problem struct {
	Field   string `json:"field"`
	Message string `json:"error"`
	// Line is the document line the field is on, when known.
	Line int `json:"line,omitempty"`
	// Kind is set on the problems a caller may need to tell apart.
	Kind ProblemKind `json:"kind,omitempty"`
}

// ProblemKind tells apart the problems a caller treats differently; most
// problems have none.
type ProblemKind string

// KindValidity marks a certificate that is not valid at the time it was
// checked: not yet valid, or expired. It is the only problem that depends
// on that time, and so the only one a wrong system clock can cause.
const KindValidity ProblemKind = "validity"

// String is the problem as one line: control characters that came from
// the input (a key, a name in a certificate) are escaped.
func (p Problem) String() string {
	msg := oneLine(p.Message)
	if p.Line > 0 {
		msg = fmt.Sprintf("%s (line %d)", msg, p.Line)
	}
	if p.Field == "" {
		return msg
	}
	return oneLine(p.Field) + ": " + msg
}

// oneLine escapes the control characters of s (line breaks among them).
func oneLine(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Problems is every problem found; it is the error type of Parse and
// Validate.
type Problems []Problem

func (ps Problems) Error() string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, "; ")
}
