package clouds

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/nodebake/nodebake/layers/oci"
	"github.com/nodebake/nodebake/test/harness"
)

// driversHeading introduces the table of the kernel drivers each platform
// needs.
const driversHeading = "## Kernel drivers"

// Bounds of the initrd reader.
const (
	maxInitrd        = 512 << 20 // bytes, decompressed
	maxInitrdEntries = 100000
	maxCpioName      = 4096
)

// driverTable returns the modules and the kernel options (CONFIG_X=v) the
// page's kernel driver table names.
func driverTable(t *testing.T) (modules, options []string) {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(harness.RepoRoot(t), Page))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "\n"+driversHeading+"\n")
	if !ok {
		t.Fatalf("%s: no %q section", Page, driversHeading)
	}
	for _, l := range strings.Split(rest, "\n") {
		if strings.HasPrefix(l, "## ") {
			break
		}
		if !strings.HasPrefix(l, "| ") || strings.HasPrefix(l, "| ---") || strings.HasPrefix(l, "| platform ") {
			continue
		}
		for _, m := range backticked.FindAllStringSubmatch(l, -1) {
			if strings.HasPrefix(m[1], "CONFIG_") {
				options = append(options, m[1])
			} else if !slices.Contains(modules, m[1]) {
				modules = append(modules, m[1])
			}
		}
	}
	if len(modules) == 0 {
		t.Fatalf("%s: the %q table names no modules", Page, driversHeading)
	}
	return modules, options
}

// moduleName is a kernel module's name as modprobe sees it: dashes and
// underscores are the same.
func moduleName(file string) (string, bool) {
	base := path.Base(file)
	i := strings.Index(base, ".ko")
	if i <= 0 {
		return "", false
	}
	switch base[i:] {
	case ".ko", ".ko.xz", ".ko.zst", ".ko.gz":
		return strings.ReplaceAll(base[:i], "-", "_"), true
	}
	return "", false
}

// TestKernelDrivers checks the page's driver table against the base OS
// image the worker image is built from: every kernel option it names is
// set so in /boot/config-*, and every module it names is both in
// /usr/lib/modules and in the initrd.
func TestKernelDrivers(t *testing.T) {
	harness.RequireSlow(t)
	modules, options := driverTable(t)
	layout := harness.BaseLayout(t)
	img, err := oci.Open(context.Background(), "oci:"+layout)
	if err != nil {
		t.Fatal(err)
	}
	rc := oci.Flatten(img)
	defer rc.Close()

	var (
		config, initrd []byte
		rootModules    = map[string]bool{}
	)
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading the base %s: %v", layout, err)
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		switch {
		case strings.HasPrefix(name, "boot/config-"):
			config = readAll(t, tr, h, 16<<20)
		case strings.HasPrefix(name, "boot/initrd.img-"):
			initrd = readAll(t, tr, h, 1<<30)
		case strings.HasPrefix(name, "usr/lib/modules/") || strings.HasPrefix(name, "lib/modules/"):
			if m, ok := moduleName(name); ok {
				rootModules[m] = true
			}
		}
	}
	if config == nil || initrd == nil {
		t.Fatalf("the base %s has no /boot/config-* or /boot/initrd.img-*", layout)
	}

	for _, o := range options {
		if !slices.Contains(strings.Split(string(config), "\n"), o) {
			t.Errorf("the base kernel's config lacks %s", o)
		}
	}
	files, err := initrdFiles(initrd)
	if err != nil {
		t.Fatalf("reading the base's initrd: %v", err)
	}
	inInitrd := map[string]bool{}
	for _, f := range files {
		if m, ok := moduleName(f); ok {
			inInitrd[m] = true
		}
	}
	t.Logf("initrd: %d files, %d modules; /usr/lib/modules: %d modules", len(files), len(inInitrd), len(rootModules))
	for _, m := range modules {
		n := strings.ReplaceAll(m, "-", "_")
		if !rootModules[n] {
			t.Errorf("module %s is not in the base's /usr/lib/modules", m)
		}
		if !inInitrd[n] {
			t.Errorf("module %s is not in the base's initrd", m)
		}
	}
}

func readAll(t *testing.T, r io.Reader, h *tar.Header, max int64) []byte {
	t.Helper()
	if h.Size > max {
		t.Fatalf("%s: %d bytes, more than %d", h.Name, h.Size, max)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading %s: %v", h.Name, err)
	}
	return b
}

// initrdFiles lists the files of an initramfs: newc cpio archives one
// after another (zero padding between them), each plain or compressed
// with gzip or zstd, as the kernel unpacks them.
func initrdFiles(data []byte) ([]string, error) {
	var names []string
	for len(data) > 0 {
		switch {
		case data[0] == 0:
			data = data[1:]
		case bytes.HasPrefix(data, []byte("070701")) || bytes.HasPrefix(data, []byte("070702")):
			rest, err := cpioNames(data, &names)
			if err != nil {
				return nil, err
			}
			data = rest
		case bytes.HasPrefix(data, []byte{0x1f, 0x8b}):
			zr, err := gzip.NewReader(bytes.NewReader(data))
			if err != nil {
				return nil, err
			}
			inner, err := readBounded(zr)
			if err != nil {
				return nil, fmt.Errorf("gzip: %w", err)
			}
			if _, err := cpioNames(inner, &names); err != nil {
				return nil, err
			}
			data = nil // the kernel takes a compressed archive as the last one
		case bytes.HasPrefix(data, []byte{0x28, 0xb5, 0x2f, 0xfd}):
			zr, err := zstd.NewReader(bytes.NewReader(data))
			if err != nil {
				return nil, err
			}
			inner, err := readBounded(zr.IOReadCloser())
			zr.Close()
			if err != nil {
				return nil, fmt.Errorf("zstd: %w", err)
			}
			if _, err := cpioNames(inner, &names); err != nil {
				return nil, err
			}
			data = nil
		default:
			return nil, fmt.Errorf("unknown data % x in the initrd (only cpio, gzip and zstd are read)", data[:min(len(data), 4)])
		}
	}
	return names, nil
}

