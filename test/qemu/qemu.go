// Package qemu starts and controls an x86_64 QEMU guest booting a disk
// image through UEFI (OVMF), or a kernel and initrd directly (network-boot
// bundles), for the real-world tests of nodebake images.
//
// The guest's first serial port (ttyS0, the console) and second serial port
// (ttyS1, where test probes write their reports) go to files that WaitFor
// polls. The guest's user network is restricted: nothing leaves the host,
// and host services are reachable only through explicit forwards.
//
// The image under test is never modified: it is attached through a qcow2
// overlay in the VM's work directory unless Config.Direct is set.
//
// With Config.Kernel the guest boots that kernel directly (QEMU's -kernel,
// -initrd and -append) through the default BIOS, unless Config.Firmware
// names OVMF; then Disk is optional.
package qemu

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	bqemu "github.com/nodebake/nodebake/builder/qemu"
)

// Environment variables that change how guests run.
const (
	// EnvAccel forces the accelerator: "kvm" or "tcg".
	EnvAccel = bqemu.EnvAccel
	// EnvKeep set to 1 keeps a VM's work directory (logs, overlay,
	// firmware variables) after Close.
	EnvKeep = "NODEBAKE_KEEP_VM"
)

// Accelerators.
const (
	AccelKVM = bqemu.AccelKVM
	AccelTCG = bqemu.AccelTCG
)

// Serial names one of the guest's serial ports.
type Serial int

// The serial ports.
const (
	// Console is ttyS0, the kernel and systemd console.
	Console Serial = iota
	// Report is ttyS1, where probes write their findings.
	Report
)

func (s Serial) String() string {
	switch s {
	case Console:
		return "console"
	case Report:
		return "report"
	}
	return "serial" + strconv.Itoa(int(s))
}

// Config describes a guest.
type Config struct {
	// Disk is the boot disk, a raw image (see DiskFormat). It is attached
	// through a qcow2 overlay unless Direct is set. It may be empty when
	// Kernel is set.
	Disk string
	// DiskFormat is the format of Disk: "raw" (default) or "qcow2". The
	// overlay names it as its backing format.
	DiskFormat string
	// Direct attaches Disk itself, so the guest's writes change it.
	Direct bool
	// Kernel, Initrd and Append boot a kernel directly: QEMU loads them
	// (-kernel, -initrd, -append) instead of the firmware booting Disk.
	// Without an explicit Firmware this uses QEMU's default BIOS, which
	// starts much faster than OVMF under TCG. Initrd and Append need
	// Kernel.
	Kernel, Initrd, Append string
	// NetBoot boots from the user network first, through the NIC's option
	// ROM (iPXE; see NICROM) under the default BIOS unless Firmware is set;
	// then Disk and Kernel may both be empty. Point the ROM at a boot
	// program or script with UserNet options (tftp=, bootfile=).
	NetBoot bool
	// NICROM is the option ROM of the user network's NIC (QEMU's romfile=,
	// e.g. an iPXE efi-virtio.rom); empty leaves QEMU's default.
	NICROM string
	// NICOptions are further properties of the user network's NIC
	// ("disable-legacy=on": a modern-only virtio device, whose PCI id
	// the iPXE ROMs of some distributions are built for).
	NICOptions []string
	// ExtraDisks are further disks (config drives, ...), attached directly
	// as virtio-blk in order; ".qcow2" files as qcow2, others as raw.
	ExtraDisks []string
	// Memory is the guest memory in MiB (default 2048).
	Memory int
	// CPUs is the number of virtual CPUs (default 2).
	CPUs int
	// UUID is the VM's SMBIOS UUID; systemd derives a stable machine id
	// from it. Empty lets QEMU choose.
	UUID string
	// FwCfg maps fw_cfg names (opt/io.systemd.credentials/NAME) to files.
	FwCfg map[string]string
	// SMBIOS are -smbios values ("type=11,value=io.systemd.credential:K=V").
	SMBIOS []string
	// UserNet are options appended to the restricted user network
	// ("hostfwd=tcp:127.0.0.1:2222-:22", "guestfwd=tcp:10.0.2.100:6443-tcp:127.0.0.1:6443").
	UserNet []string
	// NetDevs are further -netdev values without an id, each attached as
	// its own virtio-net NIC ("socket,listen=127.0.0.1:5000"). Keep them on
	// 127.0.0.1. With a UUID the NICs get MAC addresses derived from it.
	NetDevs []string
	// Dir is where the VM's work directory is created (default: the
	// system temporary directory).
	Dir string
	// NoReboot makes a guest reboot end QEMU instead of restarting.
	NoReboot bool
	// ColdReboot makes a guest reboot a power cycle: QEMU ends and the VM
	// starts it again on the same disk, firmware variables and serial logs
	// (RebootNote marks each on the console), instead of resetting the
	// machine in place, which OVMF under TCG can hang on. The guest's
	// clock (RTCBase) keeps running. Not with NoReboot.
	ColdReboot bool
	// Accel is "kvm" or "tcg"; default Accel().
	Accel string
	// Binary is the QEMU program (default qemu-system-x86_64).
	Binary string
	// Firmware is the OVMF code and variables template; found by
	// FindFirmware when empty, except with Kernel or NetBoot: then QEMU's
	// default BIOS boots the kernel or the NIC's ROM.
	Firmware Firmware
	// NetNS runs QEMU inside that network namespace (ip netns exec), so
	// the guest's networks are the namespace's: nothing reaches the host's.
	NetNS string
	// Tap makes the guest's first NIC a tap device of that name instead of
	// the user network; the device must exist (in NetNS when set) and
	// UserNet must be empty. NICROM and NICOptions apply to it.
	Tap string
	// RTCBase, when set, starts the guest's real-time clock at that time
	// (QEMU's -rtc base=, in UTC); it then runs at the host's pace.
	RTCBase time.Time
	// SecureBoot, when set, boots Disk under UEFI Secure Boot (instead of
	// Firmware); see SecureBoot.
	SecureBoot *SecureBoot
}

