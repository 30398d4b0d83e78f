package squashfs

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// configs are the option sets every read-back test runs with.
var configs = []struct {
	name string
	opts Options
}{
	{"default", Options{ModTime: testMtime}},
	{"4k-level15", Options{BlockSize: 4096, Level: 15, Workers: 3, ModTime: 1}},
	{"1m-level9", Options{BlockSize: 1 << 20, Level: 9, Workers: 1, ModTime: 2000000000}},
}

// lsMode formats a mode like ls -l does.
func lsMode(typ byte, mode int64) string {
	var b strings.Builder
	switch typ {
	case tar.TypeDir:
		b.WriteByte('d')
	case tar.TypeSymlink:
		b.WriteByte('l')
	case tar.TypeChar:
		b.WriteByte('c')
	case tar.TypeBlock:
		b.WriteByte('b')
	case tar.TypeFifo:
		b.WriteByte('p')
	default:
		b.WriteByte('-')
	}
	rwx := "rwxrwxrwx"
	for i := 0; i < 9; i++ {
		c := byte('-')
		if mode&(1<<(8-i)) != 0 {
			c = rwx[i]
		}
		special := int64(0)
		switch i {
		case 2:
			special = 0o4000
		case 5:
			special = 0o2000
		case 8:
			special = 0o1000
		}
		if special != 0 && mode&special != 0 {
			s := byte('s')
			if i == 8 {
				s = 't'
			}
			if c == '-' {
				s -= 'a' - 'A'
			}
			c = s
		}
		b.WriteByte(c)
	}
	return b.String()
}

func TestReadBackUnsquashfs(t *testing.T) {
	unsquashfs := needTool(t, "unsquashfs")
	for _, cfg := range configs {
		t.Run(cfg.name, func(t *testing.T) {
			opts, err := cfg.opts.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			entries := testTree(opts.BlockSize)
			want := expectTree(entries, opts.ModTime)
			img := buildImage(t, makeTar(t, entries), cfg.opts)

			super := run(t, unsquashfs, "-s", img)
			for _, s := range []string{"Compression zstd", fmt.Sprintf("Block size %d\n", opts.BlockSize),
				fmt.Sprintf("Number of inodes %d\n", countInodes(want))} {
				if !strings.Contains(super, s) {
					t.Errorf("unsquashfs -s lacks %q:\n%s", s, super)
				}
			}
			if level := fmt.Sprintf("compression-level %d\n", opts.Level); (opts.Level != 15) != strings.Contains(super, level) {
				t.Errorf("unsquashfs -s: compression level %d shown wrongly:\n%s", opts.Level, super)
			}

			checkListing(t, run(t, unsquashfs, "-lln", img), want)

			dir := filepath.Join(fastTempDir(t), "x")
			run(t, unsquashfs, "-d", dir, "-f", "-no-progress", img)
			compareFS(t, dir, want, fsChecks{owners: os.Geteuid() == 0, xattrs: os.Geteuid() == 0})
		})
	}
}

func countInodes(want map[string]*resolved) int {
	seen := map[*resolved]bool{}
	for _, r := range want {
		seen[r] = true
	}
	return len(seen)
}

