package sysupdate

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/nodebake/nodebake/builder/verity"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func TestTransfersGolden(t *testing.T) {
	files, err := Transfers(Config{Name: "nodebake", Source: "https://updates.example.org/worker/", Tries: 3})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f.Path))
		if filepath.Dir(f.Path) != Dir {
			t.Errorf("%s is not in %s", f.Path, Dir)
		}
		golden := filepath.Join("testdata", filepath.Base(f.Path))
		if *update {
			if err := os.WriteFile(golden, []byte(f.Content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		if f.Content != string(want) {
			t.Errorf("%s differs from %s:\n%s", f.Path, golden, f.Content)
		}
	}
	// sysupdate installs in file-name order: the UKI last.
	if got := strings.Join(names, " "); got != "10-nodebake-root.transfer 20-nodebake-root-verity.transfer 90-nodebake-uki.transfer" {
		t.Errorf("transfers %s", got)
	}
}

func TestTransfersContent(t *testing.T) {
	files, err := Transfers(Config{Name: "worker", Source: "http://127.0.0.1:8080", Tries: 5, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range [][]string{
		{"Verify=yes", "Path=http://127.0.0.1:8080\n", "MatchPattern=worker_@v_@u.root.raw", "MatchPartitionType=root\n", "MatchPattern=worker_@v\n"},
		{"MatchPattern=worker_@v_@u.verity.raw", "MatchPartitionType=root-verity\n", "MatchPattern=worker_@v_verity\n"},
		{"MatchPattern=worker_@v.efi\n", "Path=/EFI/Linux\n", "PathRelativeTo=boot", "TriesLeft=5\n", "MatchPattern=worker_@v+@l-@d.efi worker_@v+@l.efi worker_@v.efi\n"},
	} {
		for _, w := range want {
			if !strings.Contains(files[i].Content, w) {
				t.Errorf("%s lacks %q:\n%s", files[i].Path, w, files[i].Content)
			}
		}
	}
}

func TestValidate(t *testing.T) {
	good := Config{Name: "nodebake", Source: "https://u.example/x", Tries: 3}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"name", func(c *Config) { c.Name = "Node_bake" }, "name"},
		{"empty name", func(c *Config) { c.Name = "" }, "name"},
		{"plain http", func(c *Config) { c.Source = "http://u.example/x" }, "https"},
		{"file", func(c *Config) { c.Source = "file:///srv/updates" }, "scheme://host"},
		{"user", func(c *Config) { c.Source = "https://me:pw@u.example/x" }, "without user"},
		{"query", func(c *Config) { c.Source = "https://u.example/x?a=1" }, "query"},
		{"newline", func(c *Config) { c.Source = "https://u.example/x\n[Source]" }, "source"},
		{"space", func(c *Config) { c.Source = "https://u.example/a b" }, "white space"},
		{"tries", func(c *Config) { c.Tries = 0 }, "tries"},
		{"too many tries", func(c *Config) { c.Tries = 10 }, "tries"},
	}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for _, tt := range tests {
		c := good
		tt.mutate(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one about %q", tt.name, err, tt.want)
		}
		if _, terr := Transfers(c); terr == nil {
			t.Errorf("%s: Transfers accepts it", tt.name)
		}
	}
	for _, ok := range []string{"http://127.0.0.1:1/u", "http://localhost/u", "http://[::1]:80/u", "https://u.example"} {
		c := good
		c.Source = ok
		if err := c.Validate(); err != nil {
			t.Errorf("source %s: %v", ok, err)
		}
	}
	c := good
	c.Source, c.AllowHTTP = "http://10.0.2.100:8080/u", true
	if err := c.Validate(); err != nil {
		t.Errorf("http with AllowHTTP: %v", err)
	}
}

// TestArtifactsPartitionUUIDs checks the @u of the artifact names against
// the PARTUUIDs a verified disk gives its partitions.
func TestArtifactsPartitionUUIDs(t *testing.T) {
	data := bytes.Repeat([]byte{7}, 3*verity.BlockSize)
	tree, err := verity.Format(context.Background(), bytes.NewReader(data), int64(len(data)), discard{}, 0,
		verity.Params{UUID: uuid.MustParse("00000000-0000-4000-8000-000000000001")})
	if err != nil {
		t.Fatal(err)
	}
	root, ver, uki, err := Artifacts("nodebake", "1.35.5-1", tree.RootHashHex())
	if err != nil {
		t.Fatal(err)
	}
	d, h := tree.PartitionUUIDs()
	if want := "nodebake_1.35.5-1_" + d.String() + ".root.raw"; root != want {
		t.Errorf("root %s, want %s", root, want)
	}
	if want := "nodebake_1.35.5-1_" + h.String() + ".verity.raw"; ver != want {
		t.Errorf("verity %s, want %s", ver, want)
	}
	if uki != "nodebake_1.35.5-1.efi" {
		t.Errorf("uki %s", uki)
	}
	for _, bad := range []string{"", "00", strings.Repeat("A", 64), strings.Repeat("0", 63) + "g"} {
		if _, _, _, err := Artifacts("n", "1", bad); err == nil {
			t.Errorf("root hash %q accepted", bad)
		}
	}
}

type discard struct{}

func (discard) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }
