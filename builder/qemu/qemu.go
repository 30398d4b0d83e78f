// Package qemu knows how nodebake boots an x86_64 image under QEMU: which
// accelerator works on this host (KVM when /dev/kvm opens and the CPU has
// vmx or svm, TCG otherwise), where the UEFI firmware (OVMF) is, the
// machine every guest gets (q35, no default devices, the firmware with a
// per-guest copy of its variables), how a systemd credential reaches the
// guest (fw_cfg), the restricted user network, and what kind of disk image
// a file holds. `nodebake run` (Run) and the real-world tests' VM harness
// build their QEMU command lines from it.
package qemu

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Environment variables.
const (
	// EnvAccel forces the accelerator: "kvm" or "tcg".
	EnvAccel = "NODEBAKE_QEMU_ACCEL"
)

// Accelerators.
const (
	AccelKVM = "kvm"
	AccelTCG = "tcg"
)

// Defaults.
const (
	// DefaultBinary is the QEMU program.
	DefaultBinary = "qemu-system-x86_64"
	// DefaultFirmwareDir is where Debian's ovmf package puts OVMF.
	DefaultFirmwareDir = "/usr/share/OVMF"
	// DefaultMemory is the guest memory in MiB.
	DefaultMemory = 2048
	// DefaultCPUs is the number of virtual CPUs.
	DefaultCPUs = 2
)

// Accel returns the accelerator to use: $NODEBAKE_QEMU_ACCEL when it is
// "kvm" or "tcg"; else "kvm" when /dev/kvm opens read-write and the host
// CPU has hardware virtualization (vmx or svm), else "tcg". A paravirtual
// /dev/kvm without vmx/svm is not enough: OVMF dies on it.
func Accel() string {
	cpuinfo, _ := readBounded("/proc/cpuinfo", 4<<20)
	return detectAccel(os.Getenv(EnvAccel), kvmUsable("/dev/kvm"), cpuinfo)
}

// CheckAccel checks an accelerator name; empty is allowed (detect).
func CheckAccel(a string) error {
	switch a {
	case "", AccelKVM, AccelTCG:
		return nil
	}
	return fmt.Errorf("accelerator %q: want %q or %q", a, AccelKVM, AccelTCG)
}

// EnvAccelError reports a $NODEBAKE_QEMU_ACCEL that is neither kvm nor
// tcg, nil otherwise.
func EnvAccelError() error {
	if v := os.Getenv(EnvAccel); v != "" && v != AccelKVM && v != AccelTCG {
		return fmt.Errorf("%s=%q: want %q or %q", EnvAccel, v, AccelKVM, AccelTCG)
	}
	return nil
}

func kvmUsable(dev string) bool {
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

func detectAccel(override string, kvmOpens bool, cpuinfo []byte) string {
	switch override {
	case AccelKVM, AccelTCG:
		return override
	}
	if kvmOpens && hasVirtFlag(cpuinfo) {
		return AccelKVM
	}
	return AccelTCG
}

// hasVirtFlag reports whether a flags line of /proc/cpuinfo lists vmx or svm.
func hasVirtFlag(cpuinfo []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(k) != "flags" {
			continue
		}
		for _, f := range strings.Fields(v) {
			if f == "vmx" || f == "svm" {
				return true
			}
		}
	}
	return false
}

// readBounded reads at most limit bytes of a file.
func readBounded(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}

// Firmware is a pair of OVMF pflash images: the code (attached read-only)
// and the template of its variables (copied for each guest).
type Firmware struct {
	Code, Vars string
}

// FindFirmware looks for OVMF in dir (DefaultFirmwareDir): the 4M images
// first, then the older 2M names.
func FindFirmware(dir string) (Firmware, error) {
	for _, suffix := range []string{"_4M.fd", ".fd"} {
		fw := Firmware{Code: filepath.Join(dir, "OVMF_CODE"+suffix), Vars: filepath.Join(dir, "OVMF_VARS"+suffix)}
		if regularFile(fw.Code) && regularFile(fw.Vars) {
			return fw, nil
		}
	}
	return Firmware{}, fmt.Errorf("finding OVMF firmware: no OVMF_CODE_4M.fd/OVMF_VARS_4M.fd or OVMF_CODE.fd/OVMF_VARS.fd in %s (Debian package ovmf)", dir)
}

func regularFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// CopyVars copies the firmware's variables template to dst (mode 0600),
// the guest's own writable copy.
func (f Firmware) CopyVars(dst string) error {
	in, err := os.Open(f.Vars)
	if err != nil {
		return fmt.Errorf("copying the OVMF variables: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("copying the OVMF variables: %w", err)
	}
	// The 4M variable store is 540 KiB; bound the copy well above that.
	if _, err := io.Copy(out, io.LimitReader(in, 64<<20)); err != nil {
		out.Close()
		return fmt.Errorf("copying the OVMF variables to %s: %w", dst, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("copying the OVMF variables to %s: %w", dst, err)
	}
	return nil
}

// OptPath escapes a path for a QEMU option value (commas double).
func OptPath(p string) string { return strings.ReplaceAll(p, ",", ",,") }

// Machine is what every nodebake guest has: a q35 machine without QEMU's
// default devices or user configuration and without a display, memory,
// CPUs, the accelerator, optionally the UEFI firmware, a UUID (systemd
// derives the machine id from it) and a virtio RNG (so first boot does
// not wait for entropy).
type Machine struct {
	// Accel is AccelKVM or AccelTCG.
	Accel string
	// Memory in MiB and CPUs; both positive.
	Memory, CPUs int
	// Firmware, when set, boots through UEFI; Vars is then the guest's
	// own copy of the variables (see Firmware.CopyVars).
	Firmware Firmware
	Vars     string
	// UUID is the SMBIOS UUID; empty lets QEMU choose.
	UUID string
}

// Check reports what is wrong with m.
func (m Machine) Check() error {
	if m.Accel != AccelKVM && m.Accel != AccelTCG {
		return fmt.Errorf("qemu machine: accelerator %q: want %q or %q", m.Accel, AccelKVM, AccelTCG)
	}
	if m.Memory <= 0 || m.CPUs <= 0 {
		return fmt.Errorf("qemu machine: memory %d MiB and cpus %d must be positive", m.Memory, m.CPUs)
	}
	if m.Firmware != (Firmware{}) && m.Vars == "" {
		return errors.New("qemu machine: firmware without a copy of its variables")
	}
	return nil
}

// Args returns the machine's part of QEMU's command line.
func (m Machine) Args() []string {
	a := []string{
		"-nodefaults", "-no-user-config", "-display", "none",
		"-machine", "q35",
		"-m", strconv.Itoa(m.Memory),
		"-smp", strconv.Itoa(m.CPUs),
	}
	if m.Accel == AccelKVM {
		a = append(a, "-enable-kvm", "-cpu", "host")
	} else {
		a = append(a, "-accel", "tcg", "-cpu", "max")
	}
	if m.Firmware != (Firmware{}) {
		a = append(a,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+OptPath(m.Firmware.Code),
			"-drive", "if=pflash,format=raw,unit=1,file="+OptPath(m.Vars),
		)
	}
	if m.UUID != "" {
		a = append(a, "-uuid", m.UUID)
	}
	return append(a, "-device", "virtio-rng-pci")
}

// CredentialFwCfgName is the fw_cfg name under which systemd (in the
// guest) finds the system credential name.
func CredentialFwCfgName(name string) string { return "opt/io.systemd.credentials/" + name }

// FwCfgArgs passes a file to the guest under an fw_cfg name.
func FwCfgArgs(name, file string) []string {
	return []string{"-fw_cfg", "name=" + name + ",file=" + OptPath(file)}
}

// UserNetdev is the user network with the id n0, restricted: the guest
// reaches nothing outside the host except through explicit forwards in
// opts ("hostfwd=tcp:127.0.0.1:2222-:22", "guestfwd=...").
func UserNetdev(opts ...string) string {
	return strings.Join(append([]string{"user", "id=n0", "restrict=on"}, opts...), ",")
}

// Disk image formats nodebake boots.
const (
	FormatRaw   = "raw"
	FormatQCOW2 = "qcow2"
)

// ProbeFormat says what kind of disk image a file holds, from its content:
// "qcow2" for a qcow2 image, "raw" for anything that is not one of the
// other image or archive formats it knows (which it refuses, naming them).
func ProbeFormat(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", p)
	}
	head := make([]byte, 512)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading %s: %w", p, err)
	}
	head = head[:n]
	var tail []byte
	if fi.Size() >= 512 {
		tail = make([]byte, 512)
		if _, err := f.ReadAt(tail, fi.Size()-512); err != nil {
			return "", fmt.Errorf("reading %s: %w", p, err)
		}
	}
	return probe(head, tail, fi.Size(), p)
}

// probe decides the format from the first and last 512 bytes.
func probe(head, tail []byte, size int64, name string) (string, error) {
	other := func(what string) (string, error) {
		return "", fmt.Errorf("%s is %s: nodebake run boots a raw or qcow2 image (convert it, or use the build's NAME.raw or NAME.qcow2)", name, what)
	}
	switch {
	case size == 0:
		return "", fmt.Errorf("%s is empty", name)
	case bytes.HasPrefix(head, []byte("QFI\xfb")):
		return FormatQCOW2, nil
	case bytes.HasPrefix(head, []byte("KDMV")), bytes.HasPrefix(head, []byte("# Disk DescriptorFile")):
		return other("a VMDK image")
	case bytes.HasPrefix(head, []byte("vhdxfile")):
		return other("a VHDX image")
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return other("zstd-compressed (NAME.raw.zst: zstd -d --sparse first)")
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return other("gzip-compressed (a GCE tarball?)")
	case len(tail) == 512 && bytes.HasPrefix(tail, []byte("conectix")):
		return other("a VHD image")
	case size < 512:
		return "", fmt.Errorf("%s is %d bytes: too small for a disk image", name, size)
	}
	return FormatRaw, nil
}
