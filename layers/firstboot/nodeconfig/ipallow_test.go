package nodeconfig_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig/nodeconfigtest"
)

func TestIPAllowFor(t *testing.T) {
	p, err := nodeconfigtest.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name               string
		edit               func(*nodeconfig.NodeConfig, *nodeconfig.ImageFacts)
		kubelet, kubeProxy string
		err                string
	}{
		{name: "API server inside wg0's subnet",
			kubelet: "10.8.0.0/24 10.200.0.0/16", kubeProxy: "10.8.0.0/24"},
		{name: "API server outside", edit: func(c *nodeconfig.NodeConfig, _ *nodeconfig.ImageFacts) {
			c.Kubernetes.APIServer = "https://10.0.2.100:6443"
		}, kubelet: "10.0.2.100/32 10.8.0.0/24 10.200.0.0/16", kubeProxy: "10.0.2.100/32 10.8.0.0/24"},
		{name: "API server inside the cluster CIDR", edit: func(c *nodeconfig.NodeConfig, _ *nodeconfig.ImageFacts) {
			c.Kubernetes.APIServer = "https://10.200.9.9"
		}, kubelet: "10.8.0.0/24 10.200.0.0/16", kubeProxy: "10.8.0.0/24 10.200.9.9/32"},
		{name: "pod network none: still the cluster CIDR", edit: func(c *nodeconfig.NodeConfig, f *nodeconfig.ImageFacts) {
			f.PodNetwork, c.Kubernetes.PodCIDR = nodeconfig.PodNetworkNone, ""
		}, kubelet: "10.8.0.0/24 10.200.0.0/16", kubeProxy: "10.8.0.0/24"},
		{name: "a network inside another is left out", edit: func(_ *nodeconfig.NodeConfig, f *nodeconfig.ImageFacts) {
			f.ClusterCIDR = "10.0.0.0/8"
		}, kubelet: "10.0.0.0/8", kubeProxy: "10.8.0.0/24"},
		{name: "DNS name", edit: func(c *nodeconfig.NodeConfig, _ *nodeconfig.ImageFacts) {
			c.Kubernetes.APIServer = "https://api.example.net:6443"
		}, err: `kubernetes.apiServer: host "api.example.net" is not an IP address`},
		{name: "kube-proxy kubeconfig by DNS name", edit: func(c *nodeconfig.NodeConfig, _ *nodeconfig.ImageFacts) {
			kc, _ := nodeconfig.NewKubeconfig("https://api.example.net", p.CA.CertPEM, nodeconfig.KubeProxyUser, p.ProxyCert, p.ProxyKey).Marshal()
			c.Kubernetes.KubeProxy = nodeconfig.KubeProxy{Kubeconfig: string(kc)}
		}, err: "kubernetes.kubeProxy.kubeconfig: server: host"},
		{name: "zone", edit: func(c *nodeconfig.NodeConfig, _ *nodeconfig.ImageFacts) {
			c.Kubernetes.APIServer = "https://[fe80::1%25eth0]:6443"
		}, err: "has a zone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, facts := p.Config(), nodeconfigtest.Facts()
			if tt.edit != nil {
				tt.edit(cfg, &facts)
			}
			got, err := nodeconfig.IPAllowFor(cfg, facts)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, want an error with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := join(got.Kubelet); s != tt.kubelet {
				t.Errorf("kubelet %s, want %s", s, tt.kubelet)
			}
			if s := join(got.KubeProxy); s != tt.kubeProxy {
				t.Errorf("kube-proxy %s, want %s", s, tt.kubeProxy)
			}
		})
	}
}

func join(ps []netip.Prefix) string {
	return strings.Trim(fmt.Sprint(ps), "[]")
}
