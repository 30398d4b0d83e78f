package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/nodebake/nodebake/layers/entry"
)

type tent struct {
	name, link string
	typ        byte
	mode       int64
	uid        int
	data       string
	xattr      map[string]string
}

func mkTar(t *testing.T, ents []tent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Linkname: e.link, Size: int64(len(e.data)), Uname: "someone", Format: tar.FormatPAX}
		for k, v := range e.xattr {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, e.data)
	}
	tw.Close()
	return buf.Bytes()
}

type got struct {
	Name, Link string
	Type       byte
	Mode       int64
	UID        int
	Data       string
	Mtime      int64
	Xattrs     map[string]string
}

func readTar(t *testing.T, r io.Reader) []got {
	t.Helper()
	var out []got
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		g := got{Name: h.Name, Link: h.Linkname, Type: h.Typeflag, Mode: h.Mode, UID: h.Uid, Data: string(b), Mtime: h.ModTime.Unix()}
		for k, v := range h.PAXRecords {
			if n, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				if g.Xattrs == nil {
					g.Xattrs = map[string]string{}
				}
				g.Xattrs[n] = v
			}
		}
		if h.Uname != "" {
			t.Errorf("%s: uname %q kept", h.Name, h.Uname)
		}
		out = append(out, g)
	}
}

func normalize(t *testing.T, ents []tent) *Base {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "base.tar")
	if err := Normalize(context.Background(), bytes.NewReader(mkTar(t, ents)), dst, 42); err != nil {
		t.Fatal(err)
	}
	b, err := OpenBase(dst)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestNormalizeCanonicalOrder(t *testing.T) {
	// Upper-layer-first order as mutate.Extract emits it: a hardlink before
	// its target, parents missing, a setuid file with a capability.
	b := normalize(t, []tent{
		{name: "usr/bin/zz", typ: tar.TypeLink, link: "usr/bin/aa-target"},
		{name: "./usr/bin/aa-target", typ: tar.TypeReg, mode: 0o4755, data: "suid"},
		{name: "usr/bin/ping", typ: tar.TypeReg, mode: 0o755, data: "ping", xattr: map[string]string{"security.capability": "\x01\x00\x00\x02"}},
		{name: "etc/", typ: tar.TypeDir, mode: 0o755},
		{name: "etc/alternatives/x", typ: tar.TypeSymlink, link: "/usr/bin/ping"},
		{name: "home/u", typ: tar.TypeDir, mode: 0o700, uid: 1000},
	})
	var buf bytes.Buffer
	if err := Compose(context.Background(), &buf, b, nil, Options{ModTime: 7}); err != nil {
		t.Fatal(err)
	}
	want := []got{
		{Name: "./", Type: tar.TypeDir, Mode: 0o755, Mtime: 7},
		{Name: "etc/", Type: tar.TypeDir, Mode: 0o755, Mtime: 7},
		{Name: "etc/alternatives/", Type: tar.TypeDir, Mode: 0o755, Mtime: 7},
		{Name: "etc/alternatives/x", Type: tar.TypeSymlink, Link: "/usr/bin/ping", Mode: 0o777, Mtime: 7},
		{Name: "home/", Type: tar.TypeDir, Mode: 0o755, Mtime: 7},
		{Name: "home/u/", Type: tar.TypeDir, Mode: 0o700, UID: 1000, Mtime: 7},
		{Name: "usr/", Type: tar.TypeDir, Mode: 0o755, Mtime: 7},
		{Name: "usr/bin/", Type: tar.TypeDir, Mode: 0o755, Mtime: 7},
		{Name: "usr/bin/aa-target", Type: tar.TypeReg, Mode: 0o4755, Data: "suid", Mtime: 7},
		{Name: "usr/bin/ping", Type: tar.TypeReg, Mode: 0o755, Data: "ping", Mtime: 7, Xattrs: map[string]string{"security.capability": "\x01\x00\x00\x02"}},
		{Name: "usr/bin/zz", Type: tar.TypeLink, Link: "usr/bin/aa-target", Mode: 0o4755, Mtime: 7},
	}
	if diff := cmp.Diff(want, readTar(t, &buf)); diff != "" {
		t.Errorf("canonical stream (-want +got):\n%s", diff)
	}
}