// checkListing compares the output of unsquashfs -lln with want.
func checkListing(t *testing.T, out string, want map[string]*resolved) {
	t.Helper()
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			t.Errorf("unexpected listing line %q", line)
			continue
		}
		perms, owner := f[0], f[1]
		var size, date, tm, path, target string
		switch perms[0] {
		case 'c', 'b':
			size, date, tm, path = f[2]+f[3], f[4], f[5], f[6]
		default:
			size, date, tm, path = f[2], f[3], f[4], f[5]
			if len(f) == 8 && f[6] == "->" {
				target = f[7]
			}
		}
		path = strings.TrimPrefix(strings.TrimPrefix(path, "squashfs-root"), "/")
		seen[path] = true
		w, ok := want[path]
		if !ok {
			t.Errorf("unexpected path %q in listing", path)
			continue
		}
		if got := lsMode(w.typ, w.mode); perms != got {
			t.Errorf("%s: mode %s, want %s", path, perms, got)
		}
		if o := fmt.Sprintf("%d/%d", w.uid, w.gid); owner != o {
			t.Errorf("%s: owner %s, want %s", path, owner, o)
		}
		if mt := time.Unix(w.mtime, 0).UTC().Format("2006-01-02 15:04"); date+" "+tm != mt {
			t.Errorf("%s: mtime %s %s, want %s", path, date, tm, mt)
		}
		switch w.typ {
		case tar.TypeReg:
			if size != strconv.Itoa(len(w.data)) {
				t.Errorf("%s: size %s, want %d", path, size, len(w.data))
			}
		case tar.TypeSymlink:
			if target != w.link {
				t.Errorf("%s: target %q, want %q", path, target, w.link)
			}
		case tar.TypeChar, tar.TypeBlock:
			// unsquashfs 4.5 prints minors above 255 wrongly; compareFS
			// checks those.
			if w.minor < 256 && size != fmt.Sprintf("%d,%d", w.major, w.minor) {
				t.Errorf("%s: device %s, want %d,%d", path, size, w.major, w.minor)
			}
		}
	}
	for p := range want {
		if !seen[p] {
			t.Errorf("path %q missing from listing", p)
		}
	}
}

type fsChecks struct {
	owners bool
	xattrs bool
}

