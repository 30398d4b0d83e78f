package boot

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"golang.org/x/sys/unix"

	"github.com/nodebake/nodebake/builder/build"
	"github.com/nodebake/nodebake/test/harness"
)

// Partition type GUIDs (UEFI; Discoverable Partitions Specification).
const (
	typeESP     = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	typeRootX86 = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
	typeVar     = "4D21B016-B534-45C2-A9FB-5C16E091FD2D"
)

// partition is one GPT entry as sgdisk reports it.
type partition struct {
	Number      int
	TypeGUID    string
	UniqueGUID  string
	First, Last int64 // sectors
	Name        string
}

func (p partition) offset(sector int64) int64 { return p.First * sector }
func (p partition) size(sector int64) int64   { return (p.Last - p.First + 1) * sector }

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

var (
	sectorRE = regexp.MustCompile(`(?m)^Sector size \(logical(?:/physical)?\): (\d+)`)
	partRE   = regexp.MustCompile(`(?m)^\s+(\d+)\s+\d+\s+\d+\s`)
	infoRE   = map[string]*regexp.Regexp{
		"type":   regexp.MustCompile(`(?m)^Partition GUID code: ([0-9A-Fa-f-]{36})`),
		"unique": regexp.MustCompile(`(?m)^Partition unique GUID: ([0-9A-Fa-f-]{36})`),
		"first":  regexp.MustCompile(`(?m)^First sector: (\d+)`),
		"last":   regexp.MustCompile(`(?m)^Last sector: (\d+)`),
		"name":   regexp.MustCompile(`(?m)^Partition name: '(.*)'`),
	}
)

// partitions reads the GPT of img with sgdisk.
func partitions(t *testing.T, img string) (sector int64, parts []partition) {
	t.Helper()
	list := run(t, "sgdisk", "-p", img)
	m := sectorRE.FindStringSubmatch(list)
	if m == nil {
		t.Fatalf("sgdisk -p: no logical sector size in:\n%s", list)
	}
	sector, _ = strconv.ParseInt(m[1], 10, 64)
	for _, pm := range partRE.FindAllStringSubmatch(list, -1) {
		n, _ := strconv.Atoi(pm[1])
		info := run(t, "sgdisk", "-i", pm[1], img)
		get := func(k string) string {
			m := infoRE[k].FindStringSubmatch(info)
			if m == nil {
				t.Fatalf("sgdisk -i %d: no %s in:\n%s", n, k, info)
			}
			return m[1]
		}
		first, _ := strconv.ParseInt(get("first"), 10, 64)
		last, _ := strconv.ParseInt(get("last"), 10, 64)
		parts = append(parts, partition{Number: n, TypeGUID: strings.ToUpper(get("type")), UniqueGUID: strings.ToUpper(get("unique")),
			First: first, Last: last, Name: get("name")})
	}
	return sector, parts
}

func findPart(t *testing.T, parts []partition, typeGUID string) partition {
	t.Helper()
	var found []partition
	for _, p := range parts {
		if p.TypeGUID == typeGUID {
			found = append(found, p)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one partition of type %s, found %d in %+v", typeGUID, len(found), parts)
	}
	return found[0]
}

// copyRange copies size bytes at off of src into a new sparse file dst.
func copyRange(src, dst string, off, size int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	r := io.NewSectionReader(in, off, size)
	var pos int64
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			chunk := buf[:n]
			if !allZero(chunk) {
				if _, err := out.WriteAt(chunk, pos); err != nil {
					out.Close()
					return err
				}
			}
			pos += int64(n)
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			out.Close()
			return rerr
		}
	}
	if err := out.Truncate(size); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// listing is unsquashfs -lln output: path (without the squashfs-root
// prefix) -> mode string and "uid/gid".
type listEntry struct {
	Mode, Owner string
}

var llnRE = regexp.MustCompile(`^([-dlcbps][-rwxsStT]{9})\s+(\d+/\d+)\s+.*?squashfs-root(/\S*)?(?: -> .*)?$`)

func parseListing(out string) map[string]listEntry {
	m := map[string]listEntry{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		g := llnRE.FindStringSubmatch(sc.Text())
		if g == nil {
			continue
		}
		p := g[3]
		if p == "" {
			p = "/"
		}
		m[p] = listEntry{Mode: g[1], Owner: g[2]}
	}
	return m
}

// baseFacts are what the image's base OS layout says about special files.
type baseFacts struct {
	// setuid maps setuid/setgid regular files to their permission bits
	// and owner.
	setuid map[string]baseFile
	// xattrs maps entries with extended attributes (file capabilities,
	// ACLs) to them: name -> raw value.
	xattrs map[string]map[string]string
}

type baseFile struct {
	mode  int64
	owner string
}

