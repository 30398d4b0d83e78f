package main

import (
	"bufio"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodebake/nodebake/test/harness"
)

// These tests run a real nodebake process, built from the repository, on
// a tiny base with every component built from source by a fake go command
// (first on PATH): what a user sees when a build stops, and its exit code.

// fakeGoPath returns a directory holding a go command that builds every
// binary as a small script. With FAKE_GO_SLEEP set it first sleeps that
// long in a child process, writing its process id to FAKE_GO_PID.
func fakeGoPath(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	gomod := filepath.Join(dir, "upstream.go.mod")
	if err := os.WriteFile(gomod, []byte("module example.com/upstream\n\ngo 1.24\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `#!/bin/sh
case "$1" in
env) echo go1.99.0-fake ;;
mod) printf '{"GoMod": "%s"}\n' "` + gomod + `" ;;
list) echo fmt ;;
build)
	if [ -n "$FAKE_GO_SLEEP" ]; then
		sleep "$FAKE_GO_SLEEP" &
		echo $! > "$FAKE_GO_PID"
		wait
	fi
	out=
	for a; do [ "$prev" = -o ] && out=$a; prev=$a; done
	printf '#!fake %s\n' "$(basename "$out")" > "$out" ;;
*) echo "fake go: unexpected $*" >&2; exit 2 ;;
esac
`
	if err := os.WriteFile(filepath.Join(dir, "go"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// cliBuild is a nodebake build of a tiny image, ready to start.
type cliBuild struct {
	cmd    *exec.Cmd
	out    string
	stderr io.Reader
}

// newCLIBuild prepares `nodebake build` of a spec with a file of
// extraBytes incompressible bytes (none when 0) into out.
func newCLIBuild(t *testing.T, nodebake, out string, extraBytes int64, env ...string) *cliBuild {
	t.Helper()
	dir := t.TempDir()
	doc := `apiVersion: nodebake.io/v1alpha1
kind: WorkerImage
name: cli
base: {image: "oci:` + tinyBase(t) + `"}
kubernetes: {version: v1.35.4}
components:
  containerd: {version: v2.2.0, from: go}
  runc: {version: v1.3.4, from: go}
  cniPlugins: {version: v1.8.0, from: go}
  kubelet: {from: go}
  kubeProxy: {from: go}
  kubectl: {from: go}
