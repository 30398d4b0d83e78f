package ansible

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdh"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nodebake/nodebake/builder/ansible/inventory"
	"github.com/nodebake/nodebake/builder/ansible/jinja"
	"github.com/nodebake/nodebake/layers/configdrive"
	"github.com/nodebake/nodebake/layers/firstboot"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
	"github.com/nodebake/nodebake/layers/worker"
)

// maxKeyFile bounds a WireGuard key file; maxCertFile a certificate read
// for its name.
const (
	maxKeyFile  = 1 << 10
	maxCertFile = 1 << 20
)

// wgHost is one host of the VPN as the WireGuard role sees it.
type wgHost struct {
	host     string
	sc       *scope
	isWorker bool
	addrs    []netip.Prefix
	// endpoint is where peers reach the host ("" with hasEndpoint false:
	// it has none).
	endpoint    string
	hasEndpoint bool
	port        int
	keepalive   int
	// allowed is wireguard_allowed_ips, when set.
	allowed []string
	podCIDR string
	priv    []byte
	pub     []byte
	// keyFile is a file holding the private key; keyNote says where the
	// key came from.
	keyFile, keyNote string
	unmanaged        []nodeconfig.Peer
	unmanagedNames   []string
}

// nodeResult is one worker's node config.
type nodeResult struct {
	host, name string
	cfg        *nodeconfig.NodeConfig
	yaml       []byte
	peers      []string
	omitted    []string
	keyNote    string
	files      []string
}

// hv evaluates a host's variable, refusing it on error; ok is false when
// it is not set or failed.
func (im *importer) hv(h *wgHost, name string) (any, bool) {
	if !h.sc.has(name) {
		return nil, false
	}
	v, err := h.sc.eval(name)
	if err != nil {
		im.evalErr(name, h.sc.source(name), h.host, err)
		return nil, false
	}
	return v, true
}

func (im *importer) hostRefuse(h *wgHost, name, format string, args ...any) {
	im.probs.add(name, h.sc.source(name), h.host, format, args...)
	im.setEntry(name, Refused, fmt.Sprintf(format, args...))
}

// intVar reads a number given as a number or a numeric string.
func (im *importer) intVar(h *wgHost, name string, lo, hi int) (int, bool) {
	v, ok := im.hv(h, name)
	if !ok {
		return 0, false
	}
	var n int64
	switch x := v.(type) {
	case int64:
		n = x
	case string:
		var err error
		if n, err = strconv.ParseInt(strings.TrimSpace(x), 10, 64); err != nil {
			im.hostRefuse(h, name, "%q is not a number", x)
			return 0, false
		}
	default:
		im.hostRefuse(h, name, "wrong type: want a number, got %s", jinja.Describe(v))
		return 0, false
	}
	if n < int64(lo) || n > int64(hi) {
		im.hostRefuse(h, name, "%d is out of range %d-%d", n, lo, hi)
		return 0, false
	}
	return int(n), true
}

