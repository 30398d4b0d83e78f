package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/nodebake/nodebake/layers/cache"
	"github.com/nodebake/nodebake/layers/failure"
)

// startRegistry runs an in-process registry and returns its host:port.
func startRegistry(t *testing.T) (*httptest.Server, string) {
	t.Helper()
	s := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(s.Close)
	return s, strings.TrimPrefix(s.URL, "http://")
}

func push(t *testing.T, ref string, img v1.Image) v1.Hash {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	return digest(t, img)
}

func pushIndex(t *testing.T, ref string, idx v1.ImageIndex) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
}

func digest(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func randomImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func validateImage(t *testing.T, img v1.Image) {
	t.Helper()
	if err := validate.Image(img); err != nil {
		t.Fatalf("validate.Image: %v", err)
	}
}

// entry is one member of a test tar.
type entry struct {
	name string
	body string // a directory when name ends in "/"
}

func tarOf(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}
		if strings.HasSuffix(e.name, "/") {
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, e.body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func layerOf(t *testing.T, entries ...entry) v1.Layer {
	t.Helper()
	b := tarOf(t, entries...)
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// names lists the entries of a tar stream.
func names(t *testing.T, rc io.ReadCloser) []string {
	t.Helper()
	defer rc.Close()
	var out []string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, h.Name)
	}
	sort.Strings(out)
	return out
}

// noNetwork fails the test on any request.
type noNetwork struct{ t *testing.T }

func (n noNetwork) RoundTrip(r *http.Request) (*http.Response, error) {
	n.t.Errorf("unexpected request %s", r.URL)
	return nil, errors.New("network use forbidden")
}

func TestOpenRegistry(t *testing.T) {
	_, host := startRegistry(t)
	img := randomImage(t)
	want := push(t, host+"/test/img:v1", img)
	ctx := context.Background()
	for _, ref := range []string{host + "/test/img:v1", host + "/test/img@" + want.String()} {
		t.Run(ref, func(t *testing.T) {
			got, err := Open(ctx, ref, WithInsecure(true))
			if err != nil {
				t.Fatal(err)
			}
			if digest(t, got) != want {
				t.Errorf("digest = %s, want %s", digest(t, got), want)
			}
			validateImage(t, got)
		})
	}
	if _, err := Open(ctx, host+"/test/img:v1", WithDigest(want.String())); err != nil {
		t.Errorf("Open with the right pin: %v", err)
	}
}

func TestOpenRegistryIndex(t *testing.T) {
	_, host := startRegistry(t)
	amd, arm := randomImage(t), randomImage(t)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
	)
	pushIndex(t, host+"/multi:v1", idx)
	idxDigest, _ := idx.Digest()
	ctx := context.Background()
	for arch, want := range map[string]v1.Image{"amd64": amd, "arm64": arm} {
		got, err := Open(ctx, host+"/multi:v1", WithPlatform(arch), WithDigest(idxDigest.String()))
		if err != nil {
			t.Fatalf("%s: %v", arch, err)
		}
		if digest(t, got) != digest(t, want) {
			t.Errorf("%s: got image %s, want %s", arch, digest(t, got), digest(t, want))
		}
	}
	if _, err := Open(ctx, host+"/multi:v1", WithPlatform("s390x")); err == nil {
		t.Error("Open for a missing platform succeeded")
	}
}

func TestOpenDigestPinMismatch(t *testing.T) {
	_, host := startRegistry(t)
	got := push(t, host+"/test/img:v1", randomImage(t))
	other := digest(t, randomImage(t))
	_, err := Open(context.Background(), host+"/test/img:v1", WithDigest(other.String()))
	want := "manifest digest mismatch: expected " + other.String() + ", got " + got.String()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error = %v, want it to contain %q", err, want)
	}
}

