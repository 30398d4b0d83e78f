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