// Firmware is a pair of OVMF pflash images.
type Firmware = bqemu.Firmware

// VM is a running guest.
type VM struct {
	// StartedAt is when the QEMU process was started.
	StartedAt time.Time

	dir     string
	done    chan struct{}
	waitErr error // set before done is closed
	qmp     string

	mu       sync.Mutex
	cmd      *exec.Cmd // the current QEMU process
	stopping bool      // Kill was called: start no more processes
	restarts int
	keep     bool
	files    [2]string
	stderr   string
	closeMu  sync.Once
}

// Accel returns the accelerator to use (see the builder's qemu.Accel):
// KVM when it works here, TCG otherwise, unless $NODEBAKE_QEMU_ACCEL says.
func Accel() string { return bqemu.Accel() }

// FindFirmware looks for OVMF in dir (usually /usr/share/OVMF).
func FindFirmware(dir string) (Firmware, error) { return bqemu.FindFirmware(dir) }

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// withDefaults checks c and fills in its defaults.
func (c Config) withDefaults() (Config, error) {
	if c.Disk == "" && c.Kernel == "" && !c.NetBoot {
		return c, errors.New("qemu config: no disk and no kernel")
	}
	if c.Kernel == "" && (c.Initrd != "" || c.Append != "") {
		return c, errors.New("qemu config: an initrd or a command line (Append) needs a kernel")
	}
	if c.Disk == "" && c.Direct {
		return c, errors.New("qemu config: Direct without a disk")
	}
	if c.ColdReboot && c.NoReboot {
		return c, errors.New("qemu config: ColdReboot and NoReboot both say what a reboot does; set one")
	}
	switch c.DiskFormat {
	case "":
		c.DiskFormat = "raw"
	case "raw", "qcow2":
	default:
		return c, fmt.Errorf("qemu config: disk format %q: want \"raw\" or \"qcow2\"", c.DiskFormat)
	}
	if c.Memory == 0 {
		c.Memory = bqemu.DefaultMemory
	}
	if c.CPUs == 0 {
		c.CPUs = bqemu.DefaultCPUs
	}
	if c.Memory < 0 || c.CPUs < 0 {
		return c, fmt.Errorf("qemu config: memory %d MiB and cpus %d must be positive", c.Memory, c.CPUs)
	}
	if c.Binary == "" {
		c.Binary = bqemu.DefaultBinary
	}
	if c.Accel == "" {
		if err := bqemu.EnvAccelError(); err != nil {
			return c, fmt.Errorf("qemu config: %w", err)
		}
		c.Accel = Accel()
	}
	if err := bqemu.CheckAccel(c.Accel); err != nil {
		return c, fmt.Errorf("qemu config: %w", err)
	}
	for _, nd := range c.NetDevs {
		if strings.Contains(","+nd, ",id=") {
			return c, fmt.Errorf("qemu config: netdev %q: leave out the id, it is assigned", nd)
		}
	}
	if err := c.checkNet(); err != nil {
		return c, err
	}
	return c.secureBootDefaults()
}

