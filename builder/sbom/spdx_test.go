package sbom

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx"
	"github.com/spdx/tools-golang/spdxlib"
)

func hexOf(c byte, n int) string { return strings.Repeat(string(c), n) }

func sampleDocument() Document {
	return Document{
		Name:        "worker",
		ToolVersion: "v0.1.0",
		Created:     time.Unix(1700000000, 0),
		Image:       Image{File: "worker.raw", SHA256: hexOf('a', 64), Arch: "amd64", KubernetesVersion: "v1.35.4", SpecHash: hexOf('b', 64)},
		Base:        Base{Ref: "oci:/some/layout", Digest: "sha256:" + hexOf('c', 64), Distro: "debian-13"},
		Debian: []Package{
			{Name: "libstdc++6", Version: "14.2.0-19", Architecture: "amd64", SourceName: "gcc-14"},
			{Name: "bsdutils", Version: "1:2.41-5", Architecture: "amd64", SourceName: "util-linux", SourceVersion: "2.41-5"},
			{Name: "libstdc--6", Version: "1", Architecture: "amd64"}, // sanitises to the same SPDX ID
		},
		Components: []Component{
			{Name: "containerd", Version: "v2.2.0", From: "release", PackageType: "generic", PackageName: "containerd", Source: "https://example.test/containerd-2.2.0-linux-amd64.tar.gz", Checksum: "sha256:" + hexOf('D', 64),
				Files: []File{{Path: "/usr/local/bin/containerd", SHA256: hexOf('1', 64), SHA1: hexOf('2', 40)}}},
			{Name: "kubelet", Version: "v1.35.4", From: "release", PackageType: "generic", PackageName: "kubelet", Source: "https://example.test/kubelet", Checksum: "sha512:" + hexOf('e', 128),
				Files: []File{{Path: "/usr/local/bin/kubelet", SHA256: hexOf('3', 64), SHA1: hexOf('4', 40)}}},
			{Name: "runc", Version: "v1.3.4", From: "go", Source: "go:github.com/opencontainers/runc@v1.3.4 (go1.26.0)", PackageType: "golang", PackageName: "github.com/opencontainers/runc",
				Files: []File{{Path: "/usr/local/sbin/runc", SHA256: hexOf('5', 64), SHA1: hexOf('6', 40)}}},
			{Name: "cni-plugins", Version: "v1.8.0", From: "oci", Source: "registry.example.test/cni/plugins:v1.8.0", Checksum: "sha256:" + hexOf('f', 64),
				Files: []File{{Path: "/opt/cni/bin/bridge", SHA256: hexOf('7', 64), SHA1: hexOf('8', 40)}, {Path: "/opt/cni/bin/loopback", SHA256: hexOf('9', 64), SHA1: hexOf('0', 40)}}},
		},
		Preloads: []OCIImage{{Ref: "registry.example.test/pause:3.10", Source: "oci:/layouts/pause", Digest: "sha256:" + hexOf('9', 64)}},
	}
}

func TestGenerateDeterministic(t *testing.T) {
	d := sampleDocument()
	a, err := Generate(d)
	if err != nil {
		t.Fatal(err)
	}
	// The input order of Debian packages does not matter.
	d2 := sampleDocument()
	d2.Debian[0], d2.Debian[2] = d2.Debian[2], d2.Debian[0]
	b, err := Generate(d2)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("two generations differ:\n%s\n---\n%s", a, b)
	}
	// A different image gives a different namespace.
	d3 := sampleDocument()
	d3.Image.SHA256 = hexOf('0', 64)
	c, _ := Generate(d3)
	var ns1, ns2 struct {
		NS string `json:"documentNamespace"`
	}
	json.Unmarshal(a, &ns1)
	json.Unmarshal(c, &ns2)
	if ns1.NS == ns2.NS || !strings.HasPrefix(ns1.NS, NamespacePrefix+"worker-") {
		t.Errorf("namespaces %q and %q", ns1.NS, ns2.NS)
	}
}

