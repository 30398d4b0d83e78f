package disk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// needTool skips the test when name is not installed, or fails it when
// NODEBAKE_REQUIRE_TOOLS=1.
func needTool(t *testing.T, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			if os.Getenv("NODEBAKE_REQUIRE_TOOLS") == "1" {
				t.Fatalf("%s is required (NODEBAKE_REQUIRE_TOOLS=1): %v", name, err)
			}
			t.Skipf("%s not installed", name)
		}
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// pattern returns n bytes that differ from the patterns of other tags.
func pattern(tag string, n int) []byte {
	b := make([]byte, n)
	seed := sha256.Sum256([]byte(tag))
	for i := range b {
		b[i] = seed[i%len(seed)] ^ byte(i/len(seed))
	}
	return b
}

var testModTime = time.Unix(1700000000, 0) // 2023-11-14 22:13:20 UTC

const testRootSize = 3*MiB + 12345

// rootWriter writes content at offset 0 in uneven chunks, like a
// filesystem writer would.
func rootWriter(content []byte) func(context.Context, io.WriterAt) (int64, error) {
	return func(ctx context.Context, w io.WriterAt) (int64, error) {
		for off := 0; off < len(content); off += 100000 {
			end := min(off+100000, len(content))
			if _, err := w.WriteAt(content[off:end], int64(off)); err != nil {
				return 0, err
			}
		}
		return int64(len(content)), nil
	}
}

func testImage() Image {
	return Image{
		Arch:       "amd64",
		Seed:       []byte("test seed"),
		ModTime:    testModTime,
		ESPSize:    100 * MiB, // smaller than the default keeps tests fast
		VarSize:    16 * MiB,
		Kernel:     BytesFile("", pattern("kernel", 300001)),
		Initrd:     BytesFile("", pattern("initrd", 5<<20+7)), // more than one copy chunk
		Bootloader: BytesFile("", pattern("systemd-boot", 90000)),
		Cmdline:    []string{"console=ttyS0,115200", "quiet"},
		Title:      "nodebake test",
		ExtraESP:   []File{BytesFile("/nodebake/build-info.txt", []byte("built by a test\n"))},
		WriteRoot:  rootWriter(pattern("root", int(testRootSize))),
	}
}

func writeTest(t *testing.T, img Image) (string, Result) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.raw")
	res, err := Write(context.Background(), p, img)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	return p, res
}

func fileSHA(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func readRange(t *testing.T, p string, off, n int64) []byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatalf("reading %d bytes at %d of %s: %v", n, off, p, err)
	}
	return b
}

