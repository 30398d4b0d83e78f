package build

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx"
	spdxcommon "github.com/spdx/tools-golang/spdx/v2/common"
	"github.com/spdx/tools-golang/spdxlib"

	"github.com/nodebake/nodebake/builder/internal/pecoff/pecofftest"
	"github.com/nodebake/nodebake/builder/publish"
	"github.com/nodebake/nodebake/layers/cache"
	"github.com/nodebake/nodebake/layers/components"
	"github.com/nodebake/nodebake/layers/failure"
	"github.com/nodebake/nodebake/layers/mirror"
	"github.com/nodebake/nodebake/layers/oci"
	"github.com/nodebake/nodebake/layers/spec"
)

// This file tests the pipeline in-process with small fake inputs: a tiny
// base image and fake component binaries served by a local mirror. The
// real counterpart (the real base, real binaries, booting the image) is
// test/boot.

func fakeBase(t *testing.T, dir string) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, typ byte, mode int64, data string) {
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: typ, Mode: mode, Size: int64(len(data)), ModTime: time.Unix(12345, 0)})
		tw.Write([]byte(data))
	}
	add("boot/", tar.TypeDir, 0o755, "")
	// The kernel, systemd-boot and systemd-stub are small PE images, so
	// that a verified build can make and sign a UKI of them.
	add("boot/vmlinuz-6.12.0-test", tar.TypeReg, 0o644, string(fakePE(0x90, 4096, false)))
	add("boot/initrd.img-6.12.0-test", tar.TypeReg, 0o644, strings.Repeat("I", 8192))
	add("usr/lib/systemd/boot/efi/systemd-bootx64.efi", tar.TypeReg, 0o644, string(fakePE(0xcc, 5000, false)))
	add("usr/lib/systemd/boot/efi/linuxx64.efi.stub", tar.TypeReg, 0o644, string(fakePE(0xcc, 3000, true)))
	add("usr/bin/su", tar.TypeReg, 0o4755, "suid")
	add("etc/", tar.TypeDir, 0o755, "")
	add("etc/os-release", tar.TypeReg, 0o644, "ID=debian\nVERSION_ID=\"13\"\n")
	add("var/lib/dpkg/status", tar.TypeReg, 0o644, "Package: a\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0-1\n\n"+
		"Package: gone\nStatus: deinstall ok config-files\nVersion: 0.9\n\n"+
		"Package: b\nStatus: install ok installed\nArchitecture: all\nSource: b-src (2:1.1)\nVersion: 2:1.1+b1\n")
	tw.Close()
	tarPath := filepath.Join(dir, "rootfs.tar")
	if err := os.WriteFile(tarPath, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := oci.ImageFromRootfsTar(tarPath, time.Unix(0, 0).UTC(), "amd64")
	if err != nil {
		t.Fatal(err)
	}
	layout := filepath.Join(dir, "base")
	if err := oci.WriteLayout(layout, img, nil); err != nil {
		t.Fatal(err)
	}
	return layout
}

// fakePE is a small PE32+ EFI image filled with fill; a stub has an .sbat
// section.
func fakePE(fill byte, n int, stub bool) []byte {
	secs := []pecofftest.Section{{Name: ".text", Data: bytes.Repeat([]byte{fill}, n)}}
	if stub {
		secs = append(secs, pecofftest.Section{Name: ".sbat", Data: []byte("sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n")})
	}
	return pecofftest.Image{DllCharacteristics: 0x160, SpareHeaders: 8, Sections: secs}.Bytes()
}

