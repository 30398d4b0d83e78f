// Package worker renders the configuration layer of a worker image from a
// spec: containerd's config, the systemd units of containerd, kubelet and
// kube-proxy, the kernel modules and sysctls a worker needs, the mounts of
// the read-only root (fstab, tmpfiles), the templates the first-boot step
// completes per node, and the spec's extra files.
package worker

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/nodebake/nodebake/layers/entry"
	"github.com/nodebake/nodebake/layers/firstboot"
	"github.com/nodebake/nodebake/layers/firstboot/growvar"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
	"github.com/nodebake/nodebake/layers/firstboot/platform"
	"github.com/nodebake/nodebake/layers/spec"
)

// The image's side of the first-boot contract. The paths the first-boot
// program reads and writes are package firstboot's constants; the image
// build lays out its own files around them, deriving the directories from
// those constants, and tells the program where the templates are through
// the facts (nodeconfig.ImageFacts).

// LibDir holds what the image bakes for nodebake itself: the first-boot
// program, its facts, the configuration templates, the image's description
// and the preloaded images.
func LibDir() string { return path.Dir(firstboot.ProgramPath) }

// RunDir holds what the first-boot program writes for this boot: its
// status, the node-ready marker and the kubelet's environment.
func RunDir() string { return path.Dir(firstboot.ReadyPath) }

// CNIConfigDir is the writable CNI configuration directory that
// /etc/cni/net.d links to; the first-boot program writes the bridge
// configuration there.
func CNIConfigDir() string { return path.Dir(firstboot.CNIConfigPath) }

// KubeletConfigTemplate and KubeProxyConfigTemplate are the JSON
// KubeletConfiguration and KubeProxyConfiguration the image bakes, lacking
// only the per-node fields; the facts name them.
func KubeletConfigTemplate() string   { return LibDir() + "/kubelet-config.json" }
func KubeProxyConfigTemplate() string { return LibDir() + "/kube-proxy-config.json" }

// ImageInfo is the image's own description; PreloadDir holds the image
// archives the preload unit imports into containerd.
func ImageInfo() string  { return LibDir() + "/image.json" }
func PreloadDir() string { return LibDir() + "/images" }

// Other paths of the image.
const (
	SystemdUnitDir   = "/etc/systemd/system"
	ContainerdConfig = "/etc/containerd/config.toml"
	CNIConfDir       = "/etc/cni/net.d"
	CrictlConfigPath = "/etc/crictl.yaml"
	SysctlPath       = "/etc/sysctl.d/90-nodebake.conf"
	// ResolvConf is the image's placeholder, unless the spec's files
	// give one.
	ResolvConf = "/etc/resolv.conf"
)

// ImageFacts returns what an image built from s tells its first-boot
// program about itself (baked as JSON at firstboot.FactsPath). The CLI
// checks node configs against the same facts.
func ImageFacts(s *spec.Spec) nodeconfig.ImageFacts {
	return nodeconfig.ImageFacts{
		ServiceCIDR:             s.Kubernetes.ServiceCIDR,
		ClusterCIDR:             s.Kubernetes.ClusterCIDR,
		PodNetwork:              string(s.Kubernetes.PodNetwork),
		KubeletConfigTemplate:   KubeletConfigTemplate(),
		KubeProxyConfigTemplate: KubeProxyConfigTemplate(),
		KubernetesVersion:       s.Kubernetes.Version,
	}
}

