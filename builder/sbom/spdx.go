package sbom

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// NamespacePrefix starts every document's namespace; the image name and
// its sha256 follow, so a namespace names exactly one build's output.
const NamespacePrefix = "https://nodebake.dev/spdx/"

// Document is what an SBOM describes: one built image.
type Document struct {
	// Name is the image's name (the spec's name).
	Name string
	// ToolVersion is nodebake's version, for the creator field.
	ToolVersion string
	// Created is the document's creation time: the spec's source date
	// epoch, so the document is reproducible.
	Created time.Time
	Image   Image
	Base    Base
	// Debian lists the base's installed packages.
	Debian     []Package
	Components []Component
	// Preloads are the container images baked into the image.
	Preloads []OCIImage
}

// Image is the disk image file.
type Image struct {
	File              string
	SHA256            string
	Arch              string
	KubernetesVersion string
	SpecHash          string
	// Version and VerityRootHash are a verified image's version and the
	// dm-verity root hash (hex) of its root filesystem; UKI its Unified
	// Kernel Image. Empty otherwise.
	Version        string
	VerityRootHash string
	UKI            *UKI
}

// UKI is a verified image's Unified Kernel Image (kernel, initrd and the
// command line that pins the root hash).
type UKI struct {
	File   string // its path on the ESP
	SHA256 string
}

// Base is the base OS image the root filesystem starts from.
type Base struct {
	// Ref is the base image reference as the spec gives it.
	Ref string
	// Digest is its manifest digest, "sha256:<hex>".
	Digest string
	// Distro is the purl distro qualifier ("debian-13"); may be empty.
	Distro string
}

// Component is one baked component.
type Component struct {
	Name    string
	Version string
	// From is the component's source kind: "release", "go" or "oci".
	From string
	// Source is the URL, module or image reference it came from.
	Source string
	// PackageType and PackageName are the component's package URL type and
	// name (pkg:TYPE/NAME@VERSION) for From "release" and "go" (the
	// component catalogue's); an OCI image's come from Source.
	PackageType, PackageName string
	// Checksum is the pinned checksum of the release artifact or image,
	// "sha256:<hex>" or "sha512:<hex>"; may be empty (built from source).
	Checksum string
	Files    []File
}

// File is one file a component installs.
type File struct {
	// Path is the absolute path in the image.
	Path   string
	SHA256 string
	SHA1   string
}

// OCIImage is a preloaded container image.
type OCIImage struct {
	Ref    string
	Source string
	Digest string
}

// The SPDX 2.3 JSON model, as much of it as nodebake writes.
type spdxDocument struct {
	SPDXVersion       string             `json:"spdxVersion"`
	DataLicense       string             `json:"dataLicense"`
	SPDXID            string             `json:"SPDXID"`
	Name              string             `json:"name"`
	DocumentNamespace string             `json:"documentNamespace"`
	CreationInfo      spdxCreationInfo   `json:"creationInfo"`
	Packages          []spdxPackage      `json:"packages"`
	Files             []spdxFile         `json:"files,omitempty"`
	Relationships     []spdxRelationship `json:"relationships"`
}

type spdxCreationInfo struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

type spdxPackage struct {
	SPDXID                  string            `json:"SPDXID"`
	Name                    string            `json:"name"`
	VersionInfo             string            `json:"versionInfo,omitempty"`
	PackageFileName         string            `json:"packageFileName,omitempty"`
	DownloadLocation        string            `json:"downloadLocation"`
	FilesAnalyzed           bool              `json:"filesAnalyzed"`
	PackageVerificationCode *spdxVerification `json:"packageVerificationCode,omitempty"`
	Checksums               []spdxChecksum    `json:"checksums,omitempty"`
	SourceInfo              string            `json:"sourceInfo,omitempty"`
	LicenseConcluded        string            `json:"licenseConcluded"`
	LicenseDeclared         string            `json:"licenseDeclared"`
	CopyrightText           string            `json:"copyrightText"`
	Description             string            `json:"description,omitempty"`
	ExternalRefs            []spdxExternalRef `json:"externalRefs,omitempty"`
	PrimaryPackagePurpose   string            `json:"primaryPackagePurpose,omitempty"`
	HasFiles                []string          `json:"hasFiles,omitempty"`
}

