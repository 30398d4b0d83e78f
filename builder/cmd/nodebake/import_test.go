package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig/nodeconfigtest"
)

const seedTree = "../../ansible/testdata/seed"

// TestImportAnsible runs nodebake import ansible on the seed's tree, then
// nodebake spec validate on the spec and nodebake node check on each node
// config, as a user would.
func TestImportAnsible(t *testing.T) {
	certs := filepath.Join(t.TempDir(), "certs")
	var ws []nodeconfigtest.Host
	for _, w := range []string{"worker01", "worker02", "worker03"} {
		ws = append(ws, nodeconfigtest.Host{Host: w + ".i.domain.tld", Node: w})
	}
	if err := nodeconfigtest.WriteCADir(certs, ws); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	code, stdout, stderr := runCLI(t, "import", "ansible",
		"--group-vars", seedTree+"/group_vars", "--host-vars", seedTree+"/host_vars", "-i", seedTree+"/hosts",
		"--base", "../../ansible/testdata/base.yaml", "--certs", certs, "-o", out, "--config-drives")
	if code != exitOK {
		t.Fatalf("import: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "nodebake import ansible: report") || !strings.Contains(stdout, "node configs: 3 (worker01, worker02, worker03)") {
		t.Errorf("the report on stdout:\n%s", stdout)
	}
	spec := filepath.Join(out, "spec.yaml")
	if code, _, stderr := runCLI(t, "spec", "validate", spec); code != exitOK {
		t.Errorf("spec validate: exit %d: %s", code, stderr)
	}
	for _, w := range []string{"worker01", "worker02", "worker03"} {
		node := filepath.Join(out, "nodes", w+".yaml")
		code, stdout, stderr := runCLI(t, "node", "check", "--spec", spec, node)
		if code != exitOK || !strings.Contains(stdout, "valid node config for "+w) {
			t.Errorf("node check %s: exit %d: %s%s", w, code, stdout, stderr)
		}
		if _, err := os.Stat(filepath.Join(out, "nodes", w+".drive.img")); err != nil {
			t.Error(err)
		}
	}
}

func TestImportAnsibleRefuses(t *testing.T) {
	gv := t.TempDir()
	if err := os.WriteFile(filepath.Join(gv, "all.yml"), []byte("k8s_interface: tap0\nk8s_release: \"{{ k8s_version | default('1.35.4') }}\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	code, _, stderr := runCLI(t, "import", "ansible", "--group-vars", gv, "--base", "../../ansible/testdata/base.yaml", "-o", out, "-q")
	if code != exitInvalid {
		t.Fatalf("exit %d, want %d: %s", code, exitInvalid, stderr)
	}
	for _, s := range []string{filepath.Join(gv, "all.yml") + ":1: k8s_interface", "k8s_release", `unknown filter "default"`} {
		if !strings.Contains(stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, stderr)
		}
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("a refused import wrote %v", entries)
	}
	for _, args := range [][]string{{"import", "--help"}, {"import", "ansible", "--help"}} {
		if code, stdout, _ := runCLI(t, args...); code != exitOK || !strings.Contains(stdout, "Usage") {
			t.Errorf("%v: exit %d: %s", args, code, stdout)
		}
	}
	if code, _, _ := runCLI(t, "import", "ansible", "--group-vars", gv); code != exitInvalid {
		t.Errorf("without --base and -o: exit %d", code)
	}
}
