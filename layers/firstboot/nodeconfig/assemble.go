package nodeconfig

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// DefaultListenPort is WireGuard's usual port.
const DefaultListenPort = 51820

// The file names of a cluster CA's output as the seed's CA role writes them
// (into k8s_ca_conf_directory), which AssembleOptions.CertDir holds, and
// which the image keeps in its certificate directory.
const (
	CACertFileName        = "ca-k8s-apiserver.pem"
	KubeProxyCertFileName = "cert-kube-proxy.pem"
	KubeProxyKeyFileName  = "cert-kube-proxy-key.pem"
)

// NodeCertFileName is the certificate file of a host (the seed names it
// after the inventory host; the image after the node).
func NodeCertFileName(host string) string { return "cert-" + host + ".pem" }

// NodeKeyFileName is the private key file of a host.
func NodeKeyFileName(host string) string { return "cert-" + host + "-key.pem" }

// AssembleOptions says where the parts of a node config come from.
type AssembleOptions struct {
	NodeName string
	// CertDir holds a cluster CA's output under the seed's names
	// (CACertFileName, NodeCertFileName and NodeKeyFileName of NodeName,
	// and for kube-proxy KubeProxyCertFileName and KubeProxyKeyFileName).
	// Files named below take precedence.
	CertDir                 string
	CACertFile              string
	NodeCertFile            string
	NodeKeyFile             string
	KubeProxyCertFile       string
	KubeProxyKeyFile        string
	KubeProxyKubeconfigFile string
	APIServer               string
	PodCIDR                 string
	WireGuardAddress        string
	// WireGuardKeyFile holds the base64 private key (as `wg genkey` writes).
	WireGuardKeyFile string
	// ListenPort defaults to DefaultListenPort.
	ListenPort int
	// Peers are in ParsePeer's format.
	Peers []string
}

// Assemble builds a node config from files and values. It does not
// validate the result: call Validate (and Marshal to write it).
func Assemble(opts AssembleOptions) (*NodeConfig, error) {
	cfg := &NodeConfig{
		APIVersion: APIVersion,
		Kind:       Kind,
		NodeName:   opts.NodeName,
		WireGuard: WireGuard{
			Address:    opts.WireGuardAddress,
			ListenPort: opts.ListenPort,
		},
		Kubernetes: Kubernetes{APIServer: opts.APIServer, PodCIDR: opts.PodCIDR},
	}
	if cfg.WireGuard.ListenPort == 0 {
		cfg.WireGuard.ListenPort = DefaultListenPort
	}
	inDir := func(explicit, name string) string {
		if explicit != "" || opts.CertDir == "" {
			return explicit
		}
		return filepath.Join(opts.CertDir, name)
	}
	read := func(dst *string, what, path string) error {
		if path == "" {
			return fmt.Errorf("assembling the node config: no file given for the %s", what)
		}
		b, err := ReadFile(path)
		if err != nil {
			return fmt.Errorf("assembling the node config: reading the %s %s: %w", what, path, err)
		}
		*dst = string(b)
		return nil
	}
	k := &cfg.Kubernetes
	if err := read(&k.CACert, "CA certificate", inDir(opts.CACertFile, CACertFileName)); err != nil {
		return nil, err
	}
	if err := read(&k.NodeCert, "node certificate", inDir(opts.NodeCertFile, NodeCertFileName(opts.NodeName))); err != nil {
		return nil, err
	}
	if err := read(&k.NodeKey, "node key", inDir(opts.NodeKeyFile, NodeKeyFileName(opts.NodeName))); err != nil {
		return nil, err
	}
	switch {
	case opts.KubeProxyKubeconfigFile != "":
		if err := read(&k.KubeProxy.Kubeconfig, "kube-proxy kubeconfig", opts.KubeProxyKubeconfigFile); err != nil {
			return nil, err
		}
	default:
		if err := read(&k.KubeProxy.Cert, "kube-proxy certificate", inDir(opts.KubeProxyCertFile, KubeProxyCertFileName)); err != nil {
			return nil, err
		}
		if err := read(&k.KubeProxy.Key, "kube-proxy key", inDir(opts.KubeProxyKeyFile, KubeProxyKeyFileName)); err != nil {
			return nil, err
		}
	}
	var key string
	if err := read(&key, "WireGuard private key", opts.WireGuardKeyFile); err != nil {
		return nil, err
	}
	cfg.WireGuard.PrivateKey = strings.TrimSpace(key)
	for i, s := range opts.Peers {
		p, err := ParsePeer(s)
		if err != nil {
			return nil, fmt.Errorf("assembling the node config: peer %d: %w", i+1, err)
		}
		cfg.WireGuard.Peers = append(cfg.WireGuard.Peers, p)
	}
	return cfg, nil
}

// ParsePeer parses a peer written as comma-separated key=value fields:
//
//	publicKey=KEY,endpoint=HOST:PORT,allowedIPs=CIDR,CIDR...,persistentKeepalive=SECONDS
//
// A field without '=' adds to the allowedIPs before it. Only publicKey and
// allowedIPs are required (Validate checks the values).
func ParsePeer(s string) (Peer, error) {
	var p Peer
	last := ""
	seen := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			if last != "allowedIPs" || f == "" {
				return Peer{}, fmt.Errorf("%q: field %q is not key=value", s, f)
			}
			p.AllowedIPs = append(p.AllowedIPs, f)
			continue
		}
		if seen[k] {
			return Peer{}, fmt.Errorf("%q: %s given twice", s, k)
		}
		seen[k] = true
		last = k
		switch k {
		case "publicKey":
			p.PublicKey = v
		case "endpoint":
			p.Endpoint = v
		case "allowedIPs":
			if v != "" {
				p.AllowedIPs = append(p.AllowedIPs, v)
			}
		case "persistentKeepalive":
			n, err := strconv.Atoi(v)
			if err != nil {
				return Peer{}, fmt.Errorf("%q: persistentKeepalive %q is not a number of seconds", s, v)
			}
			p.PersistentKeepalive = n
		default:
			return Peer{}, fmt.Errorf("%q: unknown field %q (want publicKey, endpoint, allowedIPs, persistentKeepalive)", s, k)
		}
	}
	if p.PublicKey == "" {
		return Peer{}, fmt.Errorf("%q: publicKey is required", s)
	}
	return p, nil
}
