package firstboot

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
)

// File is one file first boot writes.
type File struct {
	// Path is absolute, as the image sees it.
	Path string
	Mode os.FileMode
	// Group names the file's group ("" for root).
	Group string
	Data  []byte
}

// Render returns every file first boot writes for a validated cfg, given
// the image's facts and its kubelet and kube-proxy config templates (JSON).
// It does not include ReadyPath and StatusPath.
func Render(cfg *nodeconfig.NodeConfig, facts nodeconfig.ImageFacts, kubeletTemplate, kubeProxyTemplate []byte) ([]File, error) {
	addr, err := netip.ParsePrefix(cfg.WireGuard.Address)
	if err != nil {
		return nil, fmt.Errorf("rendering: wireguard.address: %w", err)
	}
	ip := addr.Addr().String()
	k := cfg.Kubernetes
	node := cfg.NodeName

	kubelet, err := patchJSON(kubeletTemplate, kubeletNodeFields(ip, node))
	if err != nil {
		return nil, fmt.Errorf("rendering the kubelet config from its template: %w", err)
	}
	proxy, err := patchJSON(kubeProxyTemplate, kubeProxyNodeFields(ip))
	if err != nil {
		return nil, fmt.Errorf("rendering the kube-proxy config from its template: %w", err)
	}
	kubeletKC, err := nodeconfig.NewKubeconfig(k.APIServer, k.CACert, nodeconfig.NodeUserPrefix+node, k.NodeCert, k.NodeKey).Marshal()
	if err != nil {
		return nil, err
	}
	// kube-proxy's kubeconfig is written from what was checked, never
	// copied: a given kubeconfig is reduced to its server and credentials.
	server, certPEM, keyPEM := k.APIServer, k.KubeProxy.Cert, k.KubeProxy.Key
	if k.KubeProxy.Kubeconfig != "" {
		kc, err := nodeconfig.ParseKubeconfig(k.KubeProxy.Kubeconfig, "kubernetes.kubeProxy.kubeconfig")
		if err != nil {
			return nil, fmt.Errorf("rendering kube-proxy's kubeconfig: %w", err)
		}
		if server, certPEM, keyPEM, err = kc.Credentials(); err != nil {
			return nil, fmt.Errorf("rendering kube-proxy's kubeconfig: %w", err)
		}
	}
	proxyKC, err := nodeconfig.NewKubeconfig(server, k.CACert, nodeconfig.KubeProxyUser, certPEM, keyPEM).Marshal()
	if err != nil {
		return nil, err
	}

	files := []File{
		{Path: NetdevPath, Mode: 0o640, Group: NetworkGroup, Data: netdev(&cfg.WireGuard)},
		{Path: NetworkPath, Mode: 0o644, Data: network(&cfg.WireGuard, addr)},
		{Path: CACertPath, Mode: 0o600, Data: pemFile(k.CACert)},
		{Path: NodeCertPath(node), Mode: 0o600, Data: pemFile(k.NodeCert)},
		{Path: NodeKeyPath(node), Mode: 0o600, Data: pemFile(k.NodeKey)},
		{Path: KubeletKubeconfigPath, Mode: 0o600, Data: kubeletKC},
		{Path: KubeletConfigPath, Mode: 0o600, Data: kubelet},
		{Path: KubeProxyKubeconfigPath, Mode: 0o600, Data: proxyKC},
		{Path: KubeProxyConfigPath, Mode: 0o600, Data: proxy},
		{Path: KubeletEnvPath, Mode: 0o644, Data: kubeletEnv(ip)},
	}
	access, err := ipAccessFiles(cfg, facts)
	if err != nil {
		return nil, err
	}
	files = append(files, access...)
	if facts.PodNetwork == nodeconfig.PodNetworkBridge {
		cni, err := bridgeConflist(k.PodCIDR)
		if err != nil {
			return nil, err
		}
		files = append(files, File{Path: CNIConfigPath, Mode: 0o644, Data: cni})
	}
	return files, nil
}

func pemFile(s string) []byte {
	return []byte(strings.TrimSpace(s) + "\n")
}

const header = "# Written by nodebake-firstboot from the node config; changes are lost at the next boot.\n"

