package authenticode

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/builder/internal/testbase"
	"github.com/nodebake/nodebake/builder/uki"
)

// requireTool returns the path of a program, skipping the test when it is
// missing, or failing it when NODEBAKE_REQUIRE_TOOLS=1.
func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("NODEBAKE_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%s is required (NODEBAKE_REQUIRE_TOOLS=1; Debian package %s): %v", name, pkg, err)
		}
		t.Skipf("%s is not installed (Debian package %s): %v", name, pkg, err)
	}
	return p
}

var osslVersion = regexp.MustCompile(`^osslsigncode (\d+)\.(\d+)`)

// requireOsslsigncode returns osslsigncode, 2.9 or later: 2.5 (Debian
// bookworm) reports "Invalid signature" even for sbsign's signatures.
func requireOsslsigncode(t *testing.T) string {
	t.Helper()
	p := requireTool(t, "osslsigncode", "osslsigncode")
	out, _ := exec.Command(p, "--version").CombinedOutput()
	m := osslVersion.FindSubmatch(out)
	if m == nil {
		t.Fatalf("osslsigncode --version printed no version:\n%s", out)
	}
	major, _ := strconv.Atoi(string(m[1]))
	minor, _ := strconv.Atoi(string(m[2]))
	if major < 2 || major == 2 && minor < 9 {
		msg := fmt.Sprintf("osslsigncode %s.%s cannot verify UEFI signatures (it refuses sbsign's too); install 2.9 or later (bookworm-backports)", m[1], m[2])
		if os.Getenv("NODEBAKE_REQUIRE_TOOLS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

var osslDigest = regexp.MustCompile(`(?m)^(Current|Calculated) message digest\s*:\s*([0-9A-F]{64})`)

// checkWithTools signs img, then checks the result with sbverify and
// osslsigncode (the right certificate passes, another fails, the unsigned
// image fails), and checks Digest against the digest sbsign signs.
func checkWithTools(t *testing.T, img []byte) {
	good, wrong := testKeys()[0], testKeys()[1]
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	unsigned := write("unsigned.efi", img)
	signed := write("signed.efi", sign(t, good.signer(t), img))
	goodCert, wrongCert := write("good.pem", good.certPEM), write("wrong.pem", wrong.certPEM)
	goodKey := write("good.key", good.keyPEM)
	want := digest(t, img)

	run := func(name string, args ...string) (string, error) {
		b, err := exec.Command(name, args...).CombinedOutput()
		return string(b), err
	}
	t.Run("sbverify", func(t *testing.T) {
		sbverify := requireTool(t, "sbverify", "sbsigntool")
		checkSbverify(t, run, sbverify, signed, unsigned, goodCert, wrongCert)
	})
	t.Run("osslsigncode", func(t *testing.T) {
		ossl := requireOsslsigncode(t)
		checkOsslsigncode(t, run, ossl, signed, goodCert, wrongCert, want)
	})
	t.Run("sbsign digest", func(t *testing.T) {
		sbsign := requireTool(t, "sbsign", "sbsigntool")
		ossl := requireOsslsigncode(t)
		checkSbsignDigest(t, run, sbsign, ossl, unsigned, goodKey, goodCert, dir, want)
	})
}

type runFunc func(name string, args ...string) (string, error)

func checkSbverify(t *testing.T, run runFunc, sbverify, signed, unsigned, goodCert, wrongCert string) {
	if out, err := run(sbverify, "--cert", goodCert, signed); err != nil || !strings.Contains(out, "Signature verification OK") {
		t.Errorf("sbverify --cert (the signing certificate): %v\n%s", err, out)
	}
	if out, err := run(sbverify, "--cert", wrongCert, signed); err == nil {
		t.Errorf("sbverify accepted the image with another certificate:\n%s", out)
	}
	if out, err := run(sbverify, "--cert", goodCert, unsigned); err == nil {
		t.Errorf("sbverify accepted the unsigned image:\n%s", out)
	}
	if out, err := run(sbverify, "--list", signed); err != nil || !strings.Contains(out, "signature 1") || strings.Contains(out, "signature 2") {
		t.Errorf("sbverify --list: want exactly one signature: %v\n%s", err, out)
	}
}

func checkOsslsigncode(t *testing.T, run runFunc, ossl, signed, goodCert, wrongCert string, want [32]byte) {
	out, err := run(ossl, "verify", "-in", signed, "-CAfile", goodCert)
	if err != nil || !strings.Contains(out, "Signature verification: ok") || strings.Contains(out, "invalid PE checksum") {
		t.Errorf("osslsigncode verify: %v\n%s", err, out)
	}
	for _, m := range osslDigest.FindAllStringSubmatch(out, -1) {
		if !strings.EqualFold(m[2], hex.EncodeToString(want[:])) {
			t.Errorf("osslsigncode's %s message digest %s, Digest says %x", m[1], m[2], want)
		}
	}
	if len(osslDigest.FindAllStringSubmatch(out, -1)) != 2 {
		t.Errorf("osslsigncode printed no current and calculated digests:\n%s", out)
	}
	if out, err := run(ossl, "verify", "-in", signed, "-CAfile", wrongCert); err == nil {
		t.Errorf("osslsigncode verify accepted the image against another CA:\n%s", out)
	}
}

func checkSbsignDigest(t *testing.T, run runFunc, sbsign, ossl, unsigned, goodKey, goodCert, dir string, want [32]byte) {
	// sbsign's signature carries the digest sbsign computed: it must be
	// ours (its signed file has a signing time, so only the digest can be
	// compared).
	bySbsign := filepath.Join(dir, "sbsign.efi")
	if out, err := run(sbsign, "--key", goodKey, "--cert", goodCert, "--output", bySbsign, unsigned); err != nil {
		t.Fatalf("sbsign: %v\n%s", err, out)
	}
	out, err := run(ossl, "verify", "-in", bySbsign, "-CAfile", goodCert)
	if err != nil {
		t.Fatalf("osslsigncode verify of sbsign's output: %v\n%s", err, out)
	}
	m := osslDigest.FindStringSubmatch(out)
	if m == nil || !strings.EqualFold(m[2], hex.EncodeToString(want[:])) {
		t.Errorf("sbsign signed the digest %v, Digest says %x", m, want)
	}
	sb, err := os.ReadFile(bySbsign)
	if err != nil {
		t.Fatal(err)
	}
	if got := digest(t, sb); got != want {
		t.Errorf("Digest of sbsign's output %x, of the unsigned image %x", got, want)
	}
}

func TestTools(t *testing.T) { checkWithTools(t, fakeImage(0)) }

// TestToolsReal signs the base's systemd-boot and a UKI built from the
// base's stub, kernel and initrd.
func TestToolsReal(t *testing.T) {
	files := testbase.Find(t, testbase.SystemdBootX64, testbase.StubAMD64, testbase.KernelPattern, testbase.InitrdPattern, testbase.OSRelease)
	t.Run("systemd-boot", func(t *testing.T) { checkWithTools(t, files[0].Data) })
	t.Run("UKI", func(t *testing.T) {
		var b bytes.Buffer
		initrd := files[3].Data
		_, err := uki.Write(&b, uki.Input{Stub: files[1].Data, Kernel: files[2].Data, OSRelease: files[4].Data,
			Initrd: io.NewSectionReader(bytes.NewReader(initrd), 0, int64(len(initrd))), Cmdline: "ro console=ttyS0"})
		if err != nil {
			t.Fatal(err)
		}
		checkWithTools(t, b.Bytes())
	})
}
