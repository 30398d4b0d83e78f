// Package components knows what each baked component installs and where:
// which members of an upstream release artifact (a plain binary or a
// tar.gz), or which binaries of a source build, become which files of the
// image, with which modes.
package components

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/nodebake/nodebake/layers/entry"
)

// ArtifactKind is the shape of an upstream release artifact.
type ArtifactKind int

const (
	// Binary is a single executable (kubelet, runc.amd64).
	Binary ArtifactKind = iota
	// TarGz is a gzip'd tar of binaries (containerd, the CNI plugins).
	TarGz
)

// Install maps one binary to its place in the image.
type Install struct {
	// Name is the binary's name: its file name in a source build, and its
	// member's base name in a tarball.
	Name string
	// Member is the path inside a release tarball ("bin/containerd").
	Member string
	// To is the absolute path in the image.
	To string
}

// Layout says what one component installs.
type Layout struct {
	Component string
	Artifact  ArtifactKind
	Files     []Install
}

// BinDir and friends are where binaries go; the seed's locations.
const (
	BinDir    = "/usr/local/bin"
	SbinDir   = "/usr/local/sbin"
	CNIBinDir = "/opt/cni/bin"
)

// CNIPlugins are the plugins of the CNI plugins release, in its order.
var cniPlugins = []string{
	"bandwidth", "bridge", "dhcp", "dummy", "firewall", "host-device", "host-local", "ipvlan",
	"loopback", "macvlan", "portmap", "ptp", "sbr", "static", "tap", "tuning", "vlan", "vrf",
}

// Layouts returns every component's layout, keyed by component name.
func Layouts() map[string]Layout {
	l := map[string]Layout{}
	for _, n := range []string{"kubelet", "kube-proxy", "kubectl"} {
		l[n] = Layout{Component: n, Artifact: Binary, Files: []Install{{Name: n, To: BinDir + "/" + n}}}
	}
	l["runc"] = Layout{Component: "runc", Artifact: Binary, Files: []Install{{Name: "runc", To: SbinDir + "/runc"}}}
	l["containerd"] = Layout{Component: "containerd", Artifact: TarGz, Files: []Install{
		{Name: "containerd", Member: "bin/containerd", To: BinDir + "/containerd"},
		{Name: "containerd-shim-runc-v2", Member: "bin/containerd-shim-runc-v2", To: BinDir + "/containerd-shim-runc-v2"},
		{Name: "ctr", Member: "bin/ctr", To: BinDir + "/ctr"},
	}}
	cni := Layout{Component: "cni-plugins", Artifact: TarGz}
	for _, p := range cniPlugins {
		cni.Files = append(cni.Files, Install{Name: p, Member: "./" + p, To: CNIBinDir + "/" + p})
	}
	l["cni-plugins"] = cni
	return l
}

// Lookup returns the layout of a component.
func Lookup(component string) (Layout, error) {
	l, ok := Layouts()[component]
	if !ok {
		return Layout{}, fmt.Errorf("unknown component %q", component)
	}
	return l, nil
}

// InstalledPaths lists every path the components install, sorted.
func InstalledPaths() []string {
	var out []string
	for _, l := range Layouts() {
		for _, f := range l.Files {
			out = append(out, f.To)
		}
	}
	sort.Strings(out)
	return out
}

func exe(to string, size int64, open func() (io.ReadCloser, error)) entry.Entry {
	return entry.Entry{Path: to, Type: tar.TypeReg, Mode: 0o755, Size: size, Open: open}
}

// FromRelease returns the image entries of a component from its verified
// release artifact at artifactPath.
func (l Layout) FromRelease(artifactPath string) ([]entry.Entry, error) {
	switch l.Artifact {
	case Binary:
		fi, err := os.Stat(artifactPath)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", l.Component, err)
		}
		return []entry.Entry{exe(l.Files[0].To, fi.Size(), func() (io.ReadCloser, error) { return os.Open(artifactPath) })}, nil
	case TarGz:
		members, err := readTarGz(artifactPath, l.members())
		if err != nil {
			return nil, fmt.Errorf("%s: reading release artifact: %w", l.Component, err)
		}
		var out []entry.Entry
		for _, f := range l.Files {
			data, ok := members[cleanMember(f.Member)]
			if !ok {
				return nil, fmt.Errorf("%s: release artifact has no %s", l.Component, f.Member)
			}
			out = append(out, entry.File(f.To, 0o755, data))
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: unknown artifact kind", l.Component)
}

// FromBuild returns the image entries of a component from a directory of
// binaries built from source.
func (l Layout) FromBuild(dir string) ([]entry.Entry, error) {
	var out []entry.Entry
	for _, f := range l.Files {
		p := filepath.Join(dir, f.Name)
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("%s: built binary %s: %w", l.Component, f.Name, err)
		}
		out = append(out, exe(f.To, fi.Size(), func() (io.ReadCloser, error) { return os.Open(p) }))
	}
	return out, nil
}

// FromFilesystem returns the image entries of a component from a flattened
// image filesystem (an OCI image holding the files at their image paths).
func (l Layout) FromFilesystem(fs io.Reader) ([]entry.Entry, error) {
	want := map[string]Install{}
	for _, f := range l.Files {
		want[strings.TrimPrefix(f.To, "/")] = f
	}
	found := map[string][]byte{}
	tr := tar.NewReader(fs)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: reading image: %w", l.Component, err)
		}
		name := cleanMember(h.Name)
		if _, ok := want[name]; ok && (h.Typeflag == tar.TypeReg || h.Typeflag == tar.TypeRegA) {
			b, err := io.ReadAll(tr)
			if err != nil {
				return nil, fmt.Errorf("%s: reading %s: %w", l.Component, name, err)
			}
			found[name] = b
		}
	}
	var out []entry.Entry
	for _, f := range l.Files {
		b, ok := found[strings.TrimPrefix(f.To, "/")]
		if !ok {
			return nil, fmt.Errorf("%s: image has no %s", l.Component, f.To)
		}
		out = append(out, entry.File(f.To, 0o755, b))
	}
	return out, nil
}

func (l Layout) members() map[string]bool {
	m := map[string]bool{}
	for _, f := range l.Files {
		m[cleanMember(f.Member)] = true
	}
	return m
}

func cleanMember(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

func readTarGz(p string, want map[string]bool) (map[string][]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		name := cleanMember(h.Name)
		if !want[name] || (h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeRegA) {
			continue
		}
		var buf bytes.Buffer
		if _, err := io.Copy(&buf, tr); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out[name] = buf.Bytes()
	}
}