func TestWriteLayout(t *testing.T) {
	t.Parallel()
	img := testImage()
	img.ESPSize = DefaultESPSize
	img.VarSize = 64 * MiB
	p, res := writeTest(t, img)

	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	wantSize := MiB + DefaultESPSize + 4*MiB + 64*MiB + MiB
	if fi.Size() != wantSize || res.Size != wantSize {
		t.Errorf("size: file %d, result %d, want %d", fi.Size(), res.Size, wantSize)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
	if res.RootSize != testRootSize {
		t.Errorf("RootSize %d, want %d", res.RootSize, testRootSize)
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Errorf("output directory holds %d entries, want only the image", len(entries))
	}

	want := []Partition{
		{1, "esp", typeESP, res.ESPPartUUID, 2048, 2048 + 256*2048 - 1, 0},
		{2, "root", typeRootAMD64, res.RootPartUUID, 2048 + 256*2048, 2048 + 260*2048 - 1, 1 << 60},
		{3, "var", typeVar, res.VarPartUUID, 2048 + 260*2048, 2048 + 324*2048 - 1, 0},
	}
	if fmt.Sprint(res.Partitions) != fmt.Sprint(want) {
		t.Errorf("partitions\n got %v\nwant %v", res.Partitions, want)
	}
	wantCmdline := "root=PARTUUID=" + res.RootPartUUID + " rootfstype=squashfs ro console=ttyS0,115200 quiet"
	if res.Cmdline != wantCmdline {
		t.Errorf("Cmdline %q, want %q", res.Cmdline, wantCmdline)
	}

	// The root filesystem is where the root partition starts, followed by
	// zeros up to the partition's end; /var is all zeros.
	rootOff := int64(res.Partitions[1].FirstLBA) * 512
	rootEnd := int64(res.Partitions[1].LastLBA+1) * 512
	if got := readRange(t, p, rootOff, testRootSize); !bytes.Equal(got, pattern("root", int(testRootSize))) {
		t.Error("root partition content differs from what WriteRoot wrote")
	}
	if tail := readRange(t, p, rootOff+testRootSize, rootEnd-rootOff-testRootSize); !bytes.Equal(tail, make([]byte, len(tail))) {
		t.Error("root partition padding is not zero")
	}
	varOff := int64(res.Partitions[2].FirstLBA) * 512
	if !holeFrom(t, p, varOff) {
		if v := readRange(t, p, varOff, 64*MiB); !bytes.Equal(v, make([]byte, len(v))) {
			t.Error("var partition is not empty")
		}
	}

	// Sparse: only the FATs, the ESP files and the root are allocated.
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	if alloc := st.Blocks * 512; alloc > 16*MiB {
		t.Errorf("image allocates %d bytes of %d, want a sparse file", alloc, fi.Size())
	} else {
		t.Logf("image size %d MiB, allocated %.1f MiB", fi.Size()>>20, float64(alloc)/float64(MiB))
	}
}

// With DiskSize the image is exactly that size and /var takes the rest;
// a disk too small for the root filesystem is refused, naming DiskSize,
// and leaves nothing behind.
func TestWriteDiskSize(t *testing.T) {
	t.Parallel()
	img := testImage()
	img.DiskSize = 3 << 30
	p, res := writeTest(t, img)
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != 3<<30 || res.Size != 3<<30 {
		t.Errorf("size: file %d, result %d, want 3 GiB", fi.Size(), res.Size)
	}
	v := res.Partitions[2]
	if last := uint64(3<<30-MiB)/512 - 1; v.LastLBA != last || v.FirstLBA != 2048+(100+4)*2048 {
		t.Errorf("var partition %+v, want it to end at LBA %d, the last before the GPT's MiB", v, last)
	}
	if _, err := exec.LookPath("sgdisk"); err == nil {
		if out := run(t, "sgdisk", "-v", p); !strings.Contains(out, "No problems found") {
			t.Errorf("sgdisk -v:\n%s", out)
		}
	}

	img.DiskSize = MiB + 100*MiB + 4*MiB + 15*MiB + MiB // 1 MiB short of VarSize
	dir := t.TempDir()
	_, err = Write(context.Background(), filepath.Join(dir, "x.raw"), img)
	var ve *ValidationError
	if !errors.As(err, &ve) || !ve.Has("DiskSize") || !strings.HasPrefix(err.Error(), "invalid disk image: DiskSize: 121 MiB leaves 15 MiB for /var after the GPT, the 100 MiB ESP and the 4 MiB root filesystem; /var needs at least 16 MiB") {
		t.Errorf("Write: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("Write left %d files", len(entries))
	}
}

func TestWriteSgdisk(t *testing.T) {
	needTool(t, "sgdisk")
	t.Parallel()
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			img := testImage()
			img.Arch = arch
			p, res := writeTest(t, img)

			if out := run(t, "sgdisk", "-v", p); !strings.Contains(out, "No problems found") {
				t.Errorf("sgdisk -v:\n%s", out)
			}
			out := run(t, "sgdisk", "-p", p)
			if !strings.Contains(out, "Disk identifier (GUID): "+strings.ToUpper(res.DiskGUID)) {
				t.Errorf("sgdisk -p does not show disk GUID %s:\n%s", res.DiskGUID, out)
			}
			rootType := typeRootAMD64
			if arch == "arm64" {
				rootType = typeRootARM64
			}
			for i, w := range []struct{ typ, name, uuid, attrs string }{
				{typeESP, "esp", res.ESPPartUUID, "0000000000000000"},
				{rootType, "root", res.RootPartUUID, "1000000000000000"},
				{typeVar, "var", res.VarPartUUID, "0000000000000000"},
			} {
				out := run(t, "sgdisk", "-i", strconv.Itoa(i+1), p)
				for _, s := range []string{
					"Partition GUID code: " + w.typ,
					"Partition unique GUID: " + strings.ToUpper(w.uuid),
					"Attribute flags: " + w.attrs,
					"Partition name: '" + w.name + "'",
					fmt.Sprintf("First sector: %d ", res.Partitions[i].FirstLBA),
					fmt.Sprintf("Last sector: %d ", res.Partitions[i].LastLBA),
				} {
					if !strings.Contains(out, s) {
						t.Errorf("sgdisk -i %d lacks %q:\n%s", i+1, s, out)
					}
				}
			}
		})
	}
}

