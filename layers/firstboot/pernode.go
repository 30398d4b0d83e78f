package firstboot

import (
	"maps"
	"net"
	"slices"
	"strings"
)

// What first boot fills in per node in the kubelet's and kube-proxy's
// configuration. An image's spec must leave these alone: it is the same
// for every node.

// kubeletNodeFields are the KubeletConfiguration fields first boot sets.
func kubeletNodeFields(ip, node string) map[string]any {
	return map[string]any{
		"address":            ip,
		"healthzBindAddress": ip,
		"tlsCertFile":        NodeCertPath(node),
		"tlsPrivateKeyFile":  NodeKeyPath(node),
	}
}

// kubeProxyNodeFields are the KubeProxyConfiguration fields first boot sets.
func kubeProxyNodeFields(ip string) map[string]any {
	return map[string]any{
		"bindAddress":        ip,
		"healthzBindAddress": net.JoinHostPort(ip, "10256"),
	}
}

// kubeletNodeFlags are the kubelet flags first boot sets, through the
// unit's environment file KubeletEnvPath (KUBELET_NODE_ARGS).
func kubeletNodeFlags(ip string) map[string]string {
	return map[string]string{"node-ip": ip}
}

func kubeletEnv(ip string) []byte {
	flags := kubeletNodeFlags(ip)
	var args []string
	for _, k := range slices.Sorted(maps.Keys(flags)) {
		args = append(args, "--"+k+"="+flags[k])
	}
	return []byte("KUBELET_NODE_ARGS=" + strings.Join(args, " ") + "\n")
}

// KubeletNodeFields returns the names of the KubeletConfiguration fields
// first boot fills in per node, sorted.
func KubeletNodeFields() []string { return slices.Sorted(maps.Keys(kubeletNodeFields("", ""))) }

// KubeProxyNodeFields returns the names of the KubeProxyConfiguration
// fields first boot fills in per node, sorted.
func KubeProxyNodeFields() []string { return slices.Sorted(maps.Keys(kubeProxyNodeFields(""))) }

// KubeletNodeFlags returns the names of the kubelet flags first boot sets
// per node, sorted.
func KubeletNodeFlags() []string { return slices.Sorted(maps.Keys(kubeletNodeFlags(""))) }
