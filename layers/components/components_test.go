package components

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestCatalogueFacts checks that every component has every fact, and that
// the facts agree with each other.
func TestCatalogueFacts(t *testing.T) {
	keyRE := regexp.MustCompile(`^[a-z][a-zA-Z0-9]*$`)
	nameRE := regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	keys, names, paths := map[Key]bool{}, map[string]bool{}, map[string]string{}
	for _, c := range Catalogue() {
		t.Run(string(c.Key), func(t *testing.T) {
			if !keyRE.MatchString(string(c.Key)) || keys[c.Key] {
				t.Errorf("key %q is not a unique lowerCamel spec key", c.Key)
			}
			keys[c.Key] = true
			if !nameRE.MatchString(c.Name) || names[c.Name] {
				t.Errorf("upstream name %q is not unique or not lower-case", c.Name)
			}
			names[c.Name] = true
			if c.Description == "" {
				t.Error("no description")
			}
			if !strings.HasPrefix(c.URLPattern, "https://") || !strings.Contains(c.URLPattern, "{version}") || !strings.Contains(c.URLPattern, "{arch}") {
				t.Errorf("URL pattern %q: want https with {version} and {arch}", c.URLPattern)
			}
			if len(c.Files) == 0 {
				t.Fatal("installs no files")
			}
			if c.Artifact == Binary && len(c.Files) != 1 {
				t.Errorf("a plain binary artifact installs %d files", len(c.Files))
			}
			for _, f := range append(c.InstalledPaths(), c.Dirs...) {
				if !path.IsAbs(f) || path.Clean(f) != f {
					t.Errorf("installed path %q is not absolute and clean", f)
				}
			}
			for _, f := range c.Files {
				if other, dup := paths[f.To]; dup {
					t.Errorf("%s is installed by %s too", f.To, other)
				}
				paths[f.To] = c.Name
				if c.Artifact == TarGz && f.Member == "" {
					t.Errorf("%s: no tarball member", f.Name)
				}
				if path.Base(f.To) != f.Name {
					t.Errorf("%s is installed as %s", f.Name, f.To)
				}
			}
			for _, d := range c.Dirs {
				for _, f := range c.Files {
					if path.Dir(f.To) != d {
						t.Errorf("%s owns %s but installs %s elsewhere", c.Name, d, f.To)
					}
				}
			}
			r := c.Recipe
			if r.Component != c.Name || r.Module == "" || r.LDFlags == nil {
				t.Errorf("recipe %+v: want component %s, a module and version flags", r, c.Name)
			}
			var built, installed []string
			for _, b := range r.Binaries {
				built = append(built, b.Name)
				if !strings.HasPrefix(b.Package, r.Module) && !slices.ContainsFunc(r.ExtraModules, func(m string) bool { return strings.HasPrefix(b.Package, m) }) {
					t.Errorf("binary %s: package %s is outside the recipe's modules", b.Name, b.Package)
				}
			}
			for _, f := range c.Files {
				installed = append(installed, f.Name)
			}
			slices.Sort(built)
			slices.Sort(installed)
			if !slices.Equal(built, installed) {
				t.Errorf("the recipe builds %v, the component installs %v", built, installed)
			}
			for _, from := range []string{"release", "go"} {
				if typ, name := c.Package(from); typ == "" || name == "" {
					t.Errorf("no package URL for from %s", from)
				}
			}
			if c.Major != "" && (!regexp.MustCompile(`^v[0-9]+$`).MatchString(c.Major) || c.MajorReason == "") {
				t.Errorf("major %q without a reason %q", c.Major, c.MajorReason)
			}
			if got, ok := Lookup(c.Key); !ok || got.Name != c.Name {
				t.Errorf("Lookup(%s) = %v", c.Key, ok)
			}
			for _, n := range []string{string(c.Key), c.Name} {
				if got, ok := Find(n); !ok || got.Key != c.Key {
					t.Errorf("Find(%s) = %v", n, ok)
				}
			}
		})
	}
	if _, ok := Find("etcd"); ok {
		t.Error("etcd is found as a component: it is a control plane program")
	}
}

