//go:generate packer-sdc mapstructure-to-hcl2 -type Config,BaseConfig,KubernetesConfig,ComponentConfig,SourcesConfig,AgentConfig,ContainerdConfig,ImageConfig,FileConfig,OutputConfig,VerifiedBootConfig,SigningConfig,UpdatesConfig
//go:generate sh ../../scripts/struct-markdown.sh

package nodebake

import (
	"github.com/hashicorp/packer-plugin-sdk/common"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"
)

// Config is the configuration of a nodebake source. Besides the build
// settings (spec_file, output_directory, cache_dir, firstboot_binary,
// offline), it mirrors the worker image spec section by section with
// snake_case names: every field of a nodebake YAML spec can be set here,
// and a value set here overrides the one read from spec_file.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`

	// A YAML worker image spec (the format `nodebake build` reads) to start
	// from. Values set in this source override the file's; `file` and
	// `image` blocks are added to the file's lists. Relative paths inside the
	// spec (base image layouts, file sources) resolve against the spec
	// file's directory; without spec_file they resolve against the
	// directory Packer runs in.
	SpecFile string `mapstructure:"spec_file"`
	// The directory the image (`NAME.raw`) and its manifest
	// (`NAME.manifest.json`) are written to. It is created when missing.
	// Existing outputs of the same name are only replaced with `packer build
	// -force`. Defaults to `output-BUILDNAME`.
	OutputDirectory string `mapstructure:"output_directory"`
	// The content-addressed cache of downloads, built components and
	// normalized base images. Defaults to `$NODEBAKE_CACHE`, else the user's
	// cache directory plus `nodebake` (the same cache as `nodebake build`).
	CacheDir string `mapstructure:"cache_dir"`
	// The `nodebake-firstboot` program baked into the image. When unset,
	// the plugin bakes the one embedded in it for the image's architecture
	// (amd64 or arm64), built from the same sources as the plugin: nothing
	// else needs to be installed. Set it to bake another build of the
	// program.
	FirstbootBinary string `mapstructure:"firstboot_binary"`
	// Use only what the cache holds: never download.
	Offline bool `mapstructure:"offline"`
	// The URL the netboot bundle (format `netboot`) will be served from; it
	// goes into the bundle's `boot.ipxe`. When unset, the script uses the
	// URL it was loaded from.
	NetbootURL string `mapstructure:"netboot_url"`

	// The image name (a DNS label); it names the output files. Spec:
	// `name`, default `worker`.
	Name string `mapstructure:"name"`
	// The target architecture, `amd64` or `arm64`. Spec: `arch`, default
	// `amd64`.
	Arch string `mapstructure:"arch"`
	// The fixed timestamp (seconds since the Unix epoch) of every file and
	// filesystem in the image. Spec: `sourceDateEpoch`, default 0.
	SourceDateEpoch *int64 `mapstructure:"source_date_epoch"`
	// The base operating system image. Spec: `base`.
	Base BaseConfig `mapstructure:"base"`
	// Cluster-wide settings. Spec: `kubernetes`.
	Kubernetes KubernetesConfig `mapstructure:"kubernetes"`
	// A component baked into the image, named by its spec key (`kubelet`,
	// `kubeProxy`, `cniPlugins`) or its upstream name (`kube-proxy`,
	// `cni-plugins`); repeat the block for more, one per component. The
	// components and which of them are baked by default are those of the
	// component catalogue (`nodebake spec print` shows them). Spec:
	// `components.NAME`.
	Components []ComponentConfig `mapstructure:"component"`
	// Where downloads come from. Spec: `sources`.
	Sources SourcesConfig `mapstructure:"sources"`
	// The kubelet's flags and KubeletConfiguration. Spec: `kubelet`.
	Kubelet AgentConfig `mapstructure:"kubelet"`
	// kube-proxy's flags and KubeProxyConfiguration. Spec: `kubeProxy`.
	KubeProxy AgentConfig `mapstructure:"kube_proxy"`
	// containerd settings. Spec: `containerd`.
	Containerd ContainerdConfig `mapstructure:"containerd"`
	// A container image preloaded into containerd's store; repeat the
	// block for more. Spec: `images[]`.
	Images []ImageConfig `mapstructure:"image"`
	// An extra file, directory or symlink baked into the image; repeat the
	// block for more. Spec: `files[]`.
	Files []FileConfig `mapstructure:"file"`
	// What the build writes. Spec: `output`.
	Output OutputConfig `mapstructure:"output"`

	ctx interpolate.Context
}

// BaseConfig is the base operating system image.
type BaseConfig struct {
	// `oci:DIR` or `oci:DIR@sha256:HEX` (an OCI image layout directory),
	// `tarball:FILE` (a docker or OCI image tarball) or a registry reference.
	// Spec: `base.image`.
	Image string `mapstructure:"image"`
	// Pins the image manifest digest (`sha256:HEX`). Spec: `base.digest`.
	Digest string `mapstructure:"digest"`
}

// KubernetesConfig holds cluster-wide settings.
type KubernetesConfig struct {
	// The Kubernetes version, `vMAJOR.MINOR.PATCH`; kubelet, kube-proxy and
	// kubectl default to it. Spec: `kubernetes.version`.
	Version string `mapstructure:"version"`
	// The service network. Spec: `kubernetes.serviceCIDR`, default
	// `10.32.0.0/16`.
	ServiceCIDR string `mapstructure:"service_cidr"`
	// The pod network. Spec: `kubernetes.clusterCIDR`, default
	// `10.200.0.0/16`.
	ClusterCIDR string `mapstructure:"cluster_cidr"`
	// `none` (a network add-on installs the CNI configuration) or `bridge`
	// (a bridge + host-local configuration on the node's pod CIDR). Spec:
	// `kubernetes.podNetwork`, default `none`.
	PodNetwork string `mapstructure:"pod_network"`
}

// ComponentConfig is one versioned component.
type ComponentConfig struct {
	// The component: its spec key (`kubeProxy`) or upstream name
	// (`kube-proxy`).
	Name string `mapstructure:"name" required:"true"`
	// The component version, `vMAJOR.MINOR.PATCH`. Spec: `version`.
	Version string `mapstructure:"version"`
	// Where the files come from: `release` (the upstream release artifact,
	// pinned by checksum), `go` (built from source through the Go module
	// proxy) or `oci` (an OCI image). Spec: `from`, default `release`.
	From string `mapstructure:"from"`
	// Overrides the release artifact URL (`from = "release"` only);
	// `{version}` and `{arch}` are substituted. Spec: `url`.
	URL string `mapstructure:"url"`
	// The OCI image holding the files (`from = "oci"` only). Spec: `image`.
	Image string `mapstructure:"image"`
	// The release artifact's sha256 per architecture, e.g. `{ amd64 =
	// "..." }`. Spec: `sha256`.
	SHA256 map[string]string `mapstructure:"sha256"`
	// The release artifact's sha512 per architecture. Spec: `sha512`.
	SHA512 map[string]string `mapstructure:"sha512"`
}

// SourcesConfig configures downloads.
type SourcesConfig struct {
	// A base URL: an upstream URL `https://HOST/PATH` is fetched from
	// `MIRROR/HOST/PATH` instead. Spec: `sources.mirror`.
	Mirror string `mapstructure:"mirror"`
	// How often a failed download is retried (0 to 10). Spec:
	// `sources.retries`, default 3.
	Retries *int `mapstructure:"retries"`
}

// AgentConfig configures the kubelet or kube-proxy.
type AgentConfig struct {
	// Command-line flags (name without dashes = value), merged over the
	// defaults. Spec: `settings`.
	Settings map[string]string `mapstructure:"settings"`
	// Default flags to remove (names without dashes). Spec: a `settings`
	// key with a null value.
	RemoveSettings []string `mapstructure:"remove_settings"`
	// Configuration fields (KubeletConfiguration or KubeProxyConfiguration)
	// as a JSON object, deep-merged over the defaults: objects merge key by
	// key, lists and scalars replace, and null removes a key. Write it with
	// `jsonencode({ ... })`. Spec: `config`.
	ConfigJSON string `mapstructure:"config_json"`
}

// ContainerdConfig configures containerd.
type ContainerdConfig struct {
	// Makes runc use the systemd cgroup driver. Spec:
	// `containerd.systemdCgroup`, default true.
	SystemdCgroup *bool `mapstructure:"systemd_cgroup"`
	// The pause image reference. Spec: `containerd.sandboxImage`, default
	// `registry.k8s.io/pause:3.10.1`.
	SandboxImage string `mapstructure:"sandbox_image"`
}

// ImageConfig is a container image preloaded into the image's containerd
// store.
type ImageConfig struct {
	// The name the image is stored under (`name:tag`). Spec: `ref`.
	Ref string `mapstructure:"ref" required:"true"`
	// Where the image comes from: `oci:DIR`, `tarball:FILE` or a registry
	// reference. Spec: `image`.
	Image string `mapstructure:"image" required:"true"`
	// Pins the manifest digest (`sha256:HEX`). Spec: `digest`.
	Digest string `mapstructure:"digest"`
}

