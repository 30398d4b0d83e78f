package disk

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"debug/pe"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"

	"github.com/nodebake/nodebake/builder/authenticode"
	"github.com/nodebake/nodebake/builder/internal/pecoff/pecofftest"
	"github.com/nodebake/nodebake/builder/uki"
	"github.com/nodebake/nodebake/builder/verity"
)

var update = flag.Bool("update", false, "rewrite testdata/default.sha256")

// openESP reads the FAT of the ESP at off in the image p.
func openESP(t *testing.T, p string, off, size int64) *fat32.FileSystem {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fs, err := fat32.Read(file.New(f, true), size, off, sectorSize)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

const stubSBAT = "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\nsystemd-stub,1,The systemd Developers,systemd,257,https://systemd.io/\n"

// Synthetic PE images stand in for systemd-stub, the kernel and
// systemd-boot in the fast tests; the slow test in test/verified boots the
// real ones.
func fakeStub() []byte {
	return pecofftest.Image{DllCharacteristics: 0x160, SpareHeaders: 8, Sections: []pecofftest.Section{
		{Name: ".text", Data: bytes.Repeat([]byte{0xcc}, 3000)},
		{Name: ".sbat", Data: []byte(stubSBAT)},
		{Name: ".reloc", Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}},
	}}.Bytes()
}

func fakeEFI(tag string, n int) []byte {
	return pecofftest.Image{DllCharacteristics: 0x160, Sections: []pecofftest.Section{
		{Name: ".text", Data: pattern(tag, n)},
	}}.Bytes()
}

const testOSRelease = "PRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"13\"\nID=debian\nIMAGE_VERSION=old\n"

func verifiedImage() Image {
	img := testImage()
	img.Kernel = BytesFile("", fakeEFI("kernel", 300001))
	img.Bootloader = BytesFile("", fakeEFI("systemd-boot", 90000))
	img.Verified = &Verified{
		Name:      "nodebake",
		Version:   "1.35.4-1",
		Tries:     3,
		Stub:      BytesFile("", fakeStub()),
		OSRelease: []byte(testOSRelease),
		Uname:     "6.12.57+deb13-amd64",
	}
	return img
}

// testSigner makes an RSA key and a self-signed certificate, and returns a
// Signer and the certificate's PEM file.
func testSigner(t *testing.T) (*authenticode.Signer, string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42),
		Subject:      pkix.Name{CommonName: "nodebake disk test"},
		NotBefore:    time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	s, err := authenticode.NewSigner(key, cert)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "db.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return s, p
}

func partOffset(p Partition) int64 { return int64(p.FirstLBA) * sectorSize }
func partSize(p Partition) int64   { return int64(p.LastLBA-p.FirstLBA+1) * sectorSize }