func TestWriteESP(t *testing.T) {
	needTool(t, "fsck.fat", "mtype", "mdir", "mcopy")
	t.Parallel()
	img := testImage()
	img.ESPSize = DefaultESPSize
	p, res := writeTest(t, img)
	espOff := int64(res.Partitions[0].FirstLBA) * 512

	// fsck.fat has no offset option: check a copy of the partition.
	esp := filepath.Join(t.TempDir(), "esp.img")
	copySparse(t, esp, p, espOff, img.ESPSize)
	out := run(t, "fsck.fat", "-n", "-v", esp)
	if !strings.Contains(out, "32 bit entries") {
		t.Errorf("fsck.fat does not report FAT32:\n%s", out)
	}
	if needBlkid(t) {
		got := strings.TrimSpace(run(t, "blkid", "-p", "-o", "value", "-s", "UUID", esp))
		if got != res.ESPVolumeID {
			t.Errorf("blkid volume id %q, want %q", got, res.ESPVolumeID)
		}
		if got := strings.TrimSpace(run(t, "blkid", "-p", "-o", "value", "-s", "LABEL", esp)); got != "ESP" {
			t.Errorf("blkid label %q, want ESP", got)
		}
	}

	mimg := fmt.Sprintf("%s@@%d", p, espOff)
	mtype := func(name string) string { return run(t, "mtype", "-i", mimg, "::"+name) }
	if got, want := mtype("/loader/loader.conf"), "timeout 0\ndefault nodebake.conf\neditor no\n"; got != want {
		t.Errorf("loader.conf = %q, want %q", got, want)
	}
	wantEntry := "title nodebake test\nlinux /vmlinuz\ninitrd /initrd.img\noptions " + res.Cmdline + "\n"
	if got := mtype("/loader/entries/nodebake.conf"); got != wantEntry {
		t.Errorf("loader entry = %q, want %q", got, wantEntry)
	}
	if got := mtype("/nodebake/build-info.txt"); got != "built by a test\n" {
		t.Errorf("build-info.txt = %q", got)
	}
	for name, want := range map[string][]byte{
		"/vmlinuz":                         pattern("kernel", 300001),
		"/initrd.img":                      pattern("initrd", 5<<20+7),
		"/EFI/BOOT/BOOTX64.EFI":            pattern("systemd-boot", 90000),
		"/EFI/systemd/systemd-bootx64.efi": pattern("systemd-boot", 90000),
	} {
		got, err := exec.Command("mcopy", "-n", "-i", mimg, "::"+name, "-").Output()
		if err != nil {
			t.Errorf("mcopy %s: %v", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes differ from the %d given", name, len(got), len(want))
		}
	}

	// Every entry carries ModTime (2023-11-14 22:13 UTC), not the clock.
	for _, dir := range []string{"::/", "::/EFI", "::/EFI/BOOT", "::/loader/entries"} {
		out := run(t, "mdir", "-a", "-i", mimg, dir)
		for _, line := range strings.Split(out, "\n") {
			if !regexp.MustCompile(`\d{4}-\d\d-\d\d`).MatchString(line) {
				continue
			}
			if !strings.Contains(line, "2023-11-14") || !strings.Contains(line, "22:13") {
				t.Errorf("mdir %s: entry not stamped with ModTime: %q", dir, line)
			}
		}
	}
}

// copySparse copies n bytes at off of src to a new file dst, leaving
// holes for zero blocks.
func copySparse(t *testing.T, dst, src string, off, n int64) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := out.Truncate(n); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, MiB)
	zero := make([]byte, MiB)
	for pos := int64(0); pos < n; pos += MiB {
		if _, err := in.ReadAt(buf, off+pos); err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(buf, zero) {
			continue
		}
		if _, err := out.WriteAt(buf, pos); err != nil {
			t.Fatal(err)
		}
	}
}

// holeFrom reports whether the file has no data from off to its end
// (SEEK_DATA finds none); false also when the filesystem cannot tell.
func holeFrom(t *testing.T, p string, off int64) bool {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const seekData = 3
	_, err = syscall.Seek(int(f.Fd()), off, seekData)
	return errors.Is(err, syscall.ENXIO)
}

func needBlkid(_ *testing.T) bool {
	_, err := exec.LookPath("blkid")
	return err == nil
}

