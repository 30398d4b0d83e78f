package spec

// APIVersion and Kind identify a worker image spec.
const (
	APIVersion = "nodebake.io/v1alpha1"
	Kind       = "WorkerImage"
)

// Spec describes a whole worker image. It is decoded strictly from YAML
// (unknown fields are errors) by Parse or Load, completed by Default and
// checked by Validate.
type Spec struct {
	// APIVersion is the spec's version: nodebake.io/v1alpha1.
	APIVersion string `yaml:"apiVersion"`
	// Kind is WorkerImage.
	Kind string `yaml:"kind"`
	// Name is the image name (a DNS label).
	Name string `yaml:"name"`
	// Arch is the target architecture.
	Arch Arch `yaml:"arch"`
	// SourceDateEpoch is the fixed timestamp (seconds since the Unix epoch)
	// of every file and filesystem in the image.
	SourceDateEpoch int64 `yaml:"sourceDateEpoch"`

	Base       Base       `yaml:"base"`
	Kubernetes Kubernetes `yaml:"kubernetes"`
	// Components are the components baked into the image, by their key
	// in the component catalogue.
	Components ComponentSet  `yaml:"components"`
	Sources    Sources       `yaml:"sources"`
	Kubelet    KubeletSpec   `yaml:"kubelet"`
	KubeProxy  KubeProxySpec `yaml:"kubeProxy"`
	Containerd Containerd    `yaml:"containerd"`
	// Images are container images preloaded into containerd's store.
	Images []Image `yaml:"images,omitempty"`
	// Files are extra files baked into the image.
	Files  []File `yaml:"files,omitempty"`
	Output Output `yaml:"output"`

	// Dir is the directory relative paths in the spec (files[].source,
	// oci:DIR and tarball:FILE sources) are resolved against: the spec
	// file's directory when loaded with Load, else the working directory.
	// It is not serialized.
	Dir string `yaml:"-"`
}

// Arch is a target architecture, named as Go and the upstream releases name it.
type Arch string

// Supported architectures.
const (
	ArchAMD64 Arch = "amd64"
	ArchARM64 Arch = "arm64"
)

// Arches returns the supported architectures.
func Arches() []Arch { return []Arch{ArchAMD64, ArchARM64} }

// Base is the base operating system image.
type Base struct {
	// Image is "oci:DIR" or "oci:DIR@sha256:HEX" (an OCI layout directory),
	// "tarball:FILE" (a docker or OCI image tarball) or a registry reference.
	Image string `yaml:"image"`
	// Digest optionally pins the image manifest digest ("sha256:HEX").
	Digest string `yaml:"digest,omitempty"`
}

// PodNetwork selects how pods get their network.
type PodNetwork string

// Pod network modes.
const (
	// PodNetworkNone installs no CNI configuration: a network add-on does.
	PodNetworkNone PodNetwork = "none"
	// PodNetworkBridge installs a bridge + host-local CNI configuration
	// using the node's pod CIDR.
	PodNetworkBridge PodNetwork = "bridge"
)

// Kubernetes holds cluster-wide settings.
type Kubernetes struct {
	// Version is the Kubernetes (control plane) version, vMAJOR.MINOR.PATCH.
	Version string `yaml:"version"`
	// ServiceCIDR is the service network.
	ServiceCIDR string `yaml:"serviceCIDR"`
	// ClusterCIDR is the pod network.
	ClusterCIDR string     `yaml:"clusterCIDR"`
	PodNetwork  PodNetwork `yaml:"podNetwork"`
}

// ComponentSource says where a component's files come from.
type ComponentSource string

// Component sources.
const (
	// FromRelease downloads the upstream release artifact, pinned by checksum.
	FromRelease ComponentSource = "release"
	// FromGo builds the component from source through the Go module proxy.
	FromGo ComponentSource = "go"
	// FromOCI takes the files from an OCI image.
	FromOCI ComponentSource = "oci"
)

// Component is one versioned component.
type Component struct {
	// Version is the component version, vMAJOR.MINOR.PATCH.
	Version string          `yaml:"version"`
	From    ComponentSource `yaml:"from"`
	// URL overrides the release artifact URL (from: release only). The
	// placeholders {version} and {arch} are substituted.
	URL string `yaml:"url,omitempty"`
	// Image is the OCI image holding the files (from: oci only, required).
	Image string `yaml:"image,omitempty"`
	// SHA256 and SHA512 are the release artifact checksums per architecture.
	SHA256 map[Arch]string `yaml:"sha256,omitempty"`
	SHA512 map[Arch]string `yaml:"sha512,omitempty"`
}

