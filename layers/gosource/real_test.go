package gosource_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nodebake/nodebake/layers/components"
	"github.com/nodebake/nodebake/layers/gosource"
	"github.com/nodebake/nodebake/test/harness"
)

// TestRealBuildReportsProgress builds the CNI loopback plugin through the
// module proxy with an empty Go build cache, so that packages are really
// compiled, and checks the reports against what was built.
func TestRealBuildReportsProgress(t *testing.T) {
	harness.RequireSlow(t)
	t.Setenv("GOCACHE", filepath.Join(t.TempDir(), "gocache"))
	r, err := components.Recipe("cni-plugins")
	if err != nil {
		t.Fatal(err)
	}
	var loopback []gosource.Binary
	for _, b := range r.Binaries {
		if b.Name == "loopback" {
			loopback = append(loopback, b)
		}
	}
	r.Binaries = loopback
	var mu sync.Mutex
	var reports []gosource.Progress
	b := gosource.Builder{
		Log: harness.LogWriter(t, "go: "),
		Progress: func(p gosource.Progress) {
			mu.Lock()
			reports = append(reports, p)
			mu.Unlock()
			t.Log(p)
		},
		ProgressInterval: 2 * time.Second,
	}
	out := t.TempDir()
	if err := b.Build(t.Context(), r, "v1.8.0", "amd64", out); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(out, "loopback")); err != nil || fi.Size() == 0 {
		t.Fatalf("the built plugin: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	last := reports[len(reports)-1]
	// With an empty build cache every package is compiled: the standard
	// library's and the plugin's.
	if !last.Done || last.Total < 50 || last.Compiled < last.Total/2 || last.Compiled > last.Total {
		t.Errorf("last report %+v: want Done, with most of its packages compiled", last)
	}
	if max := int(last.Elapsed/b.ProgressInterval) + 1; len(reports) > max {
		t.Errorf("%d reports in %s: more than one per %s", len(reports), last.Elapsed, b.ProgressInterval)
	}
}