// compareFS compares an extracted or mounted tree with want.
func compareFS(t *testing.T, root string, want map[string]*resolved, c fsChecks) {
	t.Helper()
	found := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			rel = ""
		}
		found[rel] = true
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}
	for p := range found {
		if _, ok := want[p]; !ok {
			t.Errorf("unexpected path %q", p)
		}
	}
	inodes := map[*resolved]uint64{}
	for _, p := range sortedKeys(want) {
		w := want[p]
		full := filepath.Join(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(full, &st); err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		wantFmt := map[byte]uint32{tar.TypeDir: unix.S_IFDIR, tar.TypeReg: unix.S_IFREG, tar.TypeSymlink: unix.S_IFLNK,
			tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[w.typ]
		if st.Mode&unix.S_IFMT != wantFmt {
			t.Errorf("%s: file type %o, want %o", p, st.Mode&unix.S_IFMT, wantFmt)
			continue
		}
		if w.typ != tar.TypeSymlink && int64(st.Mode&0o7777) != w.mode {
			t.Errorf("%s: mode %o, want %o", p, st.Mode&0o7777, w.mode)
		}
		if c.owners && (int(st.Uid) != w.uid || int(st.Gid) != w.gid) {
			t.Errorf("%s: owner %d:%d, want %d:%d", p, st.Uid, st.Gid, w.uid, w.gid)
		}
		if st.Mtim.Sec != w.mtime {
			t.Errorf("%s: mtime %d, want %d", p, st.Mtim.Sec, w.mtime)
		}
		if int(st.Nlink) != w.nlink {
			t.Errorf("%s: nlink %d, want %d", p, st.Nlink, w.nlink)
		}
		if ino, ok := inodes[w]; ok && ino != st.Ino {
			t.Errorf("%s: not a hardlink of its target (inode %d, want %d)", p, st.Ino, ino)
		}
		inodes[w] = st.Ino
		switch w.typ {
		case tar.TypeReg:
			got, err := os.ReadFile(full)
			if err != nil {
				t.Errorf("%s: %v", p, err)
			} else if !bytes.Equal(got, w.data) {
				t.Errorf("%s: contents differ (%d bytes, want %d)", p, len(got), len(w.data))
			}
		case tar.TypeSymlink:
			if got, err := os.Readlink(full); err != nil || got != w.link {
				t.Errorf("%s: symlink target %q (%v), want %q", p, got, err, w.link)
			}
		case tar.TypeChar, tar.TypeBlock:
			if unix.Major(st.Rdev) != uint32(w.major) || unix.Minor(st.Rdev) != uint32(w.minor) {
				t.Errorf("%s: device %d:%d, want %d:%d", p, unix.Major(st.Rdev), unix.Minor(st.Rdev), w.major, w.minor)
			}
		}
		if c.xattrs {
			if got := readXattrs(t, full); !equalMaps(got, w.xattrs) {
				t.Errorf("%s: xattrs %q, want %q", p, got, w.xattrs)
			}
		}
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func readXattrs(t *testing.T, path string) map[string]string {
	t.Helper()
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(path, buf)
	if err != nil {
		t.Errorf("listing xattrs of %s: %v", path, err)
		return nil
	}
	m := map[string]string{}
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" {
			continue
		}
		val := make([]byte, 64<<10)
		vn, err := unix.Lgetxattr(path, name, val)
		if err != nil {
			t.Errorf("reading xattr %s of %s: %v", name, path, err)
			continue
		}
		m[name] = string(val[:vn])
	}
	return m
}

func TestReadBackRdsquashfs(t *testing.T) {
	rdsquashfs := needTool(t, "rdsquashfs")
	entries := testTree(DefaultBlockSize)
	entries = append(entries,
		wantEntry{name: "x/", typ: tar.TypeDir, mode: 0o755, mtime: testMtime},
		wantEntry{name: "x/link", typ: tar.TypeSymlink, mode: 0o777, mtime: testMtime, link: "t",
			xattrs: map[string]string{"trusted.a": "1"}},
		wantEntry{name: "x/dev", typ: tar.TypeBlock, mode: 0o600, mtime: testMtime, major: 7, minor: 1,
			xattrs: map[string]string{"trusted.b": "2"}},
		wantEntry{name: "x/fifo", typ: tar.TypeFifo, mode: 0o600, mtime: testMtime,
			xattrs: map[string]string{"security.c": "3", "trusted.d": "4"}},
		wantEntry{name: "x/hard", typ: tar.TypeLink, link: "bin/ping"},
	)
	want := expectTree(entries, testMtime)
	img := buildImage(t, makeTar(t, entries), Options{ModTime: testMtime})

	tests := []struct {
		path      string
		inodeType string
		nlink     int
	}{
		{"/bin/ping", "extended file", 2},
		{"/bin/one", "file", 0}, // basic files have no link count
		{"/bin/su", "extended file", 2},
		{"/etc", "extended directory", 2},
		{"/big", "extended directory", 7},
		{"/bin", "directory", 2},
		{"/x/link", "extended symbolic link", 1},
		{"/x/dev", "extended block device", 1},
		{"/x/fifo", "extended named pipe", 1},
		{"/dev/null", "character device", 2},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.path[1:], "/", "_"), func(t *testing.T) {
			st := run(t, rdsquashfs, "-s", tt.path, img)
			if !strings.Contains(st, "Inode type: "+tt.inodeType+"\n") {
				t.Errorf("want inode type %q:\n%s", tt.inodeType, st)
			}
			if tt.nlink > 0 && !strings.Contains(st, fmt.Sprintf("Hard link count: %d\n", tt.nlink)) {
				t.Errorf("want link count %d:\n%s", tt.nlink, st)
			}
			w := want[strings.TrimPrefix(tt.path, "/")]
			got := map[string]string{}
			for _, line := range strings.Split(run(t, rdsquashfs, "-x", tt.path, img), "\n") {
				if k, v, ok := strings.Cut(line, "="); ok {
					if strings.HasPrefix(v, "0x") {
						var b []byte
						for i := 2; i+1 < len(v); i += 2 {
							x, _ := strconv.ParseUint(v[i:i+2], 16, 8)
							b = append(b, byte(x))
						}
						v = string(b)
					}
					got[k] = v
				}
			}
			if !equalMaps(got, w.xattrs) {
				t.Errorf("xattrs %q, want %q", got, w.xattrs)
			}
		})
	}
	if out := run(t, rdsquashfs, "-l", "/big", img); strings.Count(out, "\n") != 5000 {
		t.Errorf("rdsquashfs lists %d entries in /big, want 5000", strings.Count(out, "\n"))
	}
}