func TestWriteDeterministic(t *testing.T) {
	t.Parallel()
	p1, r1 := writeTest(t, testImage())
	// FAT times have a 2 s resolution: a clock leak would show across this gap.
	time.Sleep(2100 * time.Millisecond)
	p2, r2 := writeTest(t, testImage())
	if a, b := fileSHA(t, p1), fileSHA(t, p2); a != b {
		t.Errorf("same inputs, different images: %s vs %s", a, b)
	}
	if fmt.Sprint(r1) != fmt.Sprint(r2) {
		t.Errorf("same inputs, different results:\n%v\n%v", r1, r2)
	}

	img := testImage()
	img.Seed = []byte("another seed")
	p3, r3 := writeTest(t, img)
	if fileSHA(t, p1) == fileSHA(t, p3) {
		t.Error("different seeds, same image")
	}
	for _, pair := range [][2]string{
		{r1.DiskGUID, r3.DiskGUID}, {r1.ESPPartUUID, r3.ESPPartUUID}, {r1.RootPartUUID, r3.RootPartUUID},
		{r1.VarPartUUID, r3.VarPartUUID}, {r1.ESPVolumeID, r3.ESPVolumeID},
	} {
		if pair[0] == pair[1] {
			t.Errorf("different seeds, same id %s", pair[0])
		}
	}
	all := []string{r1.DiskGUID, r1.ESPPartUUID, r1.RootPartUUID, r1.VarPartUUID}
	for i := range all {
		for j := i + 1; j < len(all); j++ {
			if all[i] == all[j] {
				t.Errorf("ids %d and %d are both %s", i, j, all[i])
			}
		}
	}
}

func TestSeededUUID(t *testing.T) {
	u := seededUUID([]byte("seed"), "disk-guid")
	if u.Version() != 4 || u.Variant().String() != "RFC4122" {
		t.Errorf("%s: version %d variant %s, want 4 RFC4122", u, u.Version(), u.Variant())
	}
	// Fixed value: changing the derivation changes every image.
	if got, want := u.String(), seededUUID([]byte("seed"), "disk-guid").String(); got != want {
		t.Errorf("not stable: %s vs %s", got, want)
	}
}