func netdev(wg *nodeconfig.WireGuard) []byte {
	var b strings.Builder
	b.WriteString(header)
	b.WriteString("[NetDev]\nName=wg0\nKind=wireguard\nDescription=nodebake WireGuard\n\n")
	fmt.Fprintf(&b, "[WireGuard]\nPrivateKey=%s\nListenPort=%d\n", wg.PrivateKey, wg.ListenPort)
	for _, p := range wg.Peers {
		fmt.Fprintf(&b, "\n[WireGuardPeer]\nPublicKey=%s\n", p.PublicKey)
		if p.Endpoint != "" {
			fmt.Fprintf(&b, "Endpoint=%s\n", p.Endpoint)
		}
		fmt.Fprintf(&b, "AllowedIPs=%s\n", strings.Join(p.AllowedIPs, ","))
		if p.PersistentKeepalive > 0 {
			fmt.Fprintf(&b, "PersistentKeepalive=%d\n", p.PersistentKeepalive)
		}
	}
	return []byte(b.String())
}

// network writes wg0's address and a route for every peer's allowed
// network outside wg0's own subnet (e.g. other nodes' pod CIDRs). Default
// routes (/0) are left out: they would also capture the peers' endpoints.
func network(wg *nodeconfig.WireGuard, addr netip.Prefix) []byte {
	var b strings.Builder
	b.WriteString(header)
	fmt.Fprintf(&b, "[Match]\nName=wg0\n\n[Network]\nAddress=%s\n", addr)
	subnet := addr.Masked()
	seen := map[netip.Prefix]bool{}
	for _, p := range wg.Peers {
		for _, s := range p.AllowedIPs {
			a, err := netip.ParsePrefix(s)
			if err != nil || a.Bits() == 0 || seen[a] || (a.Bits() >= subnet.Bits() && subnet.Contains(a.Addr())) {
				continue
			}
			seen[a] = true
			fmt.Fprintf(&b, "\n[Route]\nDestination=%s\n", a)
		}
	}
	return []byte(b.String())
}

// patchJSON sets top-level fields of a JSON object and writes it back
// indented, keys sorted; numbers are kept as written.
func patchJSON(tmpl []byte, set map[string]any) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(tmpl))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("the template is not a JSON object")
	}
	if dec.More() {
		return nil, fmt.Errorf("unexpected data after the JSON object")
	}
	for k, v := range set {
		m[k] = v
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// bridgeConflist is the CNI config of the "bridge" pod network: a cni0
// bridge with host-local addresses from the node's podCIDR. Pod traffic is
// not masqueraded, so that pods see each other's addresses across nodes
// (reached over wg0 through the routes in the .network file).
func bridgeConflist(podCIDR string) ([]byte, error) {
	p, err := netip.ParsePrefix(podCIDR)
	if err != nil {
		return nil, fmt.Errorf("rendering the CNI config: kubernetes.podCIDR: %w", err)
	}
	dst := "0.0.0.0/0"
	if p.Addr().Is6() {
		dst = "::/0"
	}
	type ipam struct {
		Type   string                `json:"type"`
		Ranges [][]map[string]string `json:"ranges"`
		Routes []map[string]string   `json:"routes"`
	}
	type plugin struct {
		Type         string          `json:"type"`
		Bridge       string          `json:"bridge,omitempty"`
		IsGateway    bool            `json:"isGateway,omitempty"`
		IPMasq       *bool           `json:"ipMasq,omitempty"`
		HairpinMode  bool            `json:"hairpinMode,omitempty"`
		IPAM         *ipam           `json:"ipam,omitempty"`
		Capabilities map[string]bool `json:"capabilities,omitempty"`
	}
	no := false
	conf := struct {
		CNIVersion string   `json:"cniVersion"`
		Name       string   `json:"name"`
		Plugins    []plugin `json:"plugins"`
	}{
		CNIVersion: "1.0.0",
		Name:       "nodebake",
		Plugins: []plugin{{
			Type: "bridge", Bridge: "cni0", IsGateway: true, IPMasq: &no, HairpinMode: true,
			IPAM: &ipam{
				Type:   "host-local",
				Ranges: [][]map[string]string{{{"subnet": p.String()}}},
				Routes: []map[string]string{{"dst": dst}},
			},
		}, {
			Type: "portmap", Capabilities: map[string]bool{"portMappings": true},
		}},
	}
	out, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// parseGroup returns a group's gid from /etc/group content.
func parseGroup(etcGroup []byte, name string) (int, error) {
	for _, l := range strings.Split(string(etcGroup), "\n") {
		f := strings.Split(l, ":")
		if len(f) >= 3 && f[0] == name {
			gid, err := strconv.Atoi(f[2])
			if err != nil {
				return 0, fmt.Errorf("group %s: bad gid %q", name, f[2])
			}
			return gid, nil
		}
	}
	return 0, fmt.Errorf("no group %s in /etc/group", name)
}