func TestReleaseURLs(t *testing.T) {
	for _, tc := range []struct {
		key           Key
		version, arch string
		want          string
	}{
		{"kubelet", "v1.35.4", "amd64", "https://dl.k8s.io/release/v1.35.4/bin/linux/amd64/kubelet"},
		{"kubeProxy", "v1.35.4", "arm64", "https://dl.k8s.io/release/v1.35.4/bin/linux/arm64/kube-proxy"},
		{"kubectl", "v1.35.4", "amd64", "https://dl.k8s.io/release/v1.35.4/bin/linux/amd64/kubectl"},
		{"containerd", "v2.2.0", "amd64", "https://github.com/containerd/containerd/releases/download/v2.2.0/containerd-2.2.0-linux-amd64.tar.gz"},
		{"runc", "v1.3.4", "arm64", "https://github.com/opencontainers/runc/releases/download/v1.3.4/runc.arm64"},
		{"cniPlugins", "v1.8.0", "amd64", "https://github.com/containernetworking/plugins/releases/download/v1.8.0/cni-plugins-linux-amd64-v1.8.0.tgz"},
		{"crictl", "v1.34.0", "arm64", "https://github.com/kubernetes-sigs/cri-tools/releases/download/v1.34.0/crictl-v1.34.0-linux-arm64.tar.gz"},
	} {
		c, ok := Lookup(tc.key)
		if !ok {
			t.Fatalf("no component %s", tc.key)
		}
		if got := c.ReleaseURL(tc.version, tc.arch); got != tc.want {
			t.Errorf("%s ReleaseURL = %q, want %q", tc.key, got, tc.want)
		}
	}
	if got := Expand("x/{version}/{bareVersion}/{arch}/{other}", "v1.2.3", "arm64"); got != "x/v1.2.3/1.2.3/arm64/{other}" {
		t.Errorf("Expand = %q", got)
	}
}