// Sources configures downloads.
type Sources struct {
	// Mirror, when set, is a base URL: an upstream URL https://HOST/PATH is
	// fetched from MIRROR/HOST/PATH instead.
	Mirror string `yaml:"mirror,omitempty"`
	// Retries is how often a failed download is retried (0..10).
	Retries *int `yaml:"retries"`
}

// KubeletSpec configures the kubelet.
type KubeletSpec struct {
	// Settings are command-line flags (name without dashes -> value),
	// merged over the defaults; a null value removes a default flag.
	Settings map[string]*string `yaml:"settings"`
	// Config holds KubeletConfiguration fields, deep-merged over the
	// defaults: maps merge key by key, lists and scalars replace, and a null
	// value removes the key.
	Config map[string]any `yaml:"config"`
}

// KubeProxySpec configures kube-proxy; it works like KubeletSpec with a
// KubeProxyConfiguration.
type KubeProxySpec struct {
	// Settings are command-line flags (name without dashes -> value),
	// merged over the defaults; a null value removes a default flag.
	Settings map[string]*string `yaml:"settings"`
	// Config holds KubeProxyConfiguration fields, deep-merged over the
	// defaults: maps merge key by key, lists and scalars replace, and a null
	// value removes the key.
	Config map[string]any `yaml:"config"`
}

// Containerd configures containerd.
type Containerd struct {
	// SystemdCgroup makes runc use the systemd cgroup driver.
	SystemdCgroup *bool `yaml:"systemdCgroup"`
	// SandboxImage is the pause image reference.
	SandboxImage string `yaml:"sandboxImage"`
}

// Image is a container image preloaded into the image's containerd store.
type Image struct {
	// Ref is the name the image is stored under ("name:tag").
	Ref string `yaml:"ref"`
	// Image is where the image comes from: "oci:DIR", "tarball:FILE" or a
	// registry reference.
	Image string `yaml:"image"`
	// Digest optionally pins the manifest digest ("sha256:HEX").
	Digest string `yaml:"digest,omitempty"`
}

// File is an extra file, directory or symlink baked into the image. Exactly
// one of Content, Source, Link and Directory is set.
type File struct {
	// Path is the absolute, clean path in the image.
	Path string `yaml:"path"`
	// Content is the file's content.
	Content *string `yaml:"content,omitempty"`
	// Source is a local file, relative to the spec's directory.
	Source string `yaml:"source,omitempty"`
	// Link makes the entry a symlink to this target.
	Link string `yaml:"link,omitempty"`
	// Directory makes the entry a directory.
	Directory bool `yaml:"directory,omitempty"`
	// Mode is an octal string ("0644"); setuid, setgid and sticky bits are
	// allowed. Defaults: 0644 for files, 0755 for directories, 0777 for links.
	Mode string `yaml:"mode"`
	// UID and GID are the entry's numeric owner and group (default 0, root).
	UID int `yaml:"uid"`
	GID int `yaml:"gid"`
}

// Output configures what the build writes.
type Output struct {
	// Formats are the files the build publishes, besides the manifest, the
	// SBOM and the sums. The raw image is always built (every other format
	// is converted from it) but kept only when "raw" is listed.
	Formats []Format `yaml:"formats"`
	// ESPSize is the EFI system partition size.
	ESPSize Size `yaml:"espSize"`
	// VarSize is the /var partition size. At first boot /var grows to the
	// end of the disk the image is written to.
	VarSize Size `yaml:"varSize,omitempty"`
	// DiskSize, instead of VarSize, is the size of the image itself: /var
	// takes what the ESP and the root filesystem leave. Cloud images come
	// out at the size the cloud expects of a disk (whole GiB on GCE).
	DiskSize Size `yaml:"diskSize,omitempty"`
	// RootCompressionLevel is the zstd level of the root filesystem (1..22).
	RootCompressionLevel int `yaml:"rootCompressionLevel"`
	// KernelArgs are extra kernel command-line arguments, each one word of
	// printable ASCII without quotes. Arguments that change how the image
	// boots are refused: root=, rootfstype=, rootflags= and ro/rw (set by nodebake), init= and
	// rdinit=, systemd.unit=, "--" (the rest would go to init) and the
	// words init takes as a target (single, emergency, rescue, 1 to 5); with verifiedBoot,
	// roothash= and panic= too.
	KernelArgs []string `yaml:"kernelArgs,omitempty"`
	// VerifiedBoot makes the image verified and A/B-updatable: a dm-verity
	// root, a Unified Kernel Image that pins it, optional Secure Boot
	// signing, two root slots and updates with rollback (see
	// docs/verified-boot.md). Off when absent.
	VerifiedBoot *VerifiedBoot `yaml:"verifiedBoot,omitempty"`
}
