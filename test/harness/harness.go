// Package harness holds the helpers of nodebake's real-world tests: the
// repository's pinned worker spec served from a local release mirror, the
// persistent build cache, and building images through the real pipeline.
//
// These helpers are for slow tests: call RequireSlow first.
package harness

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nodebake/nodebake/builder/build"
	"github.com/nodebake/nodebake/layers/cache"
	"github.com/nodebake/nodebake/layers/components"
	"github.com/nodebake/nodebake/layers/gosource"
	"github.com/nodebake/nodebake/layers/mirror"
	"github.com/nodebake/nodebake/layers/resolve"
	"github.com/nodebake/nodebake/layers/spec"
)

// Environment variables the real-world tests read.
const (
	// EnvSlow set to 1 runs the slow tests.
	EnvSlow = "NODEBAKE_SLOW"
	// EnvRequireTools set to 1 fails, instead of skipping, tests whose
	// external tools are missing.
	EnvRequireTools = "NODEBAKE_REQUIRE_TOOLS"
	// EnvCache is the build cache directory (default <repo>/build/cache).
	EnvCache = "NODEBAKE_CACHE"
	// EnvBaseLayout is the base OS image layout the tests build from,
	// relative to the repository root or absolute (default
	// BaseLayoutPath): a base built with scripts/build-base.sh --out DIR
	// from a changed recipe, tried without replacing the shared one.
	EnvBaseLayout = "NODEBAKE_BASE_LAYOUT"
)

// Module is the Go module path of the repository.
const Module = "github.com/nodebake/nodebake"

// BaseLayoutPath is where scripts/build-base.sh writes the base OS image
// layout, relative to the repository root.
const BaseLayoutPath = "build/base/trixie-amd64"

// RequireSlow skips the test unless NODEBAKE_SLOW=1.
func RequireSlow(t testing.TB) {
	t.Helper()
	if os.Getenv(EnvSlow) != "1" {
		t.Skip("slow test: set NODEBAKE_SLOW=1 to run it")
	}
}

// RequireTool skips the test when the program name is not on PATH, or
// fails it when NODEBAKE_REQUIRE_TOOLS=1.
func RequireTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv(EnvRequireTools) == "1" {
			t.Fatalf("%s is required (%s=1) but missing: %v", name, EnvRequireTools, err)
		}
		t.Skipf("%s is not installed: %v", name, err)
	}
}

// RepoRoot returns the root of the nodebake repository: the nearest
// directory above the working directory whose go.mod declares the module.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("finding the repository: %v", err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && modulePath(b) == Module {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("finding the repository: no go.mod of %s above the working directory", Module)
		}
		dir = parent
	}
}

func modulePath(gomod []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}

// CacheDir returns the build cache directory: $NODEBAKE_CACHE, else
// <repo>/build/cache. It persists across runs: it holds the components
// built from source, so only the first run pays for building them.
func CacheDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv(EnvCache); d != "" {
		return d
	}
	return filepath.Join(RepoRoot(t), "build", "cache")
}

// Cache opens the build cache at CacheDir.
func Cache(t testing.TB) *cache.Cache {
	t.Helper()
	c, err := cache.Open(CacheDir(t))
	if err != nil {
		t.Fatalf("opening the build cache: %v", err)
	}
	return c
}

// BaseLayout returns the base OS image layout that scripts/build-base.sh
// writes ($NODEBAKE_BASE_LAYOUT when set), and fails the test when it is
// missing.
func BaseLayout(t testing.TB) string {
	t.Helper()
	rel := BaseLayoutPath
	if v := os.Getenv(EnvBaseLayout); v != "" {
		rel = v
	}
	p := rel
	if !filepath.IsAbs(p) {
		p = filepath.Join(RepoRoot(t), filepath.FromSlash(rel))
	}
	if _, err := os.Stat(filepath.Join(p, "index.json")); err != nil {
		t.Fatalf("the base OS image layout %s is missing (%v): run scripts/build-base.sh (as root) first", rel, err)
	}
	return p
}