type spdxVerification struct {
	Value string `json:"packageVerificationCodeValue"`
}

type spdxChecksum struct {
	Algorithm string `json:"algorithm"`
	Value     string `json:"checksumValue"`
}

type spdxExternalRef struct {
	Category string `json:"referenceCategory"`
	Type     string `json:"referenceType"`
	Locator  string `json:"referenceLocator"`
}

type spdxFile struct {
	SPDXID           string         `json:"SPDXID"`
	FileName         string         `json:"fileName"`
	Checksums        []spdxChecksum `json:"checksums"`
	LicenseConcluded string         `json:"licenseConcluded"`
	CopyrightText    string         `json:"copyrightText"`
}

type spdxRelationship struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
}

const (
	noAssertion = "NOASSERTION"
	docID       = "SPDXRef-DOCUMENT"
	imageID     = "SPDXRef-Image"
)

// Generate writes the SPDX 2.3 JSON document describing d. The document
// DESCRIBES the image, which CONTAINS the base, every Debian package, every
// component and every preloaded image; each component's installed files
// are SPDX files of its package.
func Generate(d Document) ([]byte, error) {
	if d.Name == "" {
		return nil, errors.New("sbom: no image name")
	}
	if !isHex(d.Image.SHA256, 64) {
		return nil, fmt.Errorf("sbom: image %s: sha256 %q is not 64 hex digits", d.Image.File, d.Image.SHA256)
	}
	tool := d.ToolVersion
	if tool == "" {
		tool = "dev"
	}
	ids := idSet{}
	doc := spdxDocument{
		SPDXVersion:       "SPDX-2.3",
		DataLicense:       "CC0-1.0",
		SPDXID:            docID,
		Name:              d.Name,
		DocumentNamespace: NamespacePrefix + url.PathEscape(d.Name) + "-" + strings.ToLower(d.Image.SHA256),
		CreationInfo: spdxCreationInfo{
			Created:  d.Created.UTC().Format(time.RFC3339),
			Creators: []string{"Tool: nodebake-" + tool},
		},
		Relationships: []spdxRelationship{{Element: docID, Type: "DESCRIBES", Related: imageID}},
	}
	ids.take(docID)
	ids.take(imageID)
	contains := func(id string) {
		doc.Relationships = append(doc.Relationships, spdxRelationship{Element: imageID, Type: "CONTAINS", Related: id})
	}

	desc := "Kubernetes worker disk image"
	var details []string
	if d.Image.KubernetesVersion != "" {
		details = append(details, "Kubernetes "+d.Image.KubernetesVersion)
	}
	if d.Image.Arch != "" {
		details = append(details, "linux/"+d.Image.Arch)
	}
	if d.Image.SpecHash != "" {
		details = append(details, "spec sha256:"+d.Image.SpecHash)
	}
	if d.Image.Version != "" {
		details = append(details, "image version "+d.Image.Version)
	}
	if h := d.Image.VerityRootHash; h != "" {
		if !isHex(h, 64) {
			return nil, fmt.Errorf("sbom: image %s: dm-verity root hash %q is not 64 hex digits", d.Image.File, h)
		}
		details = append(details, "dm-verity root hash "+strings.ToLower(h))
	}
	if len(details) > 0 {
		desc += " (" + strings.Join(details, ", ") + ")"
	}
	doc.Packages = append(doc.Packages, spdxPackage{
		SPDXID:                imageID,
		Name:                  d.Name,
		VersionInfo:           d.Image.KubernetesVersion,
		PackageFileName:       d.Image.File,
		DownloadLocation:      noAssertion,
		Checksums:             []spdxChecksum{{Algorithm: "SHA256", Value: strings.ToLower(d.Image.SHA256)}},
		Description:           desc,
		PrimaryPackagePurpose: "OPERATING-SYSTEM",
	})

	if u := d.Image.UKI; u != nil {
		if !isHex(u.SHA256, 64) {
			return nil, fmt.Errorf("sbom: UKI %s: sha256 %q is not 64 hex digits", u.File, u.SHA256)
		}
		id := ids.make("SPDXRef-UKI")
		doc.Packages = append(doc.Packages, spdxPackage{
			SPDXID:                id,
			Name:                  d.Name + " UKI",
			VersionInfo:           d.Image.Version,
			PackageFileName:       u.File,
			DownloadLocation:      noAssertion,
			Checksums:             []spdxChecksum{{Algorithm: "SHA256", Value: strings.ToLower(u.SHA256)}},
			Description:           "the Unified Kernel Image on the ESP: kernel, initrd and the command line with the dm-verity root hash",
			PrimaryPackagePurpose: "FILE",
		})
		contains(id)
	}

	if d.Base.Ref != "" || d.Base.Digest != "" {
		p := spdxPackage{
			SPDXID:                ids.make("SPDXRef-Base"),
			Name:                  d.Base.Ref,
			DownloadLocation:      noAssertion,
			Description:           "the base operating system image",
			PrimaryPackagePurpose: "CONTAINER",
		}
		if p.Name == "" {
			p.Name = "base"
		}
		if d.Base.Digest != "" {
			c, err := checksum(d.Base.Digest)
			if err != nil {
				return nil, fmt.Errorf("sbom: base %s: %w", d.Base.Ref, err)
			}
			p.Checksums = []spdxChecksum{c}
			p.VersionInfo = d.Base.Digest
			if purl := ociPURL(d.Base.Ref, d.Base.Digest, d.Image.Arch); purl != "" {
				p.ExternalRefs = []spdxExternalRef{purlRef(purl)}
			}
		}
		doc.Packages = append(doc.Packages, p)
		contains(p.SPDXID)
	}

	debs := append([]Package(nil), d.Debian...)
	sort.SliceStable(debs, func(i, j int) bool {
		if debs[i].Name != debs[j].Name {
			return debs[i].Name < debs[j].Name
		}
		return debs[i].Architecture < debs[j].Architecture
	})
	for _, pk := range debs {
		if pk.Name == "" || pk.Version == "" {
			return nil, fmt.Errorf("sbom: Debian package %q: no name or version", pk.Name)
		}
		p := spdxPackage{
			SPDXID:           ids.make("SPDXRef-Deb-" + pk.Name + "-" + pk.Architecture),
			Name:             pk.Name,
			VersionInfo:      pk.Version,
			DownloadLocation: noAssertion,
			ExternalRefs:     []spdxExternalRef{purlRef(debPURL(pk, d.Base.Distro))},
		}
		if pk.SourceName != "" {
			v := pk.SourceVersion
			if v == "" {
				v = pk.Version
			}
			p.SourceInfo = "built from the Debian source package " + pk.SourceName + " " + v
		}
		doc.Packages = append(doc.Packages, p)
		contains(p.SPDXID)
	}

	for _, c := range d.Components {
		if c.Name == "" || c.Version == "" {
			return nil, fmt.Errorf("sbom: component %q: no name or version", c.Name)
		}
		p := spdxPackage{
			SPDXID:                ids.make("SPDXRef-Component-" + c.Name),
			Name:                  c.Name,
			VersionInfo:           c.Version,
			DownloadLocation:      noAssertion,
			PrimaryPackagePurpose: "APPLICATION",
		}
		if u, err := url.Parse(c.Source); err == nil && (u.Scheme == "https" || u.Scheme == "http") {
			p.DownloadLocation = c.Source
		}
		if c.Source != "" {
			p.SourceInfo = "from " + c.From + ": " + c.Source
		}
		if c.Checksum != "" {
			sum, err := checksum(c.Checksum)
			if err != nil {
				return nil, fmt.Errorf("sbom: component %s: %w", c.Name, err)
			}
			p.Checksums = []spdxChecksum{sum}
		}
		if purl := componentPURL(c, d.Image.Arch); purl != "" {
			p.ExternalRefs = []spdxExternalRef{purlRef(purl)}
		}
		if len(c.Files) > 0 {
			var sha1s []string
			for _, f := range c.Files {
				if !isHex(f.SHA256, 64) || !isHex(f.SHA1, 40) {
					return nil, fmt.Errorf("sbom: component %s: file %s: missing or malformed sha256/sha1", c.Name, f.Path)
				}
				id := ids.make("SPDXRef-File-" + c.Name + "-" + strings.TrimPrefix(f.Path, "/"))
				doc.Files = append(doc.Files, spdxFile{
					SPDXID:   id,
					FileName: "./" + strings.TrimPrefix(f.Path, "/"),
					Checksums: []spdxChecksum{
						{Algorithm: "SHA1", Value: strings.ToLower(f.SHA1)},
						{Algorithm: "SHA256", Value: strings.ToLower(f.SHA256)},
					},
					LicenseConcluded: noAssertion,
					CopyrightText:    noAssertion,
				})
				p.HasFiles = append(p.HasFiles, id)
				sha1s = append(sha1s, strings.ToLower(f.SHA1))
			}
			p.FilesAnalyzed = true
			p.PackageVerificationCode = &spdxVerification{Value: verificationCode(sha1s)}
		} else if c.Checksum == "" {
			return nil, fmt.Errorf("sbom: component %s: neither a checksum nor installed files", c.Name)
		}
		doc.Packages = append(doc.Packages, p)
		contains(p.SPDXID)
	}

	for _, im := range d.Preloads {
		c, err := checksum(im.Digest)
		if err != nil {
			return nil, fmt.Errorf("sbom: preloaded image %s: %w", im.Ref, err)
		}
		p := spdxPackage{
			SPDXID:                ids.make("SPDXRef-Preload-" + im.Ref),
			Name:                  im.Ref,
			VersionInfo:           im.Digest,
			DownloadLocation:      noAssertion,
			Checksums:             []spdxChecksum{c},
			PrimaryPackagePurpose: "CONTAINER",
		}
		if im.Source != "" && im.Source != im.Ref {
			p.SourceInfo = "from " + im.Source
		}
		if purl := ociPURL(im.Ref, im.Digest, d.Image.Arch); purl != "" {
			p.ExternalRefs = []spdxExternalRef{purlRef(purl)}
		}
		doc.Packages = append(doc.Packages, p)
		contains(p.SPDXID)
	}

	for i := range doc.Packages {
		doc.Packages[i].LicenseConcluded = noAssertion
		doc.Packages[i].LicenseDeclared = noAssertion
		doc.Packages[i].CopyrightText = noAssertion
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("sbom: %w", err)
	}
	return append(b, '\n'), nil
}

