// Package test holds the plugin's acceptance test: the plugin is packaged
// by scripts/release-plugin.sh and installed from its release archive the
// way `packer init` installs it, and a real Packer validates and builds the
// worker image through it, against the local release mirror; the result is
// compared with `nodebake build`.
package test

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	pluginversion "github.com/nodebake/nodebake/plugin/version"
	"github.com/nodebake/nodebake/test/harness"
)

// PackerVersion is the Packer the acceptance test runs; it is built from
// the Go module proxy once and kept under build/tools.
const PackerVersion = "v1.15.0"

// env is what the subtests share.
type env struct {
	root      string
	packer    string
	nodebake  string
	firstboot string
	specFile  string // the pinned worker spec, as YAML
	mirror    string
	k8s       string
	tmp       string
	environ   []string
}

func TestPackerBuild(t *testing.T) {
	harness.RequireSlow(t)
	e := setup(t)

	t.Run("validate names the broken fields", e.testValidate)
	t.Run("provisioners needing a machine are refused", e.testProvisioner)
	t.Run("same image as nodebake build", e.testBuild)
	t.Run("compress and shell-local post-processors", e.testPostProcessors)
	t.Run("cancelled build leaves no image", e.testCancel)
}

func setup(t *testing.T) *env {
	t.Helper()
	e := &env{root: harness.RepoRoot(t), tmp: t.TempDir()}
	harness.BaseLayout(t)
	e.packer = buildPacker(t, e.root)

	bin := filepath.Join(e.tmp, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	e.nodebake = harness.GoBuild(t, "./builder/cmd/nodebake", bin)
	e.firstboot = harness.Firstboot(t)

	// Packer's plugins, configuration and temporary files (and those of
	// the builds it runs, killed or not) stay inside the test.
	tmp := filepath.Join(e.tmp, "tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	pluginPath := filepath.Join(e.tmp, "packer-plugins")
	e.environ = append(os.Environ(),
		"TMPDIR="+tmp,
		"PACKER_PLUGIN_PATH="+pluginPath,
		"PACKER_CONFIG_DIR="+filepath.Join(e.tmp, "packer-config"),
		"PACKER_CACHE_DIR="+filepath.Join(e.tmp, "packer-cache"),
		"CHECKPOINT_DISABLE=1",
		"NODEBAKE_CACHE="+harness.CacheDir(t),
	)
	installed := installRelease(t, e.root, filepath.Join(e.tmp, "release"), pluginPath)
	out := run(t, e.root, e.environ, e.packer, "plugins", "installed")
	if !strings.Contains(out, installed) {
		t.Fatalf("packer plugins installed does not list %s:\n%s", installed, out)
	}
	t.Logf("packer plugins installed: %s", strings.TrimSpace(out))

	s := harness.WorkerSpec(t)
	b, err := s.Dump()
	if err != nil {
		t.Fatal(err)
	}
	e.specFile = filepath.Join(e.tmp, "worker.yaml")
	if err := os.WriteFile(e.specFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	e.mirror, e.k8s = s.Sources.Mirror, s.Kubernetes.Version
	return e
}

// buildPacker returns Packer PackerVersion, built once into
// build/tools/packer-VERSION by plugin/scripts/build-packer.sh.
func buildPacker(t *testing.T, root string) string {
	t.Helper()
	start := time.Now()
	out := run(t, root, nil, filepath.Join(root, "plugin", "scripts", "build-packer.sh"), PackerVersion)
	p := strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])
	t.Logf("packer %s: %s (%s)", PackerVersion, p, time.Since(start).Round(time.Second))
	return p
}

// run runs a command to completion and returns its combined output,
// failing the test when it fails.
func run(t *testing.T, dir string, environ []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = environ
	if environ == nil {
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// result is a finished command.
type result struct {
	out  string
	err  error
	wall time.Duration
	// cpu is the user and system time of the process and of the children
	// it waited for (Packer's plugins): unlike wall time, it hardly moves
	// when other work shares the machine.
	cpu time.Duration
}

// command runs a program in the repository root with the test's
// environment.
func (e *env) command(name string, args ...string) result {
	cmd := exec.Command(name, args...)
	cmd.Dir = e.root
	cmd.Env = e.environ
	start := time.Now()
	out, err := cmd.CombinedOutput()
	r := result{out: string(out), err: err, wall: time.Since(start)}
	if cmd.ProcessState != nil {
		r.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	return r
}

// packerRun runs packer with args.
func (e *env) packerRun(args ...string) result { return e.command(e.packer, args...) }

// vars are a build's variables. The plugin bakes its own embedded
// first-boot program: the images must still be byte for byte those of
// `nodebake build` with bin/nodebake-firstboot.
func (e *env) vars(outDir string) []string {
	return []string{"-var", "spec_file=" + e.specFile, "-var", "output_directory=" + outDir}
}

func (e *env) testValidate(t *testing.T) {
	r := e.packerRun(append([]string{"validate", "-var", "spec_file=" + e.specFile},
		"plugin/test/testdata/broken.pkr.hcl")...)
	out, err := r.out, r.err
	if err == nil {
		t.Fatalf("packer validate accepted a broken template:\n%s", out)
	}
	for _, w := range []string{
		`kubernetes.service_cidr: invalid CIDR "10.32.0.0/99"`,
		"kubelet.config_json.maxPods: ",
		"output.esp_size: invalid size",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("packer validate output lacks %q:\n%s", w, out)
		}
	}

	// The shipped template, with a bad variable.
	r = e.packerRun("validate", "-var", "kubernetes_version=1.35", "images/worker.pkr.hcl")
	out, err = r.out, r.err
	if err == nil || !strings.Contains(out, "kubernetes.version: ") {
		t.Errorf("packer validate of images/worker.pkr.hcl with kubernetes_version=1.35: %v, want an error naming kubernetes.version:\n%s", err, out)
	}
	// With only the plugin installed: nothing of nodebake on PATH (a
	// PATH without the test's programs and without Go's), the plugin
	// alone in Packer's plugin directory, its first-boot program
	// embedded.
	sysPath := "/usr/bin:/bin"
	for _, d := range filepath.SplitList(sysPath) {
		if _, err := os.Stat(filepath.Join(d, "nodebake-firstboot")); err == nil {
			t.Fatalf("nodebake-firstboot is installed in %s: the test cannot show the plugin needs nothing else", d)
		}
	}
	env := []string{"PATH=" + sysPath}
	for _, kv := range e.environ {
		if !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	cmd := exec.Command(e.packer, "validate", "images/worker.pkr.hcl")
	cmd.Dir, cmd.Env = e.root, env
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("packer validate images/worker.pkr.hcl with only the plugin installed: %v\n%s", err, b)
	}
	// firstboot_binary still names another program, checked.
	r = e.packerRun("validate", "-var", "firstboot_binary="+filepath.Join(e.tmp, "no-such-firstboot"), "images/worker.pkr.hcl")
	if r.err == nil || !strings.Contains(r.out, "firstboot_binary: stat ") {
		t.Errorf("packer validate with a missing firstboot_binary: %v, want an error naming firstboot_binary\n%s", r.err, r.out)
	}
}

// installRelease packages the plugin with scripts/release-plugin.sh into
// dir, checks the release's names and sums the way Packer does when it
// downloads one, and installs the linux_amd64 archive into pluginPath the
// way `packer init` does: the binary under
// github.com/nodebake/nodebake/, with its sha256 in a _SHA256SUM file. It
// returns the installed binary's path.
func installRelease(t *testing.T, root, dir, pluginPath string) string {
	t.Helper()
	v := "v" + pluginversion.Version
	start := time.Now()
	out := run(t, root, nil, filepath.Join(root, "scripts", "release-plugin.sh"), v, dir)
	t.Logf("scripts/release-plugin.sh %s: %s", v, time.Since(start).Round(time.Second))
	base := "packer-plugin-nodebake_" + v + "_x5.0_linux_amd64"
	sumsName := "packer-plugin-nodebake_" + v + "_SHA256SUMS"
	for _, f := range []string{base + ".zip", "packer-plugin-nodebake_" + v + "_x5.0_linux_arm64.zip", sumsName} {
		if !strings.Contains(out, f) {
			t.Errorf("the release lacks %s:\n%s", f, out)
		}
	}
	sums, err := os.ReadFile(filepath.Join(dir, sumsName))
	if err != nil {
		t.Fatal(err)
	}
	zipPath := filepath.Join(dir, base+".zip")
	if want := fileSHA256(t, zipPath) + "  " + base + ".zip\n"; !strings.Contains(string(sums), want) {
		t.Fatalf("%s does not hold %q:\n%s", sumsName, want, sums)
	}
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	if len(zr.File) != 1 || zr.File[0].Name != base {
		t.Fatalf("%s holds %d files, want exactly %s", zipPath, len(zr.File), base)
	}
	installDir := filepath.Join(pluginPath, "github.com", "nodebake", "nodebake")
	if err := os.MkdirAll(installDir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(installDir, base)
	rc, err := zr.File[0].Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	f, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, rc); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin+"_SHA256SUM", []byte(fileSHA256(t, bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	return bin
}

func (e *env) testProvisioner(t *testing.T) {
	outDir := filepath.Join(e.tmp, "provisioner-out")
	r := e.packerRun(append(append([]string{"build", "-color=false"}, e.vars(outDir)...), "plugin/test/testdata/provisioner.pkr.hcl")...)
	out, err, took := r.out, r.err, r.wall
	if err == nil {
		t.Fatalf("a shell provisioner was accepted:\n%s", out)
	}
	if !strings.Contains(out, "boots no machine") {
		t.Errorf("the refusal does not say why:\n%s", out)
	}
	if took > time.Minute {
		t.Errorf("the refusal took %s: it must come before the build", took)
	}
	b, err := os.ReadFile(outDir + ".local-ran")
	if err != nil || strings.TrimSpace(string(b)) != filepath.Join(outDir, "worker.raw") {
		t.Errorf("the shell-local provisioner did not run with the image path: %q, %v", b, err)
	}
	assertNoImage(t, outDir)
	t.Logf("refused after %s", took.Round(100*time.Millisecond))
}

func (e *env) testBuild(t *testing.T) {
	// The first build warms what both paths share (the normalized base).
	ref, _ := e.nodebakeBuild(t, filepath.Join(e.tmp, "cli-warm"))

	outDir := filepath.Join(e.tmp, "packer-out")
	args := append([]string{"build", "-color=false",
		"-var", "kubernetes_version=" + e.k8s, "-var", "mirror=" + e.mirror,
		"-var", `formats=["raw","qcow2","gce"]`}, e.vars(outDir)...)
	shipped := e.packerRun(append(args, "images/worker.pkr.hcl")...)
	out, err := shipped.out, shipped.err
	if err != nil {
		t.Fatalf("packer build images/worker.pkr.hcl: %v\n%s", err, out)
	}
	t.Logf("packer build output:\n%s", out)
	got := fileSHA256(t, filepath.Join(outDir, "worker.raw"))
	if got != ref {
		t.Errorf("packer build image sha256 %s, nodebake build %s", got, ref)
	}

	// The manifest post-processor.
	var pm struct {
		Builds []struct {
			BuilderType string `json:"builder_type"`
			ArtifactID  string `json:"artifact_id"`
			Files       []struct {
				Name string `json:"name"`
			} `json:"files"`
		} `json:"builds"`
	}
	readJSON(t, filepath.Join(outDir, "packer-manifest.json"), &pm)
	var files []string
	if len(pm.Builds) == 1 {
		for _, f := range pm.Builds[0].Files {
			files = append(files, f.Name)
		}
	}
	if len(pm.Builds) != 1 || pm.Builds[0].BuilderType != "nodebake" || pm.Builds[0].ArtifactID != ref ||
		strings.Join(files, ",") != "worker.raw,worker.qcow2,worker.tar.gz,worker.manifest.json,worker.spdx.json,worker.SHA256SUMS" {
		t.Errorf("packer-manifest.json: %+v", pm)
	}
	// The formats the artifact hands to post-processors: the qcow2 holds
	// the raw image (qemu-img compare), the GCE tarball holds disk.raw.
	if b, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "qcow2",
		filepath.Join(outDir, "worker.raw"), filepath.Join(outDir, "worker.qcow2")).CombinedOutput(); err != nil {
		t.Errorf("qemu-img compare worker.raw worker.qcow2: %v\n%s", err, b)
	}
	if names := tarNames(t, filepath.Join(outDir, "worker.tar.gz")); len(names) != 1 || names[0] != "disk.raw" {
		t.Errorf("worker.tar.gz holds %v, want disk.raw", names)
	}
	if !strings.Contains(out, "nodebake formats: qcow2 "+filepath.Join(outDir, "worker.qcow2")+" gce "+filepath.Join(outDir, "worker.tar.gz")) {
		t.Errorf("the shell-local post-processor did not print the formats' paths")
	}
	// The checksum post-processor.
	sums, err := os.ReadFile(filepath.Join(outDir, "worker.sha256"))
	if err != nil || !strings.Contains(string(sums), ref+"\tworker.raw") {
		t.Errorf("worker.sha256 = %q, %v; want the image's sha256", sums, err)
	}
	// nodebake's own manifest.
	var m build.Manifest
	readJSON(t, filepath.Join(outDir, "worker.manifest.json"), &m)
	if m.Image.SHA256 != ref {
		t.Errorf("worker.manifest.json sha256 %s, want %s", m.Image.SHA256, ref)
	}
	// The shell-local post-processor saw the generated data.
	if !strings.Contains(out, "nodebake: "+filepath.Join(outDir, "worker.raw")+" (Kubernetes "+e.k8s+", sha256 "+ref+")") {
		t.Errorf("the shell-local post-processor did not print the generated data")
	}

	// Timing on the same inputs, warm: nodebake build against packer build
	// of a template without post-processors, alternated, medians.
	const rounds = 3
	var cliWall, cliCPU, packerWall, packerCPU []time.Duration
	for i := range rounds {
		sum, cli := e.nodebakeBuild(t, filepath.Join(e.tmp, fmt.Sprintf("cli-timed-%d", i)))
		if sum != ref {
			t.Errorf("nodebake build sha256 %s, want %s", sum, ref)
		}
		dir := filepath.Join(e.tmp, fmt.Sprintf("packer-bare-%d", i))
		pk := e.packerRun(append(append([]string{"build", "-color=false"}, e.vars(dir)...), "plugin/test/testdata/bare.pkr.hcl")...)
		if pk.err != nil {
			t.Fatalf("packer build bare.pkr.hcl: %v\n%s", pk.err, pk.out)
		}
		if sum := fileSHA256(t, filepath.Join(dir, "worker.raw")); sum != ref {
			t.Errorf("packer build bare.pkr.hcl sha256 %s, want %s", sum, ref)
		}
		const ms = 10 * time.Millisecond
		cliWall, cliCPU = append(cliWall, cli.wall.Round(ms)), append(cliCPU, cli.cpu.Round(ms))
		packerWall, packerCPU = append(packerWall, pk.wall.Round(ms)), append(packerCPU, pk.cpu.Round(ms))
	}
	t.Logf("median of %d warm builds: wall time nodebake build %s, packer build %s: ratio %.2f; CPU time nodebake %s, packer with plugin %s: ratio %.2f",
		rounds, median(cliWall), median(packerWall), median(packerWall).Seconds()/median(cliWall).Seconds(),
		median(cliCPU), median(packerCPU), median(packerCPU).Seconds()/median(cliCPU).Seconds())
	t.Logf("runs: wall nodebake %v packer %v; CPU nodebake %v packer %v; packer build images/worker.pkr.hcl (manifest, checksum, shell-local): wall %s, CPU %s",
		cliWall, packerWall, cliCPU, packerCPU, shipped.wall.Round(10*time.Millisecond), shipped.cpu.Round(10*time.Millisecond))
}

// median returns the median of ds, rounded to 10ms.
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2].Round(10 * time.Millisecond)
}

func (e *env) testPostProcessors(t *testing.T) {
	outDir := filepath.Join(e.tmp, "pp-out")
	cacheDir := filepath.Join(e.tmp, "fresh-cache")
	args := append(append([]string{"build", "-color=false", "-var", "cache_dir=" + cacheDir}, e.vars(outDir)...), "plugin/test/testdata/postprocessors.pkr.hcl")
	r := e.packerRun(args...)
	out, err, took := r.out, r.err, r.wall
	if err != nil {
		t.Fatalf("packer build postprocessors.pkr.hcl: %v\n%s", err, out)
	}
	t.Logf("packer build with a fresh cache, compress and shell-local: %s", took.Round(100*time.Millisecond))
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, ": downloaded") {
			t.Log(l)
		}
	}
	// Every release artifact came through the mirror and Packer's UI.
	for _, c := range []string{"containerd", "runc", "cni-plugins", "kubelet", "kube-proxy", "kubectl"} {
		if !strings.Contains(out, c+" ") || !strings.Contains(out, " linux/amd64: downloaded") {
			t.Errorf("no download of %s reported:\n%s", c, out)
		}
	}
	sum := fileSHA256(t, filepath.Join(outDir, "worker.raw"))
	gen, err := os.ReadFile(filepath.Join(outDir, "generated.txt"))
	if err != nil || !strings.HasPrefix(string(gen), sum+" "+filepath.Join(outDir, "worker.raw")+"\nkubelet "+e.k8s) {
		t.Errorf("generated.txt = %q, %v", gen, err)
	}
	names := tarNames(t, filepath.Join(outDir, "worker.tar.gz"))
	var bases []string
	for _, n := range names {
		bases = append(bases, filepath.Base(n))
	}
	if strings.Join(bases, ",") != "worker.raw,worker.manifest.json,worker.spdx.json,worker.SHA256SUMS" {
		t.Errorf("worker.tar.gz holds %v, want the image, its manifest, SBOM and sums", names)
	}
}