// paths are the files of a VM's work directory.
type paths struct {
	disk    string // the disk to attach (overlay or the image)
	diskFmt string
	vars    string // the per-VM copy of the OVMF variables
	console string
	report  string
	qmp     string
	events  string // the QMP monitor that ColdReboot follows
}

func newPaths(dir string, c Config) paths {
	p := paths{
		disk:    filepath.Join(dir, "disk.qcow2"),
		diskFmt: "qcow2",
		vars:    filepath.Join(dir, "OVMF_VARS.fd"),
		console: filepath.Join(dir, "console.log"),
		report:  filepath.Join(dir, "report.log"),
		qmp:     filepath.Join(dir, "qmp.sock"),
		events:  filepath.Join(dir, "events.sock"),
	}
	if c.Direct {
		p.disk, p.diskFmt = c.Disk, c.DiskFormat
		if p.diskFmt == "" {
			p.diskFmt = "raw"
		}
	}
	if c.Disk == "" {
		p.disk, p.diskFmt = "", ""
	}
	if c.Firmware == (Firmware{}) {
		p.vars = ""
	}
	return p
}

// optPath escapes a path for a QEMU option value (commas double).
func optPath(p string) string { return bqemu.OptPath(p) }

// args returns QEMU's command line (without the program) for c, which must
// have its defaults.
func (c Config) args(p paths) []string {
	a := bqemu.Machine{Accel: c.Accel, Memory: c.Memory, CPUs: c.CPUs, Firmware: c.Firmware, Vars: p.vars, UUID: c.UUID}.Args()
	if c.Kernel != "" {
		a = append(a, "-kernel", c.Kernel)
		if c.Initrd != "" {
			a = append(a, "-initrd", c.Initrd)
		}
		if c.Append != "" {
			a = append(a, "-append", c.Append)
		}
	}
	if p.disk != "" {
		boot := "0"
		if c.NetBoot {
			boot = "1"
		}
		a = append(a,
			"-drive", "if=none,id=disk0,format="+p.diskFmt+",file="+optPath(p.disk),
			"-device", "virtio-blk-pci,drive=disk0,bootindex="+boot,
		)
	}
	for i, d := range c.ExtraDisks {
		format := "raw"
		if strings.HasSuffix(d, ".qcow2") {
			format = "qcow2"
		}
		id := "disk" + strconv.Itoa(i+1)
		a = append(a,
			"-drive", "if=none,id="+id+",format="+format+",file="+optPath(d),
			"-device", "virtio-blk-pci,drive="+id,
		)
	}
	user := c.firstNetdev()
	nic := "virtio-net-pci,netdev=n0"
	if c.NetBoot {
		nic += ",bootindex=0"
	}
	if c.NICROM != "" {
		nic += ",romfile=" + optPath(c.NICROM)
	}
	for _, o := range c.NICOptions {
		nic += "," + o
	}
	a = append(a, "-netdev", user, "-device", nic)
	for i, nd := range c.NetDevs {
		id := "n" + strconv.Itoa(i+1)
		dev := "virtio-net-pci,netdev=" + id
		if c.UUID != "" {
			dev += ",mac=" + deriveMAC(c.UUID, i+1)
		}
		a = append(a, "-netdev", nd+",id="+id, "-device", dev)
	}
	names := make([]string, 0, len(c.FwCfg))
	for n := range c.FwCfg {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		a = append(a, bqemu.FwCfgArgs(n, c.FwCfg[n])...)
	}
	for _, s := range c.SMBIOS {
		a = append(a, "-smbios", s)
	}
	a = append(a, c.rtcArgs()...)
	// The serial logs are appended to: a ColdReboot VM's next QEMU
	// process goes on where the last one ended.
	a = append(a,
		"-chardev", "file,id=serial0,append=on,path="+optPath(p.console), "-serial", "chardev:serial0",
		"-chardev", "file,id=serial1,append=on,path="+optPath(p.report), "-serial", "chardev:serial1",
		"-qmp", "unix:"+optPath(p.qmp)+",server=on,wait=off",
	)
	if c.NoReboot {
		a = append(a, "-no-reboot")
	}
	if c.ColdReboot {
		a = append(a, "-action", "reboot=shutdown", "-qmp", "unix:"+optPath(p.events)+",server=on,wait=off")
	}
	return c.secureBootArgs(a)
}