// wgHosts reads every VPN host's WireGuard variables.
func (im *importer) wgHosts() []*wgHost {
	workers := map[string]bool{}
	for _, w := range im.workers {
		workers[w] = true
	}
	inVPN := map[string]bool{}
	for _, h := range im.vpn {
		inVPN[h] = true
	}
	for _, w := range im.workers {
		if !inVPN[w] {
			im.probs.add("wireguard_address", im.tree.Inventory.HostSource(w), w, "the worker is not in the %s group, so it has no WireGuard address and no peers", im.opts.VPNGroup)
		}
	}
	var out []*wgHost
	for _, host := range im.vpn {
		h := &wgHost{host: host, sc: im.ev.scope(host, false), isWorker: workers[host]}
		addrs, err := wireguardAddresses(h.sc)
		switch {
		case err != nil:
			name := "wireguard_address"
			if strings.HasPrefix(err.Error(), "wireguard_addresses") {
				name = "wireguard_addresses"
			}
			im.probs.add(name, h.sc.source(name), host, "%s", strings.TrimPrefix(err.Error(), name+": "))
			im.setEntry(name, Refused, err.Error())
		case len(addrs) == 0:
			im.probs.add("wireguard_address", im.tree.Inventory.HostSource(host), host, "the host has no WireGuard address: set wireguard_address or wireguard_addresses (the role requires one)")
			im.setEntry("wireguard_address", Refused, "a host has none")
		}
		h.addrs = addrs
		h.port = nodeconfig.DefaultListenPort
		if p, ok := im.intVar(h, "wireguard_port", 1, 65535); ok {
			h.port = p
		}
		h.endpoint, h.hasEndpoint = host, true
		if v, ok := im.hv(h, "wireguard_endpoint"); ok {
			s, isStr := v.(string)
			switch {
			case v == nil || isStr && s == "":
				h.endpoint, h.hasEndpoint = "", false
			case isStr:
				h.endpoint = s
			default:
				im.hostRefuse(h, "wireguard_endpoint", "wrong type: want a host name or address, got %s", jinja.Describe(v))
			}
		}
		if k, ok := im.intVar(h, "wireguard_persistent_keepalive", 0, 65535); ok {
			h.keepalive = k
		}
		if v, ok := im.hv(h, "wireguard_allowed_ips"); ok {
			switch x := v.(type) {
			case string:
				for _, f := range strings.Split(x, ",") {
					if f = strings.TrimSpace(f); f != "" {
						h.allowed = append(h.allowed, f)
					}
				}
			case []any:
				for _, it := range x {
					s, isStr := it.(string)
					if !isStr {
						im.hostRefuse(h, "wireguard_allowed_ips", "wrong type: want networks, got %s", jinja.Describe(it))
						break
					}
					h.allowed = append(h.allowed, s)
				}
			default:
				im.hostRefuse(h, "wireguard_allowed_ips", "wrong type: want networks like \"10.8.0.1/32, 10.200.1.0/24\", got %s", jinja.Describe(v))
			}
		}
		if v, ok := im.hv(h, PodCIDRVar); ok {
			s, isStr := v.(string)
			if p, err := netip.ParsePrefix(s); !isStr || err != nil || p.Masked() != p {
				im.hostRefuse(h, PodCIDRVar, "want a network like 10.200.1.0/24, got %s", jinja.Describe(v))
			} else if !h.isWorker {
				im.decide(PodCIDRVar, "%s sets it, but it is not a worker: its peers route the network over wg0 to it", host)
				h.podCIDR = s
			} else {
				h.podCIDR = s
			}
		}
		if h.isWorker {
			if v, ok := im.hv(h, "wireguard_interface"); ok && v != firstboot.WireGuardInterface {
				im.hostRefuse(h, "wireguard_interface", "%s: first boot configures %s", show(v), firstboot.WireGuardInterface)
			}
			if len(addrs) > 1 {
				im.hostRefuse(h, "wireguard_addresses", "%d addresses: a node config gives wg0 one address", len(addrs))
			}
			im.unmanagedPeers(h)
		}
		out = append(out, h)
	}
	// Two hosts with one address.
	seen := map[netip.Addr]string{}
	for _, h := range out {
		for _, a := range h.addrs {
			if other, dup := seen[a.Addr()]; dup {
				name := "wireguard_address"
				if h.sc.has("wireguard_addresses") {
					name = "wireguard_addresses"
				}
				im.probs.add(name, h.sc.source(name), h.host, "%s has the same WireGuard address as %s (%s); every host needs its own", h.host, other, a.Addr())
				im.setEntry(name, Refused, "two hosts have the same address")
				continue
			}
			seen[a.Addr()] = h.host
		}
	}
	return out
}

// unmanagedPeers reads wireguard_unmanaged_peers: peers that are not in
// the inventory.
func (im *importer) unmanagedPeers(h *wgHost) {
	const name = "wireguard_unmanaged_peers"
	v, ok := im.hv(h, name)
	if !ok {
		return
	}
	m, isMap := v.(map[string]any)
	if !isMap {
		im.hostRefuse(h, name, "wrong type: want a mapping of peer names to their settings, got %s", jinja.Describe(v))
		return
	}
	for _, peer := range sortedKeys(m) {
		pm, isMap := m[peer].(map[string]any)
		if !isMap {
			im.hostRefuse(h, name, "%s: want a mapping with public_key, allowed_ips, endpoint, persistent_keepalive", peer)
			continue
		}
		var p nodeconfig.Peer
		for _, k := range sortedKeys(pm) {
			val := pm[k]
			s, _ := plainString(val)
			switch k {
			case "public_key":
				p.PublicKey = s
			case "allowed_ips":
				items := []any{val}
				if l, isList := val.([]any); isList {
					items = l
				}
				for _, it := range items {
					str, isStr := it.(string)
					if !isStr {
						im.hostRefuse(h, name, "%s: allowed_ips: want networks, got %s", peer, jinja.Describe(it))
						continue
					}
					for _, f := range strings.Split(str, ",") {
						if f = strings.TrimSpace(f); f != "" {
							p.AllowedIPs = append(p.AllowedIPs, f)
						}
					}
				}
			case "endpoint":
				p.Endpoint = s
			case "persistent_keepalive":
				n, err := strconv.Atoi(s)
				if err != nil {
					im.hostRefuse(h, name, "%s: persistent_keepalive %s is not a number", peer, show(val))
				}
				p.PersistentKeepalive = n
			case "preshared_key":
				im.hostRefuse(h, name, "%s: preshared_key: a node config has no preshared keys", peer)
			default:
				im.hostRefuse(h, name, "%s: unknown setting %q (want public_key, allowed_ips, endpoint, persistent_keepalive)", peer, k)
			}
		}
		h.unmanaged = append(h.unmanaged, p)
		h.unmanagedNames = append(h.unmanagedNames, peer)
	}
}

