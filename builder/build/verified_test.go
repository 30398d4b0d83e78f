package build

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	spdxjson "github.com/spdx/tools-golang/json"

	"github.com/nodebake/nodebake/builder/disk"
	"github.com/nodebake/nodebake/builder/sysupdate"
	"github.com/nodebake/nodebake/layers/failure"
	"github.com/nodebake/nodebake/layers/spec"
)

// verifiedSpec is the fixture's spec with verified boot and updates.
func verifiedSpec(t *testing.T, f *fixture, dir string, signing *spec.Signing) *spec.Spec {
	t.Helper()
	s := f.spec.Clone()
	s.Dir = dir
	s.Output.Formats = nil
	s.Output.VerifiedBoot = &spec.VerifiedBoot{Enabled: true, Version: "1.35.4-1", Signing: signing,
		Updates: &spec.Updates{Source: "https://updates.example/test/", Timer: "daily"}}
	s.Default()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return s
}

// writeKey writes a new RSA key (with mode keyMode) and its self-signed
// certificate into dir.
func writeKey(t *testing.T, dir string, keyMode os.FileMode) *spec.Signing {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "nodebake build test"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	sg := &spec.Signing{Key: filepath.Join(dir, "db.key"), Certificate: filepath.Join(dir, "db.crt")}
	for p, b := range map[string]*pem.Block{
		sg.Key:         {Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)},
		sg.Certificate: {Type: "CERTIFICATE", Bytes: der},
	} {
		if err := os.WriteFile(p, pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(sg.Key, keyMode); err != nil {
		t.Fatal(err)
	}
	return sg
}

// TestBuildVerified builds a verified image with the fake base: slot A
// holds the root with its hash tree under the PARTUUIDs of the root hash,
// the UKI pins it, the root carries the version, the health check and the
// update definitions, the update output holds what sysupdate downloads,
// and manifest, SBOM and sums record it all. A second build gives the
// same bytes; a signed one the same root.
func TestBuildVerified(t *testing.T) {
	f := newFixture(t)
	s := verifiedSpec(t, f, "", nil)
	out := t.TempDir()
	res, err := f.build(t, out, s)
	if err != nil {
		t.Fatal(err)
	}
	m := res.Manifest
	v := m.Verified
	if v == nil {
		t.Fatal("the manifest has no verified section")
	}
	if len(v.RootHash) != 64 || v.Version != "1.35.4-1" || v.Tries != 3 || v.SigningCertificate != "" ||
		v.UpdateSource != "https://updates.example/test/" || v.UKI.Path != "/EFI/Linux/test_1.35.4-1.efi" ||
		!strings.Contains(v.Cmdline, "roothash="+v.RootHash) || v.HashTreeSize <= 0 {
		t.Errorf("manifest verified = %+v", v)
	}
	h := v.RootHash
	wantSlots := []SlotInfo{
		{Label: "test_1.35.4-1", Root: 2, RootPartUUID: h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32],
			Verity: 3, VerityPartUUID: h[32:40] + "-" + h[40:44] + "-" + h[44:48] + "-" + h[48:52] + "-" + h[52:64]},
		{Label: "_empty", Root: 4, RootPartUUID: v.Slots[1].RootPartUUID, Verity: 5, VerityPartUUID: v.Slots[1].VerityPartUUID},
	}
	if !slices.Equal(v.Slots, wantSlots) || v.SlotSize < m.Image.RootFilesystemSize {
		t.Errorf("slots %+v (%d bytes each), want %+v", v.Slots, v.SlotSize, wantSlots)
	}

	// The disk as sysupdate and the initrd read it.
	vp, err := disk.ReadVerifiedParts(res.ImagePath)
	if err != nil {
		t.Fatal(err)
	}
	defer vp.Close()
	ukiSum := sha256.Sum256(vp.UKI)
	if vp.Name != "test" || vp.Version != v.Version || vp.RootHash != h || hex.EncodeToString(ukiSum[:]) != v.UKI.SHA256 {
		t.Errorf("the disk holds %s %s, root hash %s, UKI %x; the manifest says %+v", vp.Name, vp.Version, vp.RootHash, ukiSum, v)
	}
	if !bytes.Contains(vp.UKI, []byte("IMAGE_VERSION=1.35.4-1\n")) || !bytes.Contains(vp.UKI, []byte("roothash="+h)) {
		t.Error("the UKI lacks the version or the root hash")
	}
	if _, err := exec.LookPath("veritysetup"); err == nil {
		root, hash := filepath.Join(t.TempDir(), "root"), filepath.Join(t.TempDir(), "hash")
		copyTo(t, root, vp.Root)
		copyTo(t, hash, vp.Hash)
		if out, err := exec.Command("veritysetup", "verify", root, hash, h).CombinedOutput(); err != nil {
			t.Errorf("veritysetup verify: %v\n%s", err, out)
		}
		checkVerifiedRoot(t, root, h)
	}

	// The update: what the transfers match, checked by sha256sum, and
	// listed in the build's sums and manifest.
	up, ok := res.Plan.Output(spec.FormatUpdate)
	if !ok || up.Path != filepath.Join(out, "test.update") {
		t.Fatalf("the plan has no update output: %+v", res.Plan.Outputs)
	}
	rootName, verityName, ukiName, _ := sysupdate.Artifacts("test", v.Version, h)
	names := []string{rootName, verityName, ukiName}
	slices.Sort(names)
	checkSums(t, up.Path, filepath.Join(up.Path, sysupdate.SumsFile), names)
	if b, _ := os.ReadFile(filepath.Join(up.Path, ukiName)); !bytes.Equal(b, vp.UKI) {
		t.Error("the update's UKI is not the disk's")
	}
	var sumsNames []string
	for _, n := range append(names, sysupdate.SumsFile) {
		sumsNames = append(sumsNames, "test.update/"+n)
	}
	want := append([]string{"test.manifest.json", "test.raw", "test.spdx.json"}, sumsNames...)
	slices.Sort(want)
	checkSums(t, out, res.SumsPath, want)
	checkSBOM(t, res)
	sb, _ := os.ReadFile(res.SBOMPath)
	doc, err := spdxjson.Read(bytes.NewReader(sb))
	if err != nil {
		t.Fatal(err)
	}
	foundUKI := false
	for _, p := range doc.Packages {
		if p.PackageSPDXIdentifier == "Image" && !strings.Contains(p.PackageDescription, "dm-verity root hash "+h) {
			t.Errorf("the SBOM's image does not name the root hash: %q", p.PackageDescription)
		}
		foundUKI = foundUKI || p.PackageSPDXIdentifier == "UKI" && len(p.PackageChecksums) == 1 && p.PackageChecksums[0].Value == v.UKI.SHA256
	}
	if !foundUKI {
		t.Error("the SBOM lacks the UKI with its sha256")
	}

	// The update exported later from the image is the build's.
	exp := t.TempDir()
	for _, n := range []string{"test.raw", "test.manifest.json"} {
		if err := os.Link(filepath.Join(out, n), filepath.Join(exp, n)); err != nil {
			t.Fatal(err)
		}
	}
	er, err := Export(t.Context(), filepath.Join(exp, "test.raw"), ExportOptions{Formats: []spec.Format{spec.FormatUpdate}})
	if err != nil {
		t.Fatalf("exporting the update: %v", err)
	}
	if got, want := er.Outputs[0].Files, res.Outputs[0].Files; len(got) != 4 || len(got) != len(want) || got[0].SHA256 != want[0].SHA256 || got[3].SHA256 != want[3].SHA256 {
		t.Errorf("exported update %+v, the build's %+v", got, want)
	}
	if _, err := Export(t.Context(), filepath.Join(exp, "test.raw"), ExportOptions{OutputDir: t.TempDir(), Formats: []spec.Format{spec.FormatNetboot}}); failure.KindOf(err) != failure.Invalid {
		t.Errorf("a netboot bundle of a verified image: %v", err)
	}

	// The same spec gives the same bytes.
	out2 := t.TempDir()
	res2, err := f.build(t, out2, s)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Manifest.Image.SHA256 != m.Image.SHA256 {
		t.Errorf("a second build gives %s, the first %s", res2.Manifest.Image.SHA256, m.Image.SHA256)
	}
	if a, b := readFile(t, res.SumsPath), readFile(t, res2.SumsPath); !bytes.Equal(a, b) {
		t.Errorf("the sums differ:\n%s\n%s", a, b)
	}

	// Signed (the key through the options): the same root, a signed UKI.
	sg := writeKey(t, t.TempDir(), 0o600)
	res3, err := Build(t.Context(), s, Options{OutputDir: t.TempDir(), Cache: f.cache, FirstbootBinary: f.firstboot, Workers: 2, Signing: sg})
	if err != nil {
		t.Fatal(err)
	}
	v3 := res3.Manifest.Verified
	if v3.RootHash != h || v3.UKI.SHA256 == v.UKI.SHA256 || len(v3.SigningCertificate) != 64 {
		t.Errorf("signed: root hash %s (unsigned %s), UKI %s (unsigned %s), certificate %q", v3.RootHash, h, v3.UKI.SHA256, v.UKI.SHA256, v3.SigningCertificate)
	}
	if _, err := exec.LookPath("sbverify"); err == nil {
		vp3, err := disk.ReadVerifiedParts(res3.ImagePath)
		if err != nil {
			t.Fatal(err)
		}
		defer vp3.Close()
		p := filepath.Join(t.TempDir(), "uki.efi")
		os.WriteFile(p, vp3.UKI, 0o644)
		if out, err := exec.Command("sbverify", "--cert", sg.Certificate, p).CombinedOutput(); err != nil {
			t.Errorf("sbverify of the signed UKI: %v\n%s", err, out)
		}
	}
}

