package firstboot

// The image ↔ first-boot contract. The image build (layers/worker, and the
// build pipeline above it) bakes the first-boot program, its facts and the
// configuration templates where these constants say, and its units wait for
// what the program writes; the program reads and writes the same paths.
// They are defined once, here and in the constant block of firstboot.go,
// and the facts' type is nodeconfig.ImageFacts: the image renderer and the
// CLI import both, so the two sides cannot drift apart.
const (
	// LibDir holds what the image build bakes for nodebake itself: the
	// program, its facts, the configuration templates.
	LibDir = "/usr/lib/nodebake"
	// KubeletConfigTemplatePath and KubeProxyConfigTemplatePath are the
	// JSON KubeletConfiguration and KubeProxyConfiguration the image bakes,
	// lacking only the per-node fields (nodeconfig.ImageFacts names them).
	KubeletConfigTemplatePath   = LibDir + "/kubelet-config.json"
	KubeProxyConfigTemplatePath = LibDir + "/kube-proxy-config.json"
	// RunDir holds what the program writes for this boot: its status, the
	// node-ready marker the kubelet and kube-proxy units wait for, and the
	// kubelet's environment file.
	RunDir = "/run/nodebake"
	// CNIConfigDir is the writable CNI configuration directory
	// (/etc/cni/net.d in the image links to it); with the bridge pod
	// network the program writes CNIConfigPath there.
	CNIConfigDir = "/var/lib/cni/net.d"
)