// GoBuild builds the Go package pkg (relative to the repository root, like
// "./builder/cmd/nodebake") as a static, stripped, reproducible program
// into dir and returns its path.
func GoBuild(t testing.TB, pkg, dir string) string {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.CommandContext(context.Background(), "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg)
	cmd.Dir = RepoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// Plugin builds the Packer plugin as `make plugin` does, into dir, and
// returns its path: first the nodebake-firstboot programs it embeds
// (scripts/build-firstboot.sh into plugin/embedded, for amd64 and arm64
// images), then the plugin module.
func Plugin(t testing.TB, dir string) string {
	t.Helper()
	root := RepoRoot(t)
	for _, arch := range []string{"amd64", "arm64"} {
		out := filepath.Join(root, "plugin", "embedded", "nodebake-firstboot-linux-"+arch)
		cmd := exec.Command(filepath.Join(root, "scripts", "build-firstboot.sh"), out, arch)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building the plugin's nodebake-firstboot for %s: %v\n%s", arch, err, b)
		}
	}
	out := filepath.Join(dir, "packer-plugin-nodebake")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, ".")
	cmd.Dir = filepath.Join(root, "plugin")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the Packer plugin: %v\n%s", err, b)
	}
	return out
}

// FirstbootPackage is the first-boot program's package.
const FirstbootPackage = "./layers/firstboot/cmd/nodebake-firstboot"

// Firstboot builds the nodebake-firstboot program with
// scripts/build-firstboot.sh into the test's temporary directory, removed
// when the test ends, and returns its path. The Go build cache makes every
// build after the first one quick.
func Firstboot(t testing.TB) string {
	t.Helper()
	root := RepoRoot(t)
	out := filepath.Join(t.TempDir(), "nodebake-firstboot")
	// The one recipe for it: the plugin embeds and `make bin` writes the
	// same bytes.
	cmd := exec.Command(filepath.Join(root, "scripts", "build-firstboot.sh"), out)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", FirstbootPackage, err, b)
	}
	return out
}

// LogWriter returns a writer that logs each line written to it through
// t.Log, prefixed.
func LogWriter(t testing.TB, prefix string) io.Writer {
	return &logWriter{t: t, prefix: prefix}
}

