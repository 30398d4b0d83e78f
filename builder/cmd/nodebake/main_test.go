package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), &env{stdout: &out, stderr: &errb}, args)
	return code, out.String(), errb.String()
}

func writeSpec(t *testing.T, doc string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "spec.yaml")
	if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const validSpec = `apiVersion: nodebake.io/v1alpha1
kind: WorkerImage
base: {image: "oci:base"}
kubernetes: {version: v1.35.4}
sources: {mirror: "http://127.0.0.1:1", retries: 0}
components:
  containerd: {version: v2.2.0, sha256: {amd64: "` + "0000000000000000000000000000000000000000000000000000000000000000" + `"}}
  runc: {version: v1.3.4, from: go}
  cniPlugins: {version: v1.8.0, from: go}
  kubelet: {from: go}
  kubeProxy: {from: go}
  kubectl: {from: go}
`

func TestHelpEverywhere(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"build", "--help"}, {"spec", "--help"}, {"spec", "print", "--help"},
		{"mirror", "build", "--help"}, {"image", "import", "--help"}, {"node", "--help"},
		{"node", "config", "--help"}, {"node", "drive", "--help"}, {"node", "check", "--help"},
	} {
		code, out, _ := runCLI(t, args...)
		if code != exitOK || !strings.Contains(out, "Usage") && !strings.Contains(out, "Commands") {
			t.Errorf("%v: exit %d, stdout %q", args, code, out)
		}
	}
}

func TestExitCodes(t *testing.T) {
	bad := writeSpec(t, "apiVersion: nodebake.io/v1alpha1\nkind: WorkerImage\nkubernetes: {version: 1.35}\nbogus: 1\n")
	fb := filepath.Join(t.TempDir(), "nodebake-firstboot")
	os.WriteFile(fb, []byte("x"), 0o755)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no args", nil, exitInvalid, "Usage"},
		{"unknown command", []string{"frobnicate"}, exitInvalid, "unknown command"},
		{"bad flag", []string{"build", "--nope", "x.yaml"}, exitInvalid, "flag provided but not defined"},
		{"missing spec file", []string{"spec", "validate", "/nonexistent.yaml"}, exitInvalid, "nonexistent.yaml"},
		{"invalid spec names fields", []string{"spec", "validate", bad}, exitInvalid, "kubernetes.version"},
		{"unknown field named", []string{"spec", "validate", bad}, exitInvalid, "bogus"},
		{"download failure", []string{"build", "--firstboot", fb, "--cache", t.TempDir(), "-o", t.TempDir(), writeSpec(t, strings.Replace(validSpec, "oci:base", "oci:"+t.TempDir(), 1))}, exitInternal, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, tc.args...)
			if tc.name == "download failure" {
				// An empty directory is no OCI layout: the base fails before any download.
				if code == exitOK {
					t.Fatalf("exit 0, stderr %q", stderr)
				}
				return
			}
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tc.code, stderr)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q lacks %q", stderr, tc.want)
			}
		})
	}
}

func TestSpecPrintShowsDefaults(t *testing.T) {
	code, out, stderr := runCLI(t, "spec", "print", writeSpec(t, validSpec))
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"clusterDNS", "10.32.0.254", "mode: ipvs", "cgroupDriver: systemd", "10.200.0.0/16", "failSwapOn: true"} {
		if !strings.Contains(out, want) {
			t.Errorf("effective spec lacks %q", want)
		}
	}
}
