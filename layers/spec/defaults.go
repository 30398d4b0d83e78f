package spec

import (
	"fmt"
	"path"
	"strings"

	"github.com/nodebake/nodebake/layers/components"
	"github.com/nodebake/nodebake/layers/firstboot"
)

// Default values.
const (
	DefaultName                 = "worker"
	DefaultArch                 = ArchAMD64
	DefaultServiceCIDR          = "10.32.0.0/16"
	DefaultClusterCIDR          = "10.200.0.0/16"
	DefaultPodNetwork           = PodNetworkNone
	DefaultRetries              = 3
	DefaultSandboxImage         = "registry.k8s.io/pause:3.10.1"
	DefaultESPSize              = 256 * MiB
	DefaultVarSize              = 1 * GiB
	DefaultRootCompressionLevel = 3
	DefaultFileMode             = "0644"
	DefaultDirectoryMode        = "0755"
	DefaultLinkMode             = "0777"

	KubeletConfigAPIVersion   = "kubelet.config.k8s.io/v1beta1"
	KubeletConfigKind         = "KubeletConfiguration"
	KubeProxyConfigAPIVersion = "kubeproxy.config.k8s.io/v1alpha1"
	KubeProxyConfigKind       = "KubeProxyConfiguration"
)

// DefaultKubeletSettings returns the kubelet flags every image gets unless
// the spec overrides them. The node IP is filled in per node at first boot.
func DefaultKubeletSettings() map[string]*string {
	return map[string]*string{
		"container-runtime-endpoint": ptr("unix:///run/containerd/containerd.sock"),
		"config":                     ptr(firstboot.KubeletConfigPath),
		"kubeconfig":                 ptr(firstboot.KubeletKubeconfigPath),
		"register-node":              ptr("true"),
		// /usr is read-only in the image.
		"volume-plugin-dir": ptr("/var/lib/kubelet/volumeplugins"),
	}
}

// DefaultKubeletConfig returns the default KubeletConfiguration fields:
// the seed's, hardened (strong TLS cipher suites, a pod PID limit, the
// kernel defaults protected: the image sets the kernel settings the kubelet
// wants, see KubeletKernelSettings). The per-node fields (address,
// healthzBindAddress, tlsCertFile, tlsPrivateKeyFile) are filled in at
// first boot.
func DefaultKubeletConfig() map[string]any {
	ciphers := make([]any, 0, len(StrongTLSCipherSuites()))
	for _, c := range StrongTLSCipherSuites() {
		ciphers = append(ciphers, c)
	}
	return map[string]any{
		"kind":       KubeletConfigKind,
		"apiVersion": KubeletConfigAPIVersion,
		"authentication": map[string]any{
			"anonymous": map[string]any{"enabled": false},
			"webhook":   map[string]any{"enabled": true},
			"x509":      map[string]any{"clientCAFile": firstboot.CACertPath},
		},
		"authorization":         map[string]any{"mode": "Webhook"},
		"clusterDomain":         "cluster.local",
		"clusterDNS":            []any{"10.32.0.254"},
		"failSwapOn":            true,
		"healthzPort":           10248,
		"runtimeRequestTimeout": "15m",
		"serializeImagePulls":   false,
		"cgroupDriver":          "systemd",
		"readOnlyPort":          0,
		"seccompDefault":        true,
		"tlsMinVersion":         "VersionTLS12",
		"tlsCipherSuites":       ciphers,
		"podPidsLimit":          DefaultPodPidsLimit,
		"protectKernelDefaults": true,
	}
}

// DefaultKubeProxySettings returns the default kube-proxy flags.
func DefaultKubeProxySettings() map[string]*string {
	return map[string]*string{"config": ptr(firstboot.KubeProxyConfigPath)}
}