// checksum maps "sha256:<hex>" (or sha512, sha1) to an SPDX checksum.
func checksum(s string) (spdxChecksum, error) {
	algo, h, ok := strings.Cut(s, ":")
	if !ok {
		return spdxChecksum{}, fmt.Errorf("checksum %q is not ALGORITHM:HEX", s)
	}
	lengths := map[string]int{"sha1": 40, "sha256": 64, "sha384": 96, "sha512": 128}
	n, known := lengths[strings.ToLower(algo)]
	if !known {
		return spdxChecksum{}, fmt.Errorf("checksum %q: unknown algorithm %q", s, algo)
	}
	if !isHex(h, n) {
		return spdxChecksum{}, fmt.Errorf("checksum %q: want %d hex digits", s, n)
	}
	return spdxChecksum{Algorithm: strings.ToUpper(algo), Value: strings.ToLower(h)}, nil
}

// verificationCode is SPDX's package verification code: the SHA1 of the
// sorted, concatenated SHA1s of the package's files.
func verificationCode(sha1s []string) string {
	s := append([]string(nil), sha1s...)
	sort.Strings(s)
	h := sha1.Sum([]byte(strings.Join(s, "")))
	return hex.EncodeToString(h[:])
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// idSet hands out unique SPDX identifiers.
type idSet map[string]bool

func (s idSet) take(id string) { s[id] = true }

// make sanitises id to SPDX's [A-Za-z0-9.-] and makes it unique with a
// numeric suffix.
func (s idSet) make(id string) string {
	var b strings.Builder
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	base := b.String()
	out := base
	for i := 2; s[out]; i++ {
		out = base + "-" + strconv.Itoa(i)
	}
	s[out] = true
	return out
}

func purlRef(purl string) spdxExternalRef {
	return spdxExternalRef{Category: "PACKAGE-MANAGER", Type: "purl", Locator: purl}
}