// scanBase reads the flattened base OS layout and records its setuid files
// and extended attributes: the expectations for the image.
func scanBase(t *testing.T, dir string) baseFacts {
	t.Helper()
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatalf("opening the base layout: %v", err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) == 0 {
		t.Fatalf("the base layout has no image: %v", err)
	}
	img, err := p.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	f := baseFacts{setuid: map[string]baseFile{}, xattrs: map[string]map[string]string{}}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading the base layout: %v", err)
		}
		name := "/" + strings.TrimPrefix(strings.TrimPrefix(h.Name, "./"), "/")
		if name != "/" {
			name = strings.TrimSuffix(name, "/")
		}
		for k, v := range h.PAXRecords {
			if x, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				if f.xattrs[name] == nil {
					f.xattrs[name] = map[string]string{}
				}
				f.xattrs[name][x] = v
			}
		}
		if h.Typeflag == tar.TypeReg && h.Mode&0o6000 != 0 {
			f.setuid[name] = baseFile{mode: h.Mode & 0o7777, owner: fmt.Sprintf("%d/%d", h.Uid, h.Gid)}
		}
	}
	return f
}

// modeString renders permission bits like ls: rwsr-xr-x.
func modeString(m int64) string {
	const rwx = "rwxrwxrwx"
	b := []byte("---------")
	for i := range 9 {
		if m&(1<<(8-i)) != 0 {
			b[i] = rwx[i]
		}
	}
	special := []struct {
		bit int64
		pos int
	}{{0o4000, 2}, {0o2000, 5}, {0o1000, 8}}
	for _, s := range special {
		if m&s.bit == 0 {
			continue
		}
		switch {
		case s.pos == 8 && b[8] == 'x':
			b[8] = 't'
		case s.pos == 8:
			b[8] = 'T'
		case b[s.pos] == 'x':
			b[s.pos] = 's'
		default:
			b[s.pos] = 'S'
		}
	}
	return string(b)
}