func TestNormalizeHardlinkHolderIsFirstInOrder(t *testing.T) {
	// The data sits at a path that sorts after its link: the first path in
	// order must hold the data.
	b := normalize(t, []tent{
		{name: "b/data", typ: tar.TypeReg, mode: 0o644, data: "x"},
		{name: "a/link", typ: tar.TypeLink, link: "b/data"},
	})
	e, _ := b.Lookup("/a/link")
	if e.Type != tar.TypeReg || e.Size != 1 {
		t.Fatalf("/a/link = %+v, want the regular file", e)
	}
	e, _ = b.Lookup("/b/data")
	if e.Type != tar.TypeLink || e.Linkname != "/a/link" {
		t.Fatalf("/b/data = %+v, want a link to /a/link", e)
	}
}

func TestNormalizeErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		ents []tent
		want string
	}{
		{"dangling hardlink", []tent{{name: "a", typ: tar.TypeLink, link: "missing"}}, "points to /missing, which does not exist"},
		{"child of a file", []tent{{name: "f", typ: tar.TypeReg, data: "x"}, {name: "f/g", typ: tar.TypeReg}}, "not a directory"},
		{"climbing name", []tent{{name: "../etc/passwd", typ: tar.TypeReg}}, "climbs out of the root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			err := Normalize(context.Background(), bytes.NewReader(mkTar(t, tc.ents)), filepath.Join(dir, "out.tar"), 0)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
			if m, _ := filepath.Glob(filepath.Join(dir, "*")); len(m) != 0 {
				t.Errorf("left files behind: %v", m)
			}
		})
	}
}

func TestComposeOverlay(t *testing.T) {
	b := normalize(t, []tent{
		{name: "bin", typ: tar.TypeSymlink, link: "usr/bin"},
		{name: "boot/vmlinuz-6", typ: tar.TypeReg, data: "kernel"},
		{name: "etc/hostname", typ: tar.TypeReg, mode: 0o644, data: "builder-host\n"},
		{name: "usr/bin/", typ: tar.TypeDir, mode: 0o755},
	})
	overlay := []entry.Entry{
		entry.File("/etc/hostname", 0o644, []byte("localhost\n")),
		entry.File("/usr/local/bin/kubelet", 0o755, []byte("ELF")),
	}
	var buf bytes.Buffer
	if err := Compose(context.Background(), &buf, b, overlay, Options{Remove: []string{"/boot/vmlinuz-*"}}); err != nil {
		t.Fatal(err)
	}
	var names []string
	data := map[string]string{}
	for _, g := range readTar(t, &buf) {
		names = append(names, g.Name)
		data[g.Name] = g.Data
	}
	wantNames := []string{"./", "bin", "boot/", "etc/", "etc/hostname", "usr/", "usr/bin/", "usr/local/", "usr/local/bin/", "usr/local/bin/kubelet"}
	if diff := cmp.Diff(wantNames, names); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	if data["etc/hostname"] != "localhost\n" {
		t.Errorf("overlay did not replace /etc/hostname: %q", data["etc/hostname"])
	}

	for _, tc := range []struct {
		name string
		e    entry.Entry
		want string
	}{
		{"below a symlink", entry.File("/bin/x", 0o755, nil), "parent /bin is a symlink"},
		{"replace a dir", entry.File("/usr/bin", 0o755, nil), "replace a directory"},
		{"relative", entry.File("usr/x", 0o755, nil), "not absolute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Compose(context.Background(), io.Discard, b, []entry.Entry{tc.e}, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
