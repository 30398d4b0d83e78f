package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig/nodeconfigtest"
)

// dirState returns every entry of dir with its mode and, for regular
// files, content.
func dirState(t *testing.T, dir string) map[string]string {
	t.Helper()
	state := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		v := info.Mode().String()
		if info.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += " " + string(b)
		}
		state[p] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return state
}

// TestNodeCheckRefusals runs `nodebake node check` on the hostile corpus
// the first-boot program is tested with: each is refused with exit status
// 2 and one line naming the file and the field, and nothing is written.
func TestNodeCheckRefusals(t *testing.T) {
	p, err := nodeconfigtest.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	cases, err := nodeconfigtest.Cases(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.Category+"/"+c.Name, func(t *testing.T) {
			dir := nodeconfigtest.MemDir(t)
			path := filepath.Join(dir, "node.yaml")
			if err := nodeconfigtest.Place(path, c); err != nil {
				t.Fatal(err)
			}
			before := dirState(t, dir)
			code, stdout, stderr := runCLI(t, "node", "check", path)
			if code != exitInvalid || stdout != "" {
				t.Errorf("exit %d, stdout %q; want %d and nothing", code, stdout, exitInvalid)
			}
			prefix := "nodebake node check: " + path + ": " + c.Field
			if !strings.HasPrefix(stderr, prefix) || !strings.Contains(stderr, c.Message) || strings.Count(stderr, "\n") != 1 {
				t.Errorf("stderr %.300q\nwant one line starting %q and containing %q", stderr, prefix, c.Message)
			}
			after := dirState(t, dir)
			if len(after) != len(before) {
				t.Errorf("files %d, before %d", len(after), len(before))
			}
			for p, v := range before {
				if after[p] != v {
					t.Errorf("%s changed", p)
				}
			}
		})
	}
}

// TestNodeCheckAccepts: the spellings the first-boot program accepts.
func TestNodeCheckAccepts(t *testing.T) {
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
		path := filepath.Join(t.TempDir(), "node.yaml")
		if err := os.WriteFile(path, doc, 0o600); err != nil {
			t.Fatal(err)
		}
		if code, stdout, stderr := runCLI(t, "node", "check", path); code != exitOK || !strings.Contains(stdout, "valid node config for worker01") {
			t.Errorf("%s: exit %d, %s%s", name, code, stdout, stderr)
		}
	}
}