func (e *env) testCancel(t *testing.T) {
	outDir := filepath.Join(e.tmp, "cancel-out")
	cmd := exec.Command(e.packer, append(append([]string{"build", "-color=false"}, e.vars(outDir)...), "plugin/test/testdata/bare.pkr.hcl")...)
	cmd.Dir = e.root
	cmd.Env = e.environ
	// Its own process group, signalled as a whole like a terminal's Ctrl-C
	// does: Packer's outer process (panicwrap) leaves SIGINT to the inner.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	kill := func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		mu  sync.Mutex
		log bytes.Buffer
	)
	started := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		once := sync.Once{}
		for sc.Scan() {
			mu.Lock()
			log.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if strings.Contains(sc.Text(), "Composing the root filesystem") {
				once.Do(func() { close(started) })
			}
		}
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); pw.Close() }()

	select {
	case <-started:
	case err := <-done:
		t.Fatalf("packer build ended before the disk stage: %v\n%s", err, log.String())
	case <-time.After(5 * time.Minute):
		kill()
		t.Fatalf("the disk stage did not start in 5 minutes:\n%s", log.String())
	}
	time.Sleep(time.Second) // well inside the root filesystem
	sent := time.Now()
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-done:
	case <-time.After(2 * time.Minute):
		kill()
		t.Fatalf("packer did not stop within 2 minutes of SIGINT:\n%s", log.String())
	}
	took := time.Since(sent)
	mu.Lock()
	out := log.String()
	mu.Unlock()
	if err == nil {
		t.Errorf("a cancelled packer build exited 0:\n%s", out)
	}
	t.Logf("packer stopped %s after SIGINT (%v)", took.Round(10*time.Millisecond), err)
	if took > 30*time.Second {
		t.Errorf("packer took %s to stop after SIGINT", took)
	}
	assertNoImage(t, outDir)
	if t.Failed() {
		t.Logf("packer output:\n%s", out)
	}
}