// Render returns the configuration entries of the image described by s,
// which must be defaulted and valid.
func Render(s *spec.Spec) ([]entry.Entry, error) {
	var out []entry.Entry
	add := func(e ...entry.Entry) { out = append(out, e...) }
	text := func(p string, mode int64, content string) { add(entry.File(p, mode, []byte(content))) }

	// containerd, runc, CNI and crictl.
	text(ContainerdConfig, 0o644, containerdConfig(s))
	text(CrictlConfigPath, 0o644, CrictlConfig)
	add(entry.Symlink(CNIConfDir, "../.."+CNIConfigDir()))

	// Units.
	text(SystemdUnitDir+"/containerd.service", 0o644, containerdUnit)
	text(SystemdUnitDir+"/"+firstboot.KubeletUnit, 0o600, kubeletUnit(s.KubeletFlags()))
	text(SystemdUnitDir+"/"+firstboot.KubeProxyUnit, 0o600, kubeProxyUnit(s.KubeProxyFlags()))
	for _, u := range []string{"containerd.service", firstboot.KubeletUnit, firstboot.KubeProxyUnit} {
		add(entry.Symlink(SystemdUnitDir+"/multi-user.target.wants/"+u, "../"+u))
	}
	// systemd-networkd configures the NICs (DHCP) and, from the first-boot
	// step's output, wg0.
	add(entry.Symlink(SystemdUnitDir+"/multi-user.target.wants/systemd-networkd.service", "/usr/lib/systemd/system/systemd-networkd.service"))
	add(entry.Symlink(SystemdUnitDir+"/sockets.target.wants/systemd-networkd.socket", "/usr/lib/systemd/system/systemd-networkd.socket"))
	text("/etc/systemd/network/80-nodebake-dhcp.network", 0o644, dhcpNetwork)
	// Per-machine network configuration (a static underlay address, say)
	// may come as systemd credentials network.network.NAME and friends.
	add(entry.Symlink(SystemdUnitDir+"/sysinit.target.wants/systemd-network-generator.service", "/usr/lib/systemd/system/systemd-network-generator.service"))

	// Pods must not reach the metadata services: they hand out the node
	// config, with the node's private keys, as user data.
	text(SystemdUnitDir+"/"+MetadataGuardUnit, 0o644, metadataGuardUnit)
	text(MetadataGuardRules(), 0o644, metadataGuardRules(false))
	text(MetadataGuardRules6(), 0o644, metadataGuardRules(true))
	add(entry.Symlink(SystemdUnitDir+"/multi-user.target.wants/"+MetadataGuardUnit, "../"+MetadataGuardUnit))

	if len(s.Images) > 0 {
		text(SystemdUnitDir+"/nodebake-preload.service", 0o644, preloadUnit())
		add(entry.Symlink(SystemdUnitDir+"/multi-user.target.wants/nodebake-preload.service", "../nodebake-preload.service"))
	}

	// Kernel modules and sysctls.
	text("/etc/modules-load.d/nodebake.conf", 0o644, modulesLoad)
	text(SysctlPath, 0o644, sysctls())
	// Time sources come from DHCP or the node's own configuration, never
	// from the distribution's pool servers.
	text("/etc/systemd/timesyncd.conf.d/50-nodebake.conf", 0o644, timesyncd)

	// The read-only root: /var on its own partition, formatted on first
	// boot; state directories created by tmpfiles; an empty machine-id so
	// systemd derives one at boot; no swap.
	text("/etc/fstab", 0o644, fstab())
	text("/etc/tmpfiles.d/nodebake.conf", 0o644, tmpfiles())
	text("/etc/machine-id", 0o444, "")
	// The ESP's mount point: systemd's gpt-auto generator mounts it at /efi
	// on demand; the read-only root cannot create it at boot.
	add(entry.Dir("/efi", 0o700))
	text("/etc/hostname", 0o644, "localhost\n")
	// A spec's own /etc/resolv.conf (its files) replaces this one.
	if !slices.ContainsFunc(s.Files, func(f spec.File) bool { return f.Path == ResolvConf }) {
		text(ResolvConf, 0o644, "# DNS for host processes: give this file's content (nameserver lines) in the spec's files.\n")
	}

	// Templates and facts for the first-boot step.
	kc, err := s.KubeletConfigJSON()
	if err != nil {
		return nil, fmt.Errorf("rendering the kubelet configuration: %w", err)
	}
	kp, err := s.KubeProxyConfigJSON()
	if err != nil {
		return nil, fmt.Errorf("rendering the kube-proxy configuration: %w", err)
	}
	text(KubeletConfigTemplate(), 0o644, string(kc))
	text(KubeProxyConfigTemplate(), 0o644, string(kp))
	facts, err := json.MarshalIndent(ImageFacts(s), "", "  ")
	if err != nil {
		return nil, err
	}
	text(firstboot.FactsPath, 0o644, string(facts)+"\n")

	files, err := ExtraFiles(s)
	if err != nil {
		return nil, err
	}
	return append(out, files...), nil
}

