package secureboot

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"strings"
	"testing"
)

// variable returns the lines virt-fw-vars prints for one variable.
func variable(listing, name string) string {
	var out []string
	in := false
	for _, line := range strings.Split(listing, "\n") {
		if strings.HasPrefix(line, "name=") {
			in = strings.HasPrefix(line, "name="+name+" ")
		}
		if in {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// TestEnrolledVars checks the store EnrolledVars writes: the template's
// size, our certificate (its DER bytes, found directly in the file) in
// PK, KEK and db, Secure Boot enabled, custom mode off; and the same bytes
// for the same certificate.
func TestEnrolledVars(t *testing.T) {
	k := NewKey(t, "nodebake secure boot test")
	vars := EnrolledVars(t, k)
	b, err := os.ReadFile(vars)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile(EmptyVarsFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != len(tmpl) {
		t.Errorf("store is %d bytes, the template %d", len(b), len(tmpl))
	}
	if n := bytes.Count(b, k.Cert.Raw); n != 3 {
		t.Errorf("the certificate occurs %d times in the store, want 3 (PK, KEK, db)", n)
	}
	if bytes.Contains(tmpl, k.Cert.Raw) {
		t.Fatal("the template already holds the certificate")
	}
	listing := Variables(t, vars)
	for _, name := range []string{"PK", "KEK", "db"} {
		v := variable(listing, name)
		if !strings.Contains(v, "type=guid:EfiCertX509 count=1") || !strings.Contains(v, "subject CN=nodebake secure boot test") {
			t.Errorf("%s does not hold exactly our certificate:\n%s", name, v)
		}
	}
	if v := variable(listing, "SecureBootEnable"); !strings.Contains(v, "bool: ON") {
		t.Errorf("SecureBootEnable:\n%s", v)
	}
	if v := variable(listing, "CustomMode"); !strings.Contains(v, "bool: off") {
		t.Errorf("CustomMode:\n%s", v)
	}
	again, err := os.ReadFile(EnrolledVars(t, k))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, b) {
		t.Error("two stores for the same certificate differ")
	}
}

// TestSnakeoilKey checks the fallback: the decrypted snakeoil key belongs
// to the certificate the snakeoil store has enrolled.
func TestSnakeoilKey(t *testing.T) {
	k := SnakeoilKey(t)
	block, _ := pem.Decode(k.KeyPEM)
	if block == nil {
		t.Fatal("the decrypted key is not PEM")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok || !rk.PublicKey.Equal(k.Cert.PublicKey) {
		t.Fatalf("the snakeoil key (%T) does not match its certificate", key)
	}
	store, err := os.ReadFile(SnakeoilVarsFile)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(store, k.Cert.Raw); n < 3 {
		t.Errorf("the snakeoil certificate occurs %d times in %s, want PK, KEK and db", n, SnakeoilVarsFile)
	}
}