// TestSameAsMksquashfs extracts the tar with GNU tar, packs the tree with
// mksquashfs and compares both images with sqfsdiff (contents, owners,
// permissions).
func TestSameAsMksquashfs(t *testing.T) {
	mksquashfs := needTool(t, "mksquashfs")
	sqfsdiff := needTool(t, "sqfsdiff")
	tarTool := needTool(t, "tar")
	if os.Geteuid() != 0 {
		t.Skip("needs root to extract owners and devices")
	}
	tarData := makeTar(t, testTree(DefaultBlockSize))
	ours := buildImage(t, tarData, Options{ModTime: testMtime})
	tmp := fastTempDir(t)
	tarFile, tree, theirs := filepath.Join(tmp, "in.tar"), filepath.Join(tmp, "tree"), filepath.Join(tmp, "m.sqfs")
	if err := os.WriteFile(tarFile, tarData, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, tarTool, "--xattrs", "--xattrs-include=*", "--same-owner", "-xpf", tarFile, "-C", tree)
	run(t, mksquashfs, tree, theirs, "-comp", "zstd", "-noappend", "-no-progress", "-quiet")
	cmd := exec.Command(sqfsdiff, "-a", ours, "-b", theirs)
	out, err := cmd.CombinedOutput()
	var diffs []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		// mksquashfs does not use the extended inode for files with
		// sparse blocks; we do, for the kernel's block accounting.
		if l != "" && !strings.HasSuffix(l, "has a basic type") && !strings.HasSuffix(l, "has an extended type") {
			diffs = append(diffs, l)
		}
	}
	if len(diffs) > 0 || (err != nil && len(out) == 0) {
		t.Errorf("sqfsdiff: %v\n%s", err, strings.Join(diffs, "\n"))
	}
}

func TestKernelMount(t *testing.T) {
	if os.Getenv("NODEBAKE_SLOW") == "" {
		t.Skip("set NODEBAKE_SLOW=1 to mount images with the kernel")
	}
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	mount, umount := needTool(t, "mount"), needTool(t, "umount")
	for _, cfg := range configs {
		t.Run(cfg.name, func(t *testing.T) {
			opts, _ := cfg.opts.withDefaults()
			entries := testTree(opts.BlockSize)
			want := expectTree(entries, opts.ModTime)
			img := buildImage(t, makeTar(t, entries), cfg.opts)
			mnt := t.TempDir()
			if out, err := exec.Command(mount, "-t", "squashfs", "-o", "loop,ro", img, mnt).CombinedOutput(); err != nil {
				if os.Getenv("NODEBAKE_REQUIRE_TOOLS") == "1" {
					t.Fatalf("mount: %v\n%s", err, out)
				}
				t.Skipf("cannot loop-mount here: %v\n%s", err, out)
			}
			t.Cleanup(func() {
				if out, err := exec.Command(umount, mnt).CombinedOutput(); err != nil {
					t.Errorf("umount: %v\n%s", err, out)
				}
			})
			compareFS(t, mnt, want, fsChecks{owners: true, xattrs: true})
			// Look every name of the big directory up in reverse order
			// (the kernel uses the directory index for lookups).
			for i := 4999; i >= 0; i-- {
				p := filepath.Join(mnt, "big", fmt.Sprintf("entry-with-a-longish-name-%05d", i))
				if _, err := os.Lstat(p); err != nil {
					t.Errorf("lookup: %v", err)
				}
				if _, err := os.Lstat(p + "-missing"); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("lookup of a missing name: %v", err)
				}
			}
		})
	}
}

