package artifact

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/nodebake/nodebake/layers/failure"
	"github.com/nodebake/nodebake/layers/spec"
)

// startRegistry runs an in-process registry behind httptest, its handler
// wrapped by wrap (if not nil), and returns its host:port.
func startRegistry(t *testing.T, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

func testOptions() Options {
	return Options{Insecure: true, Keychain: authn.NewMultiKeychain()}
}

// writeImage writes a built image <dir>/<name>.raw (sparse, virtual bytes,
// with a few data regions), its manifest and an SBOM, and returns the raw's
// sha256.
func writeImage(t testing.TB, dir, name string, virtual int64) string {
	t.Helper()
	raw := filepath.Join(dir, name+".raw")
	f, err := os.Create(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(virtual); err != nil {
		t.Fatal(err)
	}
	for i, off := range []int64{0, virtual / 3, virtual / 2, virtual - 8192} {
		b := bytes.Repeat([]byte(fmt.Sprintf("region %d of %s ", i, name)), 4096)[:1<<16]
		if off+int64(len(b)) > virtual {
			b = b[:virtual-off]
		}
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	sum := hex.EncodeToString(h.Sum(nil))
	manifest := fmt.Sprintf(`{"name":%q,"arch":"amd64","specHash":"abc","image":{"file":%q,"sha256":%q,"size":%d},`+
		`"components":[{"name":"containerd","version":"v2.2.0"},{"name":"kubelet","version":"v1.35.4"}]}`+"\n", name, name+".raw", sum, virtual)
	writeFile(t, filepath.Join(dir, name+".manifest.json"), manifest)
	writeFile(t, filepath.Join(dir, name+".spdx.json"), `{"spdxVersion":"SPDX-2.3","name":"`+name+`"}`+"\n")
	return sum
}

func writeFile(t testing.TB, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func sameFile(t *testing.T, a, b string) {
	t.Helper()
	ha, hb := fileSum(t, a), fileSum(t, b)
	if ha != hb {
		t.Errorf("%s and %s differ", a, b)
	}
}

func fileSum(t testing.TB, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// pushImage pushes the image in dir in the given format.
func pushImage(t *testing.T, ctx context.Context, dir, ref, format string) (v1.Hash, []File) {
	t.Helper()
	files, cleanup, err := ImageFiles(ctx, dir, "worker", format)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	d, err := Push(ctx, ref, files, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	return d, files
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	host := startRegistry(t, nil)
	src := t.TempDir()
	rawSum := writeImage(t, src, "worker", 64<<20)
	writeFile(t, filepath.Join(src, "worker.SHA256SUMS"), rawSum+"  worker.raw\n")
	ref := host + "/nodebake/worker:v1"

	d, files := pushImage(t, ctx, src, ref, "raw.zst")
	if got := listDir(t, src); len(got) != 4 {
		// The temporary .raw.zst is still there until cleanup.
		t.Logf("source dir during push: %v", got)
	}

	out := filepath.Join(t.TempDir(), "out")
	res, err := Pull(ctx, ref, out, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != d {
		t.Fatalf("pulled digest %s, pushed %s", res.Digest, d)
	}
	wantNames := []string{"worker.raw.zst", "worker.manifest.json", "worker.spdx.json", "worker.SHA256SUMS"}
	if len(res.Files) != len(wantNames) {
		t.Fatalf("pulled %v, want %v", res.Files, wantNames)
	}
	for i, n := range wantNames {
		if res.Files[i] != filepath.Join(out, n) {
			t.Errorf("file %d: %s, want %s", i, res.Files[i], n)
		}
		sameFile(t, files[i].Path, res.Files[i])
		if fi, err := os.Stat(res.Files[i]); err != nil {
			t.Error(err)
		} else if fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v, want 0644", n, fi.Mode().Perm())
		}
	}
	if got := listDir(t, out); len(got) != len(wantNames) {
		t.Errorf("out dir has %v", got)
	}

	// The manifest as the registry serves it.
	var m struct {
		MediaType    string `json:"mediaType"`
		ArtifactType string `json:"artifactType"`
		Config       struct {
			MediaType string `json:"mediaType"`
			Digest    string `json:"digest"`
			Size      int64  `json:"size"`
		} `json:"config"`
		Layers []struct {
			MediaType   string            `json:"mediaType"`
			Size        int64             `json:"size"`
			Annotations map[string]string `json:"annotations"`
		} `json:"layers"`
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(res.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	if m.MediaType != "application/vnd.oci.image.manifest.v1+json" || m.ArtifactType != "application/vnd.nodebake.image.v1" {
		t.Errorf("mediaType %q artifactType %q", m.MediaType, m.ArtifactType)
	}
	if m.Config.MediaType != "application/vnd.oci.empty.v1+json" || m.Config.Size != 2 ||
		m.Config.Digest != "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a" {
		t.Errorf("config %+v", m.Config)
	}
	wantTypes := []string{"application/vnd.nodebake.disk.raw.v1+zstd", "application/vnd.nodebake.manifest.v1+json", "application/spdx+json", "text/plain"}
	for i, l := range m.Layers {
		if l.MediaType != wantTypes[i] || l.Annotations["org.opencontainers.image.title"] != wantNames[i] {
			t.Errorf("layer %d: %s %v, want %s titled %s", i, l.MediaType, l.Annotations, wantTypes[i], wantNames[i])
		}
	}
	for k, v := range map[string]string{
		"org.opencontainers.image.created": "1970-01-01T00:00:00Z",
		"org.opencontainers.image.version": "v1.35.4",
		"io.nodebake.kubernetes.version":   "v1.35.4",
		"io.nodebake.image.sha256":         rawSum,
	} {
		if m.Annotations[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, m.Annotations[k], v)
		}
	}

	// Pulling by digest, decompressed: the raw comes back identical and sparse.
	out2 := t.TempDir()
	opts := testOptions()
	opts.Decompress, opts.Digest = true, d.String()
	res2, err := Pull(ctx, host+"/nodebake/worker@"+d.String(), out2, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Digest != d {
		t.Errorf("digest %s, want %s", res2.Digest, d)
	}
	raw := filepath.Join(out2, "worker.raw")
	sameFile(t, filepath.Join(src, "worker.raw"), raw)
	if fi, err := os.Stat(raw); err != nil {
		t.Fatal(err)
	} else if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Blocks*512 > 8<<20 {
		t.Errorf("decompressed raw uses %d bytes on disk for %d virtual: not sparse", st.Blocks*512, fi.Size())
	}
	if got := listDir(t, out2); strings.Join(got, " ") != "worker.SHA256SUMS worker.manifest.json worker.raw worker.spdx.json" {
		t.Errorf("decompressed pull wrote %v", got)
	}
}

func TestFormats(t *testing.T) {
	ctx := context.Background()
	host := startRegistry(t, nil)
	src := t.TempDir()
	writeImage(t, src, "worker", 4<<20)
	writeFile(t, filepath.Join(src, "worker.qcow2"), "QFI\xfb not really a qcow2")
	for _, tc := range []struct {
		format, file, mt string
	}{
		{"raw", "worker.raw", "application/vnd.nodebake.disk.raw.v1"},
		{"qcow2", "worker.qcow2", "application/vnd.nodebake.disk.qcow2.v1"},
	} {
		t.Run(tc.format, func(t *testing.T) {
			ref := host + "/fmt:" + tc.format
			d, _ := pushImage(t, ctx, src, ref, tc.format)
			out := t.TempDir()
			res, err := Pull(ctx, ref, out, testOptions())
			if err != nil {
				t.Fatal(err)
			}
			if res.Digest != d {
				t.Errorf("digest %s, want %s", res.Digest, d)
			}
			sameFile(t, filepath.Join(src, tc.file), filepath.Join(out, tc.file))
			var m v1.Manifest
			if err := json.Unmarshal(res.Manifest, &m); err != nil {
				t.Fatal(err)
			}
			if string(m.Layers[0].MediaType) != tc.mt {
				t.Errorf("disk media type %s, want %s", m.Layers[0].MediaType, tc.mt)
			}
		})
	}
}

func TestPushTwiceSameDigest(t *testing.T) {
	ctx := context.Background()
	host := startRegistry(t, nil)
	src := t.TempDir()
	writeImage(t, src, "worker", 8<<20)
	d1, _ := pushImage(t, ctx, src, host+"/a:1", "raw.zst")
	d2, _ := pushImage(t, ctx, src, host+"/a:1", "raw.zst")
	d3, _ := pushImage(t, ctx, src, host+"/b:other", "raw.zst")
	if d1 != d2 || d1 != d3 {
		t.Errorf("digests %s, %s, %s: want one", d1, d2, d3)
	}
	// A pre-compressed .raw.zst beside the raw is used as is.
	files, cleanup, err := ImageFiles(ctx, src, "worker", "raw.zst")
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	pre, err := os.ReadFile(files[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(src, "worker.raw.zst"), string(pre))
	d4, _ := pushImage(t, ctx, src, host+"/a:2", "raw.zst")
	if d4 != d1 {
		t.Errorf("with worker.raw.zst beside the raw: digest %s, want %s", d4, d1)
	}
}

// corruptBlobs flips a byte in the body of every blob GET response for the
// digests in bad.
func corruptBlobs(bad func() []string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
				for _, d := range bad() {
					if strings.HasSuffix(r.URL.Path, d) {
						rec := httptest.NewRecorder()
						next.ServeHTTP(rec, r)
						b := rec.Body.Bytes()
						if len(b) > 0 {
							b[len(b)/2] ^= 0xff
						}
						for k, v := range rec.Header() {
							w.Header()[k] = v
						}
						w.WriteHeader(rec.Code)
						w.Write(b)
						return
					}
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}

func TestCorruptBlob(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	var bad []string
	host := startRegistry(t, corruptBlobs(func() []string {
		mu.Lock()
		defer mu.Unlock()
		return bad
	}))
	src := t.TempDir()
	writeImage(t, src, "worker", 8<<20)
	ref := host + "/corrupt:1"
	_, files := pushImage(t, ctx, src, ref, "raw.zst")
	for i, tc := range []struct {
		name   string
		layer  int
		outDir func(t *testing.T) string
		want   string
	}{
		{"disk", 0, func(t *testing.T) string { return t.TempDir() }, "blob worker.raw.zst: digest mismatch: got sha256:"},
		{"manifest, after the disk", 1, func(t *testing.T) string { return t.TempDir() }, "blob worker.manifest.json: digest mismatch"},
		{"sbom, new out dir", 2, func(t *testing.T) string { return filepath.Join(t.TempDir(), "new", "dir") }, "blob worker.spdx.json: digest mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := newFileLayer(files[tc.layer].Path, "")
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			bad = []string{l.digest.String()}
			mu.Unlock()
			out := tc.outDir(t)
			opts := testOptions()
			opts.Decompress = i == 0
			_, err = Pull(ctx, ref, out, opts)
			if err == nil {
				t.Fatal("pull of a corrupted blob succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), ", want "+l.digest.String()) {
				t.Errorf("error %q, want %q", err, tc.want)
			}
			t.Logf("error: %v", err)
			if k := failure.KindOf(err); k != failure.Source {
				t.Errorf("error kind %v, want a source failure", k)
			}
			if got := listDir(t, out); len(got) != 0 {
				t.Errorf("out dir has %v after a failed pull", got)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) && strings.Contains(out, "new") {
				t.Errorf("the out dir Pull created is still there")
			}
		})
	}
}

func TestPullRejects(t *testing.T) {
	ctx := context.Background()
	host := startRegistry(t, nil)
	src := t.TempDir()
	writeImage(t, src, "worker", 4<<20)
	d, _ := pushImage(t, ctx, src, host+"/ours:1", "raw.zst")

	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	cref, _ := name.ParseReference(host+"/container:1", name.Insecure)
	if err := remote.Write(cref, img); err != nil {
		t.Fatal(err)
	}
	oref, _ := name.ParseReference(host+"/ocicontainer:1", name.Insecure)
	if err := remote.Write(oref, mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON)); err != nil {
		t.Fatal(err)
	}
	idx, err := random.Index(512, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	iref, _ := name.ParseReference(host+"/index:1", name.Insecure)
	if err := remote.WriteIndex(iref, idx); err != nil {
		t.Fatal(err)
	}
	wrongPin := "sha256:" + strings.Repeat("0", 64)
	for _, tc := range []struct {
		name, ref, digest string
		input             bool // invalid input, else a source failure
		want              string
	}{
		{"wrong digest pin", host + "/ours:1", wrongPin, false, "digest mismatch: got " + d.String() + ", want " + wrongPin},
		{"docker image", host + "/container:1", "", true, "is not a nodebake image: it is a manifest of type application/vnd.docker.distribution.manifest.v2+json"},
		{"OCI container image", host + "/ocicontainer:1", "", true, "is not a nodebake image: it has no artifactType and config application/vnd.oci.image.config.v1+json (a container image?)"},
		{"image index", host + "/index:1", "", true, "is not a nodebake image: it is an image index"},
		{"bad reference", "Not A Reference!", "", true, `reference "Not A Reference!"`},
		{"bad digest flag", host + "/ours:1", "sha256:xyz", true, `digest "sha256:xyz"`},
		{"missing tag", host + "/ours:nope", "", false, "fetching the manifest of"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			opts := testOptions()
			opts.Digest = tc.digest
			_, err := Pull(ctx, tc.ref, out, opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			want := failure.Source
			if tc.input {
				want = failure.Invalid
			}
			if k := failure.KindOf(err); k != want {
				t.Errorf("error kind %v, want %v", k, want)
			}
			if got := listDir(t, out); len(got) != 0 {
				t.Errorf("out dir has %v", got)
			}
		})
	}
	// The right pin passes.
	opts := testOptions()
	opts.Digest = d.String()
	if _, err := Pull(ctx, host+"/ours:1", t.TempDir(), opts); err != nil {
		t.Errorf("pull with the right pin: %v", err)
	}
}

func TestPushRejects(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	writeImage(t, src, "worker", 1<<20)
	for _, tc := range []struct {
		name   string
		ref    string
		files  []File
		format string
		want   string
	}{
		{"bad reference", "bad ref:", []File{{Path: filepath.Join(src, "worker.raw")}}, "", `reference "bad ref:"`},
		{"missing file", "127.0.0.1:1/x:1", []File{{Path: filepath.Join(src, "nope.raw")}}, "", "nope.raw"},
		{"unknown kind", "127.0.0.1:1/x:1", []File{{Path: filepath.Join(src, "worker.raw"), Name: "worker.exe"}}, "", "worker.exe: no media type"},
		{"bad name", "127.0.0.1:1/x:1", []File{{Path: filepath.Join(src, "worker.raw"), Name: "../worker.raw"}}, "", "not a plain file name"},
		{"duplicate", "127.0.0.1:1/x:1", []File{{Path: filepath.Join(src, "worker.raw")}, {Path: filepath.Join(src, "worker.raw")}}, "", "two files named worker.raw"},
		{"no files", "127.0.0.1:1/x:1", nil, "", "no files"},
		{"missing format", "", nil, "qcow2", "worker.qcow2"},
		{"bad format", "", nil, "exe", `format "exe"`},
		{"netboot", "", nil, "netboot", `format "netboot"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.format != "" {
				_, _, err = ImageFiles(ctx, src, "worker", tc.format)
			} else {
				_, err = Push(ctx, tc.ref, tc.files, testOptions())
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || failure.KindOf(err) != failure.Invalid {
				t.Errorf("error %v (kind %v), want invalid input with %q", err, failure.KindOf(err), tc.want)
			}
		})
	}
}

// TestMemory pushes and pulls (decompressing) a 1 GiB sparse raw and logs
// the peak heap: the files stream from disk and are never held in memory.
func TestMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("1 GiB of data through zstd and sha256")
	}
	ctx := context.Background()
	host := startRegistry(t, nil)
	src := t.TempDir()
	const size = 1 << 30
	writeImage(t, src, "worker", size)
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)

	var peak uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	start := time.Now()
	d, _ := pushImage(t, ctx, src, host+"/big:1", "raw.zst")
	pushed := time.Since(start)
	opts := testOptions()
	opts.Decompress = true
	out := t.TempDir()
	res, err := Pull(ctx, host+"/big:1", out, opts)
	close(stop)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != d {
		t.Fatalf("digest %s, want %s", res.Digest, d)
	}
	fi, err := os.Stat(filepath.Join(out, "worker.raw"))
	if err != nil || fi.Size() != size {
		t.Fatalf("pulled raw: %v %v", fi, err)
	}
	t.Logf("1 GiB sparse raw: push (compress+upload) %v, pull (download+decompress+verify) %v; heap in use before %.1f MiB, peak %.1f MiB",
		pushed.Round(time.Millisecond), (time.Since(start) - pushed).Round(time.Millisecond),
		float64(base.HeapInuse)/(1<<20), float64(peak)/(1<<20))
}

// TestImageFilesNamesFormatsAsTheBuild checks that every disk format is
// looked for under the name the build gives it (the gce format's output is
// NAME.tar.gz, not NAME.gce.tar.gz).
func TestImageFilesNamesFormatsAsTheBuild(t *testing.T) {
	src := t.TempDir()
	writeImage(t, src, "worker", 1<<20)
	for _, i := range spec.FormatTable() {
		if i.Directory {
			continue
		}
		p := filepath.Join(src, "worker"+i.Extension)
		if _, err := os.Stat(p); err != nil {
			if err := os.WriteFile(p, []byte("disk"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		files, cleanup, err := ImageFiles(context.Background(), src, "worker", string(i.Format))
		if err != nil {
			t.Errorf("%s: %v", i.Format, err)
			continue
		}
		cleanup()
		if files[0].Name != "worker"+i.Extension || !IsDisk(files[0].MediaType) {
			t.Errorf("%s: disk file %+v", i.Format, files[0])
		}
	}
}
