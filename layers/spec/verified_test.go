package spec

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
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
		in   string
		want string // "" when it must pass, else a part of the error
	}{
		{"daily", ""},
		{"Daily", ""},
		{"semi-annually", ""},
		{"Sat *-*-* 03:00", ""},
		{"*:0/15", ""},
		{"Mon..Fri 22:30", ""},
		{"mon-wed,Sun 04:00 UTC", ""},
		{"Mon..Fri 8..17,22:0/15", ""},
		{"Sat *-1..7 15:00", ""},
		{"*-02~03", ""},
		{"2023-10-22", ""},
		{"*-*-* 10:00:00.5", ""},
		{"monday", ""},
		{"8..17/2:00", ""},
		{"", "empty"},
		{" ", "empty"},
		{"daily\nExecStart=/bin/sh", "want a systemd calendar expression"},
		{"daily; reboot", "want a systemd calendar expression"},
		{string(make([]byte, MaxTimerLength+1)), "longer than"},
		{"dialy", `weekday "dialy"`},
		{"12:60", `minute "60": out of range 0..59`},
		{"24:00", `hour "24"`},
		{"*-13-01", `month "13"`},
		{"*-*-0", `day "0"`},
		{"*:*:60", `second "60"`},
		{"1969-01-01", `year "1969"`},
		{"12-10-15 1:2:3", "four digits"},
		{"Fri..Mon", "runs from Monday"},
		{"*-*-* 10:00 Mon", "out of order"},
		{"10:00 Europe/Berlin", `time zone "Europe/Berlin": only UTC`},
		{"10:00 CET", `time zone "CET"`},
		{"Mon Fri", "out of order"},
		{"UTC", "alone"},
		{"10:0/0", "positive number"},
		{"17..8:00", "ends before it starts"},
		{",10:00", `hour ""`},
		{"10:00 ", "white space"},
		{"1..3", "is not a weekday"},
		{"*/2:00", `hour "*"`},
	} {
		err := CheckTimer(tt.in)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("CheckTimer(%q) = %v, want %q", tt.in, err, tt.want)
		}
	}
}

// TestCheckTimerSystemd checks CheckTimer against the real parser,
// systemd-analyze calendar, on expressions made from the grammar's pieces:
// everything CheckTimer accepts, systemd accepts too, and the common forms
// pass both.
func TestCheckTimerSystemd(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("no systemd-analyze here")
	}
	systemdOK := func(expr string) bool {
		return exec.Command(analyze, "calendar", expr).Run() == nil
	}
	pieces := [][]string{
		{"", "Mon", "sat,sun", "Mon..Fri", "mon-wed", "Fri..Mon", "Funday", "Sun,Mon..Tue"},
		{"", "*-*-*", "*-*-01", "2026-12-06", "*-02~03", "*-1..7", "*-*-1/7", "*-13-01", "1969-01-01", "26-01-01", "*-*~0"},
		{"", "04:00", "*:0/15", "8..17,22:0/15", "12:05:30.25", "24:00", "00:60", "*:*:60", "8..17/2:00", "10:0/0", "*/2:00"},
		{"", "UTC", "utc"},
	}
	var exprs []string
	var build func(i int, acc []string)
	build = func(i int, acc []string) {
		if i == len(pieces) {
			exprs = append(exprs, strings.Join(acc, " "))
			return
		}
		for _, p := range pieces[i] {
			if p == "" {
				build(i+1, acc)
			} else {
				build(i+1, append(slices.Clone(acc), p))
			}
		}
	}
	build(0, nil)
	accepted := 0
	for i, e := range exprs {
		if e == "" || i%3 != 0 && len(exprs) > 600 {
			continue // a third of them keeps the test at a few seconds
		}
		if CheckTimer(e) == nil {
			accepted++
			if !systemdOK(e) {
				t.Errorf("CheckTimer accepts %q, which systemd-analyze calendar refuses", e)
			}
		}
	}
	for _, e := range []string{"daily", "weekly", "Sat *-*-* 03:00", "Mon..Fri 04:00", "*:0/15", "*-*-* 02:30:00 UTC"} {
		if CheckTimer(e) != nil || !systemdOK(e) {
			t.Errorf("%q: CheckTimer %v, systemd-analyze ok %v; want both to accept it", e, CheckTimer(e), systemdOK(e))
		}
	}
	t.Logf("%d expressions, %d accepted by CheckTimer and all of those by systemd-analyze", len(exprs), accepted)
}