func TestGenerateParsesWithSPDXLibrary(t *testing.T) {
	d := sampleDocument()
	out, err := Generate(d)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := spdxjson.Read(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("tools-golang cannot read the document: %v\n%s", err, out)
	}
	if err := spdxlib.ValidateDocument(doc); err != nil {
		t.Errorf("invalid document: %v", err)
	}
	if doc.SPDXVersion != "SPDX-2.3" || doc.DataLicense != "CC0-1.0" || doc.CreationInfo == nil ||
		doc.CreationInfo.Created != "2023-11-14T22:13:20Z" || len(doc.CreationInfo.Creators) != 1 ||
		doc.CreationInfo.Creators[0].Creator != "nodebake-v0.1.0" || doc.CreationInfo.Creators[0].CreatorType != "Tool" {
		t.Errorf("document header: %s %s %+v", doc.SPDXVersion, doc.DataLicense, doc.CreationInfo)
	}
	described, err := spdxlib.GetDescribedPackageIDs(doc)
	if err != nil || len(described) != 1 || described[0] != "Image" {
		t.Errorf("described packages %v, %v; want the image", described, err)
	}

	byName := map[string]*spdx.Package{}
	ids := map[string]bool{}
	for _, p := range doc.Packages {
		if ids[string(p.PackageSPDXIdentifier)] {
			t.Errorf("duplicate SPDX ID %s", p.PackageSPDXIdentifier)
		}
		ids[string(p.PackageSPDXIdentifier)] = true
		byName[p.PackageName] = p
	}
	files := map[string]*spdx.File{}
	for _, f := range doc.Files {
		files[string(f.FileSPDXIdentifier)] = f
	}
	contained := map[string]bool{}
	filesOf := map[string][]*spdx.File{} // hasFiles, read as CONTAINS relationships
	for _, r := range doc.Relationships {
		if r.Relationship != "CONTAINS" {
			continue
		}
		if r.RefA.ElementRefID == "Image" {
			contained[string(r.RefB.ElementRefID)] = true
		} else if f := files[string(r.RefB.ElementRefID)]; f != nil {
			filesOf[string(r.RefA.ElementRefID)] = append(filesOf[string(r.RefA.ElementRefID)], f)
		}
	}
	checksumOf := func(p *spdx.Package, algo string) string {
		for _, c := range p.PackageChecksums {
			if string(c.Algorithm) == algo {
				return c.Value
			}
		}
		return ""
	}
	purlOf := func(p *spdx.Package) string {
		for _, r := range p.PackageExternalReferences {
			if r.RefType == "purl" {
				return r.Locator
			}
		}
		return ""
	}

	img := byName["worker"]
	if img == nil || checksumOf(img, "SHA256") != d.Image.SHA256 || img.PrimaryPackagePurpose != "OPERATING-SYSTEM" {
		t.Errorf("image package %+v", img)
	}
	for _, deb := range d.Debian {
		p := byName[deb.Name]
		if p == nil {
			t.Errorf("Debian package %s missing", deb.Name)
			continue
		}
		if p.PackageVersion != deb.Version || !contained[string(p.PackageSPDXIdentifier)] || !strings.HasPrefix(purlOf(p), "pkg:deb/debian/") {
			t.Errorf("Debian package %s: version %q, contained %v, purl %q", deb.Name, p.PackageVersion, contained[string(p.PackageSPDXIdentifier)], purlOf(p))
		}
	}
	if got := purlOf(byName["bsdutils"]); got != "pkg:deb/debian/bsdutils@1:2.41-5?arch=amd64&distro=debian-13&upstream=util-linux%402.41-5" {
		t.Errorf("bsdutils purl %s", got)
	}
	if got := purlOf(byName["libstdc++6"]); got != "pkg:deb/debian/libstdc%2B%2B6@14.2.0-19?arch=amd64&distro=debian-13&upstream=gcc-14" {
		t.Errorf("libstdc++6 purl %s", got)
	}
	wantPURL := map[string]string{
		"containerd":  "pkg:generic/containerd@v2.2.0?checksum=sha256:" + hexOf('D', 64) + "&download_url=https://example.test/containerd-2.2.0-linux-amd64.tar.gz",
		"runc":        "pkg:golang/github.com/opencontainers/runc@v1.3.4",
		"cni-plugins": "pkg:oci/plugins@sha256:" + hexOf('f', 64) + "?arch=amd64&repository_url=registry.example.test/cni/plugins&tag=v1.8.0",
	}
	for _, c := range d.Components {
		p := byName[c.Name]
		if p == nil {
			t.Errorf("component %s missing", c.Name)
			continue
		}
		if p.PackageVersion != c.Version || !contained[string(p.PackageSPDXIdentifier)] {
			t.Errorf("component %s: version %q, contained %v", c.Name, p.PackageVersion, contained[string(p.PackageSPDXIdentifier)])
		}
		if c.Checksum != "" {
			algo, sum, _ := strings.Cut(c.Checksum, ":")
			if got := checksumOf(p, strings.ToUpper(algo)); got != strings.ToLower(sum) {
				t.Errorf("component %s: %s checksum %q, want %q", c.Name, algo, got, sum)
			}
		}
		pf := filesOf[string(p.PackageSPDXIdentifier)]
		if len(pf) != len(c.Files) || p.PackageVerificationCode == nil || !p.FilesAnalyzed {
			t.Errorf("component %s: %d files (want %d), verification code %v", c.Name, len(pf), len(c.Files), p.PackageVerificationCode)
			continue
		}
		for i, f := range c.Files {
			got := map[string]string{}
			for _, s := range pf[i].Checksums {
				got[string(s.Algorithm)] = s.Value
			}
			if pf[i].FileName != "."+f.Path || got["SHA256"] != f.SHA256 || got["SHA1"] != f.SHA1 {
				t.Errorf("component %s file %d: %s %v", c.Name, i, pf[i].FileName, got)
			}
		}
		if w, ok := wantPURL[c.Name]; ok && purlOf(p) != w {
			t.Errorf("component %s purl %s, want %s", c.Name, purlOf(p), w)
		}
	}
	// The verification code is the SHA1 of the sorted file SHA1s.
	if p := byName["cni-plugins"]; p != nil && p.PackageVerificationCode != nil {
		want := sha1.Sum([]byte(hexOf('0', 40) + hexOf('8', 40)))
		if p.PackageVerificationCode.Value != hex.EncodeToString(want[:]) {
			t.Errorf("cni-plugins verification code %s", p.PackageVerificationCode.Value)
		}
	}
	if p := byName["containerd"]; p != nil && p.PackageDownloadLocation != d.Components[0].Source {
		t.Errorf("containerd download location %q", p.PackageDownloadLocation)
	}
	if p := byName["runc"]; p != nil && (p.PackageDownloadLocation != "NOASSERTION" || len(p.PackageChecksums) != 0) {
		t.Errorf("runc package %+v", p)
	}
	pause := byName["registry.example.test/pause:3.10"]
	if pause == nil || checksumOf(pause, "SHA256") != hexOf('9', 64) || !contained[string(pause.PackageSPDXIdentifier)] ||
		purlOf(pause) != "pkg:oci/pause@sha256:"+hexOf('9', 64)+"?arch=amd64&repository_url=registry.example.test/pause&tag=3.10" {
		t.Errorf("preloaded image %+v", pause)
	}
	base := byName["oci:/some/layout"]
	if base == nil || checksumOf(base, "SHA256") != hexOf('c', 64) || !contained[string(base.PackageSPDXIdentifier)] {
		t.Errorf("base package %+v", base)
	}
	// Every package but the image itself is contained in the image.
	if len(contained) != len(doc.Packages)-1 {
		t.Errorf("%d CONTAINS relationships for %d packages", len(contained), len(doc.Packages))
	}
}

