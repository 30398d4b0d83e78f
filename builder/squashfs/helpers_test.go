package squashfs

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// wantEntry describes one tar entry of a test tree and what must be read back.
type wantEntry struct {
	name     string // tar name
	typ      byte
	mode     int64
	uid, gid int
	mtime    int64
	data     []byte
	link     string // symlink or hardlink target
	major    int64
	minor    int64
	xattrs   map[string]string
}

const testMtime = 1700000000

// capNetRaw is the security.capability value of cap_net_raw+ep.
const capNetRaw = "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"

// testData returns n deterministic bytes: kind "text" compresses well,
// "random" does not, "zero" is all zeros.
func testData(kind string, n int, seed uint64) []byte {
	b := make([]byte, n)
	switch kind {
	case "random":
		r := rand.New(rand.NewPCG(seed, 42))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
	case "text":
		words := []string{"kubelet ", "containerd ", "squashfs ", "node ", "image\n", "bake ", "root "}
		r := rand.New(rand.NewPCG(seed, 7))
		var buf bytes.Buffer
		for buf.Len() < n {
			buf.WriteString(words[r.IntN(len(words))])
		}
		copy(b, buf.Bytes())
	}
	return b
}

// testTree returns the entries of the reference test tree for block size bs.
func testTree(bs int) []wantEntry {
	sparse := make([]byte, 2<<20)
	copy(sparse, testData("text", 70000, 1))
	copy(sparse[len(sparse)-100:], testData("random", 100, 2))
	e := []wantEntry{
		{name: "./", typ: tar.TypeDir, mode: 0o755, mtime: testMtime},
		{name: "bin/", typ: tar.TypeDir, mode: 0o755, mtime: testMtime},
		{name: "bin/empty", typ: tar.TypeReg, mode: 0o644, mtime: testMtime},
		{name: "bin/one", typ: tar.TypeReg, mode: 0o644, mtime: testMtime + 1, data: []byte("x")},
		{name: "bin/bs-1", typ: tar.TypeReg, mode: 0o755, mtime: testMtime, data: testData("text", bs-1, 3)},
		{name: "bin/bs", typ: tar.TypeReg, mode: 0o755, mtime: testMtime, data: testData("text", bs, 4)},
		{name: "bin/bs+1", typ: tar.TypeReg, mode: 0o755, mtime: testMtime, data: testData("text", bs+1, 5)},
		{name: "bin/3bs+17", typ: tar.TypeReg, mode: 0o755, mtime: testMtime, data: testData("text", 3*bs+17, 6)},
		{name: "bin/random", typ: tar.TypeReg, mode: 0o644, mtime: testMtime, data: testData("random", 3*bs+17, 7)},
		{name: "bin/sparse", typ: tar.TypeReg, mode: 0o600, mtime: testMtime, data: sparse},
		{name: "bin/zeros", typ: tar.TypeReg, mode: 0o600, mtime: testMtime, data: make([]byte, 2*bs+5)},
		{name: "bin/su", typ: tar.TypeReg, mode: 0o4755, mtime: testMtime, data: testData("random", 5000, 8)},
		{name: "bin/su-link", typ: tar.TypeLink, link: "bin/su"},
		{name: "bin/ping", typ: tar.TypeReg, mode: 0o755, mtime: testMtime, data: testData("text", 3000, 9),
			xattrs: map[string]string{"security.capability": capNetRaw, "user.test": "hello"}},
		{name: "bin/sh", typ: tar.TypeSymlink, mode: 0o777, mtime: testMtime, link: "busybox"},
		{name: "bin/sh-hard", typ: tar.TypeLink, link: "bin/sh"},
		{name: "bin/abs", typ: tar.TypeSymlink, mode: 0o777, mtime: testMtime, link: "/usr/lib/x/../y"},
		{name: "d/", typ: tar.TypeDir, mode: 0o700, uid: 1000, gid: 1000, mtime: testMtime},
		{name: "d/a", typ: tar.TypeReg, mode: 0o640, uid: 1000, gid: 1000, mtime: testMtime, data: []byte("hardlinked\n")},
		{name: "d/b", typ: tar.TypeLink, link: "d/a"},
		{name: "d/nobody", typ: tar.TypeReg, mode: 0o600, uid: 65534, gid: 65534, mtime: testMtime, data: []byte("nobody\n")},
		{name: "d/setgid/", typ: tar.TypeDir, mode: 0o2775, gid: 1000, mtime: testMtime},
		{name: "d/setgid/x", typ: tar.TypeReg, mode: 0o664, gid: 1000, mtime: testMtime, data: []byte("x\n")},
		{name: "tmp/", typ: tar.TypeDir, mode: 0o1777, mtime: testMtime},
		{name: "dev/", typ: tar.TypeDir, mode: 0o755, mtime: testMtime},
		{name: "dev/null", typ: tar.TypeChar, mode: 0o666, mtime: testMtime, major: 1, minor: 3},
		{name: "dev/null-hard", typ: tar.TypeLink, link: "dev/null"},
		{name: "dev/sda", typ: tar.TypeBlock, mode: 0o660, gid: 6, mtime: testMtime, major: 8, minor: 0},
		{name: "dev/big", typ: tar.TypeChar, mode: 0o600, mtime: testMtime, major: 4000, minor: 1000000},
		{name: "run/", typ: tar.TypeDir, mode: 0o755, mtime: testMtime},
		{name: "run/fifo", typ: tar.TypeFifo, mode: 0o644, mtime: testMtime},
		{name: "etc/", typ: tar.TypeDir, mode: 0o755, mtime: testMtime,
			xattrs: map[string]string{"trusted.overlay.opaque": "y"}},
		{name: "etc/dup", typ: tar.TypeReg, mode: 0o644, mtime: testMtime, data: []byte("first\n")},
		{name: "etc/dup", typ: tar.TypeReg, mode: 0o600, mtime: testMtime, data: []byte("second wins\n")},
		{name: "/abs/file", typ: tar.TypeReg, mode: 0o644, mtime: testMtime, data: []byte("implicit parent\n")},
		{name: "./dot/file", typ: tar.TypeReg, mode: 0o644, mtime: testMtime, data: []byte("dot slash\n")},
		{name: "dup/", typ: tar.TypeDir, mode: 0o755, mtime: testMtime},
		{name: "dup/3bs+17", typ: tar.TypeReg, mode: 0o700, uid: 1000, mtime: testMtime + 5, data: testData("text", 3*bs+17, 6)},
		{name: "dup/random", typ: tar.TypeReg, mode: 0o644, mtime: testMtime, data: testData("random", 3*bs+17, 7)},
		{name: "dup/one", typ: tar.TypeReg, mode: 0o644, mtime: testMtime, data: []byte("x")},
		{name: "dup/bs", typ: tar.TypeReg, mode: 0o644, mtime: testMtime, data: testData("text", bs, 4)},
		{name: "dup/zeros", typ: tar.TypeReg, mode: 0o644, mtime: testMtime, data: make([]byte, 2*bs+5)},
		{name: "big/", typ: tar.TypeDir, mode: 0o755, mtime: testMtime},
	}
	for i := range 5000 {
		name := fmt.Sprintf("big/entry-with-a-longish-name-%05d", i)
		switch i % 1000 {
		case 7:
			e = append(e, wantEntry{name: name + "/", typ: tar.TypeDir, mode: 0o755, mtime: testMtime})
		case 8:
			e = append(e, wantEntry{name: name, typ: tar.TypeSymlink, mode: 0o777, mtime: testMtime, link: "target"})
		default:
			e = append(e, wantEntry{name: name, typ: tar.TypeReg, mode: 0o644, mtime: testMtime + int64(i),
				data: []byte(name + "\n")})
		}
	}
	return e
}

