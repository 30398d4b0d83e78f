package build

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/nodebake/nodebake/builder/publish"
	"github.com/nodebake/nodebake/builder/sbom"
	"github.com/nodebake/nodebake/layers/components"
	"github.com/nodebake/nodebake/layers/spec"
)

// sbomDocument describes the build m of s for the SBOM.
func sbomDocument(s *spec.Spec, m *Manifest, debs []sbom.Package, distro, toolVersion string) (sbom.Document, error) {
	d := sbom.Document{
		Name:        m.Name,
		ToolVersion: toolVersion,
		Created:     time.Unix(s.SourceDateEpoch, 0).UTC(),
		Image: sbom.Image{File: m.Image.File, SHA256: m.Image.SHA256, Arch: m.Arch,
			KubernetesVersion: s.Kubernetes.Version, SpecHash: m.SpecHash},
		Base:   sbom.Base{Ref: m.Base.Image, Digest: m.Base.Digest, Distro: distro},
		Debian: debs,
	}
	if v := m.Verified; v != nil {
		d.Image.Version, d.Image.VerityRootHash = v.Version, v.RootHash
		d.Image.UKI = &sbom.UKI{File: v.UKI.Path, SHA256: v.UKI.SHA256}
	}
	for _, c := range m.Components {
		sc := sbom.Component{Name: c.Name, Version: c.Version, From: c.From, Source: c.Source, Checksum: c.Checksum}
		cat, ok := components.Find(c.Name)
		if !ok {
			return d, fmt.Errorf("sbom: component %s is not in the catalogue", c.Name)
		}
		sc.PackageType, sc.PackageName = cat.Package(c.From)
		for _, f := range c.Files {
			sc.Files = append(sc.Files, sbom.File{Path: f.Path, SHA256: f.SHA256, SHA1: f.SHA1})
		}
		d.Components = append(d.Components, sc)
	}
	for _, im := range m.Images {
		d.Preloads = append(d.Preloads, sbom.OCIImage{Ref: im.Ref, Source: im.Source, Digest: im.Digest})
	}
	return d, nil
}

// sha256Sums renders a SHA256SUMS file as sha256sum writes it and
// `sha256sum -c` reads it: "<hex>  <file>" lines sorted by file name.
func sha256Sums(sums map[string]string) []byte {
	names := make([]string, 0, len(sums))
	for n := range sums {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		b.WriteString(sums[n] + "  " + n + "\n")
	}
	return []byte(b.String())
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// sidecar is a small output file written next to the image.
type sidecar struct {
	path string
	data []byte
}

// install writes the sidecar files under temporary names, then renames
// the staged formats, them and the image (already written at tmpImage)
// into place, the image last; with an empty finalImage the image is not
// kept. On any failure it removes what it wrote, so a failed build leaves
// none of the outputs.
func install(tmpImage, finalImage string, staged *publish.Staged, files []sidecar) (err error) {
	var temps, placed []string
	defer func() {
		for _, t := range temps {
			os.Remove(t)
		}
		if err != nil {
			for _, p := range placed {
				os.Remove(p)
			}
			staged.Remove()
		}
	}()
	for _, f := range files {
		tmp := partial(f.path)
		temps = append(temps, tmp)
		if err := os.WriteFile(tmp, f.data, 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", filepath.Base(f.path), err)
		}
		// WriteFile keeps the mode of an existing file: make it 0644.
		if err := os.Chmod(tmp, 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", filepath.Base(f.path), err)
		}
	}
	if err := staged.Commit(); err != nil {
		return err
	}
	for i, f := range files {
		if err := os.Rename(temps[i], f.path); err != nil {
			return fmt.Errorf("renaming %s into place: %w", filepath.Base(f.path), err)
		}
		placed = append(placed, f.path)
	}
	switch {
	case tmpImage == "":
		return nil
	case finalImage == "":
		return os.Remove(tmpImage)
	}
	if err := os.Rename(tmpImage, finalImage); err != nil {
		return fmt.Errorf("renaming the image into place: %w", err)
	}
	return nil
}

// marshalManifest renders the manifest file.
func marshalManifest(m *Manifest) ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("writing the manifest: %w", err)
	}
	return append(b, '\n'), nil
}