// keys finds or makes every VPN host's key pair. New private keys are
// staged (0600), with their public keys (0644).
func (im *importer) keys(hosts []*wgHost, st *stager) error {
	dir := im.opts.KeyDir
	for _, h := range hosts {
		keyPath := filepath.Join(dir, h.host+".key")
		pubPath := filepath.Join(dir, h.host+".pub")
		var filePriv, filePub []byte
		keySrc, pubSrc := inventory.Source{File: keyPath}, inventory.Source{File: pubPath}
		if b, err := readKeyFile(keyPath); err != nil {
			im.probs.add("wireguard_private_key", keySrc, h.host, "%v", err)
			continue
		} else if b != nil {
			filePriv = b
		}
		if b, err := readKeyFile(pubPath); err != nil {
			im.probs.add("wireguard_private_key", pubSrc, h.host, "%v", err)
			continue
		} else if b != nil {
			filePub = b
		}
		if v, ok := im.hv(h, "wireguard_private_key"); ok {
			s, isStr := v.(string)
			b, err := decodeKey(s)
			if !isStr || err != nil {
				im.hostRefuse(h, "wireguard_private_key", "not a WireGuard key (base64 of 32 bytes)")
				continue
			}
			if filePriv != nil && !bytes.Equal(filePriv, b) {
				im.hostRefuse(h, "wireguard_private_key", "differs from the key in %s", im.rel(keyPath))
				continue
			}
			h.priv, h.keyNote = b, "wireguard_private_key"
		} else if filePriv != nil {
			h.priv, h.keyFile, h.keyNote = filePriv, keyPath, im.rel(keyPath)
			if fi, err := os.Stat(keyPath); err == nil && fi.Mode().Perm()&0o077 != 0 {
				im.decide("wireguard_private_key", "%s is readable by others (mode %04o): chmod 600 it", im.rel(keyPath), fi.Mode().Perm())
			}
		}
		if h.priv != nil {
			priv, err := ecdh.X25519().NewPrivateKey(h.priv)
			if err != nil {
				im.probs.add("wireguard_private_key", keySrc, h.host, "the private key: %v", err)
				continue
			}
			h.pub = priv.PublicKey().Bytes()
			if filePub != nil && !bytes.Equal(filePub, h.pub) {
				im.probs.add("wireguard_private_key", pubSrc, h.host, "%s does not hold the public key of the host's private key", im.rel(pubPath))
				continue
			}
			if filePub == nil {
				if _, err := st.add(pubPath, []byte(base64.StdEncoding.EncodeToString(h.pub)+"\n"), 0o644); err != nil {
					return err
				}
			}
			continue
		}
		if filePub != nil {
			if h.isWorker {
				im.probs.add("wireguard_private_key", pubSrc, h.host, "only a public key (%s): a worker's node config needs its private key (%s)", im.rel(pubPath), im.rel(keyPath))
				continue
			}
			h.pub, h.keyNote = filePub, "public key from "+im.rel(pubPath)
			continue
		}
		// A new key pair, as wg genkey makes it.
		b := make([]byte, 32)
		if _, err := io.ReadFull(im.opts.Rand, b); err != nil {
			return fmt.Errorf("generating a WireGuard key for %s: %w", h.host, err)
		}
		b[0] &= 248
		b[31] = b[31]&127 | 64
		priv, err := ecdh.X25519().NewPrivateKey(b)
		if err != nil {
			return fmt.Errorf("generating a WireGuard key for %s: %w", h.host, err)
		}
		h.priv, h.pub = b, priv.PublicKey().Bytes()
		tmp, err := st.add(keyPath, []byte(base64.StdEncoding.EncodeToString(b)+"\n"), 0o600)
		if err != nil {
			return err
		}
		h.keyFile, h.keyNote = tmp, "generated: "+im.rel(keyPath)
		if _, err := st.add(pubPath, []byte(base64.StdEncoding.EncodeToString(h.pub)+"\n"), 0o644); err != nil {
			return err
		}
		if !h.isWorker {
			im.decide("wireguard_private_key", "%s has a new WireGuard key (%s), which its running wg0 does not have yet: give it to the host (as its wireguard_private_key, then run the wireguard role) or put its current public key in %s and import again", h.host, im.rel(keyPath), im.rel(pubPath))
		}
	}
	// Two hosts with one key.
	seen := map[string]string{}
	for _, h := range hosts {
		if h.pub == nil {
			continue
		}
		k := string(h.pub)
		if other, dup := seen[k]; dup {
			src := inventory.Source{File: filepath.Join(dir, h.host+".key")}
			if h.keyNote == "wireguard_private_key" {
				src = h.sc.source("wireguard_private_key")
			}
			im.probs.add("wireguard_private_key", src, h.host, "%s has the same WireGuard key as %s; every host needs its own", h.host, other)
			continue
		}
		seen[k] = h.host
	}
	return nil
}

