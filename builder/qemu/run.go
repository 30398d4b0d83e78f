package qemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nodebake/nodebake/layers/failure"
	"github.com/nodebake/nodebake/layers/firstboot"
)

// RunOptions describe a guest booted by Run: the image with its console
// on the caller's streams.
type RunOptions struct {
	// Image is the disk image, raw or qcow2.
	Image string
	// Format is the image's format; empty probes it (ProbeFormat).
	Format string
	// Writable attaches the image itself, so the guest's writes change
	// it. Otherwise the guest writes to a throw-away snapshot.
	Writable bool
	// NodeConfig, when set, is the node config file, passed to the guest
	// as the systemd credential the first-boot program reads.
	NodeConfig string
	// Memory in MiB and CPUs; zero takes DefaultMemory and DefaultCPUs.
	Memory, CPUs int
	// Accel is AccelKVM or AccelTCG; empty detects it (Accel).
	Accel string
	// UUID is the guest's SMBIOS UUID (systemd derives the machine id
	// from it); empty lets QEMU choose.
	UUID string
	// Firmware is OVMF; zero looks in DefaultFirmwareDir.
	Firmware Firmware
	// Binary is the QEMU program; empty is DefaultBinary.
	Binary string
	// WorkDir is where the guest's work directory (the copy of the
	// firmware variables) is made; empty is the system's.
	WorkDir string
	// Stdin, Stdout and Stderr are the console (the guest's first serial
	// port, multiplexed with the QEMU monitor: Ctrl-A X quits, Ctrl-A C
	// switches to the monitor) and QEMU's own messages.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// withDefaults checks o and fills in its defaults; the files are not
// looked at.
func (o RunOptions) withDefaults() (RunOptions, error) {
	if o.Image == "" {
		return o, failure.Errorf(failure.Invalid, "no image given")
	}
	switch o.Format {
	case "", FormatRaw, FormatQCOW2:
	default:
		return o, failure.Errorf(failure.Invalid, "image format %q: want %q or %q", o.Format, FormatRaw, FormatQCOW2)
	}
	if o.Memory == 0 {
		o.Memory = DefaultMemory
	}
	if o.CPUs == 0 {
		o.CPUs = DefaultCPUs
	}
	if o.Memory < 64 || o.Memory > 1<<20 {
		return o, failure.Errorf(failure.Invalid, "memory %d MiB: want 64 to 1048576", o.Memory)
	}
	if o.CPUs < 1 || o.CPUs > 256 {
		return o, failure.Errorf(failure.Invalid, "cpus %d: want 1 to 256", o.CPUs)
	}
	if err := CheckAccel(o.Accel); err != nil {
		return o, failure.New(failure.Invalid, err)
	}
	if o.Accel == "" {
		if err := EnvAccelError(); err != nil {
			return o, failure.New(failure.Invalid, err)
		}
		o.Accel = Accel()
	}
	if o.UUID != "" && !isUUID(o.UUID) {
		return o, failure.Errorf(failure.Invalid, "uuid %q: want 8-4-4-4-12 hexadecimal digits", o.UUID)
	}
	if o.Binary == "" {
		o.Binary = DefaultBinary
	}
	if o.Stdout == nil {
		o.Stdout = io.Discard
	}
	if o.Stderr == nil {
		o.Stderr = io.Discard
	}
	return o, nil
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F') {
				return false
			}
		}
	}
	return true
}

// args returns QEMU's command line for o (with its defaults, Format set
// and absolute paths) whose firmware variables copy is vars.
func (o RunOptions) args(vars string) []string {
	m := Machine{Accel: o.Accel, Memory: o.Memory, CPUs: o.CPUs, Firmware: o.Firmware, Vars: vars, UUID: o.UUID}
	a := m.Args()
	drive := "if=none,id=disk0,format=" + o.Format + ",file=" + OptPath(o.Image)
	if !o.Writable {
		drive += ",snapshot=on"
	}
	a = append(a,
		"-drive", drive,
		"-device", "virtio-blk-pci,drive=disk0,bootindex=0",
		"-netdev", UserNetdev(),
		"-device", "virtio-net-pci,netdev=n0",
	)
	if o.NodeConfig != "" {
		a = append(a, FwCfgArgs(CredentialFwCfgName(firstboot.CredentialName), o.NodeConfig)...)
	}
	return append(a, "-serial", "mon:stdio")
}

// Resolve checks o, fills in its defaults, and finds what it names: the
// image and node config (made absolute), the image's format (probed when
// not given), the firmware and QEMU. Errors are failure.Invalid.
func (o RunOptions) Resolve() (RunOptions, error) {
	o, err := o.withDefaults()
	if err != nil {
		return o, err
	}
	if o.Image, err = absFile("image", o.Image); err != nil {
		return o, err
	}
	if o.Format == "" {
		if o.Format, err = ProbeFormat(o.Image); err != nil {
			return o, failure.New(failure.Invalid, err)
		}
	}
	if o.NodeConfig != "" {
		if o.NodeConfig, err = absFile("node config", o.NodeConfig); err != nil {
			return o, err
		}
	}
	if o.Firmware == (Firmware{}) {
		if o.Firmware, err = FindFirmware(DefaultFirmwareDir); err != nil {
			return o, failure.New(failure.Invalid, err)
		}
	}
	if _, err := exec.LookPath(o.Binary); err != nil {
		return o, failure.Errorf(failure.Invalid, "finding QEMU (Debian package qemu-system-x86): %w", err)
	}
	return o, nil
}

// Run boots the image under QEMU with its console on o.Stdin and o.Stdout
// and returns when QEMU ends: the guest powered off, Ctrl-A X, or ctx done
// (QEMU is then asked to quit with SIGTERM, and killed if it has not
// within ten seconds). Without Writable the image is never modified. The
// guest's work directory is removed when it ends. Errors in the options or
// files are failure.Invalid (see Resolve); QEMU failing is an internal
// error.
func Run(ctx context.Context, o RunOptions) error {
	o, err := o.Resolve()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(o.WorkDir, "nodebake-run-")
	if err != nil {
		return fmt.Errorf("creating the guest's work directory: %w", err)
	}
	defer os.RemoveAll(dir)
	vars := filepath.Join(dir, "OVMF_VARS.fd")
	if err := o.Firmware.CopyVars(vars); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, o.Binary, o.args(vars)...)
	cmd.Dir = dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = o.Stdin, o.Stdout, o.Stderr
	// QEMU quits cleanly on SIGTERM ("terminating on signal 15").
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	// Should this process die without stopping QEMU, the kernel does.
	cmd.SysProcAttr = parentDeathSignal(syscall.SIGTERM)
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("running qemu: %w", ctx.Err())
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("qemu %s: %w", strings.Join(cmd.Args[1:], " "), err)
		}
		return fmt.Errorf("running qemu: %w", err)
	}
	return nil
}

// absFile returns the absolute path of a regular file, or an Invalid error
// naming what it is.
func absFile(what, p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", failure.Errorf(failure.Invalid, "%s %s: %w", what, p, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", failure.Errorf(failure.Invalid, "%s: %w", what, err)
	}
	if !fi.Mode().IsRegular() {
		return "", failure.Errorf(failure.Invalid, "%s %s is not a regular file", what, p)
	}
	return abs, nil
}