func TestOpenBadRefs(t *testing.T) {
	tests := []struct {
		ref     string
		opts    []Option
		wantErr string
	}{
		{ref: "oci:", wantErr: "empty layout directory"},
		{ref: "oci:dir@sha256:zz", wantErr: "manifest digest"},
		{ref: "tarball:", wantErr: "empty tarball file name"},
		{ref: "oci:" + filepath.Join(os.TempDir(), "does-not-exist-nodebake"), wantErr: "reading OCI layout"},
		{ref: "Not A Ref", wantErr: `parsing image reference "Not A Ref"`},
		{ref: "oci:x", opts: []Option{WithDigest("md5:00")}, wantErr: `digest pin "md5:00"`},
		{ref: "oci:x", opts: []Option{WithPlatform("")}, wantErr: `invalid architecture ""`},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			_, err := Open(context.Background(), tt.ref, tt.opts...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func openCache(t *testing.T) *cache.Cache {
	t.Helper()
	c, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPullServedFromCache(t *testing.T) {
	srv, host := startRegistry(t)
	img := randomImage(t)
	want := push(t, host+"/test/img:v1", img)
	c := openCache(t)
	ctx := context.Background()
	byDigest := host + "/test/img@" + want.String()

	first, err := Pull(ctx, byDigest, c)
	if err != nil {
		t.Fatal(err)
	}
	validateImage(t, first)
	srv.Close()

	for _, tc := range []struct {
		ref  string
		opts []Option
	}{
		{byDigest, nil},
		{host + "/test/img:v1", []Option{WithDigest(want.String())}},
		{byDigest, []Option{WithOffline(true)}},
	} {
		got, err := Pull(ctx, tc.ref, c, append(tc.opts, WithTransport(noNetwork{t}))...)
		if err != nil {
			t.Fatalf("Pull %s from cache: %v", tc.ref, err)
		}
		if digest(t, got) != want {
			t.Errorf("digest = %s, want %s", digest(t, got), want)
		}
		validateImage(t, got)
	}

	// Unpinned tags always need the registry.
	_, err = Pull(ctx, host+"/test/img:v1", c, WithOffline(true))
	if !errors.Is(err, cache.ErrNotCached) || failure.KindOf(err) != failure.Source {
		t.Errorf("offline unpinned Pull error = %v (kind %v), want cache.ErrNotCached, a source failure", err, failure.KindOf(err))
	}
}

func TestPullIndexFromCache(t *testing.T) {
	srv, host := startRegistry(t)
	amd, arm := randomImage(t), randomImage(t)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
	)
	pushIndex(t, host+"/multi:v1", idx)
	idxDigest, _ := idx.Digest()
	ref := host + "/multi@" + idxDigest.String()
	c := openCache(t)
	if _, err := Pull(context.Background(), ref, c, WithPlatform("arm64")); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	got, err := Pull(context.Background(), ref, c, WithPlatform("arm64"), WithTransport(noNetwork{t}))
	if err != nil {
		t.Fatal(err)
	}
	if digest(t, got) != digest(t, arm) {
		t.Errorf("got %s, want the arm64 image %s", digest(t, got), digest(t, arm))
	}
	// The amd64 image was never pulled.
	if _, err := Pull(context.Background(), ref, c, WithOffline(true)); !errors.Is(err, cache.ErrNotCached) {
		t.Errorf("offline Pull of an uncached platform: %v, want cache.ErrNotCached", err)
	}
}

func TestPullRepairsCorruptLayer(t *testing.T) {
	_, host := startRegistry(t)
	img := randomImage(t)
	want := push(t, host+"/test/img:v1", img)
	c := openCache(t)
	ref := host + "/test/img@" + want.String()
	if _, err := Pull(context.Background(), ref, c); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	p := c.Path(cache.Digest{Algorithm: ld.Algorithm, Hex: ld.Hex})
	if err := os.WriteFile(p, []byte("bit rot"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Pull(context.Background(), ref, c)
	if err != nil {
		t.Fatal(err)
	}
	validateImage(t, got)
}

func TestLayoutRoundTrip(t *testing.T) {
	img := randomImage(t)
	want := digest(t, img)
	dir := filepath.Join(t.TempDir(), "layout")
	ann := map[string]string{"org.opencontainers.image.ref.name": "v1"}
	if err := WriteLayout(dir, img, ann); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"oci:" + dir, "oci:" + dir + "@" + want.String()} {
		got, err := Open(context.Background(), ref)
		if err != nil {
			t.Fatal(err)
		}
		if digest(t, got) != want {
			t.Errorf("%s: digest %s, want %s", ref, digest(t, got), want)
		}
		validateImage(t, got)
	}
	if _, err := Open(context.Background(), "oci:"+dir+"@"+digest(t, randomImage(t)).String()); err == nil ||
		!strings.Contains(err.Error(), "has no image manifest") {
		t.Errorf("Open of a missing manifest: %v", err)
	}

	// Deterministic: a second layout has the same files and bytes.
	dir2 := filepath.Join(t.TempDir(), "layout")
	if err := WriteLayout(dir2, img, ann); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(readTree(t, dir), readTree(t, dir2)); diff != "" {
		t.Errorf("layouts differ (-first +second):\n%s", diff)
	}

	// Replacing an existing layout works; replacing anything else does not.
	if err := WriteLayout(dir, randomImage(t), nil); err != nil {
		t.Fatalf("replacing a layout: %v", err)
	}
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "precious"), []byte("x"), 0o644)
	if err := WriteLayout(other, img, nil); err == nil || !strings.Contains(err.Error(), "not an OCI layout") {
		t.Errorf("WriteLayout over a non-layout dir: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(dir)); len(entries) != 1 {
		t.Errorf("temporary files left beside the layout: %v", entries)
	}
}

func TestLayoutSeveralImages(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	a, b := randomImage(t), randomImage(t)
	if err := WriteLayout(dir, a, nil); err != nil {
		t.Fatal(err)
	}
	lp, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(b); err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), "oci:"+dir)
	if err == nil || !strings.Contains(err.Error(), "has 2 images for linux/amd64, select one with oci:") {
		t.Fatalf("error = %v", err)
	}
	got, err := Open(context.Background(), "oci:"+dir+"@"+digest(t, b).String())
	if err != nil || digest(t, got) != digest(t, b) {
		t.Fatalf("Open by digest = %v", err)
	}
}

// readTree maps each file's path under root to its mode and content.
func readTree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		fi, _ := d.Info()
		var b []byte
		if !d.IsDir() {
			b, _ = os.ReadFile(p)
		}
		out[rel] = fi.Mode().String() + " " + string(b)
		return nil
	})
	return out
}

