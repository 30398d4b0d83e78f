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
	root := RepoRoot(t)
	unlock := lockFile(t, filepath.Join(root, "build", "tools", "ec2-metadata-mock.lock"))
	defer unlock()
	start := time.Now()
	cmd := exec.Command(filepath.Join(root, "scripts", "build-ec2-metadata-mock.sh"), EC2MetadataMockVersion)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("building amazon-ec2-metadata-mock %s: %v\n%s", EC2MetadataMockVersion, err, stderr)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	p := lines[len(lines)-1]
	t.Logf("amazon-ec2-metadata-mock %s: %s (%s)", EC2MetadataMockVersion, p, time.Since(start).Round(time.Millisecond))
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