type fixture struct {
	spec      *spec.Spec
	cache     *cache.Cache
	firstboot string
	server    *httptest.Server
	requests  *int
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	layout := fakeBase(t, dir)
	doc := fmt.Sprintf(`apiVersion: nodebake.io/v1alpha1
kind: WorkerImage
name: test
base: {image: "oci:%s"}
kubernetes: {version: v1.35.4}
components:
  containerd: {version: v2.2.0, from: go}
  runc: {version: v1.3.4, from: go}
  cniPlugins: {version: v1.8.0, from: go}
  kubelet: {from: go}
  kubeProxy: {from: go}
  kubectl: {from: go}
output: {espSize: 100MiB, varSize: 64MiB}
`, layout)
	s, err := spec.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	s.Default()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	// Fake binaries, packed as upstream publishes them, in a local mirror.
	root := filepath.Join(dir, "mirror")
	arts, err := mirror.Write(context.Background(), s, root, func(_ context.Context, component, version string) (string, error) {
		l, ok := components.Find(component)
		if !ok {
			return "", fmt.Errorf("no component %s", component)
		}
		bins := filepath.Join(dir, "bins", component)
		os.MkdirAll(bins, 0o755)
		for _, f := range l.Files {
			os.WriteFile(filepath.Join(bins, f.Name), []byte("#!fake "+f.Name+" "+version), 0o755)
		}
		return bins, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n++
		http.FileServer(http.Dir(root)).ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	pinned, err := mirror.Pin(s, srv.URL, arts)
	if err != nil {
		t.Fatal(err)
	}
	if err := pinned.Validate(); err != nil {
		t.Fatal(err)
	}
	c, err := cache.Open(filepath.Join(dir, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	fb := filepath.Join(dir, "nodebake-firstboot")
	os.WriteFile(fb, []byte("#!fake firstboot"), 0o755)
	return &fixture{spec: pinned, cache: c, firstboot: fb, server: srv, requests: &n}
}

func (f *fixture) build(t *testing.T, out string, s *spec.Spec) (*Result, error) {
	t.Helper()
	return Build(context.Background(), s, Options{OutputDir: out, Cache: f.cache, FirstbootBinary: f.firstboot, Workers: 2})
}

func TestBuildFromMirror(t *testing.T) {
	f := newFixture(t)
	out := t.TempDir()
	res, err := f.build(t, out, f.spec)
	if err != nil {
		t.Fatal(err)
	}
	if *f.requests != 6 {
		t.Errorf("%d downloads, want 6", *f.requests)
	}
	m := res.Manifest
	if len(m.Components) != 6 || m.Base.Packages != 2 || m.KernelRelease != "6.12.0-test" {
		t.Errorf("manifest = %+v", m)
	}
	for _, c := range m.Components {
		if c.From != "release" || !strings.HasPrefix(c.Source, f.server.URL+"/") || !strings.HasPrefix(c.Checksum, "sha256:") || len(c.Files) == 0 {
			t.Errorf("component record %+v", c)
		}
	}
	var onDisk Manifest
	b, _ := os.ReadFile(res.ManifestPath)
	if err := json.Unmarshal(b, &onDisk); err != nil || onDisk.Image.SHA256 != m.Image.SHA256 {
		t.Errorf("manifest file: %v %+v", err, onDisk.Image)
	}
	sum, _ := sha256File(context.Background(), res.ImagePath)
	if sum != m.Image.SHA256 {
		t.Errorf("image sha256 %s, manifest says %s", sum, m.Image.SHA256)
	}
	entries, _ := os.ReadDir(out)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "test.SHA256SUMS,test.manifest.json,test.raw,test.spdx.json" {
		t.Errorf("output dir holds %v", names)
	}
	if onDisk.SBOM != "test.spdx.json" || onDisk.Checksums != "test.SHA256SUMS" ||
		res.SBOMPath != filepath.Join(out, onDisk.SBOM) || res.SumsPath != filepath.Join(out, onDisk.Checksums) {
		t.Errorf("manifest names %q and %q; result %q and %q", onDisk.SBOM, onDisk.Checksums, res.SBOMPath, res.SumsPath)
	}
	checkSums(t, out, res.SumsPath, []string{"test.manifest.json", "test.raw", "test.spdx.json"})
	checkSBOM(t, res)

	// A second build is served from the cache (no downloads) and gives the
	// same bytes.
	f.server.Close()
	res2, err := f.build(t, t.TempDir(), f.spec)
	if err != nil {
		t.Fatalf("warm build without network: %v", err)
	}
	if res2.Manifest.Image.SHA256 != m.Image.SHA256 {
		t.Errorf("rebuild gives %s, first build %s", res2.Manifest.Image.SHA256, m.Image.SHA256)
	}
	for _, p := range [][2]string{{res.SBOMPath, res2.SBOMPath}, {res.SumsPath, res2.SumsPath}} {
		a, _ := os.ReadFile(p[0])
		b, _ := os.ReadFile(p[1])
		if !bytes.Equal(a, b) {
			t.Errorf("rebuild gives a different %s", filepath.Base(p[0]))
		}
	}
}

func TestBuildFailureLeavesNothing(t *testing.T) {
	f := newFixture(t)
	bad := f.spec.Clone()
	kc := bad.Components["kubelet"]
	kc.SHA256 = map[spec.Arch]string{"amd64": strings.Repeat("0", 64)}
	bad.SetComponent("kubelet", kc)
	out := t.TempDir()
	_, err := f.build(t, out, bad)
	var ce *cache.ChecksumError
	if !errors.As(err, &ce) {
		t.Fatalf("error = %v, want a checksum error", err)
	}
	if !strings.Contains(err.Error(), "components.kubelet") || !strings.Contains(err.Error(), strings.Repeat("0", 64)) {
		t.Errorf("error does not name the component and the expected sum: %v", err)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("failed build left %d files in the output directory", len(entries))
	}

	// A cancelled build leaves nothing either.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Build(ctx, f.spec, Options{OutputDir: out, Cache: f.cache, FirstbootBinary: f.firstboot}); err == nil {
		t.Fatal("cancelled build succeeded")
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("cancelled build left %d files", len(entries))
	}
}

// checkSums runs the real sha256sum -c on the build's SHA256SUMS.
func checkSums(t *testing.T, dir, sums string, want []string) {
	t.Helper()
	b, err := os.ReadFile(sums)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		_, name, _ := strings.Cut(l, "  ")
		names = append(names, name)
	}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("SHA256SUMS lists %v, want %v", names, want)
	}
	if _, err := exec.LookPath("sha256sum"); err != nil {
		t.Logf("no sha256sum: %v", err)
		return
	}
	cmd := exec.Command("sha256sum", "--strict", "-c", filepath.Base(sums))
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c: %v\n%s", err, out)
	}
}