func TestGenerateErrors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Document)
		want   string
	}{
		{"bad image sum", func(d *Document) { d.Image.SHA256 = "xyz" }, "worker.raw"},
		{"unknown checksum algorithm", func(d *Document) { d.Components[0].Checksum = "md5:00" }, "component containerd"},
		{"short checksum", func(d *Document) { d.Components[1].Checksum = "sha512:abcd" }, "component kubelet"},
		{"file without sha1", func(d *Document) { d.Components[2].Files[0].SHA1 = "" }, "/usr/local/sbin/runc"},
		{"nothing to check", func(d *Document) { d.Components[2].Files = nil }, "component runc"},
		{"bad preload digest", func(d *Document) { d.Preloads[0].Digest = "latest" }, "pause:3.10"},
		{"debian package without version", func(d *Document) { d.Debian[1].Version = "" }, "bsdutils"},
		{"bad root hash", func(d *Document) { d.Image.VerityRootHash = strings.Repeat("g", 64) }, "dm-verity root hash"},
		{"bad UKI sum", func(d *Document) { d.Image.UKI = &UKI{File: "/EFI/Linux/worker_1.efi", SHA256: "00"} }, "/EFI/Linux/worker_1.efi"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := sampleDocument()
			tt.mutate(&d)
			_, err := Generate(d)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one naming %q", err, tt.want)
			}
		})
	}
}