// FileConfig is an extra file, directory or symlink. Exactly one of
// content, source, link and directory is set.
type FileConfig struct {
	// The absolute, clean path in the image. Spec: `path`.
	Path string `mapstructure:"path" required:"true"`
	// The file's content. Spec: `content`.
	Content *string `mapstructure:"content"`
	// A local file to copy. Spec: `source`.
	Source string `mapstructure:"source"`
	// Makes the entry a symlink to this target. Spec: `link`.
	Link string `mapstructure:"link"`
	// Makes the entry a directory. Spec: `directory`.
	Directory bool `mapstructure:"directory"`
	// An octal mode string (`"0644"`). Defaults: 0644 for files, 0755 for
	// directories, 0777 for links. Spec: `mode`.
	Mode string `mapstructure:"mode"`
	// The owner's user id. Spec: `uid`.
	UID int `mapstructure:"uid"`
	// The owner's group id. Spec: `gid`.
	GID int `mapstructure:"gid"`
}

// OutputConfig configures what the build writes.
type OutputConfig struct {
	// The output formats: `raw` (sparse), `raw.zst`, `qcow2`, `vhd` (fixed,
	// Azure), `vmdk` (stream-optimized, vSphere), `gce` (`NAME.tar.gz`
	// holding `disk.raw`) and `netboot` (the `NAME.netboot/` bundle). The
	// raw image is kept only when `raw` is listed. Spec: `output.formats`,
	// default `["raw"]`.
	Formats []string `mapstructure:"formats"`
	// The EFI system partition size, in bytes or with a KiB, MiB, GiB or
	// TiB suffix. Spec: `output.espSize`, default `256MiB`.
	ESPSize string `mapstructure:"esp_size"`
	// The /var partition size; /var grows to the end of the disk at first
	// boot. Spec: `output.varSize`, default `1GiB` unless `disk_size` is
	// set.
	VarSize string `mapstructure:"var_size"`
	// The size of the image itself, instead of `var_size` (1GiB to
	// 2040GiB): /var takes what the ESP and the root filesystem leave.
	// Spec: `output.diskSize`.
	DiskSize string `mapstructure:"disk_size"`
	// The zstd level of the root filesystem (1 to 22). Spec:
	// `output.rootCompressionLevel`, default 3.
	RootCompressionLevel *int `mapstructure:"root_compression_level"`
	// Extra kernel command-line arguments. Spec: `output.kernelArgs`.
	KernelArgs []string `mapstructure:"kernel_args"`
	// Makes the image verified and A/B-updatable (a dm-verity root, a
	// UKI, optional Secure Boot signing, updates with rollback). Spec:
	// `output.verifiedBoot`.
	VerifiedBoot *VerifiedBootConfig `mapstructure:"verified_boot"`
}

// VerifiedBootConfig configures a verified, A/B-updatable image (see
// docs/verified-boot.md).
type VerifiedBootConfig struct {
	// Turns verified boot on. Spec: `output.verifiedBoot.enabled`.
	Enabled bool `mapstructure:"enabled"`
	// The image's version (IMAGE_VERSION): letters, digits and `.~^-`;
	// each build a higher one. Spec: `output.verifiedBoot.version`.
	Version string `mapstructure:"version"`
	// The size of each root slot (a multiple of 1MiB); default the root's
	// size plus half. Spec: `output.verifiedBoot.slotSize`.
	SlotSize string `mapstructure:"slot_size"`
	// Boots a newly installed version gets to become healthy (1 to 9).
	// Spec: `output.verifiedBoot.tries`, default 3.
	Tries int `mapstructure:"tries"`
	// Signs systemd-boot and the UKI for Secure Boot. Spec:
	// `output.verifiedBoot.signing`.
	Signing *SigningConfig `mapstructure:"signing"`
	// Where and when nodes look for updates. Spec:
	// `output.verifiedBoot.updates`.
	Updates *UpdatesConfig `mapstructure:"updates"`
}

// SigningConfig names the Secure Boot signing key and certificate.
type SigningConfig struct {
	// The PEM RSA private key, readable by its owner only (mode 0600).
	// Spec: `key`.
	Key string `mapstructure:"key" required:"true"`
	// The key's PEM certificate. Spec: `certificate`.
	Certificate string `mapstructure:"certificate" required:"true"`
}

// UpdatesConfig says where nodes find newer versions and when they look.
type UpdatesConfig struct {
	// The https URL the update output is published at. Spec: `source`.
	Source string `mapstructure:"source" required:"true"`
	// Accepts a plain http source (a network you trust). Spec: `allowHTTP`.
	AllowHTTP bool `mapstructure:"allow_http"`
	// A systemd OnCalendar expression; empty leaves updates to `systemctl
	// start nodebake-update`. Spec: `timer`.
	Timer string `mapstructure:"timer"`
}