// deriveMAC returns a locally administered MAC for NIC n of the VM with
// the given UUID, in QEMU's 52:54:00 range.
func deriveMAC(uuid string, n int) string {
	h := sha256.Sum256([]byte(uuid + "/" + strconv.Itoa(n)))
	return fmt.Sprintf("52:54:00:%02x:%02x:%02x", h[0], h[1], h[2])
}

// Start boots a guest. The VM runs until it powers off, Kill or Close is
// called, or ctx is done. Close it when finished.
func Start(ctx context.Context, cfg Config) (*VM, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		what string
		p    *string
	}{{"disk", &c.Disk}, {"kernel", &c.Kernel}, {"initrd", &c.Initrd}} {
		if *f.p == "" {
			continue
		}
		abs, err := filepath.Abs(*f.p)
		if err != nil {
			return nil, fmt.Errorf("locating %s %s: %w", f.what, *f.p, err)
		}
		if !fileExists(abs) {
			return nil, fmt.Errorf("starting qemu: %s %s is not a regular file", f.what, *f.p)
		}
		if f.what != "disk" && strings.Contains(abs, ",") {
			return nil, fmt.Errorf("starting qemu: %s %s: QEMU cannot take a comma in this path", f.what, abs)
		}
		*f.p = abs
	}
	if c.Firmware == (Firmware{}) && c.Kernel == "" && !c.NetBoot {
		if c.Firmware, err = FindFirmware(bqemu.DefaultFirmwareDir); err != nil {
			return nil, err
		}
	}
	if _, err := exec.LookPath(c.Binary); err != nil {
		return nil, fmt.Errorf("starting qemu: %w", err)
	}
	if c.NetNS != "" {
		if _, err := exec.LookPath("ip"); err != nil {
			return nil, fmt.Errorf("starting qemu in network namespace %s: %w", c.NetNS, err)
		}
	}
	if c.Dir != "" {
		if err := os.MkdirAll(c.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("creating the VM directory: %w", err)
		}
	}
	dir, err := os.MkdirTemp(c.Dir, "nodebake-vm-")
	if err != nil {
		return nil, fmt.Errorf("creating the VM directory: %w", err)
	}
	vm := &VM{dir: dir, keep: os.Getenv(EnvKeep) == "1", done: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			vm.removeDir()
		}
	}()
	p := newPaths(dir, c)
	vm.files = [2]string{p.console, p.report}
	vm.qmp = p.qmp
	vm.stderr = filepath.Join(dir, "qemu.stderr")
	if p.vars != "" {
		if err := c.Firmware.CopyVars(p.vars); err != nil {
			return nil, err
		}
	}
	if !c.Direct && c.Disk != "" {
		out, err := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-b", c.Disk, "-F", c.DiskFormat, p.disk).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("creating the disk overlay: %w: %s", err, bytesTrim(out))
		}
	}
	for _, f := range vm.files {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			return nil, fmt.Errorf("creating %s: %w", f, err)
		}
	}
	l := launcher{ctx: ctx, c: c, p: p, stderr: vm.stderr}
	pr, err := l.start(0)
	if err != nil {
		return nil, err
	}
	vm.StartedAt = time.Now()
	vm.cmd = pr.cmd
	go vm.follow(l, pr)
	ok = true
	return vm, nil
}