// checkSBOM reads the SBOM with the SPDX library and checks it lists the
// base's installed Debian packages and every component of the manifest
// with its checksum and files.
func checkSBOM(t *testing.T, res *Result) {
	t.Helper()
	f, err := os.Open(res.SBOMPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := spdxjson.Read(f)
	if err != nil {
		t.Fatalf("reading the SBOM: %v", err)
	}
	if err := spdxlib.ValidateDocument(doc); err != nil {
		t.Errorf("SBOM: %v", err)
	}
	pkgs := map[string]*spdx.Package{}
	for _, p := range doc.Packages {
		pkgs[p.PackageName] = p
	}
	files := map[string]*spdx.File{}
	for _, f := range doc.Files {
		files[f.FileName] = f
	}
	checksum := func(cs []spdxcommon.Checksum, algo string) string {
		for _, c := range cs {
			if string(c.Algorithm) == algo {
				return c.Value
			}
		}
		return ""
	}
	m := res.Manifest
	if p := pkgs[m.Name]; p == nil || checksum(p.PackageChecksums, "SHA256") != m.Image.SHA256 {
		t.Errorf("SBOM image package %+v", p)
	}
	for name, version := range map[string]string{"a": "1.0-1", "b": "2:1.1+b1"} {
		if p := pkgs[name]; p == nil || p.PackageVersion != version {
			t.Errorf("SBOM Debian package %s: %+v", name, p)
		}
	}
	if pkgs["gone"] != nil {
		t.Error("SBOM lists a package that is not installed")
	}
	for _, c := range m.Components {
		p := pkgs[c.Name]
		if p == nil {
			t.Errorf("SBOM lacks component %s", c.Name)
			continue
		}
		_, sum, _ := strings.Cut(c.Checksum, ":")
		if p.PackageVersion != c.Version || checksum(p.PackageChecksums, "SHA256") != sum {
			t.Errorf("SBOM component %s: version %q checksums %+v, manifest %s %s", c.Name, p.PackageVersion, p.PackageChecksums, c.Version, c.Checksum)
		}
		for _, fi := range c.Files {
			if sf := files["."+fi.Path]; sf == nil || checksum(sf.Checksums, "SHA256") != fi.SHA256 {
				t.Errorf("SBOM file %s of %s: %+v", fi.Path, c.Name, sf)
			}
		}
	}
}

// TestInstallFailureLeavesNothing: when the image cannot be renamed into
// place, the sidecars already placed are removed again.
func TestInstallFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	tmpImage := filepath.Join(dir, ".x.raw.partial")
	os.WriteFile(tmpImage, []byte("image"), 0o644)
	// A non-empty directory where the image goes makes the rename fail.
	finalImage := filepath.Join(dir, "x.raw")
	os.MkdirAll(filepath.Join(finalImage, "blocker"), 0o755)
	err := install(tmpImage, finalImage, &publish.Staged{}, []sidecar{{filepath.Join(dir, "x.spdx.json"), []byte("{}")}, {filepath.Join(dir, "x.SHA256SUMS"), []byte("")}})
	if err == nil || !strings.Contains(err.Error(), "image") {
		t.Fatalf("error = %v", err)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != ".x.raw.partial,x.raw" {
		t.Errorf("after a failed install the directory holds %v", names)
	}
}

func TestSHA256Sums(t *testing.T) {
	got := string(sha256Sums(map[string]string{"b.raw": "22", "a.json": "11"}))
	if want := "11  a.json\n22  b.raw\n"; got != want {
		t.Errorf("sha256Sums = %q, want %q", got, want)
	}
}

// TestBuildFormats: the formats asked for are written and listed in the
// manifest and the sums; without "raw" the raw image is not kept; the
// image inside is the same whatever the formats (they are not part of the
// spec hash).
func TestBuildFormats(t *testing.T) {
	f := newFixture(t)
	rawOut := t.TempDir()
	rawRes, err := f.build(t, rawOut, f.spec)
	if err != nil {
		t.Fatal(err)
	}
	s := f.spec.Clone()
	s.Output.Formats = []spec.Format{spec.FormatQCOW2, spec.FormatRawZst}
	out := t.TempDir()
	res, err := f.build(t, out, s)
	if err != nil {
		t.Fatal(err)
	}
	if res.ImagePath != "" {
		t.Errorf("ImagePath = %q without the raw format", res.ImagePath)
	}
	if res.Manifest.Image.SHA256 != rawRes.Manifest.Image.SHA256 {
		t.Errorf("the image differs with other formats: %s vs %s", res.Manifest.Image.SHA256, rawRes.Manifest.Image.SHA256)
	}
	entries, _ := os.ReadDir(out)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if got, want := strings.Join(names, ","), "test.SHA256SUMS,test.manifest.json,test.qcow2,test.raw.zst,test.spdx.json"; got != want {
		t.Errorf("output dir holds %s, want %s", got, want)
	}
	// The plan named exactly what was written.
	var planned []string
	for _, p := range res.Plan.Files() {
		planned = append(planned, filepath.Base(p))
	}
	slices.Sort(planned)
	if got := strings.Join(planned, ","); got != strings.Join(names, ",") {
		t.Errorf("the plan names %s, the build wrote %s", got, strings.Join(names, ","))
	}
	var formats []string
	for _, o := range res.Manifest.Outputs {
		formats = append(formats, o.Format)
		if len(o.Files) != 1 || o.Files[0].SHA256 == "" || o.Files[0].Size == 0 {
			t.Errorf("output %s: files %+v", o.Format, o.Files)
		}
	}
	if strings.Join(formats, ",") != "qcow2,raw.zst" {
		t.Errorf("manifest outputs %v, want qcow2,raw.zst", formats)
	}
	checkSums(t, out, res.SumsPath, []string{"test.manifest.json", "test.qcow2", "test.raw.zst", "test.spdx.json"})

	// The raw.zst decompresses to the raw image of the first build.
	if _, err := exec.LookPath("zstd"); err == nil {
		cmd := exec.Command("sh", "-c", `zstd -dc "$1" | cmp - "$2"`, "sh", filepath.Join(out, "test.raw.zst"), rawRes.ImagePath)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("raw.zst does not decompress to the raw image: %v\n%s", err, b)
		}
	}
}

