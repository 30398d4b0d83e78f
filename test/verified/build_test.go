package verified

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/builder/build"
	"github.com/nodebake/nodebake/layers/spec"
	"github.com/nodebake/nodebake/test/harness"
)

// cli builds images with the real nodebake command.
type cli struct {
	bin, firstboot, cache, dir string
}

func newCLI(t *testing.T) *cli {
	t.Helper()
	return &cli{
		bin:       harness.GoBuild(t, "./builder/cmd/nodebake", t.TempDir()),
		firstboot: harness.Firstboot(t),
		cache:     harness.CacheDir(t),
		dir:       t.TempDir(),
	}
}

// built is one image nodebake build wrote.
type built struct {
	dir, image string
	manifest   build.Manifest
	took       time.Duration
}

// build writes s as a spec file and runs nodebake build on it into a new
// directory named out, with extra arguments (--signing-key ...).
func (c *cli) build(t *testing.T, s *spec.Spec, out string, args ...string) built {
	t.Helper()
	y, err := s.Dump()
	if err != nil {
		t.Fatal(err)
	}
	specFile := filepath.Join(c.dir, out+".yaml")
	if err := os.WriteFile(specFile, y, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(c.dir, out)
	argv := append([]string{"build", "--cache", c.cache, "--firstboot", c.firstboot, "-o", dir}, args...)
	cmd := exec.CommandContext(t.Context(), c.bin, append(argv, specFile)...)
	var stderr bytes.Buffer
	cmd.Stderr = io.MultiWriter(&stderr, harness.LogWriter(t, out+": "))
	start := time.Now()
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("nodebake %s: %v", strings.Join(argv, " "), err)
	}
	b := built{dir: dir, image: filepath.Join(dir, s.Name+".raw"), took: time.Since(start)}
	if got := strings.Fields(string(stdout)); len(got) == 0 || got[0] != b.image {
		t.Errorf("nodebake build printed %q, want the image path first", stdout)
	}
	m, err := os.ReadFile(filepath.Join(dir, s.Name+".manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(m, &b.manifest); err != nil {
		t.Fatal(err)
	}
	if b.manifest.Verified == nil {
		t.Fatalf("%s: the manifest has no verified section", out)
	}
	return b
}

func figure(t *testing.T, format string, args ...any) {
	t.Helper()
	s := fmt.Sprintf(format, args...)
	t.Log(s)
	fmt.Println("FIGURE " + s)
}