// memImage is an in-memory io.WriterAt.
type memImage struct{ b []byte }

func (m *memImage) WriteAt(p []byte, off int64) (int, error) {
	if end := int(off) + len(p); end > len(m.b) {
		m.b = append(m.b, make([]byte, end-len(m.b))...)
	}
	return copy(m.b[off:], p), nil
}

func TestDeterministic(t *testing.T) {
	tarData := makeTar(t, testTree(4096))
	var first []byte
	for _, workers := range []int{1, 4, 2, 7} {
		var m memImage
		n, err := Write(context.Background(), &m, bytes.NewReader(tarData), Options{BlockSize: 4096, Workers: workers, ModTime: 5})
		if err != nil {
			t.Fatal(err)
		}
		if int(n) != len(m.b) {
			t.Fatalf("Workers=%d: returned size %d, wrote %d bytes", workers, n, len(m.b))
		}
		if first == nil {
			first = m.b
		} else if !bytes.Equal(first, m.b) {
			t.Fatalf("Workers=%d: image differs from Workers=1", workers)
		}
	}
}

// TestDuplicateContents checks that a file repeating an earlier one shares
// its blocks, and that the blocks written before the repetition was known
// are cleared when they end up past the end of the filesystem.
func TestDuplicateContents(t *testing.T) {
	for _, bs := range []int{4096, DefaultBlockSize} {
		orig := wantEntry{name: "a", typ: tar.TypeReg, mode: 0o644, data: testData("random", 3<<20+100, 11)}
		dup := orig
		dup.name = "b"
		single, both := &memImage{}, &memImage{}
		n1, err := Write(context.Background(), single, bytes.NewReader(makeTar(t, []wantEntry{orig})), Options{BlockSize: bs})
		if err != nil {
			t.Fatal(err)
		}
		n2, err := Write(context.Background(), both, bytes.NewReader(makeTar(t, []wantEntry{orig, dup})), Options{BlockSize: bs})
		if err != nil {
			t.Fatal(err)
		}
		// The duplicate's blocks were written before it was known to be
		// one, and ended past the tables: they become zero padding.
		if n2 < 2*int64(len(orig.data)) || int64(len(both.b)) != n2 {
			t.Fatalf("block size %d: image is %d bytes, wrote %d, want >= %d", bs, n2, len(both.b), 2*len(orig.data))
		}
		if pad := both.b[n1:]; !bytes.Equal(pad, make([]byte, len(pad))) {
			t.Errorf("block size %d: padding is not zero", bs)
		}
		inodes := binary.LittleEndian.Uint64(single.b[64:])
		if got := binary.LittleEndian.Uint64(both.b[64:]); got != inodes || !bytes.Equal(both.b[:inodes][superblockSize:], single.b[:inodes][superblockSize:]) {
			t.Errorf("block size %d: data area with a duplicate differs from the one without", bs)
		}
	}
}

func TestDroppedXattrs(t *testing.T) {
	entries := []wantEntry{{name: "f", typ: tar.TypeReg, mode: 0o644,
		xattrs: map[string]string{"system.posix_acl_access": "acl", "user.kept": "1"}}}
	var dropped []string
	opts := Options{DroppedXattr: func(entry, name string) { dropped = append(dropped, entry+" "+name) }}
	img := &memImage{}
	if _, err := Write(context.Background(), img, bytes.NewReader(makeTar(t, entries)), opts); err != nil {
		t.Fatal(err)
	}
	if len(dropped) != 1 || dropped[0] != "f system.posix_acl_access" {
		t.Errorf("dropped %q, want [f system.posix_acl_access]", dropped)
	}
	if rdsquashfs, err := exec.LookPath("rdsquashfs"); err == nil {
		path := filepath.Join(t.TempDir(), "fs.sqfs")
		if err := os.WriteFile(path, img.b, 0o600); err != nil {
			t.Fatal(err)
		}
		if out := run(t, rdsquashfs, "-x", "/f", path); out != "user.kept=1\n" {
			t.Errorf("xattrs of f: %q, want user.kept=1", out)
		}
	}
}