func bytesTrim(b []byte) string { return strings.TrimSpace(string(b)) }

// Dir returns the VM's work directory (console.log, report.log, qemu.stderr).
func (vm *VM) Dir() string { return vm.dir }

// Path returns the file a serial port is written to.
func (vm *VM) Path(which Serial) string {
	if which < 0 || int(which) >= len(vm.files) {
		return ""
	}
	return vm.files[which]
}

// ConsoleLog returns everything the guest wrote to its console so far.
func (vm *VM) ConsoleLog() string { return vm.read(Console) }

// ReportLog returns everything the guest wrote to its report port so far.
func (vm *VM) ReportLog() string { return vm.read(Report) }

func (vm *VM) read(which Serial) string {
	b, _ := os.ReadFile(vm.Path(which))
	return string(b)
}

// Exited reports whether QEMU has ended.
func (vm *VM) Exited() bool {
	select {
	case <-vm.done:
		return true
	default:
		return false
	}
}

// Crashed returns an error that wraps ErrGuestCrashed and carries the
// kernel's crash report when the guest kernel has panicked, nil otherwise.
func (vm *VM) Crashed() error {
	if crash := crashReport(vm.read(Console)); crash != "" {
		return fmt.Errorf("%w:\n%s", ErrGuestCrashed, crash)
	}
	return nil
}

// watchInterval is how often Watch looks at the console.
const watchInterval = time.Second

// Watch returns a copy of ctx that ends when the guest kernel crashes
// (context.Cause wraps ErrGuestCrashed, with the report) or QEMU exits,
// for a wait on something other than the VM's serial ports: a DHCP lease,
// an API server's view of the node. Call cancel when the wait is over.
func (vm *VM) Watch(ctx context.Context) (context.Context, context.CancelFunc) {
	wctx, cancel := context.WithCancelCause(ctx)
	go func() {
		tick := time.NewTicker(watchInterval)
		defer tick.Stop()
		for {
			if err := vm.Crashed(); err != nil {
				cancel(err)
				return
			}
			select {
			case <-wctx.Done():
				return
			case <-vm.done:
				if err := vm.Crashed(); err != nil {
					cancel(err)
				} else {
					cancel(fmt.Errorf("qemu exited (%v)%s\n%s", vm.waitErr, vm.stderrTail(), vm.ConsoleTail(40)))
				}
				return
			case <-tick.C:
			}
		}
	}()
	return wctx, func() { cancel(context.Canceled) }
}

// Wait waits for QEMU to end (a guest poweroff ends it) and returns its
// exit error, nil on a clean exit.
func (vm *VM) Wait() error {
	<-vm.done
	if vm.waitErr != nil {
		return fmt.Errorf("qemu: %w%s", vm.waitErr, vm.stderrTail())
	}
	return nil
}

// WaitExit waits at most timeout for QEMU to end.
func (vm *VM) WaitExit(ctx context.Context, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-vm.done:
		return vm.Wait()
	case <-ctx.Done():
		return fmt.Errorf("waiting for qemu to exit: %w\n%s", ctx.Err(), vm.ConsoleTail(40))
	case <-t.C:
		return fmt.Errorf("waiting for qemu to exit: still running after %s\n%s", timeout, vm.ConsoleTail(40))
	}
}