type logWriter struct {
	mu     sync.Mutex
	t      testing.TB
	prefix string
	buf    []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.t.Log(w.prefix + strings.TrimRight(string(w.buf[:i]), "\r"))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

// MirrorDir returns where Mirror writes the release mirror:
// <repo>/build/mirror. It is kept between runs.
func MirrorDir(t testing.TB) string {
	t.Helper()
	return filepath.Join(RepoRoot(t), "build", "mirror")
}

// Mirror builds the components of s from source (cached) into a release
// mirror laid out like the upstream release sites under MirrorDir, serves
// it on 127.0.0.1 for the rest of the test, and returns its URL and
// artifacts.
func Mirror(t testing.TB, s *spec.Spec) (string, []mirror.Artifact) {
	t.Helper()
	root := MirrorDir(t)
	start := time.Now()
	layers := resolve.New(s, Cache(t), resolve.WithGo(gosource.Builder{Log: LogWriter(t, "")}))
	// Test binaries of several packages run at once; mirror.Write writes
	// each artifact through the same temporary name, so one writer at a
	// time. Artifacts are renamed into place: serving needs no lock.
	unlock := lockFile(t, root+".lock")
	arts, err := mirror.Write(context.Background(), s, root, layers.BuildFromSource)
	unlock()
	if err != nil {
		t.Fatalf("writing the release mirror: %v", err)
	}
	t.Logf("release mirror ready in %s: %d artifacts under %s", time.Since(start).Round(time.Second), len(arts), root)
	srv := httptest.NewServer(http.FileServer(http.Dir(root)))
	t.Cleanup(srv.Close)
	return srv.URL, arts
}

// WorkerSpec loads images/worker.yaml, pins its components to release
// artifacts served by a local mirror (the production download path, each
// checked against its checksum), adds files, and validates the result.
// Local paths (OCI layouts, tarballs, file sources) are made absolute, so
// that the spec can be dumped and built from anywhere.
func WorkerSpec(t testing.TB, extraFiles ...spec.File) *spec.Spec {
	t.Helper()
	return WorkerSpecWith(t, nil, extraFiles...)
}

// WorkerSpecWith is WorkerSpec with edit applied to the spec of
// images/worker.yaml (defaulted) before its components are built and
// pinned: another Kubernetes version (SetKubernetesVersion) or an
// optional component, say; edit may be nil.
func WorkerSpecWith(t testing.TB, edit func(*spec.Spec), extraFiles ...spec.File) *spec.Spec {
	t.Helper()
	root := RepoRoot(t)
	base := BaseLayout(t)
	s, err := spec.LoadAndValidate(filepath.Join(root, "images", "worker.yaml"))
	if err != nil {
		t.Fatalf("loading images/worker.yaml: %v", err)
	}
	if edit != nil {
		edit(s)
		s.Default()
		if err := s.Validate(); err != nil {
			t.Fatalf("validating the edited images/worker.yaml: %v", err)
		}
	}
	if os.Getenv(EnvBaseLayout) != "" {
		s.Base.Image, s.Base.Digest = "oci:"+base, ""
	}
	url, arts := Mirror(t, s)
	p, err := mirror.Pin(s, url, arts)
	if err != nil {
		t.Fatalf("pinning the components to the mirror: %v", err)
	}
	p.Base.Image = absImage(s, p.Base.Image)
	p.Images = slices.Clone(p.Images)
	for i := range p.Images {
		p.Images[i].Image = absImage(s, p.Images[i].Image)
	}
	p.Files = slices.Clone(p.Files)
	for i := range p.Files {
		if p.Files[i].Source != "" {
			p.Files[i].Source = s.ResolvePath(p.Files[i].Source)
		}
	}
	p.Files = append(p.Files, extraFiles...)
	// TCG guests on a host busy with other guests can miss the kernel's
	// early check that the IO-APIC timer ticks, and panic ("IO-APIC +
	// timer doesn't work"). The check is about broken hardware, not about
	// the image; the images under test skip it, as cloud VM images do.
	p.Output.KernelArgs = append(slices.Clone(p.Output.KernelArgs), "no_timer_check")
	p.Default()
	if err := p.Validate(); err != nil {
		t.Fatalf("validating the pinned worker spec: %v", err)
	}
	return p
}

// SetKubernetesVersion sets the spec's Kubernetes version and the version
// of every component the catalogue ties to it (kubelet, kube-proxy,
// kubectl).
func SetKubernetesVersion(s *spec.Spec, version string) {
	s.Kubernetes.Version = version
	for _, nc := range s.NamedComponents() {
		if nc.Catalogue.Version == components.VersionKubernetes {
			c := nc.Component
			c.Version = version
			s.SetComponent(nc.Key, c)
		}
	}
}

// BuildImage builds the image s describes into outDir with the real
// pipeline and the persistent cache, logging progress.
func BuildImage(t testing.TB, s *spec.Spec, outDir string) *build.Result {
	t.Helper()
	fb := Firstboot(t)
	start := time.Now()
	res, err := build.Build(context.Background(), s, build.Options{
		OutputDir:       outDir,
		Cache:           Cache(t),
		FirstbootBinary: fb,
		Go:              gosource.Builder{Log: LogWriter(t, "")},
		Progress:        progressLogger(t, start),
	})
	if err != nil {
		t.Fatalf("building the image: %v", err)
	}
	m := res.Manifest
	t.Logf("built %s in %s: %d MiB disk, %d MiB root filesystem, sha256 %s",
		res.ImagePath, time.Since(start).Round(100*time.Millisecond), m.Image.Size>>20, m.Image.RootFilesystemSize>>20, m.Image.SHA256)
	return res
}

// progressLogger logs build events, downloads only when they finish.
func progressLogger(t testing.TB, start time.Time) func(build.Event) {
	var mu sync.Mutex
	return func(ev build.Event) {
		mu.Lock()
		defer mu.Unlock()
		el := time.Since(start).Round(100 * time.Millisecond)
		switch {
		case ev.Artifact != "":
			if ev.Total > 0 && ev.Done == ev.Total {
				t.Logf("%8s [%s] downloaded %s (%d MiB)", el, ev.Stage, ev.Artifact, ev.Total>>20)
			}
		case ev.Message != "":
			t.Logf("%8s [%s] %s", el, ev.Stage, ev.Message)
		}
	}
}

// lockFile takes an exclusive flock on path (created when missing),
// waiting for other processes, and returns the function that releases it.
func lockFile(t testing.TB, path string) func() {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatalf("locking %s: %v", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatalf("locking %s: %v", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("locking %s: %v", path, err)
	}
	return func() { f.Close() }
}

// absImage makes the path of an oci: or tarball: image source absolute,
// resolved against the spec's directory.
func absImage(s *spec.Spec, src string) string {
	is, err := spec.ParseImageSource(src)
	if err != nil || is.Kind == spec.ImageRegistry {
		return src
	}
	out := string(is.Kind) + ":" + s.ResolvePath(is.Path)
	if is.Kind == spec.ImageOCILayout && is.Digest != "" {
		out += "@" + is.Digest
	}
	return out
}
