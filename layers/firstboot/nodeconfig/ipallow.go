package nodeconfig

import (
	"fmt"
	"net/netip"
	"net/url"
	"slices"
)

// IPAllow is what the kubelet and kube-proxy may exchange IP traffic with
// on a node, besides loopback. The image's units deny every other address
// (systemd's IPAddressDeny=any, with IPAddressAllow=localhost); the first
// boot allows these per node (IPAddressAllow= in runtime drop-ins).
//
// The kubelet may reach, and be reached from:
//   - wg0's subnet: the node itself (the kubelet binds to its wg0 address)
//     and the other nodes and the control plane on the WireGuard network;
//   - the API server's address, when it is outside that subnet;
//   - the cluster CIDR: pods (the kubelet's HTTP and TCP probes go to the
//     node's own pods, whose addresses are in its pod CIDR; metrics-server
//     and monitoring pods scrape the kubelet from any node's pod CIDR, not
//     masqueraded).
//
// kube-proxy only talks to its API server (its healthz and metrics
// listeners are on wg0 and loopback): wg0's subnet and kube-proxy's API
// server address.
//
// Each list is sorted, and a network inside another listed one is left
// out.
type IPAllow struct {
	Kubelet   []netip.Prefix
	KubeProxy []netip.Prefix
}

// IPAllowFor computes the IPAllow of a valid node config for an image with
// these facts.
func IPAllowFor(cfg *NodeConfig, facts ImageFacts) (IPAllow, error) {
	addr, err := netip.ParsePrefix(cfg.WireGuard.Address)
	if err != nil {
		return IPAllow{}, fmt.Errorf("wireguard.address: %w", err)
	}
	wg := addr.Masked()
	api, err := apiServerPrefix(cfg.Kubernetes.APIServer)
	if err != nil {
		return IPAllow{}, fmt.Errorf("kubernetes.apiServer: %w", err)
	}
	cluster, err := parseNetwork(facts.ClusterCIDR)
	if err != nil {
		return IPAllow{}, fmt.Errorf("the image's cluster CIDR: %w", err)
	}
	proxyAPI := api
	if kc := cfg.Kubernetes.KubeProxy.Kubeconfig; kc != "" {
		k, err := ParseKubeconfig(kc, kubeProxyKubeconfigField)
		if err != nil {
			return IPAllow{}, err
		}
		server, _, _, err := k.Credentials()
		if err != nil {
			return IPAllow{}, fmt.Errorf("%s: %w", kubeProxyKubeconfigField, err)
		}
		if proxyAPI, err = apiServerPrefix(server); err != nil {
			return IPAllow{}, fmt.Errorf("%s: server: %w", kubeProxyKubeconfigField, err)
		}
	}
	return IPAllow{
		Kubelet:   minimalPrefixes(wg, api, cluster),
		KubeProxy: minimalPrefixes(wg, proxyAPI),
	}, nil
}

// apiServerPrefix returns the address of an API server URL as a
// single-address prefix.
func apiServerPrefix(server string) (netip.Prefix, error) {
	u, err := url.Parse(server)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a URL", server)
	}
	ip, err := apiServerAddr(u.Hostname())
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(ip, ip.BitLen()), nil
}

// apiServerAddr parses an API server's host, which must be an IP address:
// the units' IPAddressAllow= lists are computed from it at first boot, when
// no name can be resolved (and the answer could change later).
func apiServerAddr(host string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(host)
	switch {
	case err != nil:
		return netip.Addr{}, fmt.Errorf("host %q is not an IP address: the kubelet's and kube-proxy's allowed addresses (IPAddressAllow=) are computed from it at first boot, so a DNS name cannot be used", host)
	case ip.Zone() != "":
		return netip.Addr{}, fmt.Errorf("host %q has a zone; want a routable IP address", host)
	case ip.Is4In6():
		return netip.Addr{}, fmt.Errorf("host %q: write IPv4 addresses without the ::ffff: prefix", host)
	case ip.IsUnspecified() || ip.IsMulticast():
		return netip.Addr{}, fmt.Errorf("host %q is not a unicast address", host)
	}
	return ip, nil
}

// minimalPrefixes returns the valid prefixes sorted, without duplicates
// and without those inside another one.
func minimalPrefixes(ps ...netip.Prefix) []netip.Prefix {
	var in []netip.Prefix
	for _, p := range ps {
		if p.IsValid() {
			in = append(in, p.Masked())
		}
	}
	var out []netip.Prefix
	for i, p := range in {
		covered := slices.ContainsFunc(in, func(q netip.Prefix) bool {
			return q != p && q.Bits() <= p.Bits() && q.Contains(p.Addr())
		}) || slices.Contains(in[:i], p)
		if !covered {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return out
}
