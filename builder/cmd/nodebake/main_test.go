package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/layers/cache"
	"github.com/nodebake/nodebake/layers/failure"
	"github.com/nodebake/nodebake/layers/fetch"
	"github.com/nodebake/nodebake/layers/oci"
	"github.com/nodebake/nodebake/layers/spec"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb}, args)
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
		{"--help"}, {"-h"}, {"help"}, {"build", "--help"}, {"build", "-help"}, {"spec", "--help"}, {"spec", "print", "--help"},
		{"spec", "schema", "-h"}, {"mirror", "build", "--help"}, {"image", "import", "--help"}, {"base", "import", "--help"},
		{"node", "--help"}, {"node", "config", "--help"}, {"node", "drive", "--help"}, {"node", "check", "--help"},
		{"run", "--help"}, {"export", "--help"}, {"version", "--help"}, {"completion", "--help"},
	} {
		code, out, _ := runCLI(t, args...)
		if code != exitOK || !strings.Contains(out, "Usage:\n  nodebake") {
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
		{"bad flag", []string{"build", "--nope", "x.yaml"}, exitInvalid, "unknown flag: --nope"},
		{"missing spec file", []string{"spec", "validate", "/nonexistent.yaml"}, exitInvalid, "nonexistent.yaml"},
		{"invalid spec names fields", []string{"spec", "validate", bad}, exitInvalid, "kubernetes.version"},
		{"unknown field named", []string{"spec", "validate", bad}, exitInvalid, "bogus"},
		{"missing base", []string{"build", "--firstboot", fb, "--cache", t.TempDir(), "-o", t.TempDir(), writeSpec(t, strings.Replace(validSpec, "oci:base", "oci:"+filepath.Join(t.TempDir(), "trixie-amd64"), 1))},
			exitInvalid, "build the base OS with scripts/build-base.sh (make base)"},
		{"empty base directory", []string{"build", "--firstboot", fb, "--cache", t.TempDir(), "-o", t.TempDir(), writeSpec(t, strings.Replace(validSpec, "oci:base", "oci:"+t.TempDir(), 1))},
			exitInvalid, "there is no OCI image layout at"},
		{"download failure", []string{"build", "--firstboot", fb, "--cache", t.TempDir(), "-o", t.TempDir(), writeSpec(t, strings.Replace(validSpec, "oci:base", "oci:"+tinyBase(t), 1))},
			exitSource, "fetching containerd v2.2.0 linux/amd64: GET http://127.0.0.1:1/"},
		{"base without a kernel", []string{"build", "--firstboot", fb, "--cache", t.TempDir(), "-o", t.TempDir(), writeSpec(t, strings.Replace(validSpec, "oci:base", "oci:"+tinyBase(t, "etc/hostname"), 1))},
			exitInvalid, "base.image: want exactly one /boot/vmlinuz-*, found 0"},
		{"unknown format", []string{"build", "--format", "iso", "x.yaml"}, exitInvalid, `unknown format "iso"`},
		{"missing node config", []string{"node", "check", "/nonexistent-node.yaml"}, exitInvalid, "nonexistent-node.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, tc.args...)
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

// tinyBase writes a base image as an OCI layout holding the given files
// (path -> content): with a kernel, an initrd and systemd-boot, enough for
// a build to get past the base to the components.
func tinyBase(t *testing.T, files ...string) string {
	t.Helper()
	if len(files) == 0 {
		files = []string{"boot/vmlinuz-6.12", "boot/initrd.img-6.12", "usr/lib/systemd/boot/efi/systemd-bootx64.efi"}
	}
	dir := t.TempDir()
	tarPath := filepath.Join(dir, "rootfs.tar")
	writeTar(t, tarPath, files...)
	img, err := oci.ImageFromRootfsTar(tarPath, time.Unix(0, 0), "amd64")
	if err != nil {
		t.Fatal(err)
	}
	layout := filepath.Join(dir, "base")
	if err := oci.WriteLayout(layout, img, nil); err != nil {
		t.Fatal(err)
	}
	return layout
}

// writeTar writes a tar holding the named files, each holding its name.
func writeTar(t *testing.T, path string, files ...string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, p := range files {
		if err := tw.WriteHeader(&tar.Header{Name: p, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(p))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestExitCodeKinds maps each kind of error to its exit code: the kind
// decides, wherever in the chain it sits, and an interruption wins.
func TestExitCodeKinds(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	_, specErr := spec.Parse([]byte("kind: x\nbogus: 1\n"))
	_, fetchErr := fetch.New(openTestCache(t), fetch.WithRetries(0)).Fetch(context.Background(), fetch.Artifact{
		Name: "kubelet", URL: "http://127.0.0.1:1/kubelet",
		Digest: cache.Digest{Algorithm: "sha256", Hex: strings.Repeat("0", 64)},
	})
	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		want int
	}{
		{"plain error", context.Background(), errors.New("disk on fire"), exitInternal},
		{"invalid", context.Background(), failure.Errorf(failure.Invalid, "bad flag"), exitInvalid},
		{"source, wrapped", context.Background(), fmt.Errorf("components.kubelet: %w", failure.Errorf(failure.Source, "building kubelet")), exitSource},
		{"spec problems", context.Background(), specErr, exitInvalid},
		{"failed download", context.Background(), fetchErr, exitSource},
		{"outermost kind wins", context.Background(), failure.New(failure.Invalid, failure.Errorf(failure.Source, "x")), exitInvalid},
		{"context cancelled", context.Background(), fmt.Errorf("fetching: %w", context.Canceled), exitInterrupted},
		{"interrupted", cancelled, failure.Errorf(failure.Source, "fetching: connection reset"), exitInterrupted},
	} {
		if got := exitCode(tc.ctx, tc.err); got != tc.want {
			t.Errorf("%s: exitCode(%v) = %d, want %d", tc.name, tc.err, got, tc.want)
		}
	}
	if specErr == nil || fetchErr == nil {
		t.Fatal("the real errors were not produced")
	}
}

func openTestCache(t *testing.T) *cache.Cache {
	t.Helper()
	c, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return c
}