func makeTar(t testing.TB, entries []wantEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name: e.name, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.gid,
			ModTime: time.Unix(e.mtime, 0), Linkname: e.link, Devmajor: e.major, Devminor: e.minor,
			Format: tar.FormatPAX,
		}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.data))
		}
		if len(e.xattrs) > 0 {
			h.PAXRecords = map[string]string{}
			for k, v := range e.xattrs {
				h.PAXRecords["SCHILY.xattr."+k] = v
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("writing tar header %s: %v", e.name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatalf("writing tar data %s: %v", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// resolved is what a path of the test tree must look like after reading back.
type resolved struct {
	wantEntry
	path  string // cleaned
	nlink int
}

// expectTree applies tar extraction semantics to entries.
func expectTree(entries []wantEntry, modTime int64) map[string]*resolved {
	clean := func(n string) string {
		n = strings.TrimLeft(strings.TrimPrefix(strings.TrimLeft(n, "/"), "./"), "/")
		n = strings.TrimSuffix(n, "/")
		return n
	}
	m := map[string]*resolved{"": {wantEntry: wantEntry{typ: tar.TypeDir, mode: 0o755, mtime: modTime}}}
	for _, e := range entries {
		p := clean(e.name)
		for d := filepath.Dir(p); d != "." && d != ""; d = filepath.Dir(d) {
			if _, ok := m[d]; !ok {
				m[d] = &resolved{wantEntry: wantEntry{typ: tar.TypeDir, mode: 0o755, mtime: modTime}, path: d}
			}
		}
		if e.typ == tar.TypeLink {
			tgt := m[clean(e.link)]
			m[p] = tgt
			continue
		}
		m[p] = &resolved{wantEntry: e, path: p}
	}
	parent := func(q string) string {
		if i := strings.LastIndex(q, "/"); i >= 0 {
			return q[:i]
		}
		return ""
	}
	for p, r := range m {
		if r.typ != tar.TypeDir {
			r.nlink++
			continue
		}
		r.nlink = 2
		for q, c := range m {
			if q != "" && c.typ == tar.TypeDir && parent(q) == p {
				r.nlink++
			}
		}
	}
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// needTool returns the path of an external tool, skipping the test when it is
// absent unless NODEBAKE_REQUIRE_TOOLS=1.
func needTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("NODEBAKE_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%s is required (NODEBAKE_REQUIRE_TOOLS=1): %v", name, err)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}

// buildImage writes the tar to a squashfs file in a temp dir.
func buildImage(t testing.TB, tarData []byte, opts Options) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "fs.sqfs")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := Write(context.Background(), f, bytes.NewReader(tarData), opts)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != n || n%4096 != 0 {
		t.Fatalf("Write returned %d, file is %d bytes (want equal and a multiple of 4096)", n, st.Size())
	}
	return img
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// fastTempDir returns a temporary directory on tmpfs when there is one:
// extracting thousands of files there takes a fraction of the time it takes
// on a busy disk.
func fastTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "squashfs-test-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