func fakeBins(t *testing.T, c Component) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range c.Files {
		if err := os.WriteFile(filepath.Join(dir, f.Name), []byte("#!bin "+f.Name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestPackReleaseRoundTrip packs each component's binaries as upstream
// publishes them and reads them back from the artifact, and from a build.
func TestPackReleaseRoundTrip(t *testing.T) {
	for _, c := range Catalogue() {
		t.Run(c.Name, func(t *testing.T) {
			bins := fakeBins(t, c)
			out := filepath.Join(t.TempDir(), "artifact")
			if err := c.PackRelease(os.DirFS(bins), out); err != nil {
				t.Fatal(err)
			}
			again := out + "2"
			if err := c.PackRelease(os.DirFS(bins), again); err != nil {
				t.Fatal(err)
			}
			a, _ := os.ReadFile(out)
			b, _ := os.ReadFile(again)
			if !bytes.Equal(a, b) {
				t.Error("two packs of the same binaries differ")
			}
			ents, err := c.FromRelease(fileOpener(t, out))
			if err != nil {
				t.Fatal(err)
			}
			if len(ents) != len(c.Files) {
				t.Fatalf("got %d entries, want %d", len(ents), len(c.Files))
			}
			for i, e := range ents {
				if e.Path != c.Files[i].To || e.Mode != 0o755 || e.Type != tar.TypeReg {
					t.Errorf("entry %d = %s %o, want %s 0755", i, e.Path, e.Mode, c.Files[i].To)
				}
				rc, _ := e.Open()
				data, _ := io.ReadAll(rc)
				rc.Close()
				if string(data) != "#!bin "+c.Files[i].Name || int64(len(data)) != e.Size {
					t.Errorf("%s content = %q", e.Path, data)
				}
			}
			built, err := c.FromBuild(os.DirFS(bins))
			if err != nil || len(built) != len(ents) {
				t.Fatalf("FromBuild: %v, %d entries", err, len(built))
			}
		})
	}
}

// fileOpener returns an opener of the file p and its size, the arguments
// of FromRelease.
func fileOpener(t *testing.T, p string) (func() (io.ReadCloser, error), int64) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return func() (io.ReadCloser, error) { return os.Open(p) }, fi.Size()
}

// tarGz writes a gzip'd tar of the given members (name -> content; a name
// ending in / is a directory).
func tarGz(t *testing.T, members [][2]string) string {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, m := range members {
		if strings.HasSuffix(m[0], "/") {
			tw.WriteHeader(&tar.Header{Name: m[0], Typeflag: tar.TypeDir, Mode: 0o755})
			continue
		}
		tw.WriteHeader(&tar.Header{Name: m[0], Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(m[1]))})
		tw.Write([]byte(m[1]))
	}
	tw.Close()
	zw.Close()
	p := filepath.Join(t.TempDir(), "release.tar.gz")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFromReleaseLayouts reads synthetic upstream-shaped tarballs: members
// under a directory, with "./", extra files ignored, missing ones refused.
func TestFromReleaseLayouts(t *testing.T) {
	containerd, _ := Lookup("containerd")
	p := tarGz(t, [][2]string{{"bin/", ""}, {"bin/containerd", "c"}, {"bin/containerd-shim-runc-v2", "s"}, {"bin/ctr", "r"}, {"bin/containerd-stress", "x"}})
	ents, err := containerd.FromRelease(fileOpener(t, p))
	if err != nil || len(ents) != 3 || ents[2].Path != "/usr/local/bin/ctr" {
		t.Fatalf("containerd from a release tarball: %v, %+v", err, ents)
	}
	cni, _ := Lookup("cniPlugins")
	var members [][2]string
	for _, f := range cni.Files {
		members = append(members, [2]string{"./" + f.Name, f.Name})
	}
	if ents, err := cni.FromRelease(fileOpener(t, tarGz(t, members))); err != nil || len(ents) != len(cni.Files) {
		t.Fatalf("CNI plugins: %v, %d entries", err, len(ents))
	}
	if _, err := cni.FromRelease(fileOpener(t, tarGz(t, members[1:]))); err == nil || !strings.Contains(err.Error(), "has no ./"+cni.Files[0].Name) {
		t.Errorf("a release without %s: %v", cni.Files[0].Name, err)
	}
	if _, err := containerd.FromRelease(func() (io.ReadCloser, error) { return os.Open(filepath.Join(t.TempDir(), "none")) }, 0); err == nil {
		t.Error("a missing artifact is accepted")
	}
	notGz := filepath.Join(t.TempDir(), "x.tar.gz")
	os.WriteFile(notGz, []byte("not gzip"), 0o644)
	if _, err := containerd.FromRelease(fileOpener(t, notGz)); err == nil {
		t.Error("a corrupt artifact is accepted")
	}
}

// TestMemberSizeBound refuses a member that claims more than
// MaxBinarySize without reading it.
func TestMemberSizeBound(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "usr/local/sbin/runc", Typeflag: tar.TypeReg, Mode: 0o755, Size: MaxBinarySize + 1})
	runc, _ := Lookup("runc")
	_, err := runc.FromFilesystem(&buf)
	if err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("an oversized member: %v", err)
	}
}

func TestFromFilesystem(t *testing.T) {
	runc, _ := Lookup("runc")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range [][2]string{{"usr/local/sbin/runc", "old"}, {"etc/other", "x"}, {"./usr/local/sbin/runc", "new"}} {
		tw.WriteHeader(&tar.Header{Name: m[0], Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(m[1]))})
		tw.Write([]byte(m[1]))
	}
	tw.Close()
	ents, err := runc.FromFilesystem(&buf)
	if err != nil || len(ents) != 1 {
		t.Fatalf("FromFilesystem: %v, %+v", err, ents)
	}
	rc, _ := ents[0].Open()
	b, _ := io.ReadAll(rc)
	if string(b) != "new" {
		t.Errorf("the later member does not win: %q", b)
	}
	if _, err := runc.FromFilesystem(bytes.NewReader(nil)); err == nil {
		t.Error("an image without runc is accepted")
	}
}

func TestRecipes(t *testing.T) {
	for _, n := range []string{"kubelet", "kube-proxy", "kubectl", "containerd", "runc", "cni-plugins",
		"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"} {
		r, err := Recipe(n)
		if err != nil || r.Component != n || len(r.Binaries) == 0 {
			t.Errorf("Recipe(%s) = %+v, %v", n, r, err)
		}
	}
	if _, err := Recipe("nope"); err == nil || !strings.Contains(err.Error(), "known:") {
		t.Errorf("Recipe(nope) error = %v", err)
	}
	f := strings.Join(kubernetesLDFlags("v1.35.4"), " ")
	for _, want := range []string{
		"-X k8s.io/component-base/version.gitVersion=v1.35.4",
		"-X k8s.io/client-go/pkg/version.gitMinor=35",
		"-X k8s.io/component-base/version.gitTreeState=clean",
	} {
		if !strings.Contains(f, want) {
			t.Errorf("ldflags lack %q: %s", want, f)
		}
	}
	k, _ := Recipe("kubelet")
	if got := k.ReplaceVersion("v1.35.4"); got != "v0.35.4" {
		t.Errorf("Kubernetes staging version of v1.35.4 = %s", got)
	}
	if e, _ := Recipe("etcd"); e.ReplaceVersion != nil {
		t.Error("etcd's replaces are published at other versions than its own")
	}
}