// Kill ends QEMU at once.
func (vm *VM) Kill() {
	vm.mu.Lock()
	vm.stopping = true
	if vm.cmd != nil && vm.cmd.Process != nil && !vm.Exited() {
		vm.cmd.Process.Kill()
	}
	vm.mu.Unlock()
	<-vm.done
}

// Close kills QEMU if it still runs and removes the work directory, unless
// NODEBAKE_KEEP_VM=1.
func (vm *VM) Close() error {
	vm.Kill()
	vm.closeMu.Do(vm.removeDir)
	return nil
}

func (vm *VM) removeDir() {
	if !vm.keep {
		os.RemoveAll(vm.dir)
	}
}

// Match is a match of WaitForFrom.
type Match struct {
	// Text is the matched text; Groups the submatches.
	Text   string
	Groups []string
	// Start and End are byte offsets in the log.
	Start, End int
	// SeenAt is when the poll found it (within the poll interval of the
	// guest writing it).
	SeenAt time.Time
}

// ErrGuestCrashed is wrapped by the errors of WaitFor and WaitForFrom when
// the guest kernel panicked (the console says "Kernel panic - not
// syncing") before the awaited text appeared.
var ErrGuestCrashed = errors.New("the guest kernel crashed")

// kernelPanic is the kernel's last word on a fatal error.
var kernelPanic = regexp.MustCompile(`Kernel panic - not syncing: [^\n]*`)

// crashReport returns the kernel's first report of trouble (an oops, a
// BUG or a general protection fault) up to its panic line, or "".
func crashReport(console string) string {
	p := kernelPanic.FindStringIndex(console)
	if p == nil {
		return ""
	}
	start := p[0]
	if o := regexp.MustCompile(`(?m)^.*(Oops|BUG:|general protection fault|invalid opcode)`).FindStringIndex(console); o != nil && o[0] < start {
		start = o[0]
	}
	lines := strings.Split(console[start:p[1]], "\n")
	if len(lines) > 30 {
		lines = append(lines[:25], append([]string{"..."}, lines[len(lines)-4:]...)...)
	}
	return strings.Join(lines, "\n")
}

// pollInterval is how often WaitFor reads the log.
const pollInterval = 100 * time.Millisecond

// WaitFor waits at most timeout for re to match the log of a serial port
// and returns the match. It fails early when QEMU exits; errors carry the
// last 40 lines of the console.
func (vm *VM) WaitFor(ctx context.Context, which Serial, re *regexp.Regexp, timeout time.Duration) (string, error) {
	m, err := vm.WaitForFrom(ctx, which, 0, re, timeout)
	return m.Text, err
}

// WaitForFrom is WaitFor matching only at or after byte offset from, for
// something that happens again (after a reboot, pass the previous End).
func (vm *VM) WaitForFrom(ctx context.Context, which Serial, from int, re *regexp.Regexp, timeout time.Duration) (Match, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		exited := vm.Exited()
		if m, ok := vm.match(which, from, re); ok {
			return m, nil
		}
		if crash := crashReport(vm.read(Console)); crash != "" {
			return Match{}, fmt.Errorf("waiting for %q on the %s: %w:\n%s", re, which, ErrGuestCrashed, crash)
		}
		if exited {
			return Match{}, fmt.Errorf("waiting for %q on the %s: qemu exited (%v)%s\n%s", re, which, vm.waitErr, vm.stderrTail(), vm.ConsoleTail(40))
		}
		select {
		case <-ctx.Done():
			return Match{}, fmt.Errorf("waiting for %q on the %s: %w\n%s", re, which, ctx.Err(), vm.ConsoleTail(40))
		case <-deadline.C:
			return Match{}, fmt.Errorf("waiting for %q on the %s: not seen within %s\n%s", re, which, timeout, vm.ConsoleTail(40))
		case <-tick.C:
		case <-vm.done:
		}
	}
}

