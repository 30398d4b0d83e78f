package nodebake

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	registryimage "github.com/hashicorp/packer-plugin-sdk/packer/registry/image"

	"github.com/nodebake/nodebake/builder/build"
	"github.com/nodebake/nodebake/builder/publish"
	"github.com/nodebake/nodebake/layers/components"
	"github.com/nodebake/nodebake/layers/resolve"
	"github.com/nodebake/nodebake/layers/spec"
)

// testPlan returns the plan of a build into dir.
func testPlan(t *testing.T, dir string) *plan {
	t.Helper()
	c := &Config{OutputDirectory: dir, Base: BaseConfig{Image: "oci:base"}, Kubernetes: KubernetesConfig{Version: "v1.35.4"}}
	s, err := c.Spec(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.Default()
	outputs, err := build.PlanFor(s, build.Options{OutputDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return &plan{spec: s, specHash: strings.Repeat("ab", 32), outputDir: dir, firstboot: firstbootProgram{arch: s.Arch}, cacheDir: filepath.Join(dir, "cache"), outputs: outputs}
}

// testResult writes the files of a finished build into dir.
func testResult(t *testing.T, dir string) *build.Result {
	t.Helper()
	return testResultIn(dir)
}

// testResultIn writes the files of a finished build into dir; it panics
// when it cannot.
func testResultIn(dir string) *build.Result {
	res := &build.Result{
		ImagePath:    filepath.Join(dir, "worker.raw"),
		ManifestPath: filepath.Join(dir, "worker.manifest.json"),
		SBOMPath:     filepath.Join(dir, "worker.spdx.json"),
		SumsPath:     filepath.Join(dir, "worker.SHA256SUMS"),
		Outputs: []publish.Output{
			{Format: spec.FormatGCE, Path: filepath.Join(dir, "worker.tar.gz"), Files: []publish.File{{Path: filepath.Join(dir, "worker.tar.gz")}}},
			{Format: spec.FormatNetboot, Path: filepath.Join(dir, "worker.netboot"), Files: []publish.File{
				{Path: filepath.Join(dir, "worker.netboot", "boot.ipxe")}, {Path: filepath.Join(dir, "worker.netboot", "vmlinuz")}}},
		},
		Manifest: build.Manifest{
			Name: "worker", Arch: "amd64", SpecHash: strings.Repeat("ab", 32), KernelRelease: "6.12.0-amd64",
			Image: build.ImageInfo{File: "worker.raw", SHA256: strings.Repeat("0f", 32), Size: 3 << 30},
			Base:  resolve.BaseInfo{Image: "oci:base", Digest: "sha256:" + strings.Repeat("1", 64)},
			Components: []resolve.ComponentInfo{
				{Name: "containerd", Version: "v2.2.0"}, {Name: "kube-proxy", Version: "v1.35.4"},
				{Name: "cni-plugins", Version: "v1.8.0"},
			},
		},
	}
	res.Manifest.Outputs = []build.OutputInfo{{Format: "raw"}, {Format: "gce"}, {Format: "netboot"}}
	os.Mkdir(filepath.Join(dir, "worker.netboot"), 0o755)
	for _, f := range []string{res.ImagePath, res.ManifestPath, res.SBOMPath, res.SumsPath, res.Outputs[0].Path, res.Outputs[1].Files[0].Path, res.Outputs[1].Files[1].Path} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			panic(err)
		}
	}
	return res
}

func TestArtifact(t *testing.T) {
	dir := t.TempDir()
	a := newArtifact(testPlan(t, dir), testResult(t, dir))

	if a.BuilderId() != BuilderID {
		t.Errorf("BuilderId = %q", a.BuilderId())
	}
	var want []string
	for _, f := range []string{"worker.raw", "worker.tar.gz", "worker.netboot/boot.ipxe", "worker.netboot/vmlinuz", "worker.manifest.json", "worker.spdx.json", "worker.SHA256SUMS"} {
		want = append(want, filepath.Join(dir, f))
	}
	if got := a.Files(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("Files = %v, want %v", got, want)
	}
	if a.Id() != strings.Repeat("0f", 32) {
		t.Errorf("Id = %q, want the image sha256", a.Id())
	}
	for _, w := range []string{"worker", "raw, gce, netboot", "amd64", "3072 MiB", strings.Repeat("0f", 32), "containerd v2.2.0"} {
		if !strings.Contains(a.String(), w) {
			t.Errorf("String() = %q, lacks %q", a.String(), w)
		}
	}
	if a.State("other") != nil {
		t.Error("State(other) is not nil")
	}
	gd, ok := a.State("generated_data").(map[string]any)
	if !ok {
		t.Fatalf("State(generated_data) = %T", a.State("generated_data"))
	}
	wantData := map[string]string{
		DataImagePath:       filepath.Join(dir, "worker.raw"),
		DataSBOMPath:        filepath.Join(dir, "worker.spdx.json"),
		DataSumsPath:        filepath.Join(dir, "worker.SHA256SUMS"),
		"GCEPath":           filepath.Join(dir, "worker.tar.gz"),
		"NetbootPath":       filepath.Join(dir, "worker.netboot"),
		"QCOW2Path":         "",
		DataManifestPath:    filepath.Join(dir, "worker.manifest.json"),
		DataOutputDirectory: dir,
		DataImageSHA256:     strings.Repeat("0f", 32),
		DataSpecHash:        strings.Repeat("ab", 32),
		DataName:            "worker",
		DataArch:            "amd64",
		DataKubernetes:      "v1.35.4",
		DataBaseDigest:      "sha256:" + strings.Repeat("1", 64),
		DataKernelRelease:   "6.12.0-amd64",
		"ContainerdVersion": "v2.2.0",
		"KubeProxyVersion":  "v1.35.4",
		"CniPluginsVersion": "v1.8.0",
		"KubeletVersion":    "v1.35.4",
	}
	for k, v := range wantData {
		if gd[k] != v {
			t.Errorf("generated_data[%s] = %v, want %q", k, gd[k], v)
		}
	}
	for _, k := range GeneratedDataKeys() {
		if _, ok := gd[k].(string); !ok {
			t.Errorf("generated_data[%s] = %#v, want a string", k, gd[k])
		}
	}

	if err := a.Destroy(); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	for _, f := range append(a.Files(), filepath.Join(dir, "worker.netboot")) {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after Destroy: %v", f, err)
		}
	}
	if err := a.Destroy(); err != nil {
		t.Errorf("second Destroy: %v", err)
	}
}

