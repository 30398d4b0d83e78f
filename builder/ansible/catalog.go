package ansible

import (
	"sort"
	"strings"

	"github.com/nodebake/nodebake/layers/suggest"
)

// Bucket is what became of a variable.
type Bucket string

// The buckets every variable lands in.
const (
	// Mapped: the value became a spec field, or was checked against the
	// image and matches it (or differs, which is then a decision).
	Mapped Bucket = "mapped"
	// PerNode: it differs per node; the node configs carry it and first
	// boot fills it in.
	PerNode Bucket = "per node"
	// NoMeaning: nothing in an immutable image corresponds to it.
	NoMeaning Bucket = "no meaning"
	// Refused: it cannot be carried over; the import fails, naming it.
	Refused Bucket = "refused"
)

// handling says how the importer treats a variable it knows.
type handling int

const (
	// unknownVar: not a variable of the roles nodebake knows.
	unknownVar handling = iota
	// imageVar: mapped into the spec, evaluated as every worker sees it.
	imageVar
	// nodeVar: a per-host WireGuard or pod network variable.
	nodeVar
	// workerRefused: refused when it applies to a worker; no meaning on
	// other hosts.
	workerRefused
	// noMeaning: always no meaning, for the reason given.
	noMeaning
	// specialVar: read for the import itself (CA directory, API server,
	// CIDRs of the control plane).
	specialVar
)

type known struct {
	how    handling
	role   string
	reason string
}

// Roles.
const (
	roleWorker     = "githubixx.kubernetes-worker"
	roleContainerd = "githubixx.containerd"
	roleWireGuard  = "githubixx.wireguard"
	roleController = "githubixx.kubernetes-controller"
	roleNodebake   = "nodebake"
)

// Reasons a variable has no meaning in an immutable image.
const (
	reasonDownload   = "where the role downloads and unpacks archives: the image is built with its binaries in place"
	reasonOwnership  = "an owner, group or mode the role sets: the image's files have fixed owners and modes (root; binaries 0755, configuration 0644, keys 0600)"
	reasonPackaging  = "how the role installs packages and starts services on a live host: the image bakes its files and enables its units at build time"
	reasonConnection = "how Ansible reaches the host; nothing in the image"
	reasonOtherRole  = "a variable of a control-plane, CA, etcd or network add-on role: a worker does not read it"
	reasonWGConf     = "where and how the role writes wg0.conf and runs wg-quick: first boot writes wg0 for systemd-networkd under /run instead"
	reasonRoleList   = "a list inside the role of what its archive holds: the image bakes the components of the spec"
)

