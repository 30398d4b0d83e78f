package publish

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nodebake/nodebake/layers/spec"
)

// testRaw writes a small sparse raw image with a few data regions.
func testRaw(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "src.raw")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(16 << 20); err != nil {
		t.Fatal(err)
	}
	for i, off := range []int64{0, 1<<20 + 4096, 9 << 20, 16<<20 - 512} {
		b := make([]byte, 512)
		for j := range b {
			b[j] = byte(i + j)
		}
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestConvertCommit(t *testing.T) {
	raw := testRaw(t)
	out := t.TempDir()
	formats := []spec.Format{spec.FormatRaw, spec.FormatRawZst, spec.FormatQCOW2, spec.FormatVHD, spec.FormatVMDK, spec.FormatGCE}
	st, err := Convert(t.Context(), raw, Options{Targets: targets(out, "w", formats...), Seed: []byte("seed"), ModTime: time.Unix(1700000000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if n := listDir(t, out); len(n) != 5 || !slices.Contains(n, ".w.qcow2.partial") {
		t.Errorf("before Commit the directory holds %v, want 5 temporary files", n)
	}
	if err := st.Commit(); err != nil {
		t.Fatal(err)
	}
	want := []string{"w.qcow2", "w.raw.zst", "w.tar.gz", "w.vhd", "w.vmdk"}
	if got := listDir(t, out); !slices.Equal(got, want) {
		t.Errorf("after Commit the directory holds %v, want %v", got, want)
	}
	for _, o := range st.Outputs {
		if len(o.Files) != 1 || o.Files[0].Path != o.Path {
			t.Fatalf("output %s: files %+v", o.Format, o.Files)
		}
		b, err := os.ReadFile(o.Path)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != o.Files[0].SHA256 || int64(len(b)) != o.Size() {
			t.Errorf("%s: recorded sha256 %s size %d, file has %x size %d", o.Format, o.Files[0].SHA256, o.Size(), sum, len(b))
		}
	}
	st.Remove()
	if got := listDir(t, out); len(got) != 0 {
		t.Errorf("after Remove the directory holds %v", got)
	}
}

func TestConvertFailureLeavesNothing(t *testing.T) {
	raw := testRaw(t)
	for _, tc := range []struct {
		name string
		opts Options
		ctx  func() context.Context
	}{
		{"cancelled", Options{Targets: []Target{{spec.FormatQCOW2, "w.qcow2"}, {spec.FormatVHD, "w.vhd"}}, Seed: []byte("s")},
			func() context.Context { c, cancel := context.WithCancel(context.Background()); cancel(); return c }},
		{"unknown format", Options{Targets: []Target{{spec.FormatQCOW2, "w.qcow2"}, {"qcow3", "w.qcow3"}}, Seed: []byte("s")}, context.Background},
		{"no path", Options{Targets: []Target{{spec.FormatQCOW2, ""}}, Seed: []byte("s")}, context.Background},
		{"netboot without firstboot", Options{Targets: []Target{{spec.FormatNetboot, "w.netboot"}}}, context.Background},
		{"bad netboot url", Options{Targets: []Target{{spec.FormatQCOW2, "w.qcow2"}, {spec.FormatNetboot, "w.netboot"}}, FirstbootBinary: "/nonexistent", NetbootURL: "ftp://x"}, context.Background},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			for i := range tc.opts.Targets {
				if tc.opts.Targets[i].Path != "" {
					tc.opts.Targets[i].Path = filepath.Join(out, tc.opts.Targets[i].Path)
				}
			}
			if _, err := Convert(tc.ctx(), raw, tc.opts); err == nil {
				t.Fatal("Convert succeeded")
			} else {
				t.Logf("error: %v", err)
			}
			if got := listDir(t, out); len(got) != 0 {
				t.Errorf("a failed Convert left %v", got)
			}
		})
	}
}

// targets names each format's output in dir as the build plan does.
func targets(dir, name string, formats ...spec.Format) []Target {
	var out []Target
	for _, f := range formats {
		i, _ := f.Info()
		out = append(out, Target{f, filepath.Join(dir, name+i.Extension)})
	}
	return out
}

// TestEveryFormatHasAWriter checks the format table against the writers:
// every format but raw (the input) and netboot (a bundle) is one file
// written by a converter.
func TestEveryFormatHasAWriter(t *testing.T) {
	for _, i := range spec.FormatTable() {
		_, ok := converters()[i.Format]
		if want := i.Format != spec.FormatRaw && !i.Directory; ok != want {
			t.Errorf("%s: converter %v, want %v", i.Format, ok, want)
		}
		if err := check(Target{i.Format, "/out/w" + i.Extension}); err != nil {
			t.Errorf("%s: %v", i.Format, err)
		}
	}
}