// TestExport: exporting a built raw image gives the same bytes the build
// writes for that format, merges the sums, and refuses an image that does
// not match its manifest without writing anything.
func TestExport(t *testing.T) {
	f := newFixture(t)
	out := t.TempDir()
	res, err := f.build(t, out, f.spec)
	if err != nil {
		t.Fatal(err)
	}
	s := f.spec.Clone()
	s.Output.Formats = []spec.Format{spec.FormatVHD}
	direct := t.TempDir()
	dres, err := f.build(t, direct, s)
	if err != nil {
		t.Fatal(err)
	}
	er, err := Export(t.Context(), res.ImagePath, ExportOptions{Formats: []spec.Format{spec.FormatVHD}})
	if err != nil {
		t.Fatal(err)
	}
	if len(er.Outputs) != 1 || len(dres.Outputs) != 1 {
		t.Fatalf("outputs: export %+v, build %+v", er.Outputs, dres.Outputs)
	}
	if a, b := er.Outputs[0].Files[0].SHA256, dres.Outputs[0].Files[0].SHA256; a != b {
		t.Errorf("exported vhd sha256 %s, the build's %s", a, b)
	}
	checkSums(t, out, er.SumsPath, []string{"test.manifest.json", "test.raw", "test.spdx.json", "test.vhd"})
	if _, err := Export(t.Context(), res.ImagePath, ExportOptions{OutputDir: t.TempDir(), Formats: []spec.Format{spec.FormatUpdate}}); failure.KindOf(err) != failure.Invalid ||
		!strings.Contains(err.Error(), "verified") {
		t.Errorf("an update of an image without verified boot: %v", err)
	}

	// A changed image is refused; nothing new appears.
	bad := t.TempDir()
	for _, n := range []string{"test.raw", "test.manifest.json"} {
		b, _ := os.ReadFile(filepath.Join(out, n))
		if n == "test.raw" {
			b[len(b)/2] ^= 1
		}
		os.WriteFile(filepath.Join(bad, n), b, 0o644)
	}
	_, err = Export(t.Context(), filepath.Join(bad, "test.raw"), ExportOptions{Formats: []spec.Format{spec.FormatQCOW2}})
	if failure.KindOf(err) != failure.Invalid || !strings.Contains(err.Error(), "does not match its manifest") {
		t.Errorf("export of a changed image: %v", err)
	}
	entries, _ := os.ReadDir(bad)
	if len(entries) != 2 {
		t.Errorf("a refused export left %d files", len(entries))
	}
	if _, err := Export(t.Context(), filepath.Join(bad, "nothing.img"), ExportOptions{Formats: []spec.Format{spec.FormatQCOW2}}); failure.KindOf(err) != failure.Invalid {
		t.Errorf("export of a non-raw name: %v", err)
	}
}

