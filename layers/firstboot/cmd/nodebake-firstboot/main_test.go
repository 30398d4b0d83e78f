package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/nodebake/nodebake/layers/firstboot"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig/nodeconfigtest"
)

// The test binary runs as the program when this variable is set.
const asMain = "NODEBAKE_FIRSTBOOT_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMain) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func setup(t *testing.T, node []byte) string {
	t.Helper()
	root := nodeconfigtest.MemDir(t)
	files := map[string][]byte{
		firstboot.FactsPath: []byte(`{"serviceCIDR":"10.32.0.0/16","clusterCIDR":"10.200.0.0/16","podNetwork":"bridge",
 "kubeletConfigTemplate":"/usr/lib/nodebake/kubelet.json","kubeProxyConfigTemplate":"/usr/lib/nodebake/kube-proxy.json"}`),
		"/usr/lib/nodebake/kubelet.json":    []byte(`{"kind":"KubeletConfiguration"}`),
		"/usr/lib/nodebake/kube-proxy.json": []byte(`{"kind":"KubeProxyConfiguration"}`),
		"/etc/group":                        []byte("systemd-network:x:101:\n"),
		firstboot.SystemCredentialsDir + "/" + firstboot.CredentialName: node,
	}
	for p, data := range files {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func runMain(t *testing.T, root string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "--root", root)
	cmd.Env = append(os.Environ(), asMain+"=1", "CREDENTIALS_DIRECTORY=")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func TestSuccess(t *testing.T) {
	node, err := os.ReadFile("../../nodeconfig/testdata/node.yaml")
	if err != nil {
		t.Fatal(err)
	}
	root := setup(t, node)
	stdout, stderr, code := runMain(t, root)
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if !bytes.HasPrefix([]byte(stdout), []byte("nodebake-firstboot: node worker01 configured from credential /run/credentials/@system/nodebake.node (13 files) in ")) {
		t.Errorf("stdout %q", stdout)
	}
	var st firstboot.Status
	b, err := os.ReadFile(filepath.Join(root, firstboot.StatusPath))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &st); err != nil || !st.OK || st.DurationMicros <= 0 {
		t.Errorf("status %s (%v)", b, err)
	}
	if _, err := os.Stat(filepath.Join(root, firstboot.ReadyPath)); err != nil {
		t.Error(err)
	}
}

func TestFailureIsOneLine(t *testing.T) {
	root := setup(t, []byte("apiVersion: nodebake.io/v1alpha1\nnodeName: Bad_Name\n"))
	stdout, stderr, code := runMain(t, root)
	if code != 1 || stdout != "" {
		t.Errorf("exit %d, stdout %q", code, stdout)
	}
	// Problems come in document order: the first is on line 2; the absent
	// fields follow.
	if want := "nodebake-firstboot: nodeName: \"Bad_Name\" is not a DNS-1123 subdomain (lower-case letters, digits, '-' and '.') (line 2)\n"; stderr != want {
		t.Errorf("stderr %q, want %q", stderr, want)
	}
	var st firstboot.Status
	b, _ := os.ReadFile(filepath.Join(root, firstboot.StatusPath))
	if err := json.Unmarshal(b, &st); err != nil || st.OK || st.Field != "nodeName" || len(st.Problems) < 5 || st.Problems[len(st.Problems)-1].Field != "kubernetes.podCIDR" {
		t.Errorf("status %s (%v)", b, err)
	}
}
