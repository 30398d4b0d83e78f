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
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/builder/spec"
	"github.com/nodebake/nodebake/layers/cache"
	"github.com/nodebake/nodebake/layers/components"
	"github.com/nodebake/nodebake/layers/mirror"
	"github.com/nodebake/nodebake/layers/oci"
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
	add("boot/vmlinuz-6.12.0-test", tar.TypeReg, 0o644, strings.Repeat("K", 4096))
	add("boot/initrd.img-6.12.0-test", tar.TypeReg, 0o644, strings.Repeat("I", 8192))
	add("usr/lib/systemd/boot/efi/systemd-bootx64.efi", tar.TypeReg, 0o644, "MZ-boot")
	add("usr/bin/su", tar.TypeReg, 0o4755, "suid")
	add("etc/", tar.TypeDir, 0o755, "")
	add("var/lib/dpkg/status", tar.TypeReg, 0o644, "Package: a\n\nPackage: b\n")
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
		l, err := components.Lookup(component)
		if err != nil {
			return "", err
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
	if strings.Join(names, ",") != "test.manifest.json,test.raw" {
		t.Errorf("output dir holds %v", names)
	}

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
}

func TestBuildFailureLeavesNothing(t *testing.T) {
	f := newFixture(t)
	bad := f.spec.Clone()
	kc := bad.ComponentField(spec.ComponentKubelet)
	kc.SHA256 = map[spec.Arch]string{"amd64": strings.Repeat("0", 64)}
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