func (vm *VM) match(which Serial, from int, re *regexp.Regexp) (Match, bool) {
	log := vm.read(which)
	if from > len(log) {
		return Match{}, false
	}
	loc := re.FindStringSubmatchIndex(log[from:])
	if loc == nil {
		return Match{}, false
	}
	m := Match{Text: log[from+loc[0] : from+loc[1]], Start: from + loc[0], End: from + loc[1], SeenAt: time.Now()}
	for i := 2; i+1 < len(loc); i += 2 {
		g := ""
		if loc[i] >= 0 {
			g = log[from+loc[i] : from+loc[i+1]]
		}
		m.Groups = append(m.Groups, g)
	}
	return m, true
}

// ConsoleTail returns the last n lines of the console log, framed for an
// error message.
func (vm *VM) ConsoleTail(n int) string {
	return "--- last lines of the console (" + vm.Path(Console) + ") ---\n" + lastLines(vm.ConsoleLog(), n)
}

func (vm *VM) stderrTail() string { return tailOf(vm.stderr) }

// lastLines returns the last n lines of s, with carriage returns and other
// control characters except newlines and tabs removed.
func lastLines(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || r >= ' ' && r != 0x7f {
			return r
		}
		return -1
	}, s)
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Powerdown asks the guest to shut down (an ACPI power button press)
// through QMP.
func (vm *VM) Powerdown(ctx context.Context) error {
	return vm.qmpCommand(ctx, "system_powerdown")
}

// qmpCommand runs one argument-less QMP command.
func (vm *VM) qmpCommand(ctx context.Context, command string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", vm.qmp)
	if err != nil {
		return fmt.Errorf("connecting to qmp: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	} else {
		conn.SetDeadline(time.Now().Add(10 * time.Second))
	}
	q, err := newQMPSession(conn)
	if err != nil {
		return err
	}
	for _, c := range []string{"qmp_capabilities", command} {
		if err := q.execute(c, nil); err != nil {
			return err
		}
	}
	return nil
}

// maxQMPLine bounds one message from QEMU (QMP sends one per line).
const maxQMPLine = 1 << 20

// qmpSession is a QMP connection whose greeting has been read.
type qmpSession struct {
	conn net.Conn
	sc   *bufio.Scanner
}

// qmpMessage is one message of QEMU's: a command's reply or an event.
type qmpMessage struct {
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Desc string `json:"desc"`
	} `json:"error"`
	Event string `json:"event"`
	Data  struct {
		Reason string `json:"reason"` // of a SHUTDOWN event
	} `json:"data"`
}

func newQMPSession(conn net.Conn) (*qmpSession, error) {
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 0, 64<<10), maxQMPLine)
	q := &qmpSession{conn: conn, sc: sc}
	if _, err := q.next(); err != nil {
		return nil, fmt.Errorf("reading the qmp greeting: %w", err)
	}
	return q, nil
}

// next reads QEMU's next message.
func (q *qmpSession) next() (qmpMessage, error) {
	var m qmpMessage
	if !q.sc.Scan() {
		if err := q.sc.Err(); err != nil {
			return m, err
		}
		return m, io.EOF
	}
	return m, json.Unmarshal(q.sc.Bytes(), &m)
}

// execute runs an argument-less command and waits for its reply; events
// that come first go to onEvent (when not nil).
func (q *qmpSession) execute(command string, onEvent func(qmpMessage)) error {
	if err := json.NewEncoder(q.conn).Encode(map[string]string{"execute": command}); err != nil {
		return fmt.Errorf("sending qmp %s: %w", command, err)
	}
	for {
		m, err := q.next()
		if err != nil {
			return fmt.Errorf("reading the qmp %s reply: %w", command, err)
		}
		if m.Event != "" {
			if onEvent != nil {
				onEvent(m)
			}
			continue
		}
		if m.Error != nil {
			return fmt.Errorf("qmp %s: %s", command, m.Error.Desc)
		}
		return nil
	}
}