// catalog returns every variable nodebake knows, by name.
func catalog() map[string]known {
	return map[string]known{
		// githubixx.kubernetes-worker (the seed's version).
		"k8s_release":                    {imageVar, roleWorker, ""},
		"k8s_interface":                  {imageVar, roleWorker, ""},
		"k8s_conf_dir":                   {imageVar, roleWorker, ""},
		"k8s_bin_dir":                    {imageVar, roleWorker, ""},
		"k8s_worker_binaries":            {imageVar, roleWorker, ""},
		"k8s_worker_certificates":        {imageVar, roleWorker, ""},
		"k8s_worker_kubelet_conf_dir":    {imageVar, roleWorker, ""},
		"k8s_worker_kubelet_settings":    {imageVar, roleWorker, ""},
		"k8s_worker_kubelet_conf_yaml":   {imageVar, roleWorker, ""},
		"k8s_worker_kubeproxy_conf_dir":  {imageVar, roleWorker, ""},
		"k8s_worker_kubeproxy_settings":  {imageVar, roleWorker, ""},
		"k8s_worker_kubeproxy_conf_yaml": {imageVar, roleWorker, ""},
		"k8s_ca_conf_directory":          {specialVar, roleWorker, ""},
		"k8s_config_directory":           {specialVar, roleWorker, ""},
		"k8s_worker_download_dir":        {noMeaning, roleWorker, reasonDownload},

		// githubixx.containerd (0.x, with the k8s flavor).
		"containerd_flavor":                     {imageVar, roleContainerd, ""},
		"containerd_version":                    {imageVar, roleContainerd, ""},
		"containerd_binary_directory":           {imageVar, roleContainerd, ""},
		"containerd_config_directory":           {imageVar, roleContainerd, ""},
		"containerd_runc_binary_directory":      {imageVar, roleContainerd, ""},
		"containerd_cni_binary_directory":       {imageVar, roleContainerd, ""},
		"containerd_crictl_config_file":         {imageVar, roleContainerd, ""},
		"containerd_crictl_config_directory":    {imageVar, roleContainerd, ""},
		"containerd_crictl_config_file_content": {imageVar, roleContainerd, ""},
		"containerd_cni_netconfig_file":         {imageVar, roleContainerd, ""},
		"containerd_cni_netconfig_directory":    {imageVar, roleContainerd, ""},
		"containerd_cni_netconfig_file_content": {imageVar, roleContainerd, ""},
		"containerd_config":                     {imageVar, roleContainerd, ""},
		"containerd_service_settings":           {imageVar, roleContainerd, ""},
		"containerd_os":                         {imageVar, roleContainerd, ""},
		"containerd_arch":                       {imageVar, roleContainerd, ""},
		"containerd_tmp_directory":              {noMeaning, roleContainerd, reasonDownload},
		"containerd_archive_base":               {noMeaning, roleContainerd, reasonDownload},
		"containerd_archive_k8s":                {noMeaning, roleContainerd, reasonDownload},
		"containerd_url":                        {noMeaning, roleContainerd, reasonDownload},
		"containerd_binaries":                   {noMeaning, roleContainerd, reasonRoleList},
		"containerd_cni_binaries":               {noMeaning, roleContainerd, reasonRoleList},
		"containerd_binaries_src_directory":     {noMeaning, roleContainerd, reasonRoleList},

		// githubixx.wireguard: per host.
		"wireguard_address":                         {nodeVar, roleWireGuard, ""},
		"wireguard_addresses":                       {nodeVar, roleWireGuard, ""},
		"wireguard_port":                            {nodeVar, roleWireGuard, ""},
		"wireguard_endpoint":                        {nodeVar, roleWireGuard, ""},
		"wireguard_persistent_keepalive":            {nodeVar, roleWireGuard, ""},
		"wireguard_allowed_ips":                     {nodeVar, roleWireGuard, ""},
		"wireguard_private_key":                     {nodeVar, roleWireGuard, ""},
		"wireguard_unmanaged_peers":                 {nodeVar, roleWireGuard, ""},
		"wireguard_interface":                       {nodeVar, roleWireGuard, ""},
		"wireguard_dns":                             {workerRefused, roleWireGuard, "wg0 from first boot sets no DNS servers; name resolution comes from the image (add /etc/resolv.conf settings through the spec's files)"},
		"wireguard_fwmark":                          {workerRefused, roleWireGuard, "wg0 from first boot sets no firewall mark"},
		"wireguard_mtu":                             {workerRefused, roleWireGuard, "wg0 from first boot keeps the default MTU"},
		"wireguard_table":                           {workerRefused, roleWireGuard, "wg0 from first boot adds its routes to the main table"},
		"wireguard_preup":                           {workerRefused, roleWireGuard, "first boot runs no commands when wg0 comes up or goes down"},
		"wireguard_predown":                         {workerRefused, roleWireGuard, "first boot runs no commands when wg0 comes up or goes down"},
		"wireguard_postup":                          {workerRefused, roleWireGuard, "first boot runs no commands when wg0 comes up or goes down"},
		"wireguard_postdown":                        {workerRefused, roleWireGuard, "first boot runs no commands when wg0 comes up or goes down"},
		"wireguard_dc":                              {workerRefused, roleWireGuard, "per-datacenter endpoints are not carried over: give each host its wireguard_endpoint"},
		"wireguard_save_config":                     {noMeaning, roleWireGuard, reasonWGConf},
		"wireguard_remote_directory":                {noMeaning, roleWireGuard, reasonWGConf},
		"wireguard_conf_owner":                      {noMeaning, roleWireGuard, reasonOwnership},
		"wireguard_conf_group":                      {noMeaning, roleWireGuard, reasonOwnership},
		"wireguard_conf_mode":                       {noMeaning, roleWireGuard, reasonOwnership},
		"wireguard_conf_backup":                     {noMeaning, roleWireGuard, reasonWGConf},
		"wireguard_service_enabled":                 {noMeaning, roleWireGuard, reasonPackaging},
		"wireguard_service_state":                   {noMeaning, roleWireGuard, reasonPackaging},
		"wireguard_interface_restart":               {noMeaning, roleWireGuard, reasonWGConf},
		"wireguard_update_cache":                    {noMeaning, roleWireGuard, reasonPackaging},
		"wireguard_install_kernel_module":           {noMeaning, roleWireGuard, "the image loads the wireguard module itself"},
		"wireguard_ubuntu_update_cache":             {noMeaning, roleWireGuard, reasonPackaging},
		"wireguard_ubuntu_cache_valid_time":         {noMeaning, roleWireGuard, reasonPackaging},
		"wireguard_ubuntu_use_netplan":              {noMeaning, roleWireGuard, reasonWGConf},
		"wireguard_rockylinux8_installation_method": {noMeaning, roleWireGuard, reasonPackaging},
		"wireguard_unmanaged_hosts":                 {workerRefused, roleWireGuard, "an old form of wireguard_unmanaged_peers; write it as wireguard_unmanaged_peers"},

		// nodebake's own host variable: a worker's pod CIDR.
		PodCIDRVar: {nodeVar, roleNodebake, ""},

		// The control plane's view of the cluster's networks and API server.
		"k8s_apiserver_settings":          {specialVar, roleController, ""},
		"k8s_controller_manager_settings": {specialVar, roleController, ""},
		"k8s_apiserver_secure_port":       {specialVar, roleController, ""},

		// Ansible's own connection variables.
		"ansible_host":               {noMeaning, "Ansible", reasonConnection},
		"ansible_port":               {noMeaning, "Ansible", reasonConnection},
		"ansible_user":               {noMeaning, "Ansible", reasonConnection},
		"ansible_connection":         {noMeaning, "Ansible", reasonConnection},
		"ansible_python_interpreter": {noMeaning, "Ansible", reasonConnection},
		"ansible_become":             {noMeaning, "Ansible", reasonConnection},
		"ansible_become_user":        {noMeaning, "Ansible", reasonConnection},
		"ansible_become_method":      {noMeaning, "Ansible", reasonConnection},
		"ansible_group_priority":     {noMeaning, "Ansible", "the order Ansible applies group variables in; the import applied it"},
	}
}

