package qemu

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/layers/failure"
)

func TestDetectAccel(t *testing.T) {
	intel := []byte("processor\t: 0\nflags\t\t: fpu vme de pse vmx sse2\n")
	amd := []byte("processor\t: 0\nflags\t\t: fpu svm lm\n")
	none := []byte("processor\t: 0\nflags\t\t: fpu vme hypervisor lm\nvmx flags\t: vnmi\n")
	tests := []struct {
		name     string
		override string
		kvm      bool
		cpuinfo  []byte
		want     string
	}{
		{"kvm with vmx", "", true, intel, AccelKVM},
		{"kvm with svm", "", true, amd, AccelKVM},
		{"paravirtual kvm without vmx/svm", "", true, none, AccelTCG},
		{"no /dev/kvm", "", false, intel, AccelTCG},
		{"no cpuinfo", "", true, nil, AccelTCG},
		{"a line longer than the scanner takes", "", true, append(bytes.Repeat([]byte("x"), 2<<20), intel...), AccelTCG},
		{"override tcg", "tcg", true, intel, AccelTCG},
		{"override kvm", "kvm", false, none, AccelKVM},
		{"unknown override is ignored", "hvf", false, intel, AccelTCG},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := detectAccel(tt.override, tt.kvm, tt.cpuinfo); got != tt.want {
				t.Errorf("detectAccel(%q, %v) = %q, want %q", tt.override, tt.kvm, got, tt.want)
			}
		})
	}
}

func TestAccelOverride(t *testing.T) {
	for _, v := range []string{AccelKVM, AccelTCG} {
		t.Setenv(EnvAccel, v)
		if got := Accel(); got != v {
			t.Errorf("Accel() with %s=%s = %q", EnvAccel, v, got)
		}
		if err := EnvAccelError(); err != nil {
			t.Errorf("EnvAccelError with %s=%s: %v", EnvAccel, v, err)
		}
	}
	t.Setenv(EnvAccel, "bogus")
	if err := EnvAccelError(); err == nil || !strings.Contains(err.Error(), EnvAccel) {
		t.Errorf("EnvAccelError with %s=bogus = %v, want one naming the variable", EnvAccel, err)
	}
	if _, err := (RunOptions{Image: "x.raw"}).withDefaults(); !failure.Is(err, failure.Invalid) || !strings.Contains(err.Error(), EnvAccel) {
		t.Errorf("RunOptions.withDefaults with %s=bogus: %v", EnvAccel, err)
	}
}