func TestSPDXIDsAreSanitised(t *testing.T) {
	out, err := Generate(sampleDocument())
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Packages []struct {
			ID string `json:"SPDXID"`
		} `json:"packages"`
		Files []struct {
			ID string `json:"SPDXID"`
		} `json:"files"`
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	check := func(id string) {
		rest, ok := strings.CutPrefix(id, "SPDXRef-")
		if !ok || rest == "" || strings.Trim(rest, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != "" {
			t.Errorf("SPDX ID %q is not SPDXRef-[A-Za-z0-9.-]+", id)
		}
		if seen[id] {
			t.Errorf("SPDX ID %q twice", id)
		}
		seen[id] = true
	}
	for _, p := range raw.Packages {
		check(p.ID)
	}
	for _, f := range raw.Files {
		check(f.ID)
	}
}

// TestGenerateVerified checks what the SBOM of a verified image adds: the
// root hash and version in the image's description, the UKI as a package
// with its sha256, contained in the image; the document stays valid.
func TestGenerateVerified(t *testing.T) {
	d := sampleDocument()
	hash := strings.Repeat("ab", 32)
	d.Image.Version, d.Image.VerityRootHash = "1.35.4-2", hash
	d.Image.UKI = &UKI{File: "/EFI/Linux/worker_1.35.4-2.efi", SHA256: strings.Repeat("cd", 32)}
	out, err := Generate(d)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := spdxjson.Read(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if err := spdxlib.ValidateDocument(doc); err != nil {
		t.Errorf("invalid document: %v", err)
	}
	var image, uki *spdx.Package
	for _, p := range doc.Packages {
		switch p.PackageSPDXIdentifier {
		case "Image":
			image = p
		case "UKI":
			uki = p
		}
	}
	if image == nil || !strings.Contains(image.PackageDescription, "dm-verity root hash "+hash) || !strings.Contains(image.PackageDescription, "image version 1.35.4-2") {
		t.Errorf("image package %+v", image)
	}
	if uki == nil || len(uki.PackageChecksums) != 1 || uki.PackageChecksums[0].Value != strings.Repeat("cd", 32) || uki.PackageFileName != d.Image.UKI.File {
		t.Fatalf("UKI package %+v", uki)
	}
	contained := false
	for _, r := range doc.Relationships {
		contained = contained || r.Relationship == "CONTAINS" && r.RefA.ElementRefID == "Image" && r.RefB.ElementRefID == "UKI"
	}
	if !contained {
		t.Error("the image does not contain the UKI")
	}
}
