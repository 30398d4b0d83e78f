package components

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func fakeBins(t *testing.T, l Layout) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range l.Files {
		if err := os.WriteFile(filepath.Join(dir, f.Name), []byte("#!bin "+f.Name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestPackReleaseRoundTrip(t *testing.T) {
	for name, l := range Layouts() {
		t.Run(name, func(t *testing.T) {
			bins := fakeBins(t, l)
			out := filepath.Join(t.TempDir(), "artifact")
			if err := l.PackRelease(bins, out); err != nil {
				t.Fatal(err)
			}
			again := out + "2"
			if err := l.PackRelease(bins, again); err != nil {
				t.Fatal(err)
			}
			a, _ := os.ReadFile(out)
			b, _ := os.ReadFile(again)
			if string(a) != string(b) {
				t.Error("two packs of the same binaries differ")
			}
			ents, err := l.FromRelease(out)
			if err != nil {
				t.Fatal(err)
			}
			if len(ents) != len(l.Files) {
				t.Fatalf("got %d entries, want %d", len(ents), len(l.Files))
			}
			for i, e := range ents {
				if e.Path != l.Files[i].To || e.Mode != 0o755 || e.Type != tar.TypeReg {
					t.Errorf("entry %d = %s %o, want %s 0755", i, e.Path, e.Mode, l.Files[i].To)
				}
				rc, _ := e.Open()
				data, _ := io.ReadAll(rc)
				rc.Close()
				if string(data) != "#!bin "+l.Files[i].Name || int64(len(data)) != e.Size {
					t.Errorf("%s content = %q", e.Path, data)
				}
			}
			built, err := l.FromBuild(bins)
			if err != nil || len(built) != len(ents) {
				t.Fatalf("FromBuild: %v, %d entries", err, len(built))
			}
		})
	}
}

func TestFromReleaseMissingMember(t *testing.T) {
	l, _ := Lookup("containerd")
	bins := fakeBins(t, l)
	os.Remove(filepath.Join(bins, "ctr"))
	short := l
	short.Files = l.Files[:2]
	out := filepath.Join(t.TempDir(), "c.tgz")
	if err := short.PackRelease(bins, out); err != nil {
		t.Fatal(err)
	}
	if _, err := l.FromRelease(out); err == nil {
		t.Fatal("expected an error for a release without bin/ctr")
	}
}