// ExtraFiles returns the entries of the spec's files list.
func ExtraFiles(s *spec.Spec) ([]entry.Entry, error) {
	var out []entry.Entry
	for i, f := range s.Files {
		field := fmt.Sprintf("files[%d]", i)
		var e entry.Entry
		switch {
		case f.Content != nil:
			e = entry.File(f.Path, 0o644, []byte(*f.Content))
		case f.Source != "":
			p := s.ResolvePath(f.Source)
			fi, err := os.Stat(p)
			if err != nil {
				return nil, fmt.Errorf("%s.source: %w", field, err)
			}
			if !fi.Mode().IsRegular() {
				return nil, fmt.Errorf("%s.source: %s is not a regular file", field, p)
			}
			e = entry.Entry{Path: f.Path, Type: tar.TypeReg, Mode: 0o644, Size: fi.Size(),
				Open: func() (io.ReadCloser, error) { return os.Open(p) }}
		case f.Link != "":
			e = entry.Symlink(f.Path, f.Link)
		case f.Directory:
			e = entry.Dir(f.Path, 0o755)
		default:
			return nil, fmt.Errorf("%s: no content, source, link or directory", field)
		}
		if f.Mode != "" && e.Type != tar.TypeSymlink {
			m, err := strconv.ParseInt(f.Mode, 8, 64)
			if err != nil {
				return nil, fmt.Errorf("%s.mode: %w", field, err)
			}
			e.Mode = m
		}
		e.UID, e.GID = f.UID, f.GID
		out = append(out, e)
	}
	return out, nil
}

func containerdConfig(s *spec.Spec) string {
	systemd := s.Containerd.SystemdCgroup == nil || *s.Containerd.SystemdCgroup
	return fmt.Sprintf(`# Generated by nodebake. containerd 2.x configuration, version 3.
version = 3
root = "/var/lib/containerd"
state = "/run/containerd"

[grpc]
  address = "/run/containerd/containerd.sock"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"

  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = %q

[plugins."io.containerd.cri.v1.runtime"]
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"

    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "/usr/local/sbin/runc"
        SystemdCgroup = %t

  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/opt/cni/bin"]
    conf_dir = "/etc/cni/net.d"
`, s.Containerd.SandboxImage, systemd)
}

// CrictlConfig is the image's crictl configuration (CrictlConfigPath).
const CrictlConfig = `runtime-endpoint: unix:///run/containerd/containerd.sock
image-endpoint: unix:///run/containerd/containerd.sock
timeout: 10
`

// containerdUnit follows upstream's containerd.service.
const containerdUnit = `[Unit]
Description=containerd container runtime
Documentation=https://containerd.io
After=network.target local-fs.target systemd-modules-load.service

[Service]
ExecStart=/usr/local/bin/containerd
Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=5
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
`

func execLine(binary string, flags []string, extra string) string {
	var b strings.Builder
	b.WriteString("ExecStart=" + binary)
	for _, f := range flags {
		b.WriteString(" \\\n  " + systemdWord(f))
	}
	if extra != "" {
		b.WriteString(" \\\n  " + extra)
	}
	return b.String()
}

// systemdWord writes one command-line word for ExecStart= as is, or,
// when systemd would read it otherwise (spaces and quotes split and join
// words, backslashes escape, $ expands variables, % specifiers), in double
// quotes with those escaped. Validation refuses control characters in
// flag values, so no word can end the line.
func systemdWord(w string) string {
	if w != "" && !strings.ContainsAny(w, " \t\"'\\$%;") {
		return w
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "$", "$$", "%", "%%")
	return `"` + r.Replace(w) + `"`
}

// kubeletUnit waits for the first-boot step: without node configuration
// its start condition is unmet and it stays inactive (never crash-loops).
func kubeletUnit(flags []string) string {
	return `[Unit]
Description=Kubernetes Kubelet
Documentation=https://kubernetes.io/docs/reference/command-line-tools-reference/kubelet/
After=containerd.service nodebake-firstboot.service ` + MetadataGuardUnit + `
Requires=containerd.service ` + MetadataGuardUnit + `
Wants=nodebake-firstboot.service
ConditionPathExists=` + firstboot.ReadyPath + `

[Service]
EnvironmentFile=-` + firstboot.KubeletEnvPath + `
` + ipAccess(firstboot.KubeletUnit) + `
# The kubelet binds to the node's wg0 address: wait until wg0 has it.
ExecStartPre=` + waitWG0 + `
` + execLine("/usr/local/bin/kubelet", flags, "$KUBELET_NODE_ARGS") + `
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
`
}

