package harness

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// EC2MetadataMockVersion is the amazon-ec2-metadata-mock (AWS's double of
// the EC2 instance metadata service) the tests run.
const EC2MetadataMockVersion = "v1.13.0"

// EC2MetadataMock returns the amazon-ec2-metadata-mock program, built once
// from the Go module proxy by scripts/build-ec2-metadata-mock.sh and kept
// in build/tools/ec2-metadata-mock-VERSION (about a minute the first
// time).
func EC2MetadataMock(t testing.TB) string {
	t.Helper()
	return buildTool(t, "ec2-metadata-mock", "scripts/build-ec2-metadata-mock.sh", EC2MetadataMockVersion)
}

// CNIToolVersion is the cnitool (the CNI project's command that runs a
// network configuration list as a container runtime does) the tests bake
// into images: the libcni version of the pinned CNI plugins.
const CNIToolVersion = "v1.3.0"

// CNITool returns cnitool, built once from the Go module proxy by
// scripts/build-cnitool.sh and kept in build/tools/cnitool-VERSION (a few
// seconds the first time).
func CNITool(t testing.TB) string {
	t.Helper()
	return buildTool(t, "cnitool", "scripts/build-cnitool.sh", CNIToolVersion)
}

// Packer returns Packer at version (vX.Y.Z), built once from the Go module
// proxy by plugin/scripts/build-packer.sh and kept in
// build/tools/packer-VERSION (about a minute and a half the first time).
func Packer(t testing.TB, version string) string {
	t.Helper()
	return buildTool(t, "packer", "plugin/scripts/build-packer.sh", version)
}

// PackerPlugin returns HashiCorp's Packer plugin name
// (github.com/hashicorp/packer-plugin-NAME) at version, built once from
// the Go module proxy by scripts/build-packer-plugin.sh and kept in
// build/tools/packer-plugin-NAME-VERSION (a few minutes the first time).
func PackerPlugin(t testing.TB, name, version string) string {
	t.Helper()
	return buildTool(t, "packer-plugin-"+name, "scripts/build-packer-plugin.sh", name, version)
}

// buildTool runs one of the scripts that build a program into build/tools
// (or find it there) and print its path last, holding a lock named after
// the program so that test binaries running at once build it once.
func buildTool(t testing.TB, name, script string, args ...string) string {
	t.Helper()
	root := RepoRoot(t)
	unlock := lockFile(t, filepath.Join(root, "build", "tools", name+".lock"))
	defer unlock()
	start := time.Now()
	cmd := exec.Command(filepath.Join(root, filepath.FromSlash(script)), args...)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("building %s %s: %v\n%s", name, strings.Join(args, " "), err, stderr)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	p := lines[len(lines)-1]
	t.Logf("%s %s: %s (%s)", name, strings.Join(args, " "), p, time.Since(start).Round(time.Millisecond))
	return p
}

// KubeBenchVersion is the kube-bench (Aqua Security's runner of the CIS
// Kubernetes Benchmark) the tests run.
const KubeBenchVersion = "v0.14.0"

// KubeBench returns the directory holding the kube-bench program and its
// benchmark definitions (cfg/), built once from the Go module proxy by
// scripts/build-kube-bench.sh and kept in build/tools/kube-bench-VERSION
// (a few minutes the first time).
func KubeBench(t testing.TB) string {
	t.Helper()
	root := RepoRoot(t)
	unlock := lockFile(t, filepath.Join(root, "build", "tools", "kube-bench.lock"))
	defer unlock()
	start := time.Now()
	cmd := exec.Command(filepath.Join(root, "scripts", "build-kube-bench.sh"), KubeBenchVersion)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("building kube-bench %s: %v\n%s", KubeBenchVersion, err, stderr)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	dir := lines[len(lines)-1]
	t.Logf("kube-bench %s: %s (%s)", KubeBenchVersion, dir, time.Since(start).Round(time.Millisecond))
	return dir
}
