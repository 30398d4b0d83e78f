package nodeconfig

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"path"
)

// The pod networks an image can have.
const (
	// PodNetworkNone leaves pod networking to a CNI installed later (e.g. as
	// a DaemonSet).
	PodNetworkNone = "none"
	// PodNetworkBridge gives each node a bridge CNI config for its podCIDR;
	// pods on other nodes are reached over wg0.
	PodNetworkBridge = "bridge"
)

// ImageFacts is what an image tells its first-boot program about itself; the
// image build bakes it as JSON (see FactsPath in package firstboot).
type ImageFacts struct {
	ServiceCIDR string `json:"serviceCIDR"`
	ClusterCIDR string `json:"clusterCIDR"`
	// PodNetwork is PodNetworkNone or PodNetworkBridge.
	PodNetwork string `json:"podNetwork"`
	// KubeletConfigTemplate and KubeProxyConfigTemplate are absolute paths
	// in the image of JSON KubeletConfiguration and KubeProxyConfiguration
	// documents lacking only the per-node fields.
	KubeletConfigTemplate   string `json:"kubeletConfigTemplate"`
	KubeProxyConfigTemplate string `json:"kubeProxyConfigTemplate"`
	KubernetesVersion       string `json:"kubernetesVersion"`
}

// ParseImageFacts decodes image facts strictly (unknown fields are errors)
// and checks them.
func ParseImageFacts(data []byte) (ImageFacts, error) {
	var f ImageFacts
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return ImageFacts{}, fmt.Errorf("decoding image facts: %w", err)
	}
	if dec.More() {
		return ImageFacts{}, fmt.Errorf("decoding image facts: unexpected data after the JSON object")
	}
	if err := f.Check(); err != nil {
		return ImageFacts{}, err
	}
	return f, nil
}

// Check reports every problem with the facts.
func (f ImageFacts) Check() error {
	var probs Problems
	add := func(field, format string, args ...any) {
		probs = append(probs, Problem{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	for _, c := range []struct{ field, v string }{{"serviceCIDR", f.ServiceCIDR}, {"clusterCIDR", f.ClusterCIDR}} {
		if _, err := parseNetwork(c.v); err != nil {
			add(c.field, "%v", err)
		}
	}
	if s, err := parseNetwork(f.ServiceCIDR); err == nil {
		if c, err := parseNetwork(f.ClusterCIDR); err == nil && s.Overlaps(c) {
			add("serviceCIDR", "%s overlaps clusterCIDR %s", s, c)
		}
	}
	if f.PodNetwork != PodNetworkNone && f.PodNetwork != PodNetworkBridge {
		add("podNetwork", "must be %q or %q, not %q", PodNetworkNone, PodNetworkBridge, f.PodNetwork)
	}
	for _, c := range []struct{ field, v string }{{"kubeletConfigTemplate", f.KubeletConfigTemplate}, {"kubeProxyConfigTemplate", f.KubeProxyConfigTemplate}} {
		if !path.IsAbs(c.v) || path.Clean(c.v) != c.v {
			add(c.field, "must be a clean absolute path, not %q", c.v)
		}
	}
	if len(probs) > 0 {
		return probs
	}
	return nil
}

// parseNetwork parses a network prefix (no host bits set).
func parseNetwork(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, fmt.Errorf("required")
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("not a CIDR: %q", s)
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%s: write IPv4 networks without the ::ffff: prefix", s)
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("%s has host bits set (the network is %s)", s, m)
	}
	return p, nil
}