// readKeyFile reads a base64 WireGuard key file; nil when there is none.
func readKeyFile(p string) ([]byte, error) {
	fi, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || fi.Size() > maxKeyFile {
		return nil, fmt.Errorf("%s: not a key file (a regular file of one base64 key)", p)
	}
	b, err := nodeconfig.ReadRegularFile(p, maxKeyFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	k, err := decodeKey(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("%s: %v", p, err)
	}
	return k, nil
}

func decodeKey(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != 32 {
		return nil, fmt.Errorf("not a WireGuard key (base64 of 32 bytes)")
	}
	return b, nil
}

// rel names a path for the report: relative to the output directory when
// inside it.
func (im *importer) rel(p string) string {
	if r, err := filepath.Rel(im.opts.OutputDir, p); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}

// apiServer returns the API server URL: the option, else the first
// controller's wg0 address and k8s_apiserver_secure_port.
func (im *importer) apiServer(hosts map[string]*wgHost) (string, bool) {
	if im.opts.APIServer != "" {
		return im.opts.APIServer, true
	}
	if len(im.controllers) == 0 {
		im.probs.add("", inventory.Source{File: im.opts.Inventory}, "", "no API server: the inventory has no %s hosts to take it from; pass one (--apiserver https://HOST:6443)", im.opts.ControllerGroup)
		return "", false
	}
	c := im.controllers[0]
	h := hosts[c]
	if h == nil || len(h.addrs) == 0 {
		im.probs.add("", inventory.Source{File: im.opts.Inventory}, c, "no API server: %s, the first %s host, has no WireGuard address; pass one (--apiserver https://HOST:6443)", c, im.opts.ControllerGroup)
		return "", false
	}
	port := DefaultAPIServerPort
	portFrom := "the default port"
	sc := im.ev.scope(c, false)
	if sc.has("k8s_apiserver_secure_port") {
		if p, ok := im.intVar(h, "k8s_apiserver_secure_port", 1, 65535); ok {
			port, portFrom = p, "k8s_apiserver_secure_port"
			im.setEntry("k8s_apiserver_secure_port", Mapped, "the API server's port in every node config's kubernetes.apiServer")
		}
	} else if v, ok, err := sc.evalKey("k8s_apiserver_settings", "secure-port"); err == nil && ok {
		if s, isStr := plainString(v); isStr {
			if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65536 {
				port, portFrom = n, "k8s_apiserver_settings[\"secure-port\"]"
			}
		}
	}
	u := "https://" + net.JoinHostPort(h.addrs[0].Addr().String(), strconv.Itoa(port))
	im.decide("kubernetes.apiServer", "the node configs use %s: the wg0 address of %s, the first %s host (as the seed's kubelet kubeconfig playbook does), and %s; pass --apiserver for a load balancer or another address", u, c, im.opts.ControllerGroup, portFrom)
	return u, true
}

// certDir returns the CA's output directory: the option, else
// k8s_ca_conf_directory as the first worker sees it.
func (im *importer) certDir() (string, bool) {
	const name = "k8s_ca_conf_directory"
	sc := im.ev.scope(im.workers[0], false)
	if im.opts.CertDir != "" {
		if sc.has(name) {
			im.setEntry(name, Mapped, "the CA's output directory: given on the command line instead ("+im.opts.CertDir+")")
		}
		return im.opts.CertDir, true
	}
	if !sc.has(name) {
		im.probs.add(name, inventory.Source{}, "", "no CA directory: the tree does not set %s; pass the CA's output directory (--certs DIR)", name)
		return "", false
	}
	v, err := sc.eval(name)
	if err != nil {
		im.evalErr(name, sc.source(name), "", err)
		return "", false
	}
	s, isStr := v.(string)
	if !isStr {
		im.refuse(name, "wrong type: want a directory, got %s", jinja.Describe(v))
		return "", false
	}
	im.setEntry(name, Mapped, "the CA's output directory the node configs are read from: "+s)
	return s, true
}

// nodeName returns the node name a worker's certificate gives it
// (CN system:node:NAME, the CA role's ansible_hostname), else the host.
func nodeName(certFile, host string) string {
	// Anything unreadable is named when the node config is assembled
	// from the same file.
	b, err := nodeconfig.ReadRegularFile(certFile, maxCertFile)
	if err != nil {
		return host
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return host
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return host
	}
	if n, ok := strings.CutPrefix(c.Subject.CommonName, "system:node:"); ok && n != "" {
		return n
	}
	return host
}

// nodeConfigs assembles, validates and stages a node config per worker.
func (im *importer) nodeConfigs(ctx context.Context, st *stager) error {
	hosts := im.wgHosts()
	byName := map[string]*wgHost{}
	for _, h := range hosts {
		byName[h.host] = h
	}
	if err := im.keys(hosts, st); err != nil {
		return err
	}
	api, apiOK := im.apiServer(byName)
	certs, certsOK := im.certDir()
	if len(im.probs) > 0 || !apiOK || !certsOK {
		return nil
	}
	im.certsDir, im.apiSrv = certs, api
	// The node configs are checked against what the imported spec's image
	// tells its first boot.
	eff := im.out.Clone()
	eff.Default()
	facts := worker.ImageFacts(eff)
	names := map[string]string{}
	var err error
	for _, w := range im.workers {
		if err := ctx.Err(); err != nil {
			return err
		}
		h := byName[w]
		if h == nil || len(h.addrs) != 1 || h.priv == nil {
			continue
		}
		certFile := filepath.Join(certs, nodeconfig.NodeCertFileName(w))
		name := nodeName(certFile, w)
		if err := nodeconfig.CheckNodeName(name); err != nil {
			im.probs.add("k8s_ca_conf_directory", inventory.Source{File: certFile}, w, "its certificate names the node %.80q, which is not a node name: %v", name, err)
			continue
		}
		if other, dup := names[name]; dup {
			im.probs.add("k8s_ca_conf_directory", inventory.Source{File: certFile}, w, "its certificate names the node %s, as %s's does: node names must differ", name, other)
			continue
		}
		names[name] = w
		keyFile := h.keyFile
		if keyFile == "" { // the key came from wireguard_private_key
			if keyFile, err = st.addScratch(filepath.Join(im.opts.OutputDir, NodesDir), []byte(base64.StdEncoding.EncodeToString(h.priv)+"\n")); err != nil {
				return fmt.Errorf("staging the WireGuard key of %s: %w", w, err)
			}
		}
		cfg, err := nodeconfig.Assemble(nodeconfig.AssembleOptions{
			NodeName:         name,
			CertDir:          certs,
			NodeCertFile:     certFile,
			NodeKeyFile:      filepath.Join(certs, nodeconfig.NodeKeyFileName(w)),
			APIServer:        api,
			PodCIDR:          h.podCIDR,
			WireGuardAddress: h.addrs[0].String(),
			WireGuardKeyFile: keyFile,
			ListenPort:       h.port,
		})
		if err != nil {
			im.probs.add("k8s_ca_conf_directory", inventory.Source{File: certs}, w, "%v", err)
			continue
		}
		nr := &nodeResult{host: w, name: name, cfg: cfg, keyNote: h.keyNote}
		var peerHosts []string
		for _, p := range hosts {
			if p.host == w || p.pub == nil {
				continue
			}
			if !p.hasEndpoint && !h.hasEndpoint {
				nr.omitted = append(nr.omitted, p.host)
				continue
			}
			peer := nodeconfig.Peer{PublicKey: base64.StdEncoding.EncodeToString(p.pub)}
			if p.hasEndpoint {
				peer.Endpoint = net.JoinHostPort(p.endpoint, strconv.Itoa(p.port))
				peer.PersistentKeepalive = p.keepalive
			}
			if p.allowed != nil {
				peer.AllowedIPs = append(peer.AllowedIPs, p.allowed...)
			} else {
				for _, a := range p.addrs {
					peer.AllowedIPs = append(peer.AllowedIPs, netip.PrefixFrom(a.Addr(), a.Addr().BitLen()).String())
				}
				if p.podCIDR != "" {
					peer.AllowedIPs = append(peer.AllowedIPs, p.podCIDR)
				}
			}
			cfg.WireGuard.Peers = append(cfg.WireGuard.Peers, peer)
			peerHosts = append(peerHosts, p.host)
		}
		for i, p := range h.unmanaged {
			cfg.WireGuard.Peers = append(cfg.WireGuard.Peers, p)
			peerHosts = append(peerHosts, h.unmanagedNames[i]+" (wireguard_unmanaged_peers)")
		}
		nr.peers = peerHosts
		if err := nodeconfig.Validate(cfg, facts, im.opts.Now); err != nil {
			var ps nodeconfig.Problems
			if !errors.As(err, &ps) {
				return err
			}
			for _, p := range ps {
				msg := "node config: " + p.String()
				if i := peerIndex(p.Field); i >= 0 && i < len(peerHosts) {
					msg += " (the peer " + peerHosts[i] + ")"
				}
				v := fieldVariable(p.Field)
				src := inventory.Source{File: certs}
				if v != "k8s_ca_conf_directory" {
					src = h.sc.source(v)
				}
				im.probs.add(v, src, w, "%s", msg)
			}
			continue
		}
		y, err := nodeconfig.Marshal(cfg)
		if err != nil {
			return err
		}
		nr.yaml = y
		if err := im.stageNode(st, nr); err != nil {
			return err
		}
		im.nodes = append(im.nodes, *nr)
	}
	return nil
}

// peerIndex returns N of a field wireguard.peers[N]..., or -1.
func peerIndex(field string) int {
	rest, ok := strings.CutPrefix(field, "wireguard.peers[")
	if !ok {
		return -1
	}
	end := strings.IndexByte(rest, ']')
	n, err := strconv.Atoi(rest[:max(end, 0)])
	if end < 0 || err != nil {
		return -1
	}
	return n
}

// fieldVariable names the variable a node config field comes from.
func fieldVariable(field string) string {
	switch {
	case strings.HasPrefix(field, "wireguard.address"):
		return "wireguard_address"
	case strings.HasPrefix(field, "wireguard.listenPort"):
		return "wireguard_port"
	case strings.HasPrefix(field, "wireguard.privateKey"):
		return "wireguard_private_key"
	case strings.HasSuffix(field, ".endpoint"):
		return "wireguard_endpoint"
	case strings.Contains(field, ".allowedIPs"):
		return "wireguard_allowed_ips"
	case strings.HasSuffix(field, ".persistentKeepalive"):
		return "wireguard_persistent_keepalive"
	case strings.HasPrefix(field, "wireguard.peers"):
		return "wireguard_private_key"
	case field == "kubernetes.podCIDR":
		return PodCIDRVar
	case field == "kubernetes.apiServer":
		return "k8s_apiserver_secure_port"
	}
	return "k8s_ca_conf_directory"
}

// stageNode stages a node's config, and its config drive and user data
// when asked for.
func (im *importer) stageNode(st *stager, nr *nodeResult) error {
	dir := filepath.Join(im.opts.OutputDir, NodesDir)
	p := filepath.Join(dir, nr.name+".yaml")
	if _, err := st.add(p, nr.yaml, 0o600); err != nil {
		return err
	}
	nr.files = append(nr.files, im.rel(p))
	if im.opts.ConfigDrives {
		d := filepath.Join(dir, nr.name+".drive.img")
		if err := st.addFunc(d, 0o600, func(tmp string) error { return configdrive.Write(tmp, nr.yaml) }); err != nil {
			return err
		}
		nr.files = append(nr.files, im.rel(d))
	}
	if im.opts.UserData {
		var b bytes.Buffer
		zw, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
		if err != nil {
			return err
		}
		if _, err := zw.Write(nr.yaml); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		u := filepath.Join(dir, nr.name+".user-data.gz")
		if _, err := st.add(u, b.Bytes(), 0o600); err != nil {
			return err
		}
		nr.files = append(nr.files, im.rel(u))
	}
	return nil
}
