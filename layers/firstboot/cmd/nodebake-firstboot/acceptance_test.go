package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/layers/firstboot"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig/nodeconfigtest"
)

// tree returns every file and symbolic link under root with its mode and
// content (a named pipe's content is not read).
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		v := info.Mode().String()
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			v += " -> " + target
		case info.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += " " + string(b)
		}
		files["/"+rel] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func changed(before, after map[string]string) []string {
	var out []string
	for p, v := range after {
		if b, ok := before[p]; !ok || b != v {
			out = append(out, p)
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			out = append(out, p+" (removed)")
		}
	}
	return out
}

// runProgram runs the program under root with a deadline: a source that
// blocks shows as a failure, not a hung test.
func runProgram(t *testing.T, root string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "--root", root)
	cmd.Env = append(os.Environ(), asMain+"=1", "CREDENTIALS_DIRECTORY=")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("the program did not finish: %v", ctx.Err())
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

const credential = firstboot.SystemCredentialsDir + "/" + firstboot.CredentialName

// TestRefusals runs the program on every config of the hostile corpus, on
// a fresh node and on one where a good config ran first. Each refusal:
// exit status 1, one console line naming the field, the problem in
// status.json, no node-ready, and no other file changed: the good
// config's files stay byte for byte. No message names the root prefix.
func TestRefusals(t *testing.T) {
	p, err := nodeconfigtest.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	cases, err := nodeconfigtest.Cases(p)
	if err != nil {
		t.Fatal(err)
	}
	good := nodeconfigtest.YAML(p.Config())
	for _, c := range cases {
		for _, goodFirst := range []bool{false, true} {
			name := c.Category + "/" + c.Name + "/fresh"
			if goodFirst {
				name = c.Category + "/" + c.Name + "/after a good config"
			}
			t.Run(name, func(t *testing.T) {
				root := setup(t, good)
				if goodFirst {
					if _, stderr, code := runProgram(t, root); code != 0 {
						t.Fatalf("good config: exit %d: %s", code, stderr)
					}
				}
				if err := os.Remove(filepath.Join(root, credential)); err != nil {
					t.Fatal(err)
				}
				if err := nodeconfigtest.Place(filepath.Join(root, credential), c); err != nil {
					t.Fatal(err)
				}
				before := tree(t, root)
				stdout, stderr, code := runProgram(t, root)
				if code != 1 || stdout != "" {
					t.Errorf("exit %d, stdout %q; want 1 and nothing", code, stdout)
				}
				if !strings.HasPrefix(stderr, "nodebake-firstboot: "+c.Field) || !strings.Contains(stderr, c.Message) || strings.Count(stderr, "\n") != 1 {
					t.Errorf("console %q\nwant one line naming %s: ...%s...", stderr, c.Field, c.Message)
				}
				if strings.Contains(stderr, root) {
					t.Errorf("console %q names the root prefix", stderr)
				}
				after := tree(t, root)
				var st firstboot.Status
				if err := json.Unmarshal([]byte(strings.SplitN(after[firstboot.StatusPath], " ", 2)[1]), &st); err != nil {
					t.Fatalf("status.json: %v", err)
				}
				if st.OK || !strings.HasPrefix(st.Field, c.Field) || !strings.Contains(st.Error, c.Message) || len(st.Problems) == 0 || len(st.Files) > 0 {
					t.Errorf("status %+v", st)
				}
				if strings.Contains(after[firstboot.StatusPath], root) {
					t.Errorf("status.json names the root prefix")
				}
				if _, ok := after[firstboot.ReadyPath]; ok {
					t.Error("node-ready exists")
				}
				delete(before, firstboot.ReadyPath)
				for _, p := range changed(before, after) {
					if p != firstboot.StatusPath {
						t.Errorf("changed %s", p)
					}
				}
			})
		}
	}
}

// TestAccepted runs the program on the corpus's valid spellings.
func TestAccepted(t *testing.T) {
	p, err := nodeconfigtest.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	accepted, err := nodeconfigtest.Accepted(p)
	if err != nil {
		t.Fatal(err)
	}
	accepted["largest"] = nodeconfigtest.Largest(p)
	for name, doc := range accepted {
		t.Run(name, func(t *testing.T) {
			root := setup(t, doc)
			if _, stderr, code := runProgram(t, root); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if _, err := os.Stat(filepath.Join(root, firstboot.ReadyPath)); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestWriteRefusals: when first boot cannot write, nothing changes and
// node-ready is absent (see TestCommitFaults in package firstboot for a
// failure at every call of a commit).
func TestWriteRefusals(t *testing.T) {
	p, err := nodeconfigtest.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	cfg := p.Config()
	good := nodeconfigtest.YAML(cfg)
	cfg.WireGuard.Address = "10.8.0.210/24"
	other := nodeconfigtest.YAML(cfg)
	tests := []struct {
		name  string
		setup func(t *testing.T, root string)
		line  string
		ready bool // node-ready stays (it could not be removed)
	}{
		{"node-ready cannot be removed", func(t *testing.T, root string) {
			ready := filepath.Join(root, firstboot.ReadyPath)
			os.Remove(ready)
			os.MkdirAll(filepath.Join(ready, "x"), 0o755)
		}, "nodebake-firstboot: status: removing /run/nodebake/node-ready: ", true},
		{"a file cannot be replaced", func(t *testing.T, root string) {
			kc := filepath.Join(root, firstboot.KubeProxyConfigPath)
			os.Remove(kc)
			os.MkdirAll(filepath.Join(kc, "x"), 0o755)
		}, "nodebake-firstboot: write: keeping a backup of /var/lib/kube-proxy/kubeproxy-config.yaml: ", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := setup(t, good)
			if _, stderr, code := runProgram(t, root); code != 0 {
				t.Fatalf("good config: exit %d: %s", code, stderr)
			}
			if err := os.WriteFile(filepath.Join(root, credential), other, 0o600); err != nil {
				t.Fatal(err)
			}
			tt.setup(t, root)
			before := tree(t, root)
			if !tt.ready {
				delete(before, firstboot.ReadyPath)
			}
			_, stderr, code := runProgram(t, root)
			if code != 1 || !strings.HasPrefix(stderr, tt.line) || strings.Contains(stderr, root) {
				t.Errorf("exit %d, console %q; want 1 and %q", code, stderr, tt.line)
			}
			for _, p := range changed(before, tree(t, root)) {
				if p != firstboot.StatusPath {
					t.Errorf("changed %s", p)
				}
			}
		})
	}
}
