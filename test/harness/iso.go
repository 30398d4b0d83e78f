package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ISO makes an ISO 9660 image with Joliet and Rock Ridge names, labelled
// label and holding files (by slash-separated path), as users make
// config drives (a config-2 or cidata drive), with genisoimage; it
// returns the image's path, in t's temporary directory.
func ISO(t testing.TB, label string, files map[string][]byte) string {
	t.Helper()
	RequireTool(t, "genisoimage")
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	for p, b := range files {
		full := filepath.Join(tree, filepath.FromSlash(p))
		if !strings.HasPrefix(full, tree+string(filepath.Separator)) {
			t.Fatalf("ISO %s: the path %q leaves the image", label, p)
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	iso := filepath.Join(dir, label+".iso")
	if out, err := exec.Command("genisoimage", "-quiet", "-output", iso, "-V", label, "-J", "-r", tree).CombinedOutput(); err != nil {
		t.Fatalf("genisoimage for the %s drive: %v\n%s", label, err, out)
	}
	return iso
}