func TestFindFirmware(t *testing.T) {
	touch := func(dir string, names ...string) {
		for _, n := range names {
			if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	d4 := t.TempDir()
	touch(d4, "OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd", "OVMF_CODE.fd", "OVMF_VARS.fd")
	d2 := t.TempDir()
	touch(d2, "OVMF_CODE.fd", "OVMF_VARS.fd", "OVMF_CODE_4M.fd") // no 4M vars
	for _, tt := range []struct{ dir, want string }{{d4, "OVMF_CODE_4M.fd"}, {d2, "OVMF_CODE.fd"}} {
		fw, err := FindFirmware(tt.dir)
		if err != nil || filepath.Base(fw.Code) != tt.want {
			t.Errorf("FindFirmware(%s) = %+v, %v; want %s", tt.dir, fw, err, tt.want)
		}
	}
	if _, err := FindFirmware(t.TempDir()); err == nil || !strings.Contains(err.Error(), "ovmf") {
		t.Errorf("FindFirmware(empty) err = %v", err)
	}
}

func TestCopyVars(t *testing.T) {
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "VARS.fd")
	if err := os.WriteFile(tmpl, []byte("variables"), 0o644); err != nil {
		t.Fatal(err)
	}
	fw := Firmware{Code: "CODE.fd", Vars: tmpl}
	dst := filepath.Join(dir, "copy.fd")
	if err := fw.CopyVars(dst); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(dst)
	fi, _ := os.Stat(dst)
	if err != nil || string(b) != "variables" || fi.Mode().Perm() != 0o600 {
		t.Errorf("copy = %q (%v), mode %v", b, err, fi.Mode())
	}
	// An existing file is never overwritten (the copy is the guest's own).
	if err := fw.CopyVars(dst); err == nil {
		t.Error("CopyVars over an existing file succeeded")
	}
}

func TestProbe(t *testing.T) {
	mbr := make([]byte, 512)
	mbr[510], mbr[511] = 0x55, 0xaa
	vhdTail := append([]byte("conectix"), make([]byte, 504)...)
	tests := []struct {
		name       string
		head, tail []byte
		size       int64
		want, err  string
	}{
		{"raw disk", mbr, make([]byte, 512), 1 << 30, FormatRaw, ""},
		{"qcow2", []byte("QFI\xfb\x00\x00\x00\x03"), make([]byte, 512), 1 << 20, FormatQCOW2, ""},
		{"vmdk", []byte("KDMV\x03"), make([]byte, 512), 1 << 20, "", "a VMDK image"},
		{"vhd", mbr, vhdTail, 1<<20 + 512, "", "a VHD image"},
		{"zstd", []byte{0x28, 0xb5, 0x2f, 0xfd, 0}, make([]byte, 512), 1 << 20, "", "zstd"},
		{"gzip", []byte{0x1f, 0x8b, 8}, make([]byte, 512), 1 << 20, "", "gzip"},
		{"empty", nil, nil, 0, "", "is empty"},
		{"tiny", []byte("hello"), nil, 5, "", "too small"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := probe(tt.head, tt.tail, tt.size, "img")
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), "img") {
					t.Errorf("probe = %q, %v; want an error naming img and %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("probe = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	// ProbeFormat reads the file's first and last sectors.
	dir := t.TempDir()
	vhd := filepath.Join(dir, "x.vhd")
	if err := os.WriteFile(vhd, append(make([]byte, 4096), vhdTail...), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ProbeFormat(vhd); err == nil || !strings.Contains(err.Error(), "VHD") {
		t.Errorf("ProbeFormat(vhd) = %v", err)
	}
	if _, err := ProbeFormat(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("ProbeFormat(dir) = %v", err)
	}
}

// pairs returns the values following each occurrence of flag in args.
func pairs(args []string, flag string) []string {
	var out []string
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag {
			out = append(out, args[i+1])
		}
	}
	return out
}

func TestMachineArgs(t *testing.T) {
	fw := Firmware{Code: "/fw/CODE,4M.fd", Vars: "/fw/VARS.fd"}
	m := Machine{Accel: AccelTCG, Memory: 1024, CPUs: 1, Firmware: fw, Vars: "/vm/VARS.fd"}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(m.Args(), " ")
	for _, want := range []string{
		"-nodefaults", "-no-user-config", "-display none", "-machine q35", "-accel tcg -cpu max", "-m 1024", "-smp 1",
		"-drive if=pflash,format=raw,unit=0,readonly=on,file=/fw/CODE,,4M.fd",
		"-drive if=pflash,format=raw,unit=1,file=/vm/VARS.fd",
		"-device virtio-rng-pci",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("args lack %q:\n%s", want, joined)
		}
	}
	if strings.Contains(joined, "kvm") || strings.Contains(joined, "-uuid") {
		t.Errorf("tcg machine without uuid: %s", joined)
	}
	m.Accel, m.UUID = AccelKVM, "8f9ae2cc-6b4e-4f0b-9f53-0c3f1f2b7d10"
	joined = strings.Join(m.Args(), " ")
	if !strings.Contains(joined, "-enable-kvm -cpu host") || strings.Contains(joined, "tcg") || !strings.Contains(joined, "-uuid "+m.UUID) {
		t.Errorf("kvm machine: %s", joined)
	}
	for _, bad := range []Machine{
		{Accel: "hvf", Memory: 1, CPUs: 1},
		{Accel: AccelTCG, Memory: 0, CPUs: 1},
		{Accel: AccelTCG, Memory: 1, CPUs: 1, Firmware: fw},
	} {
		if err := bad.Check(); err == nil {
			t.Errorf("Check(%+v) = nil", bad)
		}
	}
}

func TestRunArgs(t *testing.T) {
	t.Setenv(EnvAccel, "")
	base := RunOptions{Image: "/img/w,1.raw", Format: FormatRaw, Accel: AccelTCG, Firmware: Firmware{Code: "/fw/C.fd", Vars: "/fw/V.fd"}}
	tests := []struct {
		name  string
		edit  func(*RunOptions)
		check func(t *testing.T, a []string)
	}{
		{"defaults: snapshot, restricted network, console on stdio, no credential", nil, func(t *testing.T, a []string) {
			if d := pairs(a, "-drive"); !slices.Contains(d, "if=none,id=disk0,format=raw,file=/img/w,,1.raw,snapshot=on") {
				t.Errorf("drives = %q", d)
			}
			if n := pairs(a, "-netdev"); !slices.Equal(n, []string{"user,id=n0,restrict=on"}) {
				t.Errorf("netdevs = %q", n)
			}
			if s := pairs(a, "-serial"); !slices.Equal(s, []string{"mon:stdio"}) {
				t.Errorf("serial = %q", s)
			}
			if !slices.Equal(pairs(a, "-m"), []string{"2048"}) || !slices.Equal(pairs(a, "-smp"), []string{"2"}) {
				t.Errorf("memory %q cpus %q, want the defaults", pairs(a, "-m"), pairs(a, "-smp"))
			}
			if d := pairs(a, "-device"); !slices.Contains(d, "virtio-blk-pci,drive=disk0,bootindex=0") || !slices.Contains(d, "virtio-net-pci,netdev=n0") {
				t.Errorf("devices = %q", d)
			}
			if slices.Contains(a, "-fw_cfg") {
				t.Errorf("a credential without a node config: %q", a)
			}
		}},
		{"node config as the nodebake.node credential", func(o *RunOptions) { o.NodeConfig = "/cfg/node.yaml" }, func(t *testing.T, a []string) {
			if f := pairs(a, "-fw_cfg"); !slices.Equal(f, []string{"name=opt/io.systemd.credentials/nodebake.node,file=/cfg/node.yaml"}) {
				t.Errorf("fw_cfg = %q", f)
			}
		}},
		{"writable qcow2", func(o *RunOptions) { o.Writable, o.Format = true, FormatQCOW2 }, func(t *testing.T, a []string) {
			if d := pairs(a, "-drive"); !slices.Contains(d, "if=none,id=disk0,format=qcow2,file=/img/w,,1.raw") {
				t.Errorf("drives = %q", d)
			}
		}},
		{"memory, cpus, kvm, uuid", func(o *RunOptions) {
			o.Memory, o.CPUs, o.Accel, o.UUID = 4096, 4, AccelKVM, "6e6f6465-6261-6b65-2d74-6573742d0001"
		}, func(t *testing.T, a []string) {
			j := strings.Join(a, " ")
			for _, w := range []string{"-m 4096", "-smp 4", "-enable-kvm -cpu host", "-uuid 6e6f6465-6261-6b65-2d74-6573742d0001"} {
				if !strings.Contains(j, w) {
					t.Errorf("args lack %q: %s", w, j)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base
			if tt.edit != nil {
				tt.edit(&o)
			}
			o, err := o.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			a := o.args("/vm/VARS.fd")
			if !slices.Contains(pairs(a, "-drive"), "if=pflash,format=raw,unit=1,file=/vm/VARS.fd") {
				t.Errorf("the firmware variables are not the guest's copy: %q", a)
			}
			tt.check(t, a)
		})
	}
}

func TestRunRefuses(t *testing.T) {
	t.Setenv(EnvAccel, "tcg")
	dir := t.TempDir()
	img := filepath.Join(dir, "w.raw")
	if err := os.WriteFile(img, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	zst := filepath.Join(dir, "w.raw.zst")
	if err := os.WriteFile(zst, append([]byte{0x28, 0xb5, 0x2f, 0xfd}, make([]byte, 4096)...), 0o644); err != nil {
		t.Fatal(err)
	}
	fw := Firmware{Code: img, Vars: img}
	tests := []struct {
		name string
		o    RunOptions
		want string
	}{
		{"no image", RunOptions{}, "no image"},
		{"missing image", RunOptions{Image: filepath.Join(dir, "nope.raw"), Firmware: fw}, "nope.raw"},
		{"image is a directory", RunOptions{Image: dir, Firmware: fw}, "not a regular file"},
		{"compressed image", RunOptions{Image: zst, Firmware: fw}, "zstd"},
		{"missing node config", RunOptions{Image: img, NodeConfig: filepath.Join(dir, "node.yaml"), Firmware: fw}, "node config"},
		{"bad format", RunOptions{Image: img, Format: "vmdk"}, `format "vmdk"`},
		{"bad memory", RunOptions{Image: img, Memory: 1}, "memory 1 MiB"},
		{"bad cpus", RunOptions{Image: img, CPUs: -2}, "cpus -2"},
		{"bad accel", RunOptions{Image: img, Accel: "hvf"}, `"hvf"`},
		{"bad uuid", RunOptions{Image: img, UUID: "not-a-uuid"}, "uuid"},
		{"no qemu", RunOptions{Image: img, Binary: filepath.Join(dir, "no-qemu"), Firmware: fw}, "no-qemu"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Run(context.Background(), tt.o)
			if !failure.Is(err, failure.Invalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run = %v (kind %v), want an invalid-input error containing %q", err, failure.KindOf(err), tt.want)
			}
		})
	}
}
