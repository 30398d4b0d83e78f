package nodebake

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	registryimage "github.com/hashicorp/packer-plugin-sdk/packer/registry/image"

	"github.com/nodebake/nodebake/builder/build"
	"github.com/nodebake/nodebake/layers/components"
	"github.com/nodebake/nodebake/layers/spec"
)

// Generated data keys: what the build tells provisioners and
// post-processors (build.ImagePath, build.KubeletVersion, ...). The paths
// and versions are known before the build starts; ImageSHA256 and
// BaseDigest once it is done.
const (
	DataImagePath       = "ImagePath"
	DataManifestPath    = "ManifestPath"
	DataOutputDirectory = "OutputDirectory"
	DataImageSHA256     = "ImageSHA256"
	DataSpecHash        = "SpecHash"
	DataName            = "Name"
	DataArch            = "Arch"
	DataKubernetes      = "KubernetesVersion"
	DataBaseDigest      = "BaseDigest"
	DataKernelRelease   = "KernelRelease"
	DataSBOMPath        = "SBOMPath"
	DataSumsPath        = "SumsPath"
)

// formatDataKey is the generated data key of a format's path, named after
// the format table's Ident: ImagePath (raw), QCOW2Path, NetbootPath, ...;
// empty when the format is not built.
func formatDataKey(f spec.FormatInfo) string { return f.Ident + "Path" }

// componentDataKey is the generated data key of a component's version
// ("ContainerdVersion", "CniPluginsVersion", "KubeProxyVersion").
func componentDataKey(n spec.ComponentName) string {
	s := string(n)
	return strings.ToUpper(s[:1]) + s[1:] + "Version"
}

