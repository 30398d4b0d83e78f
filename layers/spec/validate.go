package spec

import (
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/nodebake/nodebake/layers/components"
	"github.com/nodebake/nodebake/layers/failure"
	"golang.org/x/mod/semver"
)

// Limits checked by Validate.
const (
	MaxRetries = 10
	// MaxSourceDateEpoch is the latest time every output stores: the
	// squashfs root and the gzip header of the gce format keep seconds in 32
	// bits (2106-02-07). The FAT of the ESP and the VHD footer clamp earlier
	// times to their origins (1980, 2000).
	MaxSourceDateEpoch = 1<<32 - 1
	MinESPSize         = 100 * MiB
	// MaxESPSize is the largest ESP: a FAT32 of a few hundred MiB holds a
	// kernel and initrd many times over.
	MaxESPSize = 4 * GiB
	MinVarSize = 64 * MiB
	// MaxVarSize is the largest /var the image itself carries; /var grows
	// to the disk it is written to at first boot, so the image needs little.
	MaxVarSize = 1 * TiB
	// MinDiskSize and MaxDiskSize bound output.diskSize: the smallest
	// disk the clouds offer, and what a fixed VHD can hold. A bigger
	// disk is the platform's: /var grows into it at first boot.
	MinDiskSize       = 1 * GiB
	MaxDiskSize       = 2040 * GiB
	MinCompressionLvl = 1
	MaxCompressionLvl = 22
	// MaxKernelArgsLength bounds the extra kernel arguments, joined by
	// spaces: the kernel keeps 2048 bytes of command line on amd64 and
	// arm64, and nodebake's own arguments need their share.
	MaxKernelArgsLength = 1024
	// MaxVersionSkew is how many minor versions a component whose version
	// follows kubernetes.version (kubelet, kube-proxy, kubectl) may lag
	// behind it.
	MaxVersionSkew = components.MaxKubernetesSkew
	maxID          = 1<<32 - 2
)

// Patterns of the values Validate checks by regular expression; the
// spec's JSON Schema uses them too.
const (
	// NamePattern is an image name: a DNS label.
	NamePattern = `^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`
	// VersionPattern is a version, vMAJOR.MINOR.PATCH with an optional
	// pre-release.
	VersionPattern = `^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$`
	// FlagPattern is a command-line flag's name, without dashes.
	FlagPattern = `^[a-z0-9][a-z0-9-]*$`
	// ModePattern is an octal file mode.
	ModePattern = `^[0-7]{3,4}$`
	// DigestPattern is a manifest digest.
	DigestPattern = `^sha256:[0-9a-f]{64}$`
)

// ChecksumPattern is a checksum of n hexadecimal digits (64 for sha256,
// 128 for sha512).
func ChecksumPattern(n int) string { return "^[0-9a-fA-F]{" + strconv.Itoa(n) + "}$" }

// MaxID is the largest uid or gid a file may have.
const MaxID = maxID