// TestCrictl checks crictl's entry: off unless the spec lists it, its
// release tarball holding crictl at its root, and its recipe.
func TestCrictl(t *testing.T) {
	c, ok := Lookup("crictl")
	if !ok {
		t.Fatal("no crictl")
	}
	if !c.Optional || c.Version != VersionRequired || c.Name != "crictl" {
		t.Errorf("crictl must be optional with an explicit version: %+v", c)
	}
	// Upstream's tarball: crictl at the root, nothing else.
	ents, err := c.FromRelease(fileOpener(t, tarGz(t, [][2]string{{"crictl", "#!crictl"}})))
	if err != nil || len(ents) != 1 || ents[0].Path != "/usr/local/bin/crictl" || ents[0].Mode != 0o755 {
		t.Fatalf("crictl from its release: %+v, %v", ents, err)
	}
	rc, _ := ents[0].Open()
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "#!crictl" {
		t.Errorf("content %q", b)
	}
	if _, err := c.FromRelease(fileOpener(t, tarGz(t, [][2]string{{"bin/crictl", "x"}}))); err == nil {
		t.Error("a tarball with crictl elsewhere is accepted")
	}
	r := c.Recipe
	if r.Module != "sigs.k8s.io/cri-tools" || len(r.Binaries) != 1 || r.Binaries[0].Package != "sigs.k8s.io/cri-tools/cmd/crictl" || r.CGO {
		t.Errorf("recipe %+v", r)
	}
	if got := strings.Join(r.LDFlags("v1.34.0"), " "); got != "-X sigs.k8s.io/cri-tools/pkg/version.Version=1.34.0" {
		t.Errorf("version stamp %q: upstream stamps 1.34.0", got)
	}
	if typ, name := c.Package("go"); typ != "golang" || name != "sigs.k8s.io/cri-tools" {
		t.Errorf("package URL of a build from source: %s %s", typ, name)
	}
}

// verdictReader returns data, then err instead of io.EOF, as a verifying
// cache read of damaged content does.
type verdictReader struct {
	r   io.Reader
	err error
}

func (v *verdictReader) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	if err == io.EOF {
		return n, v.err
	}
	return n, err
}

func (v *verdictReader) Close() error { return v.err }

// TestFromReleaseReportsTheReadError: when the artifact's reader fails (a
// damaged cache entry), that is the error, not the gzip or tar error the
// damage leads to, and a tarball is read to its end so the reader can
// decide.
func TestFromReleaseReportsTheReadError(t *testing.T) {
	containerd, _ := Lookup("containerd")
	good, err := os.ReadFile(tarGz(t, [][2]string{{"bin/containerd", "c"}, {"bin/containerd-shim-runc-v2", "s"}, {"bin/ctr", "r"}}))
	if err != nil {
		t.Fatal(err)
	}
	damaged := bytes.Clone(good)
	damaged[len(damaged)/2] ^= 0xff
	corrupt := errors.New("cache entry is corrupt")
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"intact bytes", good},
		{"damaged bytes", damaged},
		{"truncated", good[:len(good)/2]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			open := func() (io.ReadCloser, error) {
				return &verdictReader{r: bytes.NewReader(tc.data), err: corrupt}, nil
			}
			if _, err := containerd.FromRelease(open, int64(len(tc.data))); !errors.Is(err, corrupt) {
				t.Errorf("FromRelease = %v, want the reader's error", err)
			}
		})
	}
	// Intact and verified: no error.
	open := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(good)), nil }
	if _, err := containerd.FromRelease(open, int64(len(good))); err != nil {
		t.Errorf("FromRelease of an intact artifact = %v", err)
	}
}