// GeneratedDataKeys returns every generated data key, in a stable order.
func GeneratedDataKeys() []string {
	keys := []string{
		DataImagePath, DataManifestPath, DataOutputDirectory, DataImageSHA256, DataSpecHash,
		DataName, DataArch, DataKubernetes, DataBaseDigest, DataKernelRelease, DataSBOMPath, DataSumsPath,
	}
	for _, f := range spec.FormatTable() {
		if k := formatDataKey(f); !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	for _, n := range components.Keys() {
		keys = append(keys, componentDataKey(n))
	}
	return keys
}

// plannedData is the generated data known before the build: paths,
// versions and the spec hash. The rest is an empty string until the build
// is done.
func plannedData(p *plan) map[string]any {
	d := map[string]any{}
	for _, k := range GeneratedDataKeys() {
		d[k] = ""
	}
	for _, o := range p.outputs.Outputs {
		d[formatDataKey(o.FormatInfo)] = absPath(o.Path)
	}
	d[DataManifestPath] = absPath(p.outputs.Manifest)
	d[DataSBOMPath] = absPath(p.outputs.SBOM)
	d[DataSumsPath] = absPath(p.outputs.Sums)
	d[DataOutputDirectory] = absPath(p.outputDir)
	d[DataSpecHash] = p.specHash
	d[DataName] = p.spec.Name
	d[DataArch] = string(p.spec.Arch)
	d[DataKubernetes] = p.spec.Kubernetes.Version
	for _, c := range p.spec.NamedComponents() {
		d[componentDataKey(c.Key)] = c.Version
	}
	return d
}

func absPath(p string) string {
	if p == "" {
		return ""
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// Artifact is a built image: its formats, its manifest, SBOM and sums.
type Artifact struct {
	// ImagePath is the raw image, empty when the raw format was not
	// built. All paths are absolute.
	ImagePath    string
	ManifestPath string
	SBOMPath     string
	SumsPath     string
	// Outputs are the other formats' files (the netboot bundle's each),
	// by format.
	Outputs map[spec.Format][]string
	// NetbootDir is the netboot bundle's directory, when built.
	NetbootDir string
	// SHA256 is the image file's sha256, lower-case hex.
	SHA256 string
	// Manifest describes what the image holds.
	Manifest build.Manifest

	generated map[string]any
}

var _ packersdk.Artifact = (*Artifact)(nil)

// newArtifact makes the artifact of a build whose plan was p.
func newArtifact(p *plan, res *build.Result) *Artifact {
	a := &Artifact{
		ManifestPath: absPath(res.ManifestPath),
		SBOMPath:     absPath(res.SBOMPath),
		SumsPath:     absPath(res.SumsPath),
		Outputs:      map[spec.Format][]string{},
		SHA256:       res.Manifest.Image.SHA256,
		Manifest:     res.Manifest,
		generated:    plannedData(p),
	}
	if res.ImagePath != "" {
		a.ImagePath = absPath(res.ImagePath)
	}
	for _, o := range res.Outputs {
		for _, f := range o.Files {
			a.Outputs[o.Format] = append(a.Outputs[o.Format], absPath(f.Path))
		}
		if o.Format == spec.FormatNetboot {
			a.NetbootDir = absPath(o.Path)
		}
	}
	g := a.generated
	g[DataImagePath] = a.ImagePath
	g[DataManifestPath] = a.ManifestPath
	g[DataSBOMPath] = a.SBOMPath
	g[DataSumsPath] = a.SumsPath
	for _, o := range res.Outputs {
		if f, ok := o.Format.Info(); ok {
			g[formatDataKey(f)] = absPath(o.Path)
		}
	}
	g[DataImageSHA256] = a.SHA256
	g[DataSpecHash] = res.Manifest.SpecHash
	g[DataBaseDigest] = res.Manifest.Base.Digest
	g[DataKernelRelease] = res.Manifest.KernelRelease
	for _, c := range res.Manifest.Components {
		if n, ok := p.spec.Component(c.Name); ok {
			g[componentDataKey(n.Key)] = c.Version
		}
	}
	return a
}

// BuilderId returns BuilderID.
func (a *Artifact) BuilderId() string { return BuilderID }

// Files returns the disk files first, in the order of the formats (the
// raw image, raw.zst, qcow2, vhd, vmdk, the GCE tarball, the netboot
// bundle's files), then the manifest, the SBOM and the sums.
// Post-processors pick theirs by suffix: amazon-import ".raw", ".vhd" or
// ".vmdk" (its format option), googlecompute-import ".tar.gz".
func (a *Artifact) Files() []string {
	var out []string
	if a.ImagePath != "" {
		out = append(out, a.ImagePath)
	}
	for _, f := range spec.Formats() {
		out = append(out, a.Outputs[f]...)
	}
	for _, p := range []string{a.ManifestPath, a.SBOMPath, a.SumsPath} {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Id returns the image's sha256.
func (a *Artifact) Id() string { return a.SHA256 }

// String describes the image.
func (a *Artifact) String() string {
	m := a.Manifest
	var comps []string
	for _, c := range m.Components {
		comps = append(comps, c.Name+" "+c.Version)
	}
	var formats []string
	for _, o := range m.Outputs {
		formats = append(formats, o.Format)
	}
	return fmt.Sprintf("nodebake image %s (%s, %d MiB, sha256 %s)\nformats: %s\nmanifest: %s\ncomponents: %s",
		m.Name, m.Arch, m.Image.Size>>20, a.SHA256, strings.Join(formats, ", "), a.ManifestPath, strings.Join(comps, ", "))
}

// RegistryProvider is the provider name of the artifact's HCP Packer
// registry metadata.
const RegistryProvider = "nodebake"

// State returns "generated_data" (a map of the generated data keys to
// strings: versions, paths, checksums), the HCP Packer registry metadata
// (image.ArtifactStateURI, see RegistryImage), and nil for anything else.
func (a *Artifact) State(name string) any {
	switch name {
	case "generated_data":
		return a.generated
	case registryimage.ArtifactStateURI:
		img, err := a.RegistryImage()
		if err != nil {
			return nil
		}
		return img
	}
	return nil
}

// RegistryImage is what HCP Packer records of the image: its sha256 as the
// image ID, the output directory as the region (where the files are), the
// base image's digest as the source image, and as labels the image name,
// architecture, formats, spec hash, kernel release, base digest and the
// versions of Kubernetes and of each component (kubernetes_version,
// containerd_version, kube_proxy_version, ...).
func (a *Artifact) RegistryImage() (*registryimage.Image, error) {
	m := a.Manifest
	labels := map[string]any{
		"name":               m.Name,
		"arch":               m.Arch,
		"spec_hash":          m.SpecHash,
		"kernel_release":     m.KernelRelease,
		"base_digest":        m.Base.Digest,
		"kubernetes_version": a.generated[DataKubernetes],
	}
	var formats []string
	for _, o := range m.Outputs {
		formats = append(formats, o.Format)
	}
	labels["formats"] = strings.Join(formats, ",")
	for _, c := range m.Components {
		labels[labelName(c.Name)+"_version"] = c.Version
	}
	for k, v := range labels {
		if v == "" {
			delete(labels, k)
		}
	}
	region := ""
	if a.ManifestPath != "" {
		region = filepath.Dir(a.ManifestPath)
	}
	return registryimage.FromArtifact(a,
		registryimage.WithProvider(RegistryProvider),
		registryimage.WithID(a.SHA256),
		registryimage.WithRegion(region),
		registryimage.WithSourceID(m.Base.Digest),
		registryimage.SetLabels(labels),
	)
}

// labelName makes an upstream component name a label key: kube-proxy is
// kube_proxy.
func labelName(name string) string { return strings.ReplaceAll(name, "-", "_") }

// Destroy removes every file of the artifact.
func (a *Artifact) Destroy() error {
	var errs []error
	for _, f := range a.Files() {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing %s: %w", f, err))
		}
	}
	if a.NetbootDir != "" {
		if err := os.RemoveAll(a.NetbootDir); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", a.NetbootDir, err))
		}
	}
	return errors.Join(errs...)
}

// removeOutputs removes what a finished build wrote.
func removeOutputs(res *build.Result) error {
	var errs []error
	paths := []string{res.ImagePath, res.ManifestPath, res.SBOMPath, res.SumsPath}
	for _, o := range res.Outputs {
		paths = append(paths, o.Path)
	}
	for _, p := range paths {
		if p == "" {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}