// assertNoImage fails when dir holds anything a build writes: images,
// manifests or partial files.
func assertNoImage(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		t.Errorf("%s left behind in %s", en.Name(), dir)
	}
}

// nodebakeBuild runs `nodebake build` on the spec and returns the image's
// sha256.
func (e *env) nodebakeBuild(t *testing.T, outDir string) (string, result) {
	t.Helper()
	r := e.command(e.nodebake, "build", "-q", "--firstboot", e.firstboot, "-o", outDir, e.specFile)
	if r.err != nil {
		t.Fatalf("nodebake build: %v\n%s", r.err, r.out)
	}
	sum := fileSHA256(t, filepath.Join(outDir, "worker.raw"))
	t.Logf("nodebake build: %s in %s (CPU %s)", sum, r.wall.Round(10*time.Millisecond), r.cpu.Round(10*time.Millisecond))
	return sum, r
}

func fileSHA256(t *testing.T, p string) string {
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

func readJSON(t *testing.T, p string, v any) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decoding %s: %v", p, err)
	}
}

// tarNames lists the entries of a .tar.gz.
func tarNames(t *testing.T, p string) []string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("reading %s: %v", p, err)
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		if err != nil {
			t.Fatalf("reading %s: %v", p, err)
		}
		names = append(names, h.Name)
	}
}