// checkImage reads the built image back with independent tools: the GPT
// with sgdisk, the ESP with fsck.fat, the root filesystem with unsquashfs.
func checkImage(t *testing.T, res *build.Result, baseLayout string) {
	for _, tool := range []string{"sgdisk", "fsck.fat", "unsquashfs"} {
		harness.RequireTool(t, tool)
	}
	img := res.ImagePath
	work := t.TempDir()

	out := run(t, "sgdisk", "-v", img)
	if !strings.Contains(out, "No problems found") {
		t.Errorf("sgdisk -v:\n%s", out)
	}
	sector, parts := partitions(t, img)
	esp, root, vr := findPart(t, parts, typeESP), findPart(t, parts, typeRootX86), findPart(t, parts, typeVar)
	t.Logf("partitions (sector %d): esp %d MiB, root %d MiB, var %d MiB", sector, esp.size(sector)>>20, root.size(sector)>>20, vr.size(sector)>>20)
	d := res.Manifest.Disk
	for _, c := range []struct {
		what, got, want string
	}{{"ESP", esp.UniqueGUID, d.ESPPartUUID}, {"root", root.UniqueGUID, d.RootPartUUID}, {"var", vr.UniqueGUID, d.VarPartUUID}} {
		if !strings.EqualFold(c.got, c.want) {
			t.Errorf("%s partition GUID: sgdisk says %s, the manifest %s", c.what, c.got, c.want)
		}
	}
	if res.Manifest.Image.RootFilesystemSize > root.size(sector) {
		t.Errorf("root filesystem (%d bytes) larger than its partition (%d)", res.Manifest.Image.RootFilesystemSize, root.size(sector))
	}

	t.Run("esp", func(t *testing.T) {
		espFile := filepath.Join(work, "esp.img")
		if err := copyRange(img, espFile, esp.offset(sector), esp.size(sector)); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("fsck.fat", "-n", "-v", espFile).CombinedOutput()
		if err != nil {
			t.Fatalf("fsck.fat -n: %v\n%s", err, out)
		}
		if s := string(out); strings.Contains(s, "Free cluster summary wrong") || strings.Contains(s, "differences between boot sector") {
			t.Errorf("fsck.fat -n reports problems:\n%s", s)
		}
		for _, f := range []string{"EFI/BOOT/BOOTX64.EFI", "loader/loader.conf"} {
			if o, err := exec.Command("mdir", "-i", espFile, "::/"+f).CombinedOutput(); err != nil {
				if _, lerr := exec.LookPath("mdir"); lerr != nil {
					t.Logf("mtools not installed: not listing %s", f)
					break
				}
				t.Errorf("ESP lacks %s: %v\n%s", f, err, o)
			}
		}
	})

	t.Run("rootfs", func(t *testing.T) {
		off := strconv.FormatInt(root.offset(sector), 10)
		out := run(t, "unsquashfs", "-o", off, "-lln", img)
		ls := parseListing(out)
		if len(ls) < 1000 {
			t.Fatalf("unsquashfs -lln lists only %d entries:\n%s", len(ls), out)
		}
		t.Logf("root filesystem: %d entries", len(ls))
		expect := func(p, mode, owner string) {
			t.Helper()
			e, ok := ls[p]
			if !ok {
				t.Errorf("%s is missing from the root filesystem", p)
				return
			}
			if e.Mode != mode || e.Owner != owner {
				t.Errorf("%s: %s %s, want %s %s", p, e.Mode, e.Owner, mode, owner)
			}
		}
		expect("/usr/local/bin/kubelet", "-rwxr-xr-x", "0/0")
		expect("/usr/local/bin/kube-proxy", "-rwxr-xr-x", "0/0")
		expect("/usr/local/bin/containerd", "-rwxr-xr-x", "0/0")
		expect(probeScriptPath, "-rwxr-xr-x", "0/0")
		expect(probeWantsPath, "lrwxrwxrwx", "0/0")
		for _, b := range []string{"bridge", "host-local", "loopback", "portmap"} {
			if e, ok := ls["/opt/cni/bin/"+b]; !ok || !strings.HasPrefix(e.Mode, "-rwx") {
				t.Errorf("/opt/cni/bin/%s: %+v (present %v)", b, e, ok)
			}
		}
		for _, p := range []string{"/boot/vmlinuz", "/vmlinuz"} {
			for q := range ls {
				if strings.HasPrefix(q, p+"-") || q == p {
					t.Errorf("%s is in the root filesystem; the kernel belongs on the ESP", q)
				}
			}
		}

		base := scanBase(t, baseLayout)
		caps := 0
		for _, x := range base.xattrs {
			if _, ok := x["security.capability"]; ok {
				caps++
			}
		}
		t.Logf("base: %d setuid/setgid files, %d entries with xattrs, %d with file capabilities", len(base.setuid), len(base.xattrs), caps)
		if len(base.setuid) == 0 {
			t.Error("the base has no setuid file: nothing to check setuid bits with")
		}
		for _, p := range slices.Sorted(maps.Keys(base.setuid)) {
			e, ok := ls[p]
			if !ok {
				t.Errorf("setuid %s of the base is missing from the image", p)
				continue
			}
			b := base.setuid[p]
			if want := "-" + modeString(b.mode); e.Mode != want || e.Owner != b.owner {
				t.Errorf("%s: %s %s, want %s %s as in the base", p, e.Mode, e.Owner, want, b.owner)
			} else {
				t.Logf("kept %s %s %s", e.Mode, e.Owner, p)
			}
		}

		if caps == 0 {
			t.Logf("not verified here: the base has no file with a security.capability xattr, so keeping file capabilities cannot be checked on this image")
		}
		if len(base.xattrs) == 0 {
			t.Logf("NOT VERIFIED: the base has no extended attributes at all")
			return
		}
		if os.Geteuid() != 0 {
			t.Logf("NOT VERIFIED: extracting entries with system.* and security.* xattrs needs root")
			return
		}
		for i, p := range slices.Sorted(maps.Keys(base.xattrs)) {
			if _, ok := ls[p]; !ok {
				t.Logf("%s (with xattrs in the base) is not in the root filesystem", p)
				continue
			}
			var names []string
			for _, name := range slices.Sorted(maps.Keys(base.xattrs[p])) {
				if squashfsXattr(name) {
					names = append(names, name)
				} else {
					t.Logf("%s: xattr %s of the base cannot be kept: squashfs stores only the user., trusted. and security. namespaces", p, name)
				}
			}
			if len(names) == 0 {
				continue
			}
			dest := filepath.Join(work, "x"+strconv.Itoa(i))
			run(t, "unsquashfs", "-o", off, "-d", dest, "-n", "-xattrs", img, strings.TrimPrefix(p, "/"))
			for _, name := range names {
				got, err := getxattr(filepath.Join(dest, p), name)
				if err != nil {
					t.Errorf("%s: reading %s from the image: %v", p, name, err)
					continue
				}
				if want := base.xattrs[p][name]; got != want {
					t.Errorf("%s: %s = %x, want %x as in the base", p, name, got, want)
				} else {
					t.Logf("kept xattr %s of %s (%x)", name, p, got)
				}
			}
		}
	})
}

func getxattr(path, name string) (string, error) {
	n, err := unix.Lgetxattr(path, name, nil)
	if err != nil {
		return "", fmt.Errorf("getxattr %s: %w", name, err)
	}
	buf := make([]byte, n)
	n, err = unix.Lgetxattr(path, name, buf)
	if err != nil {
		return "", fmt.Errorf("getxattr %s: %w", name, err)
	}
	return string(buf[:n]), nil
}

// squashfsXattr reports whether squashfs can store an xattr of this name.
func squashfsXattr(name string) bool {
	for _, ns := range []string{"user.", "trusted.", "security."} {
		if strings.HasPrefix(name, ns) {
			return true
		}
	}
	return false
}
