package resolve

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/layers/cache"
	"github.com/nodebake/nodebake/layers/components"
	"github.com/nodebake/nodebake/layers/failure"
	"github.com/nodebake/nodebake/layers/fetch"
	"github.com/nodebake/nodebake/layers/gosource"
	"github.com/nodebake/nodebake/layers/mirror"
	"github.com/nodebake/nodebake/layers/oci"
	"github.com/nodebake/nodebake/layers/spec"
	"github.com/nodebake/nodebake/layers/worker"
)

// These tests resolve real layers in-process: OCI layouts written with the
// oci package, release artifacts packed by the catalogue and served over
// HTTP like the upstream sites. builder/build's tests build whole images
// from them; test/boot resolves the real components.

// layout writes an OCI image layout of the given files (path -> content).
func layout(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for p, data := range files {
		tw.WriteHeader(&tar.Header{Name: p, Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(data))})
		tw.Write([]byte(data))
	}
	tw.Close()
	tarPath := filepath.Join(dir, "fs.tar")
	if err := os.WriteFile(tarPath, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := oci.ImageFromRootfsTar(tarPath, time.Unix(0, 0).UTC(), "amd64")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "layout")
	if err := oci.WriteLayout(out, img, nil); err != nil {
		t.Fatal(err)
	}
	return out
}