// ownershipSuffixes mark the roles' owner, group and mode variables.
func ownershipSuffixes() []string {
	return []string{"_owner", "_group", "_mode", "_binary_mode", "_directory_mode", "_file_mode"}
}

// otherRolePrefixes are variables of the control plane, the CA, etcd and
// network add-ons.
func otherRolePrefixes() []string {
	return []string{
		"k8s_apiserver_", "k8s_controller_", "k8s_scheduler_", "k8s_ctl_", "k8s_ca_", "k8s_config_",
		"k8s_encryption_", "k8s_admin_", "k8s_certificates", "etcd_", "ca_", "cilium_", "coredns_", "traefik_",
	}
}

// workerRolePrefixes are the prefixes of the roles a worker runs: an
// unknown variable with one of them is refused (a typo, or a newer role
// version nodebake does not know).
func workerRolePrefixes() []string { return []string{"k8s_worker_", "containerd_", "wireguard_"} }

// lookupKnown classifies a variable by name.
func lookupKnown(name string) known {
	if k, ok := catalog()[name]; ok {
		return k
	}
	for _, p := range workerRolePrefixes() {
		if strings.HasPrefix(name, p) {
			for _, s := range ownershipSuffixes() {
				if strings.HasSuffix(name, s) {
					return known{noMeaning, roleOf(p), reasonOwnership}
				}
			}
		}
	}
	if strings.HasPrefix(name, "ansible_ssh_") || strings.HasPrefix(name, "ansible_become") {
		return known{noMeaning, "Ansible", reasonConnection}
	}
	for _, p := range otherRolePrefixes() {
		if strings.HasPrefix(name, p) {
			return known{noMeaning, "another role", reasonOtherRole}
		}
	}
	return known{how: unknownVar}
}

func roleOf(prefix string) string {
	switch prefix {
	case "k8s_worker_":
		return roleWorker
	case "containerd_":
		return roleContainerd
	}
	return roleWireGuard
}

// suggestKnown returns a known variable close to name, or "".
func suggestKnown(name string) string {
	known := make([]string, 0, len(catalog()))
	for k := range catalog() {
		known = append(known, k)
	}
	sort.Strings(known)
	return suggest.Closest(name, known)
}