// expectedUKI is the UKI the verified image must carry, built here with
// the uki package from the same inputs.
func expectedUKI(t *testing.T, img Image, cmdline string) []byte {
	t.Helper()
	v := img.Verified
	read := func(f File) []byte {
		b, err := readFile("test input", f, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	initrd := read(img.Initrd)
	osrel, err := OSRelease(v.OSRelease, v.Name, v.Version)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := uki.Write(&buf, uki.Input{
		Stub:      read(v.Stub),
		Kernel:    read(img.Kernel),
		Initrd:    io.NewSectionReader(bytes.NewReader(initrd), 0, int64(len(initrd))),
		Cmdline:   cmdline,
		OSRelease: osrel,
		Uname:     v.Uname,
	}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// peSection returns the content of a section of a PE image.
func peSection(t *testing.T, image []byte, name string) string {
	t.Helper()
	f, err := pe.NewFile(bytes.NewReader(image))
	if err != nil {
		t.Fatalf("parsing PE: %v", err)
	}
	s := f.Section(name)
	if s == nil {
		t.Fatalf("PE has no %s section", name)
	}
	b, err := s.Data()
	if err != nil {
		t.Fatal(err)
	}
	return string(b[:min(len(b), int(s.VirtualSize))])
}

func TestWriteVerifiedLayout(t *testing.T) {
	t.Parallel()
	img := verifiedImage()
	p, res := writeTest(t, img)
	v := res.Verified
	if v == nil {
		t.Fatal("Result.Verified is nil")
	}
	if len(v.RootHash) != 64 {
		t.Fatalf("root hash %q", v.RootHash)
	}

	slot := roundUp(testRootSize*3/2, MiB) // 3 MiB + 12345 bytes, half again: 5 MiB
	vslot := roundUp(verity.HashSize(uint64(slot/4096)), MiB)
	if slot != 5*MiB || vslot != MiB {
		t.Fatalf("test assumption: slot %d, verity slot %d", slot, vslot)
	}
	h := v.RootHash
	uuidOf := func(hexDigits string) string {
		return hexDigits[0:8] + "-" + hexDigits[8:12] + "-" + hexDigits[12:16] + "-" + hexDigits[16:20] + "-" + hexDigits[20:32]
	}
	esp := int64(2048)
	lba := func(mib int64) uint64 { return uint64(esp + mib*2048) }
	want := []Partition{
		{1, "esp", typeESP, res.ESPPartUUID, lba(0), lba(100) - 1, 0},
		{2, "nodebake_1.35.4-1", typeRootAMD64, uuidOf(h[:32]), lba(100), lba(105) - 1, 1 << 60},
		{3, "nodebake_1.35.4-1_verity", typeRootVerityAMD64, uuidOf(h[32:]), lba(105), lba(106) - 1, 1 << 60},
		{4, "_empty", typeRootAMD64, seededUUID(img.Seed, "root-b-partuuid").String(), lba(106), lba(111) - 1, 1 << 60},
		{5, "_empty", typeRootVerityAMD64, seededUUID(img.Seed, "root-verity-b-partuuid").String(), lba(111), lba(112) - 1, 1 << 60},
		{6, "var", typeVar, res.VarPartUUID, lba(112), lba(128) - 1, 0},
	}
	if fmt.Sprint(res.Partitions) != fmt.Sprint(want) {
		t.Errorf("partitions\n got %v\nwant %v", res.Partitions, want)
	}
	if res.RootPartUUID != want[1].PartUUID || res.VarPartUUID != want[5].PartUUID || res.VarPartUUID != seededUUID(img.Seed, "var-partuuid").String() {
		t.Errorf("result PARTUUIDs root %s var %s", res.RootPartUUID, res.VarPartUUID)
	}
	if wantSize := (esp + 128*2048 + 2048) * 512; res.Size != wantSize {
		t.Errorf("size %d, want %d", res.Size, wantSize)
	}
	wantCmdline := "root=/dev/mapper/root ro rootfstype=squashfs roothash=" + h + " panic=10 console=ttyS0,115200 quiet"
	if res.Cmdline != wantCmdline {
		t.Errorf("Cmdline %q\nwant %q", res.Cmdline, wantCmdline)
	}
	wantSlots := []Slot{{"nodebake_1.35.4-1", 2, 3, h}, {"_empty", 4, 5, ""}}
	if fmt.Sprint(v.Slots) != fmt.Sprint(wantSlots) {
		t.Errorf("slots %v, want %v", v.Slots, wantSlots)
	}
	if v.UKI != "/EFI/Linux/nodebake_1.35.4-1+3.efi" || v.Signed {
		t.Errorf("UKI %q signed %v", v.UKI, v.Signed)
	}

	// Slot A holds the root, then zeros; the hash device follows in its
	// own partition; slot B is empty.
	rootOff := partOffset(want[1])
	if got := readRange(t, p, rootOff, testRootSize); !bytes.Equal(got, pattern("root", int(testRootSize))) {
		t.Error("slot A does not hold what WriteRoot wrote")
	}
	if tail := readRange(t, p, rootOff+testRootSize, slot-testRootSize); !bytes.Equal(tail, make([]byte, len(tail))) {
		t.Error("slot A is not zero after the root")
	}
	hashDev := readRange(t, p, partOffset(want[2]), v.HashSize)
	if string(hashDev[:8]) != "verity\x00\x00" {
		t.Errorf("verity partition starts with %q", hashDev[:8])
	}
	for _, n := range []int{3, 4} {
		if b := readRange(t, p, partOffset(want[n]), partSize(want[n])); !bytes.Equal(b, make([]byte, len(b))) {
			t.Errorf("partition %d (%s) is not empty", n+1, want[n].Name)
		}
	}

	// The root hash is the one of the padded root with the seeded salt.
	data := append(pattern("root", int(testRootSize)), make([]byte, roundUp(testRootSize, 4096)-testRootSize)...)
	tree, err := verity.Format(context.Background(), bytes.NewReader(data), int64(len(data)), discard{}, 0,
		verity.Params{Salt: seededHash(img.Seed, "verity-salt"), UUID: seededUUID(img.Seed, "verity-uuid")})
	if err != nil {
		t.Fatal(err)
	}
	if tree.RootHashHex() != h || tree.HashSize != v.HashSize {
		t.Errorf("root hash %s (%d bytes), recomputed %s (%d bytes)", h, v.HashSize, tree.RootHashHex(), tree.HashSize)
	}
}

type discard struct{}

func (discard) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }

func TestWriteVerifiedSlotSize(t *testing.T) {
	t.Parallel()
	img := verifiedImage()
	img.Verified.SlotSize = 64 * MiB
	_, res := writeTest(t, img)
	for _, n := range []int{1, 3} {
		if got := partSize(res.Partitions[n]); got != 64*MiB {
			t.Errorf("partition %d: %d bytes, want 64 MiB", n+1, got)
		}
	}
	// A hash tree for a full 64 MiB slot: 16384 blocks, 128 level-0 blocks,
	// one level-1 block and the superblock: 130 blocks, in 1 MiB.
	for _, n := range []int{2, 4} {
		if got := partSize(res.Partitions[n]); got != MiB {
			t.Errorf("partition %d: %d bytes, want 1 MiB", n+1, got)
		}
	}

	img.Verified.SlotSize = 2 * MiB // smaller than the root
	_, err := Write(context.Background(), filepath.Join(t.TempDir(), "x.raw"), img)
	if err == nil || !strings.Contains(err.Error(), "SlotSize") {
		t.Errorf("root larger than SlotSize: error %v", err)
	}
}

func TestWriteVerifiedTools(t *testing.T) {
	needTool(t, "sgdisk", "veritysetup", "fsck.fat", "mtype", "mcopy", "mdir")
	t.Parallel()
	img := verifiedImage()
	p, res := writeTest(t, img)
	v := res.Verified

	if out := run(t, "sgdisk", "-v", p); !strings.Contains(out, "No problems found") {
		t.Errorf("sgdisk -v:\n%s", out)
	}
	for _, part := range res.Partitions {
		out := run(t, "sgdisk", "-i", strconv.Itoa(part.Number), p)
		attrs := "0000000000000000"
		if part.Attributes != 0 {
			attrs = "1000000000000000"
		}
		for _, s := range []string{
			"Partition GUID code: " + part.TypeGUID,
			"Partition unique GUID: " + strings.ToUpper(part.PartUUID),
			"Attribute flags: " + attrs,
			"Partition name: '" + part.Name + "'",
		} {
			if !strings.Contains(out, s) {
				t.Errorf("sgdisk -i %d lacks %q:\n%s", part.Number, s, out)
			}
		}
	}

	// veritysetup verifies slot A against the root hash, read back from
	// the image file, and finds a flipped byte.
	dir := t.TempDir()
	root, hash := filepath.Join(dir, "root.img"), filepath.Join(dir, "verity.img")
	copySparse(t, root, p, partOffset(res.Partitions[1]), partSize(res.Partitions[1]))
	copySparse(t, hash, p, partOffset(res.Partitions[2]), partSize(res.Partitions[2]))
	run(t, "veritysetup", "verify", root, hash, v.RootHash)
	dump := run(t, "veritysetup", "dump", hash)
	for _, s := range []string{
		"Salt:            \t" + hex.EncodeToString(seededHash(img.Seed, "verity-salt")),
		"UUID:            \t" + seededUUID(img.Seed, "verity-uuid").String(),
		"Data blocks:     \t" + strconv.FormatInt(roundUp(testRootSize, 4096)/4096, 10),
	} {
		if !strings.Contains(dump, s) {
			t.Errorf("veritysetup dump lacks %q:\n%s", s, dump)
		}
	}
	f, err := os.OpenFile(root, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := []byte{0}
	f.ReadAt(b, 1<<20+7)
	b[0] ^= 0x01
	f.WriteAt(b, 1<<20+7)
	f.Close()
	if out, err := exec.Command("veritysetup", "verify", root, hash, v.RootHash).CombinedOutput(); err == nil {
		t.Errorf("veritysetup verify accepts a flipped byte:\n%s", out)
	} else if !strings.Contains(string(out), "corrupted") && !strings.Contains(string(out), "Verification failed") {
		t.Logf("veritysetup verify of a flipped byte: %v: %s", err, out)
	}

	// The ESP: a valid FAT32 with systemd-boot, loader.conf and the UKI.
	espOff := partOffset(res.Partitions[0])
	esp := filepath.Join(dir, "esp.img")
	copySparse(t, esp, p, espOff, img.ESPSize)
	run(t, "fsck.fat", "-n", esp)
	mimg := fmt.Sprintf("%s@@%d", p, espOff)
	if got := run(t, "mtype", "-i", mimg, "::/loader/loader.conf"); got != "timeout 0\neditor no\nauto-entries no\nauto-firmware no\n" {
		t.Errorf("loader.conf = %q", got)
	}
	listing := run(t, "mdir", "-b", "-/", "-i", mimg, "::/")
	var files []string
	for _, l := range strings.Fields(listing) {
		if !strings.HasSuffix(l, "/") {
			files = append(files, strings.TrimPrefix(l, "::"))
		}
	}
	wantFiles := []string{"/EFI/BOOT/BOOTX64.EFI", "/EFI/Linux/nodebake_1.35.4-1+3.efi", "/EFI/systemd/systemd-bootx64.efi",
		"/loader/loader.conf", "/nodebake/build-info.txt"}
	if fmt.Sprint(files) != fmt.Sprint(wantFiles) {
		t.Errorf("ESP files %v, want %v", files, wantFiles)
	}
	got, err := exec.Command("mcopy", "-n", "-i", mimg, "::"+v.UKI, "-").Output()
	if err != nil {
		t.Fatalf("mcopy %s: %v", v.UKI, err)
	}
	if want := expectedUKI(t, img, res.Cmdline); !bytes.Equal(got, want) {
		t.Errorf("the UKI on the ESP (%d bytes) differs from uki.Write's (%d bytes)", len(got), len(want))
	}
	if int64(len(got)) != v.UKISize {
		t.Errorf("UKI %d bytes, result says %d", len(got), v.UKISize)
	}
	if c := peSection(t, got, ".cmdline"); c != res.Cmdline {
		t.Errorf(".cmdline %q, want %q", c, res.Cmdline)
	}
	osrel := peSection(t, got, ".osrel")
	if !strings.HasSuffix(osrel, "ID=debian\nIMAGE_ID=nodebake\nIMAGE_VERSION=1.35.4-1\n") || strings.Contains(osrel, "=old") {
		t.Errorf(".osrel = %q", osrel)
	}
}

func TestWriteVerifiedSigned(t *testing.T) {
	t.Parallel()
	signer, certPath := testSigner(t)
	img := verifiedImage()
	img.Verified.Signer = signer
	p, res := writeTest(t, img)
	if !res.Verified.Signed {
		t.Error("result does not say signed")
	}
	unsignedImg := verifiedImage()
	_, unsigned := writeTest(t, unsignedImg)
	if unsigned.Verified.RootHash != res.Verified.RootHash {
		t.Error("signing changed the root hash")
	}

	espOff := partOffset(res.Partitions[0])
	fs := openESP(t, p, espOff, img.ESPSize)
	for _, x := range []struct {
		path     string
		unsigned []byte
	}{
		{"/EFI/BOOT/BOOTX64.EFI", fakeEFI("systemd-boot", 90000)},
		{"/EFI/systemd/systemd-bootx64.efi", fakeEFI("systemd-boot", 90000)},
		{res.Verified.UKI, expectedUKI(t, img, res.Cmdline)},
	} {
		got, err := readFAT(fs, x.path, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		if _, err := signer.Sign(&want, bytes.NewReader(x.unsigned), int64(len(x.unsigned))); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want.Bytes()) {
			t.Errorf("%s is not the signed image (%d bytes, want %d)", x.path, len(got), want.Len())
		}
		if _, err := exec.LookPath("sbverify"); err == nil {
			tmp := filepath.Join(t.TempDir(), "image.efi")
			if err := os.WriteFile(tmp, got, 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("sbverify", "--cert", certPath, tmp).CombinedOutput(); err != nil {
				t.Errorf("sbverify %s: %v\n%s", x.path, err, out)
			}
		}
	}
}

func TestWriteVerifiedDeterministic(t *testing.T) {
	t.Parallel()
	p1, r1 := writeTest(t, verifiedImage())
	p2, r2 := writeTest(t, verifiedImage())
	if a, b := fileSHA(t, p1), fileSHA(t, p2); a != b {
		t.Errorf("same inputs, different images: %s vs %s", a, b)
	}
	if fmt.Sprint(r1.Partitions, *r1.Verified) != fmt.Sprint(r2.Partitions, *r2.Verified) {
		t.Error("same inputs, different results")
	}
	img := verifiedImage()
	img.Seed = []byte("another seed")
	_, r3 := writeTest(t, img)
	if r3.Verified.RootHash == r1.Verified.RootHash {
		t.Error("another seed (so another salt), same root hash")
	}
	img = verifiedImage()
	img.Verified.Version = "1.35.5-1"
	_, r4 := writeTest(t, img)
	if r4.Verified.RootHash != r1.Verified.RootHash || r4.Partitions[1].Name != "nodebake_1.35.5-1" {
		t.Errorf("another version: root hash %s (want the same), label %q", r4.Verified.RootHash, r4.Partitions[1].Name)
	}
}

// TestWriteDefaultUnchanged pins the bytes of the default layout: a
// verified disk is an addition, the default disk must not move.
func TestWriteDefaultUnchanged(t *testing.T) {
	t.Parallel()
	p, _ := writeTest(t, testImage())
	const golden = "testdata/default.sha256"
	got := fileSHA(t, p)
	if *update {
		if err := os.WriteFile(golden, []byte(got+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(want)) != got {
		t.Errorf("the default layout changed: sha256 %s, %s says %s", got, golden, strings.TrimSpace(string(want)))
	}
}

func TestValidateVerified(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("9", 21)
	tests := []struct {
		name   string
		mutate func(*Image)
		fields []string
	}{
		{"valid", func(*Image) {}, nil},
		{"no tries", func(img *Image) { img.Verified.Tries = 0 }, nil},
		{"longest label", func(img *Image) { img.Verified.Version = strings.Repeat("1", 36-len("nodebake__verity")) }, nil},
		{"label too long", func(img *Image) { img.Verified.Version = long }, []string{"Verified.Version"}},
		{"empty name", func(img *Image) { img.Verified.Name = "" }, []string{"Verified.Name"}},
		{"upper-case name", func(img *Image) { img.Verified.Name = "Nodebake" }, []string{"Verified.Name"}},
		{"underscore in name", func(img *Image) { img.Verified.Name = "node_bake" }, []string{"Verified.Name"}},
		{"empty version", func(img *Image) { img.Verified.Version = "" }, []string{"Verified.Version"}},
		{"underscore in version", func(img *Image) { img.Verified.Version = "1_2" }, []string{"Verified.Version"}},
		{"plus in version", func(img *Image) { img.Verified.Version = "1+3" }, []string{"Verified.Version"}},
		{"slash in version", func(img *Image) { img.Verified.Version = "../1" }, []string{"Verified.Version"}},
		{"version starts with dot", func(img *Image) { img.Verified.Version = ".1" }, []string{"Verified.Version"}},
		{"slot not MiB", func(img *Image) { img.Verified.SlotSize = MiB + 1 }, []string{"Verified.SlotSize"}},
		{"tries", func(img *Image) { img.Verified.Tries = 10 }, []string{"Verified.Tries"}},
		{"negative tries", func(img *Image) { img.Verified.Tries = -1 }, []string{"Verified.Tries"}},
		{"no stub", func(img *Image) { img.Verified.Stub = File{} }, []string{"Verified.Stub.Open", "Verified.Stub.Size"}},
		{"no os-release", func(img *Image) { img.Verified.OSRelease = nil }, []string{"Verified.OSRelease"}},
		{"os-release NUL", func(img *Image) { img.Verified.OSRelease = []byte("ID=a\x00") }, []string{"Verified.OSRelease"}},
		{"uname space", func(img *Image) { img.Verified.Uname = "6.12 x" }, []string{"Verified.Uname"}},
		{"roothash on cmdline", func(img *Image) { img.Cmdline = []string{"roothash=00"} }, []string{"Cmdline[0]"}},
		{"panic on cmdline", func(img *Image) { img.Cmdline = []string{"quiet", "panic=0"} }, []string{"Cmdline[1]"}},
		{"ESP without room for the next UKI", func(img *Image) { img.ESPSize = 33 * MiB; img.Initrd.Size = 14 * MiB }, []string{"ESPSize"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := verifiedImage()
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
		})
	}
	// Without Verified, roothash= and panic= are the user's business.
	img := testImage()
	img.Cmdline = []string{"panic=5"}
	if err := img.Validate(); err != nil {
		t.Errorf("default layout with panic=: %v", err)
	}
}

func TestOSRelease(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ID=debian\n", "ID=debian\nIMAGE_ID=n\nIMAGE_VERSION=1\n"},
		{"ID=debian", "ID=debian\nIMAGE_ID=n\nIMAGE_VERSION=1\n"},
		{"IMAGE_ID=x\nID=debian\n IMAGE_VERSION = 2\n", "ID=debian\nIMAGE_ID=n\nIMAGE_VERSION=1\n"},
		{"# IMAGE_ID=x\n", "# IMAGE_ID=x\nIMAGE_ID=n\nIMAGE_VERSION=1\n"},
	}
	for _, tt := range tests {
		got, err := OSRelease([]byte(tt.in), "n", "1")
		if err != nil || string(got) != tt.want {
			t.Errorf("OSRelease(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := OSRelease(make([]byte, 65<<10), "n", "1"); err == nil {
		t.Error("a 65 KiB os-release is accepted")
	}
}

func TestNames(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{Label("nodebake", "1.2", false), "nodebake_1.2"},
		{Label("nodebake", "1.2", true), "nodebake_1.2_verity"},
		{UKIName("nodebake", "1.2", 3), "nodebake_1.2+3.efi"},
		{UKIName("nodebake", "1.2", 0), "nodebake_1.2.efi"},
	} {
		if tt.got != tt.want {
			t.Errorf("%q, want %q", tt.got, tt.want)
		}
	}
}

func TestReadParts(t *testing.T) {
	t.Parallel()
	img := testImage()
	img.Kernel = BytesFile("", fakeEFI("kernel", 300001))
	img.Bootloader = BytesFile("", fakeEFI("systemd-boot", 90000))
	// A root that starts like a squashfs and says how long it is.
	root := pattern("root", int(testRootSize))
	copy(root, squashfsMagic)
	putUint64(root[squashfsBytesUsedOff:], uint64(testRootSize-100))
	img.WriteRoot = rootWriter(root)
	p, _ := writeTest(t, img)

	parts, err := ReadParts(p)
	if err != nil {
		t.Fatal(err)
	}
	defer parts.Close()
	if parts.Arch != "amd64" || parts.RootSize != testRootSize-100 {
		t.Errorf("arch %q root size %d", parts.Arch, parts.RootSize)
	}
	if fmt.Sprint(parts.Cmdline) != "[console=ttyS0,115200 quiet]" {
		t.Errorf("cmdline %q", parts.Cmdline)
	}
	for _, x := range []struct {
		name string
		f    File
		want []byte
	}{
		{"kernel", parts.Kernel, fakeEFI("kernel", 300001)},
		{"initrd", parts.Initrd, pattern("initrd", 5<<20+7)},
		{"bootloader", parts.Bootloader, fakeEFI("systemd-boot", 90000)},
	} {
		got, err := readFile(x.name, x.f, 1<<30)
		if err != nil || !bytes.Equal(got, x.want) {
			t.Errorf("%s: %d bytes, %v; want the %d written", x.name, len(got), err, len(x.want))
		}
	}

	// The verified disk made of these parts carries the same root.
	vimg := parts.Image(Image{Seed: []byte("v"), ModTime: testModTime, ESPSize: 100 * MiB, VarSize: 16 * MiB,
		Verified: verifiedImage().Verified})
	vimg.Verified.Uname = "6.12.0"
	vp, res := writeTest(t, vimg)
	if got := readRange(t, vp, partOffset(res.Partitions[1]), testRootSize-100); !bytes.Equal(got, root[:testRootSize-100]) {
		t.Error("slot A does not hold the root of the parts")
	}
	if !strings.HasSuffix(res.Cmdline, " panic=10 console=ttyS0,115200 quiet") {
		t.Errorf("cmdline %q", res.Cmdline)
	}

	// Not a default-layout disk: no squashfs in the root partition.
	img.WriteRoot = rootWriter(pattern("root", int(testRootSize)))
	p2, _ := writeTest(t, img)
	if _, err := ReadParts(p2); err == nil || !strings.Contains(err.Error(), "squashfs") {
		t.Errorf("ReadParts of a root without squashfs: %v", err)
	}
	if _, err := ReadParts(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("ReadParts of a missing file succeeded")
	}
}

func putUint64(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (8 * i))
	}
}

func TestReadVerifiedParts(t *testing.T) {
	t.Parallel()
	for _, tries := range []int{0, 3} {
		img := verifiedImage()
		img.Verified.Tries = tries
		p, res := writeTest(t, img)
		vp, err := ReadVerifiedParts(p)
		if err != nil {
			t.Fatal(err)
		}
		defer vp.Close()
		if vp.Name != "nodebake" || vp.Version != "1.35.4-1" || vp.RootHash != res.Verified.RootHash {
			t.Errorf("tries %d: read %s %s %s, want nodebake 1.35.4-1 %s", tries, vp.Name, vp.Version, vp.RootHash, res.Verified.RootHash)
		}
		padded := roundUp(testRootSize, 4096)
		root := make([]byte, vp.Root.Size())
		if _, err := vp.Root.ReadAt(root, 0); err != nil {
			t.Fatal(err)
		}
		want := append(pattern("root", int(testRootSize)), make([]byte, padded-testRootSize)...)
		if !bytes.Equal(root, want) {
			t.Errorf("tries %d: root %d bytes, want the %d-byte padded root", tries, len(root), padded)
		}
		hash := make([]byte, vp.Hash.Size())
		if _, err := vp.Hash.ReadAt(hash, 0); err != nil {
			t.Fatal(err)
		}
		if int64(len(hash)) != res.Verified.HashSize || !bytes.Equal(hash, readRange(t, p, partOffset(res.Partitions[2]), res.Verified.HashSize)) {
			t.Errorf("tries %d: hash device %d bytes, want the %d of partition 3", tries, len(hash), res.Verified.HashSize)
		}
		if !bytes.Equal(vp.UKI, expectedUKI(t, img, res.Cmdline)) {
			t.Errorf("tries %d: the UKI read back differs", tries)
		}
	}
	// A default-layout disk has no versioned slot.
	p, _ := writeTest(t, testImage())
	if _, err := ReadVerifiedParts(p); err == nil {
		t.Error("ReadVerifiedParts of a default-layout disk succeeded")
	}
}