func newCache(t *testing.T) *cache.Cache {
	t.Helper()
	c, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// specOf parses a spec (header added), defaults and validates it.
func specOf(t *testing.T, doc string) *spec.Spec {
	t.Helper()
	s, err := spec.Parse([]byte("apiVersion: nodebake.io/v1alpha1\nkind: WorkerImage\nkubernetes: {version: v1.35.4}\n" + doc))
	if err != nil {
		t.Fatal(err)
	}
	s.Default()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return s
}

const allFromGo = `components:
  containerd: {version: v2.2.0, from: go}
  runc: {version: v1.3.4, from: go}
  cniPlugins: {version: v1.8.0, from: go}
  kubelet: {from: go}
  kubeProxy: {from: go}
  kubectl: {from: go}
`

func TestMissingBaseIsInvalidWithAHint(t *testing.T) {
	for _, base := range []string{filepath.Join(t.TempDir(), "trixie-amd64"), t.TempDir()} {
		s := specOf(t, "base: {image: \"oci:"+base+"\"}\n"+allFromGo)
		_, _, err := New(s, newCache(t)).Base(context.Background())
		if failure.KindOf(err) != failure.Invalid || !strings.Contains(err.Error(), "build the base OS with scripts/build-base.sh (make base)") {
			t.Errorf("base %s: %v (kind %v)", base, err, failure.KindOf(err))
		}
	}
	s := specOf(t, "base: {image: \"tarball:"+filepath.Join(t.TempDir(), "none.tar")+"\"}\n"+allFromGo)
	if _, _, err := New(s, newCache(t)).Base(context.Background()); failure.KindOf(err) != failure.Invalid || !strings.HasPrefix(err.Error(), "base.image: ") {
		t.Errorf("missing base tarball: %v (kind %v)", err, failure.KindOf(err))
	}
}

func TestBase(t *testing.T) {
	l := layout(t, map[string]string{"etc/os-release": "ID=debian\n"})
	s := specOf(t, "base: {image: \"oci:"+l+"\"}\n"+allFromGo)
	img, info, err := New(s, newCache(t)).Base(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	if info.Image != "oci:"+l || info.Digest != d.String() {
		t.Errorf("BaseInfo %+v, digest %s", info, d)
	}
}

// releaseMirror packs fake binaries of every component of s as upstream
// publishes them, serves them, and returns s pinned to the mirror.
func releaseMirror(t *testing.T, s *spec.Spec) *spec.Spec {
	t.Helper()
	root := t.TempDir()
	arts, err := mirror.Write(context.Background(), s, root, func(_ context.Context, name, version string) (string, error) {
		c, ok := components.Find(name)
		if !ok {
			return "", fmt.Errorf("no component %s", name)
		}
		dir := t.TempDir()
		for _, f := range c.Files {
			os.WriteFile(filepath.Join(dir, f.Name), []byte("#!fake "+f.Name+" "+version), 0o755)
		}
		return dir, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(root)))
	t.Cleanup(srv.Close)
	p, err := mirror.Pin(s, srv.URL, arts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestComponentsFromRelease(t *testing.T) {
	s := releaseMirror(t, specOf(t, "base: {image: \"oci:base\"}\n"+allFromGo))
	var logged []string
	var downloads int
	r := New(s, newCache(t), WithLog(func(m string) { logged = append(logged, m) }), WithDownloads(func(fetch.Progress) { downloads++ }))
	infos, ents, err := r.Components(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != len(s.NamedComponents()) {
		t.Fatalf("%d records for %d components", len(infos), len(s.NamedComponents()))
	}
	// Compose the image, as far as the components go: read every file but
	// the last; CompleteDigests reads that one.
	content := map[string][]byte{}
	for i, e := range ents {
		rc, err := e.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		content[e.Path] = b
		if i == len(ents)-2 {
			if err := r.CompleteDigests(infos); err != nil {
				t.Fatal(err)
			}
		}
	}
	files := 0
	for i, nc := range s.NamedComponents() {
		info := infos[i]
		if info.Name != nc.Name || info.From != "release" || !strings.HasPrefix(info.Checksum, "sha256:") || info.Source != s.ArtifactURL(nc.Key) {
			t.Errorf("record %+v for %s", info, nc.Key)
		}
		if len(info.Files) != len(nc.Catalogue.Files) {
			t.Errorf("%s: %d files recorded, the catalogue installs %d", nc.Key, len(info.Files), len(nc.Catalogue.Files))
		}
		for j, f := range info.Files {
			if f.Path != nc.Catalogue.Files[j].To || len(f.SHA256) != 64 || len(f.SHA1) != 40 {
				t.Errorf("%s: file record %+v", nc.Key, f)
			}
			if c := content[f.Path]; f.SHA256 != fmt.Sprintf("%x", sha256.Sum256(c)) || f.SHA1 != fmt.Sprintf("%x", sha1.Sum(c)) {
				t.Errorf("%s: the digests of %s are not those of its content", nc.Key, f.Path)
			}
		}
		files += len(info.Files)
	}
	if len(ents) != files {
		t.Errorf("%d entries for %d recorded files", len(ents), files)
	}
	rc, _ := ents[0].Open()
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "#!fake containerd v2.2.0" {
		t.Errorf("containerd's content %q", b)
	}
	if len(logged) != len(infos) || downloads == 0 {
		t.Errorf("logged %v, %d download events", logged, downloads)
	}

	// A checksum that does not match, and a server that has nothing, are
	// source failures naming the component.
	bad := s.Clone()
	k := bad.Components["kubelet"]
	k.SHA256 = map[spec.Arch]string{spec.ArchAMD64: strings.Repeat("0", 64)}
	bad.SetComponent("kubelet", k)
	var ce *cache.ChecksumError
	if _, _, err := New(bad, newCache(t)).Components(context.Background()); !errors.As(err, &ce) || failure.KindOf(err) != failure.Source || !strings.HasPrefix(err.Error(), "components.kubelet: ") {
		t.Errorf("checksum mismatch: %v", err)
	}
	gone := s.Clone()
	gone.Sources.Mirror += "/nothing-here"
	var de *fetch.DownloadError
	if _, _, err := New(gone, newCache(t)).Components(context.Background()); !errors.As(err, &de) || failure.KindOf(err) != failure.Source {
		t.Errorf("404: %v", err)
	}
	// Offline, the cache is all there is.
	if _, _, err := New(s, newCache(t), WithOffline(true)).Components(context.Background()); !errors.Is(err, cache.ErrNotCached) || failure.KindOf(err) != failure.Source {
		t.Errorf("offline: %v", err)
	}
}

func TestComponentFromOCI(t *testing.T) {
	runc, _ := components.Lookup("runc")
	img := layout(t, map[string]string{"usr/local/sbin/runc": "runc from an image", "etc/other": "x"})
	s := specOf(t, "base: {image: \"oci:base\"}\n"+strings.Replace(allFromGo, "runc: {version: v1.3.4, from: go}", "runc: {version: v1.3.4, from: oci, image: \"oci:"+img+"\"}", 1))
	nc, _ := s.Component("runc")
	info, ents, err := New(s, newCache(t)).component(context.Background(), nc)
	if err != nil {
		t.Fatal(err)
	}
	if info.From != "oci" || info.Source != "oci:"+img || !strings.HasPrefix(info.Checksum, "sha256:") || len(ents) != 1 || ents[0].Path != runc.Files[0].To {
		t.Errorf("record %+v, entries %+v", info, ents)
	}
	empty := layout(t, map[string]string{"etc/other": "x"})
	s2 := specOf(t, "base: {image: \"oci:base\"}\n"+strings.Replace(allFromGo, "runc: {version: v1.3.4, from: go}", "runc: {version: v1.3.4, from: oci, image: \"oci:"+empty+"\"}", 1))
	nc, _ = s2.Component("runc")
	if _, _, err := New(s2, newCache(t)).component(context.Background(), nc); failure.KindOf(err) != failure.Invalid || !strings.Contains(err.Error(), "image has no /usr/local/sbin/runc") {
		t.Errorf("an image without runc: %v", err)
	}
}

// TestBuildFromSourceCacheKey checks that a build from source is found in
// the cache under the key every earlier build used, without building.
func TestBuildFromSourceCacheKey(t *testing.T) {
	c := newCache(t)
	s := specOf(t, "base: {image: \"oci:base\"}\n"+allFromGo)
	gover, err := gosource.Builder{}.GoVersion(context.Background())
	if err != nil {
		t.Skipf("no go command: %v", err)
	}
	key := fmt.Sprintf("gosource/v1/kube-proxy/v1.35.4/%s/amd64", gover)
	e, err := c.PutEntry(key, func(tmp string) error { return os.WriteFile(filepath.Join(tmp, "kube-proxy"), []byte("cached"), 0o755) })
	if err != nil {
		t.Fatal(err)
	}
	want := e.Dir
	var logged []string
	r := New(s, c, WithLog(func(m string) { logged = append(logged, m) }))
	dir, err := r.BuildFromSource(context.Background(), "kube-proxy", "v1.35.4")
	if err != nil || dir != want || len(logged) != 0 {
		t.Errorf("BuildFromSource = %s, %v (logged %v); want the cached %s", dir, err, logged, want)
	}
	nc, _ := s.Component("kubeProxy")
	info, ents, err := r.component(context.Background(), nc)
	if err != nil || info.Source != "go:k8s.io/kubernetes@v1.35.4 ("+gover+")" || len(ents) != 1 || ents[0].Path != "/usr/local/bin/kube-proxy" {
		t.Errorf("kube-proxy from the cached build: %+v %+v %v", info, ents, err)
	}
	if _, err := r.BuildFromSource(context.Background(), "etcdd", "v3.6.6"); err == nil || !strings.Contains(err.Error(), "no source recipe") {
		t.Errorf("an unknown program: %v", err)
	}
}

// cachedBuild stores fake binaries of component name as the cache entry a
// build from source at version makes, and returns them.
func cachedBuild(t *testing.T, c *cache.Cache, name, version string) map[string][]byte {
	t.Helper()
	gover, err := gosource.Builder{}.GoVersion(context.Background())
	if err != nil {
		t.Skipf("no go command: %v", err)
	}
	comp, ok := components.Find(name)
	if !ok {
		t.Fatalf("no component %s", name)
	}
	bins := map[string][]byte{}
	for _, f := range comp.Files {
		bins[f.Name] = []byte("#!reviewed " + f.Name + " " + version)
	}
	key := fmt.Sprintf("gosource/v1/%s/%s/%s/amd64", name, version, gover)
	if _, err := c.PutEntry(key, func(tmp string) error {
		for n, b := range bins {
			if err := os.WriteFile(filepath.Join(tmp, n), b, 0o755); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return bins
}

// TestPinnedBuildFromSource: a component built from source with a pin is
// refused unless its release artifact, as the mirror packs it, has the
// pinned checksum; the pins `mirror build` writes are the ones a build
// from source accepts, for a single binary and for a tarball.
func TestPinnedBuildFromSource(t *testing.T) {
	c := newCache(t)
	s := specOf(t, "base: {image: \"oci:base\"}\n"+allFromGo)
	kubelet := cachedBuild(t, c, "kubelet", "v1.35.4")
	cachedBuild(t, c, "containerd", "v2.2.0")
	// The pins of the same binaries, as the mirror writes them.
	root := t.TempDir()
	arts, err := mirror.Write(context.Background(), s, root, func(ctx context.Context, name, version string) (string, error) {
		if name == "kubelet" || name == "containerd" {
			return New(s, c).BuildFromSource(ctx, name, version)
		}
		comp, _ := components.Find(name)
		dir := t.TempDir()
		for _, f := range comp.Files {
			os.WriteFile(filepath.Join(dir, f.Name), []byte("#!fake"), 0o755)
		}
		return dir, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pins := map[spec.ComponentName]string{}
	for _, a := range arts {
		pins[a.Component] = a.SHA256
	}
	if want := fmt.Sprintf("%x", sha256.Sum256(kubelet["kubelet"])); pins["kubelet"] != want {
		t.Fatalf("the mirror's kubelet pin %s is not the binary's sha256 %s", pins["kubelet"], want)
	}
	for _, key := range []spec.ComponentName{"kubelet", "containerd"} {
		t.Run(string(key), func(t *testing.T) {
			pinned := func(sum string) *spec.Spec {
				p := s.Clone()
				comp := p.Components[key]
				comp.SHA256 = map[spec.Arch]string{"amd64": sum}
				p.SetComponent(key, comp)
				if err := p.Validate(); err != nil {
					t.Fatalf("a pinned from: go component does not validate: %v", err)
				}
				return p
			}
			good := pinned(pins[key])
			nc, _ := good.Component(string(key))
			info, ents, err := New(good, c).component(context.Background(), nc)
			if err != nil || info.Checksum != "sha256:"+pins[key] || len(ents) != len(nc.Catalogue.Files) {
				t.Fatalf("with the right pin: %+v, %d entries, %v", info, len(ents), err)
			}
			wrong := strings.Repeat("ab", 32)
			bad := pinned(wrong)
			nc, _ = bad.Component(string(key))
			_, _, err = New(bad, c).component(context.Background(), nc)
			if err == nil || failure.KindOf(err) != failure.Source {
				t.Fatalf("with a wrong pin: %v (kind %v), want a source failure", err, failure.KindOf(err))
			}
			for _, want := range []string{"components." + string(key) + ".sha256.amd64", nc.Name, "sha256:" + pins[key], "sha256:" + wrong} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the error %q does not name %s", err, want)
				}
			}
		})
	}
}

func TestPreloads(t *testing.T) {
	pause := layout(t, map[string]string{"pause": "pause"})
	s := specOf(t, "base: {image: \"oci:base\"}\n"+allFromGo+"images:\n  - {ref: \"registry.k8s.io/pause:3.10.1\", image: \"oci:"+pause+"\"}\n")
	c := newCache(t)
	infos, ents, err := New(s, c).Preloads(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Ref != "registry.k8s.io/pause:3.10.1" || !strings.HasPrefix(infos[0].Digest, "sha256:") {
		t.Errorf("records %+v", infos)
	}
	if len(ents) != 1 || ents[0].Path != worker.PreloadDir()+"/00.tar" || ents[0].Size == 0 {
		t.Errorf("entries %+v", ents)
	}
	// The archive is cached by digest and ref: a second resolve reads it.
	var logged []string
	if _, again, err := New(s, c, WithLog(func(m string) { logged = append(logged, m) })).Preloads(context.Background()); err != nil || len(logged) != 0 || again[0].Size != ents[0].Size {
		t.Errorf("second resolve: %v, logged %v", err, logged)
	}
}