// DefaultKubeProxyConfig returns the default KubeProxyConfiguration fields
// for a cluster CIDR. bindAddress and healthzBindAddress are filled in at
// first boot.
func DefaultKubeProxyConfig(clusterCIDR string) map[string]any {
	return map[string]any{
		"kind":             KubeProxyConfigKind,
		"apiVersion":       KubeProxyConfigAPIVersion,
		"clientConnection": map[string]any{"kubeconfig": firstboot.KubeProxyKubeconfigPath},
		"mode":             "ipvs",
		"ipvs": map[string]any{
			"minSyncPeriod": "0s",
			"scheduler":     "",
			"syncPeriod":    "2s",
		},
		"iptables":    map[string]any{"masqueradeAll": true},
		"clusterCIDR": clusterCIDR,
	}
}

// ManagedPaths returns the paths the image itself provides: the files and
// directories of the components it bakes (see the component catalogue),
// configuration files and systemd units. A files entry must not be one of
// them or lie below one. The kubelet and kube-proxy config paths named by
// their "config" flags are managed as well. Call it on a defaulted spec.
func (s *Spec) ManagedPaths() []string {
	var out []string
	for _, c := range s.NamedComponents() {
		out = append(out, c.Catalogue.InstalledPaths()...)
	}
	out = append(out,
		"/etc/cni/net.d",
		"/etc/containerd/config.toml",
		"/etc/crictl.yaml",
		"/etc/fstab",
		"/etc/hostname",
		"/etc/machine-id",
		"/etc/modules-load.d/nodebake.conf",
		"/etc/sysctl.d/90-nodebake.conf",
		"/etc/tmpfiles.d/nodebake.conf",
		"/etc/systemd/network/80-nodebake-dhcp.network",
		"/etc/systemd/timesyncd.conf.d/50-nodebake.conf",
		path.Dir(firstboot.ProgramPath), // what the image bakes for nodebake
		firstboot.KubeletConfigPath,
		firstboot.KubeProxyConfigPath,
	)
	// The image's units and where it enables them.
	for _, u := range []struct{ name, target string }{
		{"containerd.service", "multi-user.target"},
		{firstboot.KubeletUnit, "multi-user.target"},
		{firstboot.KubeProxyUnit, "multi-user.target"},
		{"nodebake-preload.service", "multi-user.target"},
		{firstboot.MetadataGuardUnit, "multi-user.target"},
		{"systemd-networkd.service", "multi-user.target"},
		{"systemd-networkd.socket", "sockets.target"},
		{"systemd-network-generator.service", "sysinit.target"},
	} {
		if strings.HasPrefix(u.name, "systemd-") {
			out = append(out, "/etc/systemd/system/"+u.target+".wants/"+u.name)
			continue
		}
		out = append(out, "/etc/systemd/system/"+u.name, "/etc/systemd/system/"+u.target+".wants/"+u.name)
	}
	// First boot's own units, enabled where their [Install] says.
	for _, u := range firstboot.UnitFiles() {
		out = append(out, "/etc/systemd/system/"+u.Name)
		for _, target := range u.WantedBy {
			out = append(out, "/etc/systemd/system/"+target+".wants/"+u.Name)
		}
	}
	if !s.VerifiedBootEnabled() {
		return out
	}
	// Verified boot: the version sysupdate and systemd-boot read, the
	// update definitions, the health check and the update's units.
	return append(out,
		"/etc/os-release",
		"/usr/lib/os-release",
		"/usr/lib/sysupdate.d",
		"/etc/systemd/system/nodebake-healthy.service",
		"/etc/systemd/system/boot-complete.target.requires/nodebake-healthy.service",
		"/etc/systemd/system/nodebake-update.service",
		"/etc/systemd/system/nodebake-update.timer",
		"/etc/systemd/system/timers.target.wants/nodebake-update.timer",
	)
}