type failingWriter struct{}

func (failingWriter) WriteAt([]byte, int64) (int, error) { return 0, errors.New("disk full") }

func TestBadInput(t *testing.T) {
	file := func(name, data string) wantEntry {
		return wantEntry{name: name, typ: tar.TypeReg, mode: 0o644, data: []byte(data)}
	}
	tests := []struct {
		name    string
		entries []wantEntry
		entry   string // entry the error must name
		msg     string
	}{
		{"hardlink to missing target", []wantEntry{file("a", "x"), {name: "b", typ: tar.TypeLink, link: "nope"}}, "b", "does not exist"},
		{"hardlink to directory", []wantEntry{{name: "d/", typ: tar.TypeDir, mode: 0o755}, {name: "l", typ: tar.TypeLink, link: "d"}}, "l", "is a directory"},
		{"entry under a file", []wantEntry{file("f", "x"), file("f/child", "y")}, "f/child", "not a directory"},
		{"dot dot", []wantEntry{file("../evil", "x")}, "../evil", `".."`},
		{"long name", []wantEntry{file(strings.Repeat("n", 257), "x")}, strings.Repeat("n", 257), "longer than 256"},
		{"root not a directory", []wantEntry{file(".", "x")}, ".", "root must be a directory"},
		{"empty symlink", []wantEntry{{name: "s", typ: tar.TypeSymlink, link: ""}}, "s", "empty symlink"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m memImage
			_, err := Write(context.Background(), &m, bytes.NewReader(makeTar(t, tt.entries)), Options{})
			var ee *EntryError
			if !errors.As(err, &ee) || ee.Entry != tt.entry || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %v, want an EntryError for %q containing %q", err, tt.entry, tt.msg)
			}
		})
	}

	t.Run("truncated file", func(t *testing.T) {
		data := makeTar(t, []wantEntry{file("big", strings.Repeat("z", 300000))})
		_, err := Write(context.Background(), &memImage{}, bytes.NewReader(data[:200000]), Options{})
		var ee *EntryError
		if !errors.As(err, &ee) || ee.Entry != "big" {
			t.Fatalf("error %v, want an EntryError for big", err)
		}
	})
	t.Run("write error", func(t *testing.T) {
		data := makeTar(t, testTree(4096))
		if _, err := Write(context.Background(), failingWriter{}, bytes.NewReader(data), Options{}); err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Fatalf("error %v, want disk full", err)
		}
	})
	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		data := makeTar(t, testTree(4096))
		if _, err := Write(ctx, &memImage{}, bytes.NewReader(data), Options{}); !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", err)
		}
	})
}

func TestOptions(t *testing.T) {
	tests := []struct {
		opts  Options
		field string
	}{
		{Options{BlockSize: 1000}, "BlockSize"},
		{Options{BlockSize: 2048}, "BlockSize"},
		{Options{BlockSize: 2 << 20}, "BlockSize"},
		{Options{Level: 23}, "Level"},
		{Options{Level: -1}, "Level"},
		{Options{ModTime: -1}, "ModTime"},
		{Options{ModTime: 1 << 32}, "ModTime"},
	}
	for _, tt := range tests {
		_, err := Write(context.Background(), &memImage{}, bytes.NewReader(nil), tt.opts)
		var oe *OptionError
		if !errors.As(err, &oe) || oe.Field != tt.field {
			t.Errorf("%+v: error %v, want an OptionError for %s", tt.opts, err, tt.field)
		}
	}
	// An empty tar is a valid, empty filesystem.
	var m memImage
	if n, err := Write(context.Background(), &m, bytes.NewReader(makeTar(t, nil)), Options{}); err != nil || n != 4096 {
		t.Errorf("empty tar: %d, %v; want 4096, nil", n, err)
	}
}
