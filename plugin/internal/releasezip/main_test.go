package main

import (
	"archive/zip"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "bin")
	if err := os.WriteFile(src, []byte("plugin binary"), 0o700); err != nil {
		t.Fatal(err)
	}
	when := time.Unix(1700000000, 0)
	a, b := filepath.Join(dir, "a.zip"), filepath.Join(dir, "b.zip")
	for _, out := range []string{a, b} {
		if err := write(out, "packer-plugin-nodebake_v1.2.3_x5.0_linux_amd64", src, when); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond) // a wall-clock time would show
	}
	ab, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if !bytes.Equal(ab, bb) {
		t.Error("the same file gave two different archives")
	}
	zr, err := zip.OpenReader(a)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	if len(zr.File) != 1 {
		t.Fatalf("%d entries", len(zr.File))
	}
	f := zr.File[0]
	if f.Name != "packer-plugin-nodebake_v1.2.3_x5.0_linux_amd64" || f.Mode().Perm() != 0o755 || !f.Modified.Equal(when) {
		t.Errorf("entry %s, mode %v, time %v", f.Name, f.Mode(), f.Modified)
	}
	rc, err := f.Open()
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != "plugin binary" {
		t.Errorf("content %q", got)
	}
	for _, bad := range []string{"", "a/b", "..", `a\b`} {
		if err := write(filepath.Join(dir, "c.zip"), bad, src, when); err == nil {
			t.Errorf("entry name %q accepted", bad)
		}
	}
	if err := write(filepath.Join(dir, "d.zip"), "x", dir, when); err == nil {
		t.Error("a directory was archived")
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name() != "bin" && e.Name() != "a.zip" && e.Name() != "b.zip" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

func TestEntryTime(t *testing.T) {
	for _, tt := range []struct {
		flag int64
		env  string
		want time.Time
		err  bool
	}{
		{-1, "", zipEpoch, false},
		{-1, "1700000000", time.Unix(1700000000, 0).UTC(), false},
		{5, "1700000000", zipEpoch, false},
		{1700000001, "", time.Unix(1700000001, 0).UTC(), false},
		{-1, "yesterday", time.Time{}, true},
		{-1, "-5", time.Time{}, true},
	} {
		got, err := entryTime(tt.flag, tt.env)
		if (err != nil) != tt.err || !got.Equal(tt.want) {
			t.Errorf("entryTime(%d, %q) = %v, %v", tt.flag, tt.env, got, err)
		}
	}
}