func kubeProxyUnit(flags []string) string {
	return `[Unit]
Description=Kubernetes Kube Proxy
Documentation=https://kubernetes.io/docs/reference/command-line-tools-reference/kube-proxy/
After=network.target nodebake-firstboot.service systemd-modules-load.service
Wants=nodebake-firstboot.service
ConditionPathExists=` + firstboot.ReadyPath + `

[Service]
` + ipAccess(firstboot.KubeProxyUnit) + `
ExecStartPre=` + waitWG0 + `
` + execLine("/usr/local/bin/kube-proxy", flags, "") + `
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
`
}

// ipAccess denies the unit IP traffic with any address but loopback; first
// boot allows the node's own networks in a runtime drop-in. Without it
// (no node config, or first boot failed) the unit does not start anyway,
// and a unit started by hand still reaches nothing.
func ipAccess(unit string) string {
	return `# IP traffic with loopback only; the first-boot step allows this node's
# networks (IPAddressAllow= in ` + firstboot.IPAccessPath(unit) + `).
IPAddressDeny=any
IPAddressAllow=localhost`
}

// preloadUnit imports the baked image archives into containerd before the
// kubelet starts; importing what is already there is harmless.
func preloadUnit() string {
	return `[Unit]
Description=nodebake: import preloaded container images into containerd
After=containerd.service
Requires=containerd.service
Before=kubelet.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'for f in ` + PreloadDir() + `/*.tar; do /usr/local/bin/ctr --namespace k8s.io images import "$f" || exit 1; done'

[Install]
WantedBy=multi-user.target
`
}

// waitWG0 waits until systemd-networkd has configured wg0.
const waitWG0 = "/usr/lib/systemd/systemd-networkd-wait-online --interface=wg0:routable --timeout=120"

// dhcpNetwork configures the uplinks; the hostname is the node name the
// first-boot step sets, never the DHCP server's.
const dhcpNetwork = `[Match]
Name=en* eth*

[Network]
DHCP=yes

[DHCPv4]
UseHostname=no
`

const timesyncd = `# nodebake: no fallback (pool) servers; NTP servers come from DHCP
# (systemd-networkd) or are added through the spec's files.
[Time]
FallbackNTP=
`

const modulesLoad = `# Kernel modules a Kubernetes worker needs (nodebake).
overlay
br_netfilter
ip_vs
ip_vs_rr
ip_vs_wrr
ip_vs_sh
nf_conntrack
wireguard
`

// sysctls are the kernel settings a worker needs: forwarding for pods and
// services, and the settings the kubelet checks (with
// protectKernelDefaults, it refuses to start unless they are set).
func sysctls() string {
	var b strings.Builder
	b.WriteString(`# Sysctls a Kubernetes worker needs (nodebake).
net.ipv4.ip_forward = 1
net.bridge.bridge-nf-call-iptables = 1
net.bridge.bridge-nf-call-ip6tables = 1

# What the kubelet checks at start (protectKernelDefaults).
`)
	for _, k := range spec.KubeletKernelSettings() {
		fmt.Fprintf(&b, "%s = %d\n", k.Key, k.Value)
	}
	return b.String()
}

// fstab mounts /var.
func fstab() string {
	return `# /var lives on its own GPT partition (PARTLABEL ` + growvar.PartLabel + `). Before it is
# mounted, ` + growvar.Unit + ` grows the partition to the end of the disk;
# systemd-makefs formats it on first boot and systemd-growfs grows the
# filesystem to the partition.
# The root file system is read-only squashfs, mounted by the initrd.
# Without /var the node cannot work, so its device is waited for longer
# than systemd's 90 s (slow controllers, a loaded hypervisor).
PARTLABEL=` + growvar.PartLabel + `  /var  ext4  defaults,noatime,x-systemd.makefs,x-systemd.growfs,x-systemd.device-timeout=5min,x-systemd.requires=` + growvar.Unit + `  0  2
`
}

