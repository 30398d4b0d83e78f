package qemu

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/test/secureboot"
)

func TestSecureBootConfig(t *testing.T) {
	t.Setenv(EnvAccel, "tcg")
	dir := t.TempDir()
	code, vars := filepath.Join(dir, "CODE.secboot.fd"), filepath.Join(dir, "VARS.enrolled.fd")
	for _, f := range []string{code, vars} {
		if err := os.WriteFile(f, []byte("fw"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c, err := Config{Disk: "x.raw", SecureBoot: &SecureBoot{Code: code, Vars: vars}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Firmware != (Firmware{Code: code, Vars: vars}) {
		t.Errorf("firmware %+v", c.Firmware)
	}
	a := c.args(newPaths("/vm", c))
	joined := strings.Join(a, " ")
	for _, want := range []string{
		"-machine q35,smm=on",
		"-global driver=cfi.pflash01,property=secure,value=on",
		"-drive if=pflash,format=raw,unit=0,readonly=on,file=" + code,
		"-drive if=pflash,format=raw,unit=1,file=/vm/OVMF_VARS.fd",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("args lack %q:\n%s", want, joined)
		}
	}
	if got := pairs(a, "-machine"); len(got) != 1 {
		t.Errorf("-machine given %d times: %v", len(got), got)
	}

	// Without SecureBoot nothing of it appears.
	plain, err := Config{Disk: "x.raw", Firmware: Firmware{Code: code, Vars: vars}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	joined = strings.Join(plain.args(newPaths("/vm", plain)), " ")
	if strings.Contains(joined, "smm=on") || strings.Contains(joined, "-global") {
		t.Errorf("Secure Boot options without SecureBoot:\n%s", joined)
	}

	bad := []struct {
		name string
		c    Config
		want string
	}{
		{"no vars", Config{Disk: "x", SecureBoot: &SecureBoot{Code: code}}, "variable store"},
		{"missing vars", Config{Disk: "x", SecureBoot: &SecureBoot{Code: code, Vars: filepath.Join(dir, "none")}}, "not a regular file"},
		{"missing code", Config{Disk: "x", SecureBoot: &SecureBoot{Code: filepath.Join(dir, "none"), Vars: vars}}, "Secure Boot firmware"},
		{"and firmware", Config{Disk: "x", Firmware: Firmware{Code: code, Vars: vars}, SecureBoot: &SecureBoot{Vars: vars}}, "not both"},
		{"and kernel", Config{Kernel: "k", SecureBoot: &SecureBoot{Vars: vars}}, "Kernel or NetBoot"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.c.withDefaults(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestSecureBootDefaultCode(t *testing.T) {
	if _, err := os.Stat(secureboot.CodeFile); err != nil {
		t.Skipf("no Secure Boot OVMF: %v", err)
	}
	t.Setenv(EnvAccel, "tcg")
	vars := filepath.Join(t.TempDir(), "VARS.fd")
	if err := os.WriteFile(vars, []byte("v"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Config{Disk: "x.raw", SecureBoot: &SecureBoot{Vars: vars}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Firmware.Code != secureboot.CodeFile {
		t.Errorf("code %q, want %q", c.Firmware.Code, secureboot.CodeFile)
	}
}