// TestRegistryImage: the artifact's HCP Packer registry metadata, as
// Packer reads it (State(image.ArtifactStateURI)): the image sha256 as the
// image ID, the base image as the source, the versions as labels.
func TestRegistryImage(t *testing.T) {
	dir := t.TempDir()
	a := newArtifact(testPlan(t, dir), testResult(t, dir))
	img, ok := a.State(registryimage.ArtifactStateURI).(*registryimage.Image)
	if !ok {
		t.Fatalf("State(%s) = %T, want *image.Image", registryimage.ArtifactStateURI, a.State(registryimage.ArtifactStateURI))
	}
	if err := img.Validate(); err != nil {
		t.Fatalf("Packer would refuse the metadata: %v", err)
	}
	if img.ImageID != strings.Repeat("0f", 32) || img.ImageID != a.Id() {
		t.Errorf("image ID %q, want the image sha256 %q", img.ImageID, a.Id())
	}
	if img.ProviderName != RegistryProvider || img.ProviderRegion != dir || img.SourceImageID != "sha256:"+strings.Repeat("1", 64) {
		t.Errorf("provider %q, region %q, source %q", img.ProviderName, img.ProviderRegion, img.SourceImageID)
	}
	want := map[string]string{
		"name":                "worker",
		"arch":                "amd64",
		"kubernetes_version":  "v1.35.4",
		"containerd_version":  "v2.2.0",
		"kube_proxy_version":  "v1.35.4",
		"cni_plugins_version": "v1.8.0",
		"base_digest":         "sha256:" + strings.Repeat("1", 64),
		"kernel_release":      "6.12.0-amd64",
		"spec_hash":           strings.Repeat("ab", 32),
		"formats":             "raw,gce,netboot",
	}
	for k, v := range want {
		if img.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, img.Labels[k], v)
		}
	}
	if len(img.Labels) != len(want) {
		t.Errorf("labels %v, want exactly %v", img.Labels, want)
	}
}

func TestPlannedData(t *testing.T) {
	dir := t.TempDir()
	d := plannedData(testPlan(t, dir))
	if d[DataImagePath] != filepath.Join(dir, "worker.raw") || d[DataImageSHA256] != "" || d["KubectlVersion"] != "v1.35.4" {
		t.Errorf("planned data: %v", d)
	}
}

func TestComponentDataKeys(t *testing.T) {
	for key, want := range map[spec.ComponentName]string{"kubeProxy": "KubeProxyVersion", "cniPlugins": "CniPluginsVersion", "containerd": "ContainerdVersion"} {
		if got := componentDataKey(key); got != want {
			t.Errorf("componentDataKey(%s) = %s, want %s", key, got, want)
		}
	}
	keys := GeneratedDataKeys()
	for _, k := range components.Keys() {
		if !slices.Contains(keys, componentDataKey(k)) {
			t.Errorf("no generated data key for component %s", k)
		}
	}
}

// TestFormatDataKeysFromTheTable checks that every format of the format
// table has its path among the generated data, the raw image's being
// ImagePath, and that the planned paths are the build plan's.
func TestFormatDataKeysFromTheTable(t *testing.T) {
	keys := GeneratedDataKeys()
	for _, f := range spec.FormatTable() {
		if !slices.Contains(keys, formatDataKey(f)) {
			t.Errorf("no generated data key for format %s", f.Format)
		}
	}
	raw, _ := spec.FormatRaw.Info()
	if formatDataKey(raw) != DataImagePath {
		t.Errorf("the raw image's key is %s, want %s", formatDataKey(raw), DataImagePath)
	}
	dir := t.TempDir()
	p := testPlan(t, dir)
	p.spec.Output.Formats = []spec.Format{spec.FormatQCOW2, spec.FormatNetboot}
	var err error
	if p.outputs, err = build.PlanFor(p.spec, build.Options{OutputDir: dir}); err != nil {
		t.Fatal(err)
	}
	d := plannedData(p)
	for _, o := range p.outputs.Outputs {
		if d[formatDataKey(o.FormatInfo)] != o.Path {
			t.Errorf("%s: planned data %v, the plan says %s", o.Format, d[formatDataKey(o.FormatInfo)], o.Path)
		}
	}
	if d[DataImagePath] != "" || d["VHDPath"] != "" {
		t.Errorf("formats not built have paths: %v", d)
	}
}
