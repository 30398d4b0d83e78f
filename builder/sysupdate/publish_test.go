package sysupdate

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/builder/disk"
	"github.com/nodebake/nodebake/builder/internal/pecoff/pecofftest"
)

// verifiedDisk writes a small verified disk of synthetic parts (the slow
// test in test/verified uses the real ones) and returns its path.
func verifiedDisk(t *testing.T, root []byte) string {
	t.Helper()
	pe := func(fill byte, n int, sbat bool) []byte {
		secs := []pecofftest.Section{{Name: ".text", Data: bytes.Repeat([]byte{fill}, n)}}
		if sbat {
			secs = append(secs, pecofftest.Section{Name: ".sbat", Data: []byte("sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n")})
		}
		return pecofftest.Image{DllCharacteristics: 0x160, SpareHeaders: 8, Sections: secs}.Bytes()
	}
	p := filepath.Join(t.TempDir(), "disk.raw")
	_, err := disk.Write(context.Background(), p, disk.Image{
		Arch: "amd64", Seed: []byte("publish test"), ModTime: time.Unix(1700000000, 0),
		ESPSize: 100 * disk.MiB, VarSize: disk.MiB,
		Kernel:     disk.BytesFile("", pe(0x90, 20000, false)),
		Initrd:     disk.BytesFile("", bytes.Repeat([]byte("initrd"), 1000)),
		Bootloader: disk.BytesFile("", pe(0xcc, 5000, false)),
		WriteRoot: func(_ context.Context, w io.WriterAt) (int64, error) {
			_, err := w.WriteAt(root, 0)
			return int64(len(root)), err
		},
		Verified: &disk.Verified{Name: "nodebake", Version: "2.0", Tries: 3, Stub: disk.BytesFile("", pe(0xcc, 3000, true)),
			OSRelease: []byte("ID=debian\n"), Uname: "6.12.0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPublish(t *testing.T) {
	root := bytes.Repeat([]byte("squashfs"), 100000) // 800000 bytes: not whole blocks
	vp, err := disk.ReadVerifiedParts(verifiedDisk(t, root))
	if err != nil {
		t.Fatal(err)
	}
	defer vp.Close()
	dir := filepath.Join(t.TempDir(), "updates")
	names, err := Publish(context.Background(), dir, vp)
	if err != nil {
		t.Fatal(err)
	}
	rootName, verityName, ukiName, _ := Artifacts("nodebake", "2.0", vp.RootHash)
	want := []string{rootName, ukiName, verityName}
	sort.Strings(want)
	if got, want := strings.Join(names, " "), strings.Join(append(want, SumsFile), " "); got != want {
		t.Errorf("names %s, want %s", got, want)
	}
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 1 {
		t.Errorf("%d entries next to the update, want only it", len(entries))
	}
	read := func(n string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	padded := append(bytes.Clone(root), make([]byte, 4096-len(root)%4096)...)
	if !bytes.Equal(read(rootName), padded) {
		t.Errorf("%s is not the root padded to whole blocks", rootName)
	}
	if !bytes.Equal(read(ukiName), vp.UKI) {
		t.Errorf("%s is not the UKI", ukiName)
	}
	sums := string(read(SumsFile))
	if strings.Count(sums, "\n") != 3 {
		t.Errorf("SHA256SUMS:\n%s", sums)
	}
	if _, err := exec.LookPath("sha256sum"); err == nil {
		cmd := exec.Command("sha256sum", "--strict", "-c", SumsFile)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("sha256sum -c: %v\n%s", err, out)
		}
	}
	if _, err := exec.LookPath("veritysetup"); err == nil {
		out, err := exec.Command("veritysetup", "verify", filepath.Join(dir, rootName), filepath.Join(dir, verityName), vp.RootHash).CombinedOutput()
		if err != nil {
			t.Errorf("veritysetup verify of the published root: %v\n%s", err, out)
		}
	}

	// The directory exists now: a second publish is refused and leaves
	// nothing behind.
	if _, err := Publish(context.Background(), dir, vp); err == nil {
		t.Error("publishing into an existing directory succeeded")
	}
	if entries, _ := os.ReadDir(filepath.Dir(dir)); len(entries) != 1 {
		t.Errorf("%d entries after the refused publish", len(entries))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	other := filepath.Join(t.TempDir(), "u")
	if _, err := Publish(ctx, other, vp); err == nil {
		t.Error("publishing with a cancelled context succeeded")
	}
	if entries, _ := os.ReadDir(filepath.Dir(other)); len(entries) != 0 {
		t.Errorf("a cancelled publish left %d entries", len(entries))
	}
}
