package entry

import (
	"archive/tar"
	"io"
	"io/fs"
	"testing"
)

func TestCleanPath(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"usr/bin/x", "/usr/bin/x", true},
		{"./etc/", "/etc", true},
		{"/a//b/./c", "/a/b/c", true},
		{"./", "/", true},
		{"../etc/passwd", "", false},
		{"a/../../b", "", false},
		{"a/..", "", false},
		{"a\x00b", "", false},
	} {
		got, err := CleanPath(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("CleanPath(%q) = %q, %v; want %q ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestFileMode(t *testing.T) {
	for _, tc := range []struct {
		e    Entry
		want fs.FileMode
	}{
		{File("/f", 0o644, nil), 0o644},
		{Entry{Path: "/s", Type: tar.TypeReg, Mode: 0o4755}, fs.ModeSetuid | 0o755},
		{Entry{Path: "/t", Type: tar.TypeDir, Mode: 0o1777}, fs.ModeDir | fs.ModeSticky | 0o777},
		{Entry{Path: "/g", Type: tar.TypeReg, Mode: 0o2711}, fs.ModeSetgid | 0o711},
		{Dir("/d", 0o700), fs.ModeDir | 0o700},
		{Symlink("/l", "x"), fs.ModeSymlink | 0o777},
		{Entry{Path: "/c", Type: tar.TypeChar, Mode: 0o666}, fs.ModeDevice | fs.ModeCharDevice | 0o666},
		{Entry{Path: "/b", Type: tar.TypeBlock, Mode: 0o660}, fs.ModeDevice | 0o660},
		{Entry{Path: "/p", Type: tar.TypeFifo, Mode: 0o600}, fs.ModeNamedPipe | 0o600},
	} {
		if got := tc.e.FileMode(); got != tc.want {
			t.Errorf("%s: FileMode() = %v, want %v", tc.e.Path, got, tc.want)
		}
	}
}

func TestFileContent(t *testing.T) {
	e := File("/etc/x", 0o600, []byte("hello"))
	if e.Type != tar.TypeReg || e.Size != 5 || e.Mode != 0o600 {
		t.Fatalf("File = %+v", e)
	}
	for range 2 { // Open can be called again: each reader starts at the beginning
		rc, err := e.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if string(b) != "hello" {
			t.Fatalf("content = %q", b)
		}
	}
}