// output.diskSize makes the image that size, /var taking the rest; a disk
// size the root filesystem does not leave room in is invalid input naming
// the field, and leaves nothing behind.
func TestBuildDiskSize(t *testing.T) {
	f := newFixture(t)
	s := f.spec.Clone()
	s.Output.VarSize, s.Output.DiskSize = 0, 1*spec.GiB
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	res, err := f.build(t, t.TempDir(), s)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(res.ImagePath)
	if err != nil || fi.Size() != 1<<30 || res.Manifest.Image.Size != 1<<30 {
		t.Fatalf("image %v (%v), manifest size %d; want 1 GiB", fi, err, res.Manifest.Image.Size)
	}

	// 2 MiB of GPT + 958 MiB ESP + 64 MiB /var is 1 GiB: the root
	// filesystem does not fit any more, which only the build can tell.
	s.Output.ESPSize = 958 * spec.MiB
	out := t.TempDir()
	_, err = f.build(t, out, s)
	if failure.KindOf(err) != failure.Invalid || !strings.HasPrefix(err.Error(), "output.diskSize: 1024 MiB leaves 63 MiB for /var after the GPT, the 958 MiB ESP and the 1 MiB root filesystem; /var needs at least 64 MiB") {
		t.Errorf("build: %v (%s), want invalid output.diskSize", err, failure.KindOf(err))
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("failed build left %d files", len(entries))
	}
}
