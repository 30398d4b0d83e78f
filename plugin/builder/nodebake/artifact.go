package nodebake

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/nodebake/nodebake/builder/build"
	"github.com/nodebake/nodebake/builder/spec"
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
)

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
		DataName, DataArch, DataKubernetes, DataBaseDigest, DataKernelRelease,
	}
	for _, n := range spec.ComponentNames() {
		keys = append(keys, componentDataKey(n))
	}
	return keys
}

// plannedData is the generated data known before the build: paths,
// versions and the spec hash. The rest is an empty string until the build
// is done.
func plannedData(p *plan) map[string]any {
	files := outputFiles(p)
	d := map[string]any{}
	for _, k := range GeneratedDataKeys() {
		d[k] = ""
	}
	d[DataImagePath] = absPath(files[0])
	d[DataManifestPath] = absPath(files[1])
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
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// Artifact is a built image: the disk image file and its manifest.
type Artifact struct {
	// ImagePath and ManifestPath are absolute.
	ImagePath    string
	ManifestPath string
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
		ImagePath:    absPath(res.ImagePath),
		ManifestPath: absPath(res.ManifestPath),
		SHA256:       res.Manifest.Image.SHA256,
		Manifest:     res.Manifest,
		generated:    plannedData(p),
	}
	g := a.generated
	g[DataImagePath] = a.ImagePath
	g[DataManifestPath] = a.ManifestPath
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

// Files returns the image and its manifest.
func (a *Artifact) Files() []string { return []string{a.ImagePath, a.ManifestPath} }

// Id returns the image's sha256.
func (a *Artifact) Id() string { return a.SHA256 }

// String describes the image.
func (a *Artifact) String() string {
	m := a.Manifest
	var comps []string
	for _, c := range m.Components {
		comps = append(comps, c.Name+" "+c.Version)
	}
	return fmt.Sprintf("nodebake image %s (%s, %d MiB, sha256 %s)\nmanifest: %s\ncomponents: %s",
		a.ImagePath, m.Arch, m.Image.Size>>20, a.SHA256, a.ManifestPath, strings.Join(comps, ", "))
}

// State returns "generated_data" (a map of the generated data keys to
// strings: versions, paths, checksums) and nil for anything else.
func (a *Artifact) State(name string) any {
	if name == "generated_data" {
		return a.generated
	}
	return nil
}

// Destroy removes the image and its manifest.
func (a *Artifact) Destroy() error {
	var errs []error
	for _, f := range a.Files() {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing %s: %w", f, err))
		}
	}
	return errors.Join(errs...)
}