output: {espSize: 100MiB, varSize: 64MiB}
`
	if extraBytes > 0 {
		big := filepath.Join(dir, "big")
		f, err := os.Create(big)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(f, rand.Reader, extraBytes); err != nil {
			t.Fatal(err)
		}
		f.Close()
		doc += "files:\n  - {path: /usr/local/share/big, source: " + big + "}\n"
	}
	specPath := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(specPath, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	fb := filepath.Join(dir, "nodebake-firstboot")
	os.WriteFile(fb, []byte("#!fake firstboot"), 0o755)
	cmd := exec.Command(nodebake, "build", "--cache", filepath.Join(dir, "cache"), "--firstboot", fb, "-o", out, specPath)
	cmd.Env = append(os.Environ(), "PATH="+fakeGoPath(t)+string(os.PathListSeparator)+os.Getenv("PATH"))
	cmd.Env = append(cmd.Env, env...)
	// A child nodebake left behind must not hold the test up.
	cmd.WaitDelay = 5 * time.Second
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	t.Cleanup(func() { pw.Close() })
	return &cliBuild{cmd: cmd, out: out, stderr: pr}
}

// exitCodeOf returns a finished process's exit code.
func exitCodeOf(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if err == nil {
		return 0
	}
	if !errors.As(err, &ee) {
		t.Fatalf("running nodebake: %v", err)
	}
	return ee.ExitCode()
}

// leftIn lists what is in dir.
func leftIn(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// TestCLIBuildIntoFullFilesystem builds into a small tmpfs: nodebake says
// "no space left on device", exits 1 and leaves nothing there.
func TestCLIBuildIntoFullFilesystem(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	nodebake := harness.GoBuild(t, "./builder/cmd/nodebake", t.TempDir())
	out := t.TempDir()
	if b, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "nodebake-test", out).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, b)
	}
	t.Cleanup(func() {
		if b, err := exec.Command("umount", out).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", out, err, b)
		}
	})
	b := newCLIBuild(t, nodebake, out, 16<<20)
	var stderr strings.Builder
	go io.Copy(&stderr, b.stderr)
	err := b.cmd.Run()
	b.cmd.Stderr.(io.Closer).Close()
	code := exitCodeOf(t, err)
	last := lastLine(stderr.String())
	t.Logf("exit %d: %s", code, last)
	if code != exitInternal {
		t.Errorf("exit %d, want %d", code, exitInternal)
	}
	if !strings.HasPrefix(last, "nodebake build: ") || !strings.Contains(last, "no space left on device") {
		t.Errorf("the error %q does not say no space left on device", last)
	}
	if left := leftIn(t, out); len(left) != 0 {
		t.Errorf("the failed build left %v", left)
	}
}

// TestCLIBuildInterrupted sends SIGINT to nodebake while it builds a
// component from source: it says "interrupted", exits 130, leaves nothing
// and has stopped the go command and what it started.
func TestCLIBuildInterrupted(t *testing.T) {
	nodebake := harness.GoBuild(t, "./builder/cmd/nodebake", t.TempDir())
	out := t.TempDir()
	pidFile := filepath.Join(t.TempDir(), "pid")
	b := newCLIBuild(t, nodebake, out, 0, "FAKE_GO_SLEEP=120", "FAKE_GO_PID="+pidFile)
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(b.stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	done := make(chan error, 1)
	go func() {
		err := b.cmd.Wait()
		b.cmd.Stderr.(io.Closer).Close()
		done <- err
	}()
	var said []string
	// Wait until the go command has started its child.
	deadline := time.After(60 * time.Second)
	for started := false; !started; {
		select {
		case l := <-lines:
			said = append(said, l)
		case <-time.After(100 * time.Millisecond):
			_, err := os.Stat(pidFile)
			started = err == nil
		case <-deadline:
			b.cmd.Process.Kill()
			t.Fatalf("the build from source never started; nodebake said %q", said)
		}
	}
	if err := b.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		b.cmd.Process.Kill()
		t.Fatal("nodebake did not stop after SIGINT")
	}
	for l := range lines {
		said = append(said, l)
	}
	code := exitCodeOf(t, err)
	last := lastLine(strings.Join(said, "\n"))
	t.Logf("exit %d: %s", code, last)
	if code != exitInterrupted {
		t.Errorf("exit %d, want %d", code, exitInterrupted)
	}
	if !strings.HasPrefix(last, "nodebake build: interrupted (interrupt signal received)") {
		t.Errorf("the last line %q does not say interrupted", last)
	}
	if left := leftIn(t, out); len(left) != 0 {
		t.Errorf("the interrupted build left %v", left)
	}
	// The go command's child is gone too.
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("the go command's child %d outlived the build", pid)
	}
}

// alive reports whether process pid runs: it exists and is not a zombie
// (a process killed but not yet reaped by its new parent).
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: the state follows the last ')'.
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] != "Z" && fields[0] != "X"
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	return s[strings.LastIndex(s, "\n")+1:]
}

// TestCLIPinnedKubelet pins the worker image's kubelet, built from source,
// with the pin `nodebake mirror build` prints: checked against sha256sum
// of the mirror's artifact, the right pin builds; a wrong one fails with
// exit 3, naming the component and both digests. It uses the shared build
// cache, where the pinned set is built already: nothing is built again.
func TestCLIPinnedKubelet(t *testing.T) {
	harness.RequireSlow(t)
	harness.RequireTool(t, "sha256sum")
	root := harness.RepoRoot(t)
	base := harness.BaseLayout(t)
	cacheDir := harness.CacheDir(t)
	bin := t.TempDir()
	nodebake := harness.GoBuild(t, "./builder/cmd/nodebake", bin)
	harness.GoBuild(t, harness.FirstbootPackage, bin)
	worker, err := os.ReadFile(filepath.Join(root, "images", "worker.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	specWith := func(kubelet string) string {
		doc := strings.NewReplacer(
			"oci:../build/base/trixie-amd64", "oci:"+base,
			"oci:../build/images/pause", "oci:"+filepath.Join(root, "build", "images", "pause"),
			"kubelet: {from: go}", kubelet,
		).Replace(string(worker))
		if !strings.Contains(doc, kubelet) {
			t.Fatalf("images/worker.yaml has no %q line to pin", "kubelet: {from: go}")
		}
		p := filepath.Join(t.TempDir(), "worker.yaml")
		if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	run := func(args ...string) (int, string, string) {
		cmd := exec.Command(nodebake, args...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return exitCodeOf(t, err), stdout.String(), stderr.String()
	}

	// The pins, from the mirror.
	mirrorDir := t.TempDir()
	code, pins, stderr := run("mirror", "build", "--cache", cacheDir, "-d", mirrorDir, specWith("kubelet: {from: go}"))
	if code != 0 {
		t.Fatalf("mirror build: exit %d: %s", code, stderr)
	}
	t.Logf("mirror build printed:\n%s", pins)
	_, block, ok := strings.Cut(pins, "\n  kubelet:\n")
	if !ok {
		t.Fatalf("no kubelet pin in %q", pins)
	}
	var pin string
	for _, l := range strings.Split(block, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "amd64: "); ok {
			pin = v
			break
		}
	}
	artifact := filepath.Join(mirrorDir, "dl.k8s.io", "release", "v1.35.4", "bin", "linux", "amd64", "kubelet")
	out, err := exec.Command("sha256sum", artifact).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got, _, _ := strings.Cut(string(out), " "); pin == "" || got != pin {
		t.Fatalf("the printed pin %q is not sha256sum's %q of %s", pin, got, artifact)
	}
	if strings.Contains(stderr, "building kubelet") {
		t.Errorf("the kubelet was built again:\n%s", stderr)
	}

	// A wrong pin: exit 3, naming the component and both digests.
	wrong := strings.Repeat("0", 63) + "1"
	outDir := t.TempDir()
	code, _, stderr = run("build", "--cache", cacheDir, "-o", outDir, specWith("kubelet: {from: go, sha256: {amd64: "+wrong+"}}"))
	last := lastLine(stderr)
	t.Logf("with a wrong pin: exit %d: %s", code, last)
	if code != exitSource {
		t.Errorf("exit %d, want %d", code, exitSource)
	}
	for _, want := range []string{"components.kubelet.sha256.amd64", "kubelet v1.35.4", "sha256:" + pin, "sha256:" + wrong} {
		if !strings.Contains(last, want) {
			t.Errorf("the error does not name %q", want)
		}
	}
	if left := leftIn(t, outDir); len(left) != 0 {
		t.Errorf("the refused build left %v", left)
	}

	// The right pin builds, and the manifest records it.
	code, _, stderr = run("build", "--cache", cacheDir, "-o", outDir, specWith("kubelet: {from: go, sha256: {amd64: "+pin+"}}"))
	if code != 0 {
		t.Fatalf("with the right pin: exit %d: %s", code, stderr)
	}
	if strings.Contains(stderr, "building kubelet") {
		t.Errorf("the kubelet was built again:\n%s", stderr)
	}
	manifest, err := os.ReadFile(filepath.Join(outDir, "worker.manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Components []struct{ Name, Checksum string }
	}
	if err := json.Unmarshal(manifest, &m); err != nil {
		t.Fatal(err)
	}
	var recorded string
	for _, c := range m.Components {
		if c.Name == "kubelet" {
			recorded = c.Checksum
		}
	}
	if recorded != "sha256:"+pin {
		t.Errorf("the manifest records the kubelet's checksum as %q, want the pin", recorded)
	}
}