var (
	nameRE    = regexp.MustCompile(NamePattern)
	versionRE = regexp.MustCompile(VersionPattern)
	flagRE    = regexp.MustCompile(FlagPattern)
	modeRE    = regexp.MustCompile(ModePattern)
	hexRE     = regexp.MustCompile(`^[0-9a-fA-F]+$`)
	// dnsDomainRE is a DNS-1123 subdomain (its length is checked apart).
	dnsDomainRE = regexp.MustCompile(`^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)
)

// ParseMode parses an octal file mode such as "0644" or "4755"; setuid,
// setgid and sticky bits are allowed.
func ParseMode(s string) (uint32, error) {
	if !modeRE.MatchString(s) {
		return 0, fmt.Errorf("invalid mode %q: want an octal string like \"0644\"", s)
	}
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid mode %q: %w", s, err)
	}
	return uint32(m), nil
}

// Validate checks the spec as Default completes it (s itself is not
// modified) and returns every problem at once as a *ValidationError (of
// kind failure.Invalid), or nil. Besides each field on its own it checks settings that conflict. It
// looks at the local filesystem only to check that files[].source exists.
func (s *Spec) Validate() error {
	d := s.defaulted()
	var errs errorList
	d.validateTop(&errs)
	d.validateBase(&errs)
	d.validateKubernetes(&errs)
	d.validateComponents(&errs)
	d.validateSources(&errs)
	d.validateKubelet(&errs)
	d.validateKubeProxy(&errs)
	d.validateContainerd(&errs)
	d.validateImages(&errs)
	d.validateFiles(&errs)
	d.validateOutput(&errs)
	return failure.New(failure.Invalid, errs.err())
}

func (s *Spec) validateTop(errs *errorList) {
	exact := func(p, got, want string) {
		switch got {
		case want:
		case "":
			errs.add(p, "required (%s)", want)
		default:
			errs.add(p, "must be %s, not %q", want, got)
		}
	}
	exact("apiVersion", s.APIVersion, APIVersion)
	exact("kind", s.Kind, Kind)
	if !nameRE.MatchString(s.Name) {
		errs.add("name", "invalid name %q: want lower-case letters, digits and '-', at most 63, starting and ending with a letter or digit", s.Name)
	}
	if !slices.Contains(Arches(), s.Arch) {
		errs.add("arch", "unsupported architecture %q: want amd64 or arm64", s.Arch)
	}
	if e := s.SourceDateEpoch; e < 0 || e > MaxSourceDateEpoch {
		errs.add("sourceDateEpoch", "%d is out of range 0..%d (the squashfs root stores 32-bit seconds)", e, int64(MaxSourceDateEpoch))
	}
}

func (s *Spec) validateBase(errs *errorList) {
	if s.Base.Image == "" {
		errs.add("base.image", "required")
	} else {
		src, err := ParseImageSource(s.Base.Image)
		if err != nil {
			errs.add("base.image", "%v", err)
		} else if s.Base.Digest != "" && src.Digest != "" && src.Digest != s.Base.Digest {
			errs.add("base.digest", "%s does not match the digest %s in base.image", s.Base.Digest, src.Digest)
		}
	}
	checkDigest(errs, "base.digest", s.Base.Digest)
}

func checkDigest(errs *errorList, p, d string) {
	if d != "" && !digestRE.MatchString(d) {
		errs.add(p, "invalid digest %q: want sha256:<64 lower-case hex>", d)
	}
}

func (s *Spec) validateKubernetes(errs *errorList) {
	k := s.Kubernetes
	checkVersion(errs, "kubernetes.version", k.Version)
	svc, svcOK := checkCIDR(errs, "kubernetes.serviceCIDR", k.ServiceCIDR)
	pod, podOK := checkCIDR(errs, "kubernetes.clusterCIDR", k.ClusterCIDR)
	if svcOK && podOK && svc.Overlaps(pod) {
		errs.add("kubernetes.clusterCIDR", "%s overlaps kubernetes.serviceCIDR %s", pod, svc)
	}
	if k.PodNetwork != PodNetworkNone && k.PodNetwork != PodNetworkBridge {
		errs.add("kubernetes.podNetwork", "unknown pod network %q: want none or bridge", k.PodNetwork)
	}
}

func checkVersion(errs *errorList, p, v string) bool {
	if v == "" {
		errs.add(p, "required")
		return false
	}
	if !versionRE.MatchString(v) || !semver.IsValid(v) {
		errs.add(p, "invalid version %q: want vMAJOR.MINOR.PATCH", v)
		return false
	}
	return true
}

func checkCIDR(errs *errorList, p, s string) (netip.Prefix, bool) {
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		errs.add(p, "invalid CIDR %q", s)
		return netip.Prefix{}, false
	}
	if pfx.Masked() != pfx {
		errs.add(p, "%s has host bits set (the network is %s)", s, pfx.Masked())
		return netip.Prefix{}, false
	}
	return pfx, true
}

// minorOf returns the major and minor numbers of a valid version.
func minorOf(v string) (major, minor int) {
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	major, _ = strconv.Atoi(parts[0])
	minor, _ = strconv.Atoi(parts[1])
	return major, minor
}

func (s *Spec) validateComponents(errs *errorList) {
	k8sOK := versionRE.MatchString(s.Kubernetes.Version)
	for _, k := range s.Components.keys() {
		p := field("components", string(k))
		if _, ok := components.Lookup(k); !ok {
			errs.add(p, "unknown component%s (known: %s)", suggest(string(k), componentKeys()), components.KnownKeys())
		}
	}
	for _, nc := range s.NamedComponents() {
		c, cat := nc.Component, nc.Catalogue
		p := field("components", string(nc.Key))
		versionOK := checkVersion(errs, p+".version", c.Version)
		switch c.From {
		case FromRelease:
			if c.Image != "" {
				errs.add(p+".image", "not used with from: release (only with from: oci)")
			}
			if c.URL != "" {
				checkURL(errs, p+".url", c.ArtifactURL(nc.Key, s.Arch, ""))
			}
			if _, _, ok := c.Checksum(s.Arch); !ok {
				errs.add(p+".sha256."+string(s.Arch), "required for from: release (or sha512.%s)", s.Arch)
			}
		case FromGo:
			if c.URL != "" {
				errs.add(p+".url", "not used with from: go")
			}
			if c.Image != "" {
				errs.add(p+".image", "not used with from: go")
			}
			if len(c.SHA512) > 0 {
				errs.add(p+".sha512", "not used with from: go (a build from source is verified by the Go checksum database)")
			}
		case FromOCI:
			if c.URL != "" {
				errs.add(p+".url", "not used with from: oci")
			}
			for _, sums := range []struct {
				name string
				m    map[Arch]string
			}{{"sha256", c.SHA256}, {"sha512", c.SHA512}} {
				if len(sums.m) > 0 {
					errs.add(p+"."+sums.name, "not used with from: oci (pin the image by its digest in image)")
				}
			}
			if c.Image == "" {
				errs.add(p+".image", "required for from: oci")
			} else if _, err := ParseImageSource(c.Image); err != nil {
				errs.add(p+".image", "%v", err)
			}
		default:
			errs.add(p+".from", "unknown source %q: want release, go or oci", c.From)
		}
		checkChecksums(errs, p+".sha256", c.SHA256, 64)
		checkChecksums(errs, p+".sha512", c.SHA512, 128)
		if !versionOK {
			continue
		}
		if cat.Major != "" && semver.Major(c.Version) != cat.Major {
			errs.add(p+".version", "%s %s is not %s.x: %s", cat.Name, c.Version, strings.TrimPrefix(cat.Major, "v"), cat.MajorReason)
		}
		if cat.Version == components.VersionKubernetes && k8sOK {
			cmaj, cmin := minorOf(c.Version)
			kmaj, kmin := minorOf(s.Kubernetes.Version)
			switch {
			case cmaj != kmaj || cmin > kmin:
				errs.add(p+".version", "%s is newer than kubernetes.version %s", c.Version, s.Kubernetes.Version)
			case kmin-cmin > MaxVersionSkew:
				errs.add(p+".version", "%s is more than %d minor versions older than kubernetes.version %s", c.Version, MaxVersionSkew, s.Kubernetes.Version)
			}
		}
	}
}

func checkChecksums(errs *errorList, p string, sums map[Arch]string, length int) {
	for _, a := range sortedKeys(sums) {
		h := sums[a]
		ap := p + "." + string(a)
		if !slices.Contains(Arches(), a) {
			errs.add(ap, "unknown architecture %q: want amd64 or arm64", a)
		}
		switch {
		case len(h) != length:
			errs.add(ap, "checksum has %d characters, want %d hex digits", len(h), length)
		case !hexRE.MatchString(h):
			errs.add(ap, "checksum is not hexadecimal")
		}
	}
}

func checkURL(errs *errorList, p, s string) (*url.URL, bool) {
	u, err := url.Parse(s)
	if err != nil {
		errs.add(p, "invalid URL %q: %v", s, err)
		return nil, false
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs.add(p, "invalid URL %q: want http:// or https:// with a host", s)
		return nil, false
	}
	return u, true
}

func (s *Spec) validateSources(errs *errorList) {
	if m := s.Sources.Mirror; m != "" {
		if u, ok := checkURL(errs, "sources.mirror", m); ok && (u.RawQuery != "" || u.Fragment != "") {
			errs.add("sources.mirror", "must not have a query or fragment")
		}
	}
	if r := *s.Sources.Retries; r < 0 || r > MaxRetries {
		errs.add("sources.retries", "%d is out of range 0..%d", r, MaxRetries)
	}
}

// maxFlagValue bounds a flag's value (the unit's command line holds it).
const maxFlagValue = 4096

// checkSettings checks flag names and values (no control characters: the
// value goes into the unit's command line) and refuses per-node and
// removed flags.
func checkSettings(errs *errorList, p string, settings map[string]*string, perNodeFlags map[string]string, removed map[string]string) {
	for _, k := range sortedKeys(settings) {
		fp := field(p, k)
		switch {
		case !flagRE.MatchString(k):
			errs.add(fp, "invalid flag name: want the name without leading dashes, like \"register-node\"")
		case perNodeFlags[k] != "" && settings[k] != nil:
			errs.add(fp, "%s", perNodeFlags[k])
		case removed[k] != "":
			errs.add(fp, "%s", removed[k])
		case settings[k] != nil && hostileRune(*settings[k]) != "":
			errs.add(fp, "%q contains %s", *settings[k], hostileRune(*settings[k]))
		case settings[k] != nil && len(*settings[k]) > maxFlagValue:
			errs.add(fp, "is %d bytes long; at most %d", len(*settings[k]), maxFlagValue)
		case k == "config" && settings[k] != nil && !path.IsAbs(*settings[k]):
			errs.add(fp, "must be an absolute path")
		}
	}
}

// checkPerNode refuses configuration fields that differ per node.
func checkPerNode(errs *errorList, p string, config map[string]any, fields map[string]string) {
	for _, f := range sortedKeys(fields) {
		if v, ok := config[f]; ok && v != nil {
			errs.add(field(p, f), "%s", fields[f])
		}
	}
}

// checkTypeMeta checks a config's kind and apiVersion.
func checkTypeMeta(errs *errorList, p string, m map[string]any, kind, apiVersion string) {
	for _, f := range []struct{ name, want string }{{"apiVersion", apiVersion}, {"kind", kind}} {
		if got, _ := m[f.name].(string); got != f.want {
			errs.add(field(p, f.name), "must be %s", f.want)
		}
	}
}

func (s *Spec) validateKubelet(errs *errorList) {
	checkSettings(errs, "kubelet.settings", s.Kubelet.Settings, kubeletPerNode().flags, map[string]string{
		"container-runtime": "removed from kubelet in Kubernetes 1.27; container-runtime-endpoint is enough",
	})
	const p = "kubelet.config"
	cfg := effectiveConfig(s.Kubelet.Config)
	checkPerNode(errs, p, cfg, kubeletPerNode().fields)
	checkTypeMeta(errs, p, cfg, KubeletConfigKind, KubeletConfigAPIVersion)
	n := len(*errs)
	checkKubeletConfig(errs, p, cfg)
	if len(*errs) == n {
		// The checks below read typed values.
		s.checkKubeletHardening(errs, p, cfg)
		s.checkKubeletHost(errs, p, cfg)
	}

	driver, _ := cfg["cgroupDriver"].(string)
	if *s.Containerd.SystemdCgroup && driver != "systemd" {
		errs.add(p+".cgroupDriver", "is %q but containerd.systemdCgroup is true: set cgroupDriver to systemd (or systemdCgroup to false)", driver)
	} else if !*s.Containerd.SystemdCgroup && driver == "systemd" {
		errs.add(p+".cgroupDriver", "is systemd but containerd.systemdCgroup is false: set systemdCgroup to true (or cgroupDriver to cgroupfs)")
	}

	if d, ok := cfg["clusterDomain"].(string); ok && (len(d) > 253 || !dnsDomainRE.MatchString(d)) {
		errs.add(p+".clusterDomain", "%q is not a DNS domain (lower-case labels of letters, digits and '-', at most 253 characters)", d)
	}
	svc, err := netip.ParsePrefix(s.Kubernetes.ServiceCIDR)
	if dns, ok := cfg["clusterDNS"].([]any); ok {
		for i, a := range dns {
			str, ok := a.(string)
			if !ok {
				continue // type error reported above
			}
			ip, perr := netip.ParseAddr(str)
			switch {
			case perr != nil:
				errs.add(index(p+".clusterDNS", i), "invalid IP address %q", str)
			case err == nil && !svc.Contains(ip):
				errs.add(index(p+".clusterDNS", i), "%s is outside kubernetes.serviceCIDR %s", ip, svc)
			case err == nil:
				if why := reservedServiceIP(svc, ip); why != "" {
					errs.add(index(p+".clusterDNS", i), "%s is %s, which no Service can have", ip, why)
				} else if ip == svc.Masked().Addr().Next() {
					errs.add(index(p+".clusterDNS", i), "%s is the kubernetes Service's address (the first of kubernetes.serviceCIDR %s)", ip, svc)
				}
			}
		}
	}
}

func (s *Spec) validateKubeProxy(errs *errorList) {
	checkSettings(errs, "kubeProxy.settings", s.KubeProxy.Settings, kubeProxyPerNode().flags, nil)
	const p = "kubeProxy.config"
	cfg := effectiveConfig(s.KubeProxy.Config)
	checkPerNode(errs, p, cfg, kubeProxyPerNode().fields)
	checkTypeMeta(errs, p, cfg, KubeProxyConfigKind, KubeProxyConfigAPIVersion)
	n := len(*errs)
	checkKubeProxyConfig(errs, p, cfg)
	if len(*errs) == n {
		checkKubeProxyHardening(errs, p, cfg, s.KubeProxy.Settings)
	}
	if mode, ok := cfg["mode"].(string); ok && !slices.Contains([]string{"ipvs", "iptables", "nftables"}, mode) {
		errs.add(p+".mode", "unsupported mode %q: want ipvs, iptables or nftables", mode)
	}
	if cidr, ok := cfg["clusterCIDR"].(string); ok && !sameCIDRs(cidr, s.Kubernetes.ClusterCIDR) {
		errs.add(p+".clusterCIDR", "%q differs from kubernetes.clusterCIDR %s (leave it unset to follow it)", cidr, s.Kubernetes.ClusterCIDR)
	}
}

// sameCIDRs compares comma-separated CIDR lists as sets of networks.
func sameCIDRs(a, b string) bool {
	norm := func(s string) []string {
		var out []string
		for _, f := range strings.Split(s, ",") {
			f = strings.TrimSpace(f)
			if p, err := netip.ParsePrefix(f); err == nil {
				f = p.Masked().String()
			}
			out = append(out, f)
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	return slices.Equal(norm(a), norm(b))
}

func (s *Spec) validateContainerd(errs *errorList) {
	checkRef(errs, "containerd.sandboxImage", s.Containerd.SandboxImage)
}

// checkRef checks a reference an image is stored under: a registry
// reference with a tag or digest.
func checkRef(errs *errorList, p, ref string) {
	switch {
	case ref == "":
		errs.add(p, "required")
	case checkReference(ref) != nil:
		errs.add(p, "invalid image reference %q: want a name like registry.example/repo:tag", ref)
	case !hasTagOrDigest(ref):
		errs.add(p, "%q needs a tag or digest", ref)
	}
}

func (s *Spec) validateImages(errs *errorList) {
	seen := map[string]int{}
	for i, img := range s.Images {
		p := index("images", i)
		checkRef(errs, p+".ref", img.Ref)
		if j, dup := seen[img.Ref]; dup && img.Ref != "" {
			errs.add(p+".ref", "%s is already preloaded by images[%d]", img.Ref, j)
		} else {
			seen[img.Ref] = i
		}
		if img.Image == "" {
			errs.add(p+".image", "required")
		} else if src, err := ParseImageSource(img.Image); err != nil {
			errs.add(p+".image", "%v", err)
		} else if img.Digest != "" && src.Digest != "" && img.Digest != src.Digest {
			errs.add(p+".digest", "%s does not match the digest %s in image", img.Digest, src.Digest)
		}
		checkDigest(errs, p+".digest", img.Digest)
	}
}

func (s *Spec) validateFiles(errs *errorList) {
	managed := s.ManagedPaths()
	for _, settings := range []map[string]*string{s.Kubelet.Settings, s.KubeProxy.Settings} {
		if c := settings["config"]; c != nil && path.IsAbs(*c) {
			managed = append(managed, path.Clean(*c))
		}
	}
	seen := map[string]int{}
	for i, f := range s.Files {
		p := index("files", i)
		pathOK := checkFilePath(errs, p+".path", f.Path)
		if pathOK {
			if why := firstbootProblem(f.Path, f.Directory); why != "" {
				errs.add(p+".path", "%s", why)
			}
			if j, dup := seen[f.Path]; dup {
				errs.add(p+".path", "%s is already set by files[%d]", f.Path, j)
			} else {
				seen[f.Path] = i
			}
			for _, m := range managed {
				if f.Path == m {
					errs.add(p+".path", "%s is managed by the image", f.Path)
					break
				}
				if strings.HasPrefix(f.Path, m+"/") || (!f.Directory && strings.HasPrefix(m, f.Path+"/")) {
					errs.add(p+".path", "%s would overwrite %s, which the image manages", f.Path, m)
					break
				}
			}
		}

		var set []string
		if f.Content != nil {
			set = append(set, "content")
		}
		if f.Source != "" {
			set = append(set, "source")
		}
		if f.Link != "" {
			set = append(set, "link")
		}
		if f.Directory {
			set = append(set, "directory")
		}
		switch len(set) {
		case 0:
			errs.add(p, "one of content, source, link or directory is required")
		case 1:
		default:
			errs.add(p, "only one of content, source, link and directory may be set (got %s)", strings.Join(set, ", "))
		}
		if f.Source != "" {
			if src, err := s.resolveSource(f.Source); err != nil {
				errs.add(p+".source", "%v", err)
			} else if fi, err := os.Stat(src); err != nil {
				errs.add(p+".source", "cannot read %s: %v", f.Source, err)
			} else if !fi.Mode().IsRegular() {
				errs.add(p+".source", "%s is not a regular file", f.Source)
			}
		}
		if f.Link != "" {
			if why := linkProblem(f.Link); why != "" {
				errs.add(p+".link", "%s", why)
			}
		}
		if m, err := ParseMode(f.Mode); err != nil {
			errs.add(p+".mode", "%v", err)
		} else if f.Link != "" && m != 0o777 {
			errs.add(p+".mode", "a symlink's mode is always 0777")
		}
		if f.UID < 0 || f.UID > maxID {
			errs.add(p+".uid", "%d is out of range 0..%d", f.UID, maxID)
		}
		if f.GID < 0 || f.GID > maxID {
			errs.add(p+".gid", "%d is out of range 0..%d", f.GID, maxID)
		}
	}
	// A file or symlink cannot have entries below it. Each entry's
	// parents are looked up, so that many entries cost no more than their
	// paths' length.
	notDir := map[string]int{}
	for i, f := range s.Files {
		if !f.Directory && seen[f.Path] == i {
			notDir[f.Path] = i
		}
	}
	for j, g := range s.Files {
		if !path.IsAbs(g.Path) {
			continue
		}
		for d := path.Dir(g.Path); d != "/" && d != "."; d = path.Dir(d) {
			if i, ok := notDir[d]; ok {
				errs.add(index("files", j)+".path", "%s is below files[%d] (%s), which is not a directory", g.Path, i, d)
			}
		}
	}
}

func checkFilePath(errs *errorList, p, fp string) bool {
	if why := pathProblem(fp); why != "" {
		errs.add(p, "%s", why)
		return false
	}
	return true
}

func (s *Spec) validateOutput(errs *errorList) {
	o := s.Output
	seen := map[Format]bool{}
	for i, f := range o.Formats {
		p := index("output.formats", i)
		switch {
		case !slices.Contains(Formats(), f):
			errs.add(p, "unknown format %q (known: %s)", f, FormatNames())
		case seen[f]:
			errs.add(p, "%s is listed twice", f)
		case f == FormatUpdate && !s.VerifiedBootEnabled():
			errs.add(p, "the update format needs output.verifiedBoot.enabled")
		case f == FormatNetboot && s.VerifiedBootEnabled():
			errs.add(p, "a netboot bundle boots the root without verity: not with output.verifiedBoot")
		}
		seen[f] = true
	}
	checkSize(errs, "output.espSize", o.ESPSize, MinESPSize, MaxESPSize)
	switch {
	case o.DiskSize != 0 && o.VarSize != 0:
		errs.add("output.diskSize", "set either diskSize (the image's size, /var takes the rest) or varSize, not both")
	case o.DiskSize != 0:
		checkSize(errs, "output.diskSize", o.DiskSize, MinDiskSize, MaxDiskSize)
	default:
		checkSize(errs, "output.varSize", o.VarSize, MinVarSize, MaxVarSize)
	}
	if l := o.RootCompressionLevel; l < MinCompressionLvl || l > MaxCompressionLvl {
		errs.add("output.rootCompressionLevel", "%d is out of range %d..%d", l, MinCompressionLvl, MaxCompressionLvl)
	}
	checkKernelArgs(errs, "output.kernelArgs", o.KernelArgs)
	if s.VerifiedBootEnabled() {
		for i, a := range o.KernelArgs {
			if key, _, _ := strings.Cut(a, "="); key == "roothash" || key == "panic" {
				errs.add(index("output.kernelArgs", i), "%s is set by nodebake for a verified root", key)
			}
		}
	}
	s.validateVerifiedBoot(errs)
}

func checkSize(errs *errorList, p string, sz, minSize, maxSize Size) {
	switch {
	case sz%MiB != 0:
		errs.add(p, "%s is not a multiple of 1MiB", sz)
	case sz < minSize:
		errs.add(p, "%s is smaller than the minimum %s", sz, minSize)
	case sz > maxSize:
		errs.add(p, "%s is larger than the maximum %s", sz, maxSize)
	}
}