// TestBuildVerifiedKeyRefused: a key others may read fails the build as
// invalid input naming the field, before anything is written.
func TestBuildVerifiedKeyRefused(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	sg := writeKey(t, dir, 0o600)
	s := verifiedSpec(t, f, dir, &spec.Signing{Key: "db.key", Certificate: "db.crt"})
	// Changed after the spec was validated: the build checks again.
	if err := os.Chmod(sg.Key, 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	_, err := f.build(t, out, s)
	if failure.KindOf(err) != failure.Invalid || !strings.Contains(err.Error(), "output.verifiedBoot.signing") || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("build with a 0644 key: %v (kind %v)", err, failure.KindOf(err))
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("the refused build left %d entries", len(entries))
	}
}

// checkVerifiedRoot reads the root filesystem with rdsquashfs: the
// version in os-release, the health check, the transfers, the timer.
func checkVerifiedRoot(t *testing.T, root, rootHash string) {
	t.Helper()
	if _, err := exec.LookPath("rdsquashfs"); err != nil {
		t.Logf("no rdsquashfs: %v", err)
		return
	}
	cat := func(p string) string {
		out, err := exec.Command("rdsquashfs", "-c", p, root).Output()
		if err != nil {
			t.Errorf("rdsquashfs -c %s: %v", p, err)
		}
		return string(out)
	}
	if o := cat("/etc/os-release"); !strings.HasSuffix(o, "IMAGE_ID=test\nIMAGE_VERSION=1.35.4-1\n") || !strings.Contains(o, "ID=debian\n") {
		t.Errorf("os-release:\n%s", o)
	}
	if u := cat("/usr/lib/sysupdate.d/90-test-uki.transfer"); !strings.Contains(u, "Path=https://updates.example/test\n") || !strings.Contains(u, "TriesLeft=3\n") {
		t.Errorf("the UKI transfer:\n%s", u)
	}
	for _, p := range []string{"/usr/lib/sysupdate.d/10-test-root.transfer", "/usr/lib/sysupdate.d/20-test-root-verity.transfer",
		"/etc/systemd/system/nodebake-healthy.service", "/etc/systemd/system/nodebake-update.service", "/etc/systemd/system/nodebake-update.timer"} {
		if cat(p) == "" {
			t.Errorf("the root lacks %s", p)
		}
	}
	out, err := exec.Command("rdsquashfs", "-l", "/etc/systemd/system/boot-complete.target.requires", root).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "nodebake-healthy.service") {
		t.Errorf("boot-complete.target.requires: %v %s", err, out)
	}
}

func copyTo(t *testing.T, p string, r io.Reader) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(f, r); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
