// Package secureboot prepares UEFI Secure Boot for QEMU tests: a test
// signing key with its certificate, and an OVMF variable store in which that
// certificate is enrolled as the platform key (PK), key exchange key (KEK)
// and signature database (db) entry, with Secure Boot enforced. A guest
// booted with CodeFile and such a store runs only EFI images signed by the
// test key: an image signed with another key, or unsigned, is refused by
// the firmware ("Access Denied" on the console).
//
// The store is written by virt-fw-vars (Debian package python3-virt-firmware,
// in bookworm-backports and trixie), which turns a certificate into EFI
// signature lists and sets SecureBootEnable. For the same certificate it
// writes the same bytes. When virt-fw-vars is missing, SnakeoilKey and
// SnakeoilVarsFile are the fallback: Debian's OVMF ships a store with its
// own "snakeoil" test key enrolled and the key itself.
//
// QEMU needs the Secure Boot build of OVMF (CodeFile, which requires SMM):
// besides the two pflash drives, add MachineOptions to -machine and the
// options of QEMUGlobal.
package secureboot

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/nodebake/nodebake/builder/qemu"
)

// Files of Debian's ovmf package, next to the OVMF that nodebake run boots.
const (
	// CodeFile is OVMF with Secure Boot and SMM.
	CodeFile = qemu.DefaultFirmwareDir + "/OVMF_CODE_4M.secboot.fd"
	// EmptyVarsFile is the variable store template without keys (setup
	// mode, Secure Boot off).
	EmptyVarsFile = qemu.DefaultFirmwareDir + "/OVMF_VARS_4M.fd"
	// SnakeoilVarsFile has Debian's snakeoil certificate as PK, KEK and db,
	// and Secure Boot on.
	SnakeoilVarsFile = qemu.DefaultFirmwareDir + "/OVMF_VARS_4M.snakeoil.fd"
	// SnakeoilKeyFile is the snakeoil key (encrypted PKCS#8, password
	// SnakeoilPassword), SnakeoilCertFile its certificate.
	SnakeoilKeyFile  = "/usr/share/ovmf/PkKek-1-snakeoil.key"
	SnakeoilCertFile = "/usr/share/ovmf/PkKek-1-snakeoil.pem"
	SnakeoilPassword = "snakeoil"
)

// QEMU options the Secure Boot firmware needs.
const (
	// MachineOptions go with -machine q35: the firmware's variable
	// store is protected by SMM.
	MachineOptions = "smm=on"
	// QEMUGlobal is the value of -global that makes the pflash secure.
	QEMUGlobal = "driver=cfi.pflash01,property=secure,value=on"
)

// OwnerGUID is the owner recorded with the enrolled certificate in each
// signature list.
const OwnerGUID = "6e6f6465-6261-4b65-9000-000000000001"

// EnvVirtFwVars names the virt-fw-vars command; without it virt-fw-vars is
// looked up on PATH.
const EnvVirtFwVars = "NODEBAKE_VIRT_FW_VARS"

// Key is a signing key and its certificate, as PEM files (mode 0600).
type Key struct {
	KeyPath, CertPath string
	KeyPEM, CertPEM   []byte
	Cert              *x509.Certificate
}

// NewKey makes an RSA-2048 key and a self-signed code signing certificate
// with the given common name, in a directory of the test.
func NewKey(t testing.TB, commonName string) Key {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	k := Key{
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(priv)}),
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Cert:    cert,
	}
	dir := t.TempDir()
	k.KeyPath, k.CertPath = filepath.Join(dir, "db.key"), filepath.Join(dir, "db.pem")
	writeFile(t, k.KeyPath, k.KeyPEM)
	writeFile(t, k.CertPath, k.CertPEM)
	return k
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// missing skips the test, or fails it under NODEBAKE_REQUIRE_TOOLS=1.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("NODEBAKE_REQUIRE_TOOLS") == "1" {
		t.Fatalf(format+" (required: NODEBAKE_REQUIRE_TOOLS=1)", args...)
	}
	t.Skipf(format, args...)
}

// VirtFwVars returns the virt-fw-vars command.
func VirtFwVars(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(EnvVirtFwVars); p != "" {
		return p
	}
	p, err := exec.LookPath("virt-fw-vars")
	if err != nil {
		missing(t, "virt-fw-vars is not installed (Debian package python3-virt-firmware; or set %s): %v", EnvVirtFwVars, err)
	}
	return p
}

// EnrolledVars writes a new OVMF variable store, in a directory of the
// test, with the certificate of k as PK, KEK and db and Secure Boot
// enforced, and returns its path. Give each VM its own copy: the firmware
// writes to it.
func EnrolledVars(t testing.TB, k Key) string {
	t.Helper()
	if _, err := os.Stat(EmptyVarsFile); err != nil {
		missing(t, "OVMF variable template: %v (Debian package ovmf)", err)
	}
	out := filepath.Join(t.TempDir(), "OVMF_VARS_4M.enrolled.fd")
	cmd := exec.Command(VirtFwVars(t), "--input", EmptyVarsFile, "--output", out,
		"--set-pk", OwnerGUID, k.CertPath,
		"--add-kek", OwnerGUID, k.CertPath,
		"--add-db", OwnerGUID, k.CertPath,
		"--secure-boot")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, b)
	}
	return out
}

// SnakeoilKey returns Debian's OVMF snakeoil key (decrypted with openssl)
// and certificate, which SnakeoilVarsFile has enrolled.
func SnakeoilKey(t testing.TB) Key {
	t.Helper()
	certPEM, err := os.ReadFile(SnakeoilCertFile)
	if err != nil {
		missing(t, "the OVMF snakeoil certificate: %v (Debian package ovmf)", err)
	}
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		missing(t, "openssl is not installed: %v", err)
	}
	dir := t.TempDir()
	k := Key{KeyPath: filepath.Join(dir, "snakeoil.key"), CertPath: filepath.Join(dir, "snakeoil.pem"), CertPEM: certPEM}
	cmd := exec.Command(openssl, "pkey", "-in", SnakeoilKeyFile, "-passin", "pass:"+SnakeoilPassword, "-out", k.KeyPath)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("decrypting %s: %v\n%s", SnakeoilKeyFile, err, b)
	}
	if err := os.Chmod(k.KeyPath, 0o600); err != nil {
		t.Fatal(err)
	}
	if k.KeyPEM, err = os.ReadFile(k.KeyPath); err != nil {
		t.Fatal(err)
	}
	writeFile(t, k.CertPath, certPEM)
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatalf("%s is not PEM", SnakeoilCertFile)
	}
	if k.Cert, err = x509.ParseCertificate(block.Bytes); err != nil {
		t.Fatalf("%s: %v", SnakeoilCertFile, err)
	}
	return k
}

// Variables lists the variables of an OVMF store as virt-fw-vars prints
// them (name, then its certificates' subjects or value), for checks.
func Variables(t testing.TB, vars string) string {
	t.Helper()
	cmd := exec.Command(VirtFwVars(t), "--input", vars, "--print", "--verbose")
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, b)
	}
	return string(b)
}