func TestTarballRoundTrip(t *testing.T) {
	img := randomImage(t)
	path := filepath.Join(t.TempDir(), "pause.tar")
	if err := WriteTarball(path, "registry.k8s.io/pause:3.10.1", img); err != nil {
		t.Fatal(err)
	}
	got, err := Open(context.Background(), "tarball:"+path)
	if err != nil {
		t.Fatal(err)
	}
	validateImage(t, got)
	for _, f := range []func(v1.Image) (v1.Hash, error){
		func(i v1.Image) (v1.Hash, error) { return i.ConfigName() },
		func(i v1.Image) (v1.Hash, error) { l, _ := i.Layers(); return l[1].Digest() },
	} {
		a, _ := f(img)
		b, _ := f(got)
		if a != b {
			t.Errorf("round trip changed %s to %s", a, b)
		}
	}
	tag := name.MustParseReference("registry.k8s.io/pause:3.10.1").(name.Tag)
	if _, err := tarball.ImageFromPath(path, &tag); err != nil {
		t.Errorf("tarball lacks the tag: %v", err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode = %v", fi.Mode())
	}
}

func TestFlattenAppliesWhiteouts(t *testing.T) {
	lower := layerOf(t, entry{name: "etc/"}, entry{"etc/a", "a"}, entry{"etc/b", "b"}, entry{"etc/d", "old"})
	upper := layerOf(t, entry{"etc/.wh.b", ""}, entry{"etc/c", "c"}, entry{"etc/d", "new"})
	img, err := mutate.AppendLayers(empty.Image, lower, upper)
	if err != nil {
		t.Fatal(err)
	}
	rc := Flatten(img)
	defer rc.Close()
	got := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		got[h.Name] = string(b)
	}
	want := map[string]string{"etc": "", "etc/a": "a", "etc/c": "c", "etc/d": "new"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("flattened filesystem (-want +got):\n%s", diff)
	}
}

func TestImageFromRootfsTar(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rootfs.tar")
	if err := os.WriteFile(path, tarOf(t, entry{name: "usr/"}, entry{"usr/hello", "hi"}), 0o644); err != nil {
		t.Fatal(err)
	}
	created := time.Unix(1700000000, 0)
	img, err := ImageFromRootfsTar(path, created, "arm64")
	if err != nil {
		t.Fatal(err)
	}
	validateImage(t, img)
	again, err := ImageFromRootfsTar(path, created, "arm64")
	if err != nil {
		t.Fatal(err)
	}
	if digest(t, img) != digest(t, again) {
		t.Errorf("digests differ: %s vs %s", digest(t, img), digest(t, again))
	}
	later, _ := ImageFromRootfsTar(path, created.Add(time.Second), "arm64")
	if digest(t, later) == digest(t, img) {
		t.Error("creation time does not affect the digest")
	}
	cfg, _ := img.ConfigFile()
	if cfg.OS != "linux" || cfg.Architecture != "arm64" || !cfg.Created.Time.Equal(created) {
		t.Errorf("config = %s/%s created %v", cfg.OS, cfg.Architecture, cfg.Created)
	}
	if mt, _ := img.MediaType(); mt != types.OCIManifestSchema1 {
		t.Errorf("media type = %s", mt)
	}
	if got := names(t, Flatten(img)); !cmp.Equal(got, []string{"usr", "usr/hello"}) {
		t.Errorf("filesystem = %v", got)
	}

	bad := filepath.Join(t.TempDir(), "notatar")
	os.WriteFile(bad, []byte("hello, not a tar"), 0o644)
	if _, err := ImageFromRootfsTar(bad, created, "amd64"); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("bad tar error = %v, want it to name the file", err)
	}
	if _, err := ImageFromRootfsTar(path, created, ""); err == nil {
		t.Error("empty arch accepted")
	}
}