// MetadataGuardUnit installs the firewall rules that keep traffic the node
// forwards (pods on the bridge or any routed pod network, traffic from
// other nodes) away from the metadata services, before containerd and the
// kubelet start. The kubelet requires it: no guard, no pods.
const MetadataGuardUnit = firstboot.MetadataGuardUnit

// MetadataGuardChain is the filter table chain that holds the rules; the
// FORWARD chain jumps to it first.
const MetadataGuardChain = "NODEBAKE-METADATA"

// MetadataGuardRules and MetadataGuardRules6 are the iptables-restore
// inputs for IPv4 and IPv6.
func MetadataGuardRules() string  { return LibDir() + "/metadata-guard.rules" }
func MetadataGuardRules6() string { return LibDir() + "/metadata-guard6.rules" }

// metadataGuardRules renders the chain for iptables-restore --noflush: the
// chain is (re)made empty and filled, other chains are left alone. DNS on
// port 53 passes: GCE's metadata server and Azure's wireserver are also
// the VM's DNS resolvers, which pods' DNS (CoreDNS forwarding to the
// node's resolv.conf) may use. Only forwarded traffic is matched: the node
// itself, and host-network pods, still reach the services.
func metadataGuardRules(v6 bool) string {
	addrs := []string{platform.MetadataIPv4 + "/32", platform.WireServerIPv4 + "/32"}
	if v6 {
		addrs = []string{platform.MetadataIPv6 + "/128"}
	}
	var b strings.Builder
	b.WriteString("# nodebake: forwarded (pod) traffic to the cloud metadata services is dropped, DNS excepted.\n")
	b.WriteString("*filter\n:" + MetadataGuardChain + " - [0:0]\n")
	for _, proto := range []string{"udp", "tcp"} {
		fmt.Fprintf(&b, "-A %s -p %s -m %s --dport 53 -m comment --comment \"DNS to the metadata servers is allowed\" -j RETURN\n", MetadataGuardChain, proto, proto)
	}
	for _, a := range addrs {
		fmt.Fprintf(&b, "-A %s -d %s -m comment --comment \"no pod may read the node user data\" -j DROP\n", MetadataGuardChain, a)
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// metadataGuardUnit loads the rules and puts the jump first in FORWARD
// (once: running it again leaves one jump). kube-proxy later puts its own
// jump (KUBE-FORWARD) before it; that chain accepts only established and
// service-marked connections, so a pod's new connection still meets these
// rules.
var metadataGuardUnit = `[Unit]
Description=nodebake: keep pod traffic away from the cloud metadata services
DefaultDependencies=no
After=systemd-modules-load.service
Before=network-pre.target containerd.service kubelet.service shutdown.target
Wants=network-pre.target
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/iptables-restore --noflush ` + MetadataGuardRules() + `
ExecStart=/bin/sh -c 'iptables -C FORWARD -j ` + MetadataGuardChain + ` 2>/dev/null || iptables -I FORWARD 1 -j ` + MetadataGuardChain + `'
ExecStart=/usr/sbin/ip6tables-restore --noflush ` + MetadataGuardRules6() + `
ExecStart=/bin/sh -c 'ip6tables -C FORWARD -j ` + MetadataGuardChain + ` 2>/dev/null || ip6tables -I FORWARD 1 -j ` + MetadataGuardChain + `'

[Install]
WantedBy=multi-user.target
`

// tmpfiles creates the state directories of a worker on the persistent
// /var, and the first-boot program's run directory.
func tmpfiles() string {
	return "# State directories of a nodebake worker, on the persistent /var.\n" + tmpfilesDirs([][2]string{
		{"/var/lib/kubelet", "0700"},
		{"/var/lib/kubelet/volumeplugins", "0700"},
		{"/var/lib/kube-proxy", "0700"},
		{firstboot.CertDir, "0700"},
		{"/var/lib/containerd", "0711"},
		{"/var/lib/cni", "0755"},
		{CNIConfigDir(), "0755"},
		{"/var/log/pods", "0755"},
		{RunDir(), "0755"},
	})
}

// tmpfilesDirs renders tmpfiles.d "d" lines, root-owned.
func tmpfilesDirs(dirs [][2]string) string {
	var b strings.Builder
	for _, d := range dirs {
		fmt.Fprintf(&b, "d %-30s %s root root -\n", d[0], d[1])
	}
	return b.String()
}
