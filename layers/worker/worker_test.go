package worker

import (
	"archive/tar"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/layers/firstboot"
	"github.com/nodebake/nodebake/layers/spec"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const minimal = `apiVersion: nodebake.io/v1alpha1
kind: WorkerImage
base: {image: "oci:base"}
kubernetes: {version: v1.35.4}
components:
  containerd: {version: v2.2.0, from: go}
  runc: {version: v1.3.4, from: go}
  cniPlugins: {version: v1.8.0, from: go}
  kubelet: {from: go}
  kubeProxy: {from: go}
  kubectl: {from: go}
files:
  - {path: /etc/motd, content: "hello\n", mode: "0600", uid: 1, gid: 2}
  - {path: /etc/example, link: /etc/motd}
`

func load(t *testing.T, doc string) *spec.Spec {
	t.Helper()
	s, err := spec.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	s.Default()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRenderGolden compares every rendered file with testdata/golden.
func TestRenderGolden(t *testing.T) {
	ents, err := Render(load(t, minimal))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range ents {
		if seen[e.Path] {
			t.Errorf("%s rendered twice", e.Path)
		}
		seen[e.Path] = true
		var content string
		switch e.Type {
		case tar.TypeReg:
			rc, err := e.Open()
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(rc)
			rc.Close()
			content = string(b)
		case tar.TypeSymlink:
			content = "symlink -> " + e.Linkname + "\n"
		}
		header := "# mode " + strings.TrimPrefix(e.FileMode().String(), "-") + " uid " + itoa(e.UID) + " gid " + itoa(e.GID) + "\n"
		golden := filepath.Join("testdata", "golden", filepath.FromSlash(strings.TrimPrefix(e.Path, "/")))
		got := header + content
		if *update {
			os.MkdirAll(filepath.Dir(golden), 0o755)
			if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Errorf("%s: no golden file (run with -update): %v", e.Path, err)
			continue
		}
		if string(want) != got {
			t.Errorf("%s differs from %s:\n--- got\n%s\n--- want\n%s", e.Path, golden, got, want)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestSecurityModes(t *testing.T) {
	ents, err := Render(load(t, minimal))
	if err != nil {
		t.Fatal(err)
	}
	modes := map[string]int64{}
	for _, e := range ents {
		modes[e.Path] = e.Mode
	}
	// CIS 4.1.1: the kubelet service file is 600 or stricter, root-owned.
	for _, p := range []string{"/etc/systemd/system/kubelet.service", "/etc/systemd/system/kube-proxy.service"} {
		if modes[p] != 0o600 {
			t.Errorf("%s mode %o, want 0600", p, modes[p])
		}
	}
	if modes["/etc/motd"] != 0o600 {
		t.Errorf("extra file mode not applied: %o", modes["/etc/motd"])
	}
}

func TestUnitsWaitForNodeConfig(t *testing.T) {
	ents, _ := Render(load(t, minimal))
	for _, e := range ents {
		if e.Path != "/etc/systemd/system/kubelet.service" {
			continue
		}
		rc, _ := e.Open()
		b, _ := io.ReadAll(rc)
		for _, want := range []string{"ConditionPathExists=" + firstboot.ReadyPath, "--config=/var/lib/kubelet/kubelet-config.yaml", "--container-runtime-endpoint=unix:///run/containerd/containerd.sock", "$KUBELET_NODE_ARGS"} {
			if !strings.Contains(string(b), want) {
				t.Errorf("kubelet.service lacks %q:\n%s", want, b)
			}
		}
		return
	}
	t.Fatal("no kubelet.service rendered")
}

// TestSystemdWord: a flag value that systemd would split, join, expand or
// unescape goes into ExecStart= quoted and escaped, so that the program
// gets exactly the value.
func TestSystemdWord(t *testing.T) {
	for in, want := range map[string]string{
		"--v=2":                    "--v=2",
		"--node-labels=a=b c":      `"--node-labels=a=b c"`,
		`--x=a"b\c`:                `"--x=a\"b\\c"`,
		"--x=$HOME":                `"--x=$$HOME"`,
		"--x=100%":                 `"--x=100%%"`,
		"--x='q'":                  `"--x='q'"`,
		"--x=a;b":                  `"--x=a;b"`,
		"--config=/var/lib/a.yaml": "--config=/var/lib/a.yaml",
	} {
		if got := systemdWord(in); got != want {
			t.Errorf("systemdWord(%q) = %s, want %s", in, got, want)
		}
	}
	s := load(t, minimal+"kubelet:\n  settings:\n    node-labels: \"role=a b, cost=$5 100%\"\n")
	ents, err := Render(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Path == SystemdUnitDir+"/"+firstboot.KubeletUnit {
			rc, _ := e.Open()
			b, _ := io.ReadAll(rc)
			rc.Close()
			if !strings.Contains(string(b), `  "--node-labels=role=a b, cost=$$5 100%%" \`) {
				t.Errorf("kubelet.service:\n%s", b)
			}
		}
	}
}
