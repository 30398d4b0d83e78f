package spec

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// verifiedSpec is the minimal spec with verified boot, signed with a key
// and certificate in dir (the key with mode keyMode).
func verifiedSpec(t *testing.T, dir string, keyMode os.FileMode) *Spec {
	t.Helper()
	for name, mode := range map[string]os.FileMode{"db.key": keyMode, "db.crt": 0o644} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("not read by Validate"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Parse([]byte(minimalYAML(t) + `output:
  verifiedBoot:
    enabled: true
    version: 1.35.4-2
    slotSize: 1GiB
    signing: {key: db.key, certificate: db.crt}
    updates: {source: "https://updates.example/worker/", timer: "Sat *-*-* 03:00"}
`))
	if err != nil {
		t.Fatal(err)
	}
	s.Dir = dir
	return s
}

func TestVerifiedBoot(t *testing.T) {
	dir := t.TempDir()
	s := verifiedSpec(t, dir, 0o600)
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	d := s.defaulted()
	v := d.Output.VerifiedBoot
	if !d.VerifiedBootEnabled() || v.Tries != DefaultTries || v.SlotSize != GiB {
		t.Errorf("defaulted verifiedBoot = %+v", v)
	}
	if !slices.Equal(d.Output.Formats, []Format{FormatRaw, FormatUpdate}) {
		t.Errorf("default formats with verified boot = %v, want raw and update", d.Output.Formats)
	}

	// Dumped and parsed again, the spec is the same.
	b, err := d.Dump()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(b)
	if err != nil {
		t.Fatalf("parsing the dump: %v\n%s", err, b)
	}
	again.Default()
	b2, _ := again.Dump()
	if string(b) != string(b2) {
		t.Errorf("round trip differs:\n%s\n---\n%s", b, b2)
	}

	// The signing key is not part of the image's identity; the version is.
	h1, _ := s.Hash()
	unsigned := s.Clone()
	unsigned.Output.VerifiedBoot.Signing = nil
	h2, _ := unsigned.Hash()
	if h1 != h2 {
		t.Error("signing changes the spec hash")
	}
	if s.Output.VerifiedBoot.Signing == nil {
		t.Error("Clone shares the verifiedBoot section")
	}
	other := s.Clone()
	other.Output.VerifiedBoot.Version = "1.35.4-3"
	if h3, _ := other.Hash(); h3 == h1 {
		t.Error("the version does not change the spec hash")
	}
	if s.Output.VerifiedBoot.Version != "1.35.4-2" {
		t.Error("Clone shares the verifiedBoot section")
	}

	// Plain http only when allowed.
	h := s.Clone()
	h.Output.VerifiedBoot.Updates.Source = "http://10.0.2.100:8080/"
	wantPaths(t, h.Validate(), []string{"output.verifiedBoot.updates.source~plain http"})
	h.Output.VerifiedBoot.Updates.AllowHTTP = true
	if err := h.Validate(); err != nil {
		t.Errorf("http with allowHTTP: %v", err)
	}
}

func TestVerifiedBootKeyMode(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		s := verifiedSpec(t, t.TempDir(), mode)
		wantPaths(t, s.Validate(), []string{"output.verifiedBoot.signing.key~readable by its owner only"})
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		if err := verifiedSpec(t, t.TempDir(), mode).Validate(); err != nil {
			t.Errorf("key mode %04o: %v", mode, err)
		}
	}
	s := verifiedSpec(t, t.TempDir(), 0o600)
	s.Output.VerifiedBoot.Signing.Key = "."
	wantPaths(t, s.Validate(), []string{"output.verifiedBoot.signing.key~not a regular file"})
}

func TestCheckTimer(t *testing.T) {
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{"daily", true},
		{"Sat *-*-* 03:00", true},
		{"*:0/15", true},
		{"Mon..Fri 22:30", true},
		{"", false},
		{" ", false},
		{"daily\nExecStart=/bin/sh", false},
		{"daily; reboot", false},
		{string(make([]byte, MaxTimerLength+1)), false},
	} {
		if err := CheckTimer(tt.in); (err == nil) != tt.ok {
			t.Errorf("CheckTimer(%q) = %v, want ok %v", tt.in, err, tt.ok)
		}
		// What passes, the real systemd parses.
		if _, err := exec.LookPath("systemd-analyze"); err == nil && tt.ok {
			if out, err := exec.Command("systemd-analyze", "calendar", tt.in).CombinedOutput(); err != nil {
				t.Errorf("systemd-analyze calendar %q: %v\n%s", tt.in, err, out)
			}
		}
	}
}