func readBounded(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxInitrd+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxInitrd {
		return nil, fmt.Errorf("more than %d bytes", maxInitrd)
	}
	return b, nil
}

var cpioHex = regexp.MustCompile(`^[0-9a-fA-F]{8}$`)

// cpioNames appends the names of the entries of the newc archives at the
// start of data to names, and returns what follows them (nil at the end).
func cpioNames(data []byte, names *[]string) ([]byte, error) {
	const header = 110
	trailer := false // the last entry read was TRAILER!!!
	for {
		for len(data) > 0 && data[0] == 0 {
			data = data[1:]
		}
		if len(data) == 0 || !(bytes.HasPrefix(data, []byte("070701")) || bytes.HasPrefix(data, []byte("070702"))) {
			if !trailer {
				return nil, errors.New("cpio archive without its TRAILER!!!")
			}
			if len(data) == 0 {
				return nil, nil
			}
			return data, nil // not cpio: the caller decides
		}
		if len(data) < header {
			return nil, errors.New("cpio header runs past the end")
		}
		field := func(i int) (int, error) {
			s := string(data[6+8*i : 6+8*i+8])
			if !cpioHex.MatchString(s) {
				return 0, fmt.Errorf("cpio header field %d: %q is not hex", i, s)
			}
			v, err := strconv.ParseUint(s, 16, 32)
			return int(v), err
		}
		size, err := field(6)
		if err != nil {
			return nil, err
		}
		nameSize, err := field(11)
		if err != nil {
			return nil, err
		}
		if nameSize < 1 || nameSize > maxCpioName {
			return nil, fmt.Errorf("cpio name of %d bytes", nameSize)
		}
		nameEnd := header + nameSize
		dataStart := (nameEnd + 3) &^ 3
		next := (dataStart + size + 3) &^ 3
		if nameEnd > len(data) || dataStart+size > len(data) {
			return nil, errors.New("cpio entry runs past the end")
		}
		name := string(data[header : nameEnd-1])
		if next > len(data) {
			next = len(data)
		}
		data = data[next:]
		if trailer = name == "TRAILER!!!"; trailer {
			continue // another archive may follow
		}
		if len(*names) == maxInitrdEntries {
			return nil, fmt.Errorf("more than %d entries", maxInitrdEntries)
		}
		*names = append(*names, name)
	}
}

// newc writes a newc cpio archive of empty files with these names.
func newc(names ...string) []byte {
	var b bytes.Buffer
	for i, n := range append(names, "TRAILER!!!") {
		fmt.Fprintf(&b, "070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x", i+1, 0o100644, 0, 0, 1, 0, 0, 0, 0, 0, 0, len(n)+1, 0)
		b.WriteString(n)
		b.WriteByte(0)
		for b.Len()%4 != 0 {
			b.WriteByte(0)
		}
	}
	for b.Len()%512 != 0 {
		b.WriteByte(0)
	}
	return b.Bytes()
}

func TestInitrdFiles(t *testing.T) {
	var zb bytes.Buffer
	zw, err := zstd.NewWriter(&zb)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(append(newc("c/ena.ko.xz"), newc("d")...))
	zw.Close()
	var gb bytes.Buffer
	gw := gzip.NewWriter(&gb)
	gw.Write(newc("e"))
	gw.Close()

	for _, tc := range []struct {
		name string
		data []byte
		want []string
	}{
		{"plain then zstd", append(newc("a", "b/nvme-core.ko"), zb.Bytes()...), []string{"a", "b/nvme-core.ko", "c/ena.ko.xz", "d"}},
		{"gzip", gb.Bytes(), []string{"e"}},
	} {
		got, err := initrdFiles(tc.data)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: initrdFiles = %q, want %q", tc.name, got, tc.want)
		}
	}

	good := newc("a")
	badHex := bytes.Clone(good)
	copy(badHex[6+8*11:], "zzzzzzzz")
	for name, data := range map[string][]byte{
		"truncated":  good[:120],
		"no trailer": good[:112],
		"bad hex":    badHex,
		"unknown":    []byte("\x89PNG...."),
	} {
		if _, err := initrdFiles(data); err == nil {
			t.Errorf("%s: initrdFiles accepted it", name)
		}
	}

	for file, want := range map[string]string{
		"usr/lib/modules/6.12/kernel/drivers/nvme/host/nvme-core.ko.xz": "nvme_core",
		"x/ena.ko":  "ena",
		"x/ena.kox": "",
		"x/.ko":     "",
		"x/ena.txt": "",
	} {
		if got, _ := moduleName(file); got != want {
			t.Errorf("moduleName(%q) = %q, want %q", file, got, want)
		}
	}
}

func FuzzInitrdFiles(f *testing.F) {
	f.Add(newc("a", "b"))
	f.Add(append(newc("a"), 0x28, 0xb5, 0x2f, 0xfd))
	f.Fuzz(func(t *testing.T, data []byte) {
		names, err := initrdFiles(data)
		if err == nil && len(names) > len(data) {
			t.Fatalf("%d names from %d bytes", len(names), len(data))
		}
	})
}