func TestWriteFailureLeavesNothing(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	tests := []struct {
		name   string
		mutate func(img *Image, cancel context.CancelFunc)
		ctx    bool // cancel the context before Write
		want   error
	}{
		{"root error", func(img *Image, _ context.CancelFunc) {
			img.WriteRoot = func(ctx context.Context, w io.WriterAt) (int64, error) {
				_, _ = w.WriteAt([]byte("partial"), 0)
				return 0, boom
			}
		}, false, boom},
		{"cancelled before", func(*Image, context.CancelFunc) {}, true, context.Canceled},
		{"cancelled during root", func(img *Image, cancel context.CancelFunc) {
			img.WriteRoot = func(ctx context.Context, w io.WriterAt) (int64, error) {
				_, _ = w.WriteAt([]byte("partial"), 0)
				cancel()
				return 7, nil
			}
		}, false, context.Canceled},
		{"kernel open error", func(img *Image, _ context.CancelFunc) {
			img.Kernel.Open = func() (io.ReadCloser, error) { return nil, boom }
		}, false, boom},
		{"kernel shorter than Size", func(img *Image, _ context.CancelFunc) {
			img.Kernel.Size++
		}, false, nil},
		{"root returns size 0", func(img *Image, _ context.CancelFunc) {
			img.WriteRoot = func(context.Context, io.WriterAt) (int64, error) { return 0, nil }
		}, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "disk.raw")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			img := testImage()
			tt.mutate(&img, cancel)
			if tt.ctx {
				cancel()
			}
			_, err := Write(ctx, p, img)
			if err == nil {
				t.Fatal("Write succeeded")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				t.Errorf("left behind: %s", e.Name())
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*Image)
		fields []string
	}{
		{"valid", func(*Image) {}, nil},
		{"arm64", func(img *Image) { img.Arch = "arm64" }, nil},
		{"unknown arch", func(img *Image) { img.Arch = "riscv64" }, []string{"Arch"}},
		{"no seed", func(img *Image) { img.Seed = nil }, []string{"Seed"}},
		{"zero mod time", func(img *Image) { img.ModTime = time.Time{} }, []string{"ModTime"}},
		{"ESP not MiB", func(img *Image) { img.ESPSize = 256*MiB + 512 }, []string{"ESPSize"}},
		{"ESP too small", func(img *Image) { img.ESPSize = 32 * MiB }, []string{"ESPSize"}},
		{"ESP bad FAT 64", func(img *Image) { img.ESPSize = 64 * MiB }, []string{"ESPSize"}},
		{"ESP bad FAT 259", func(img *Image) { img.ESPSize = 259 * MiB }, []string{"ESPSize"}},
		{"ESP bad FAT 4096", func(img *Image) { img.ESPSize = 4096 * MiB }, []string{"ESPSize"}},
		{"ESP too large", func(img *Image) { img.ESPSize = 8192 * MiB }, []string{"ESPSize"}},
		{"ESP too full", func(img *Image) { img.ESPSize = 33 * MiB; img.Initrd.Size = 40 * MiB }, []string{"ESPSize"}},
		{"var zero", func(img *Image) { img.VarSize = 0 }, []string{"VarSize"}},
		{"var not MiB", func(img *Image) { img.VarSize = MiB + 1 }, []string{"VarSize"}},
		{"missing kernel", func(img *Image) { img.Kernel = File{} }, []string{"Kernel.Open", "Kernel.Size"}},
		{"missing initrd", func(img *Image) { img.Initrd.Open = nil }, []string{"Initrd.Open"}},
		{"empty bootloader", func(img *Image) { img.Bootloader.Size = 0 }, []string{"Bootloader.Size"}},
		{"relative kernel path", func(img *Image) { img.Kernel.Path = "vmlinuz" }, []string{"Kernel.Path"}},
		{"extra without path", func(img *Image) { img.ExtraESP = []File{BytesFile("", nil)} }, []string{"ExtraESP[0].Path"}},
		{"extra unclean path", func(img *Image) { img.ExtraESP = []File{BytesFile("/a//b", nil)} }, []string{"ExtraESP[0].Path"}},
		{"extra bad char", func(img *Image) { img.ExtraESP = []File{BytesFile("/a?b", nil)} }, []string{"ExtraESP[0].Path"}},
		{"extra non-ASCII", func(img *Image) { img.ExtraESP = []File{BytesFile("/café", nil)} }, []string{"ExtraESP[0].Path"}},
		{"extra collides, other case", func(img *Image) {
			img.ExtraESP = []File{BytesFile("/LOADER/LOADER.CONF", nil)}
		}, []string{"loader.conf.Path"}},
		{"extra is a directory", func(img *Image) { img.ExtraESP = []File{BytesFile("/EFI/BOOT", nil)} }, []string{"ExtraESP[0].Path"}},
		{"kernel path is the initrd's", func(img *Image) { img.Kernel.Path = "/initrd.img" }, []string{"Initrd.Path"}},
		{"extra negative size", func(img *Image) { img.ExtraESP[0].Size = -1 }, []string{"ExtraESP[0].Size"}},
		{"cmdline root", func(img *Image) { img.Cmdline = []string{"quiet", "root=/dev/sda2"} }, []string{"Cmdline[1]"}},
		{"cmdline newline", func(img *Image) { img.Cmdline = []string{"a\nb"} }, []string{"Cmdline[0]"}},
		{"cmdline empty word", func(img *Image) { img.Cmdline = []string{""} }, []string{"Cmdline[0]"}},
		{"title newline", func(img *Image) { img.Title = "a\nlinux /evil" }, []string{"Title"}},
		{"no root writer", func(img *Image) { img.WriteRoot = nil }, []string{"WriteRoot"}},
		{"several at once", func(img *Image) { img.Arch = ""; img.VarSize = -1 }, []string{"Arch", "VarSize"}},
		{"disk size", func(img *Image) { img.DiskSize = 2048 * MiB }, nil},
		{"disk size not MiB", func(img *Image) { img.DiskSize = 2048*MiB + 512 }, []string{"DiskSize"}},
		{"disk size negative", func(img *Image) { img.DiskSize = -MiB }, []string{"DiskSize"}},
		{"disk size below ESP and var", func(img *Image) { img.DiskSize = 117 * MiB }, []string{"DiskSize"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := testImage()
			tt.mutate(&img)
			err := img.Validate()
			if len(tt.fields) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %v, want *ValidationError", err)
			}
			var got []string
			for _, fe := range ve.Errors {
				got = append(got, fe.Field)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.fields) {
				t.Errorf("fields %v, want %v (%v)", got, tt.fields, err)
			}
			for _, f := range tt.fields {
				if !strings.Contains(err.Error(), f+": ") {
					t.Errorf("error %q does not name %s", err, f)
				}
			}
			// Write refuses it before creating anything.
			dir := t.TempDir()
			if _, werr := Write(context.Background(), filepath.Join(dir, "x.raw"), img); !errors.As(werr, &ve) {
				t.Errorf("Write error %v, want the validation error", werr)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("Write left %d files", len(entries))
			}
		})
	}
}

func TestHostFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(p, []byte("kernel bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := HostFile("/vmlinuz", p)
	if err != nil {
		t.Fatal(err)
	}
	if f.Path != "/vmlinuz" || f.Size != 12 {
		t.Errorf("HostFile = %+v", f)
	}
	r, err := f.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if b, _ := io.ReadAll(r); string(b) != "kernel bytes" {
		t.Errorf("content %q", b)
	}
	for _, bad := range []string{filepath.Join(dir, "missing"), dir} {
		if _, err := HostFile("/x", bad); err == nil {
			t.Errorf("HostFile(%s) succeeded", bad)
		}
	}
}