// Default fills in every default in place. It is idempotent.
func (s *Spec) Default() {
	if s.Name == "" {
		s.Name = DefaultName
	}
	if s.Arch == "" {
		s.Arch = DefaultArch
	}
	k := &s.Kubernetes
	if k.ServiceCIDR == "" {
		k.ServiceCIDR = DefaultServiceCIDR
	}
	if k.ClusterCIDR == "" {
		k.ClusterCIDR = DefaultClusterCIDR
	}
	if k.PodNetwork == "" {
		k.PodNetwork = DefaultPodNetwork
	}
	for _, cat := range components.Catalogue() {
		c, listed := s.Components[cat.Key]
		if !listed && cat.Optional {
			continue
		}
		if c.From == "" {
			c.From = FromRelease
		}
		if c.Version == "" && cat.Version == components.VersionKubernetes {
			c.Version = k.Version
		}
		s.SetComponent(cat.Key, c)
	}
	if s.Sources.Retries == nil {
		s.Sources.Retries = ptr(DefaultRetries)
	}
	s.Kubelet.Settings = mergeSettings(DefaultKubeletSettings(), s.Kubelet.Settings)
	s.Kubelet.Config = mergeConfig(DefaultKubeletConfig(), s.Kubelet.Config)
	s.KubeProxy.Settings = mergeSettings(DefaultKubeProxySettings(), s.KubeProxy.Settings)
	s.KubeProxy.Config = mergeConfig(DefaultKubeProxyConfig(k.ClusterCIDR), s.KubeProxy.Config)
	if s.Containerd.SystemdCgroup == nil {
		s.Containerd.SystemdCgroup = ptr(true)
	}
	if s.Containerd.SandboxImage == "" {
		s.Containerd.SandboxImage = DefaultSandboxImage
	}
	for i := range s.Files {
		f := &s.Files[i]
		if f.Mode == "" {
			switch {
			case f.Directory:
				f.Mode = DefaultDirectoryMode
			case f.Link != "":
				f.Mode = DefaultLinkMode
			default:
				f.Mode = DefaultFileMode
			}
		} else if m, err := ParseMode(f.Mode); err == nil {
			f.Mode = fmt.Sprintf("%04o", m)
		}
	}
	o := &s.Output
	if o.VerifiedBoot != nil {
		o.VerifiedBoot.defaults()
	}
	if len(o.Formats) == 0 {
		o.Formats = []Format{FormatRaw}
		if s.VerifiedBootEnabled() {
			o.Formats = append(o.Formats, FormatUpdate)
		}
	}
	if o.ESPSize == 0 {
		o.ESPSize = DefaultESPSize
	}
	if o.VarSize == 0 && o.DiskSize == 0 {
		o.VarSize = DefaultVarSize
	}
	if o.RootCompressionLevel == 0 {
		o.RootCompressionLevel = DefaultRootCompressionLevel
	}
}

// mergeSettings returns the defaults overridden by the spec's flags. A nil
// value is kept: it records that the flag was removed.
func mergeSettings(defaults, over map[string]*string) map[string]*string {
	for k, v := range over {
		defaults[k] = v
	}
	return defaults
}

// MergeConfig returns base with over deep-merged onto it, the way a spec's
// kubelet.config and kubeProxy.config merge over the defaults: maps merge
// key by key, lists and scalars replace, and a nil value is kept as the
// marker that removes the key from the effective configuration. Neither
// argument is modified, and the result shares nothing with them.
func MergeConfig(base, over map[string]any) map[string]any {
	out, _ := deepCopy(base).(map[string]any)
	if out == nil {
		out = map[string]any{}
	}
	return mergeConfig(out, over)
}

// mergeConfig deep-merges over onto base, which it modifies and returns.
func mergeConfig(base, over map[string]any) map[string]any {
	for k, v := range over {
		v = deepCopy(v)
		if vm, ok := v.(map[string]any); ok {
			if bm, ok := base[k].(map[string]any); ok {
				base[k] = mergeConfig(bm, vm)
				continue
			}
		}
		base[k] = v
	}
	return base
}

// effectiveConfig returns a deep copy of a config map without the removal
// markers (nil values).
func effectiveConfig(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		switch v := v.(type) {
		case nil:
		case map[string]any:
			out[k] = effectiveConfig(v)
		default:
			out[k] = deepCopy(v)
		}
	}
	return out
}

// deepCopy copies the maps and lists of a decoded YAML value; map keys
// become strings.
func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = deepCopy(e)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[fmt.Sprint(k)] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = deepCopy(e)
		}
		return out
	}
	return v
}

func ptr[T any](v T) *T { return &v }
