package qemu

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// A guest reboot under Config.ColdReboot: QEMU runs with
// -action reboot=shutdown, so a reset ends the process instead of
// resetting the machine in place, and the VM starts QEMU again on the same
// disk overlay, firmware variables and serial logs: a power cycle.
//
// Why: OVMF can hang for good on a warm reset under TCG (the boot
// processor spins in the firmware waiting for the other, which stays
// halted; nothing reaches the console), while a cold start boots. What a
// reboot means to the image (systemd-boot's boot counting in the ESP's
// file names, /var, the NVRAM) is the same either way.

// resetReasons are the QMP SHUTDOWN reasons that mean "reset", not "power
// off": the guest asked for a reboot (a kernel panic with panic=N ends so
// too), or a client sent system_reset.
var resetReasons = map[string]bool{"guest-reset": true, "host-qmp-system-reset": true}

// The bounds of the event monitor: how long it tries to connect, how long
// the VM waits for its last word once QEMU ended.
const (
	eventsDialTimeout = time.Minute
	eventsDrain       = 2 * time.Second
)

// RebootNote is written to the console log each time a ColdReboot VM
// starts QEMU again.
const RebootNote = "[qemu] the guest rebooted: QEMU started again (a cold boot: Config.ColdReboot)"

// shutdownWatch follows one QEMU process's QMP events and keeps the reason
// of its last SHUTDOWN event.
type shutdownWatch struct {
	ready  chan struct{} // closed once QEMU will send its events
	done   chan struct{}
	reason string // read after done is closed
	err    error  // why it never got ready; read after done is closed
}

// watchShutdown connects to the event monitor at sock (retrying until QEMU
// has made it, or exited is closed) and follows it until QEMU ends.
func watchShutdown(sock string, exited <-chan struct{}) *shutdownWatch {
	w := &shutdownWatch{ready: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		conn, err := dialEvents(sock, exited)
		if err != nil {
			w.err = err
			return
		}
		defer conn.Close()
		go func() {
			<-exited
			// QEMU is gone: whatever it said is in the socket's buffer.
			conn.SetReadDeadline(time.Now().Add(eventsDrain))
		}()
		record := func(m qmpMessage) {
			if m.Event == "SHUTDOWN" {
				w.reason = m.Data.Reason
			}
		}
		q, err := newQMPSession(conn)
		if err == nil {
			err = q.execute("qmp_capabilities", record)
		}
		if err != nil {
			w.err = fmt.Errorf("the QMP event monitor: %w", err)
			return
		}
		close(w.ready)
		for {
			m, err := q.next()
			if err != nil {
				return
			}
			record(m)
		}
	}()
	return w
}

func dialEvents(sock string, exited <-chan struct{}) (net.Conn, error) {
	deadline := time.Now().Add(eventsDialTimeout)
	for {
		conn, err := net.DialTimeout("unix", sock, time.Second)
		if err == nil {
			return conn, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("connecting to the QMP event monitor: %w", err)
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("QEMU ended before its event monitor answered: %w", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// process is one QEMU process of a VM.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error          // how it ended; read after exited is closed
	events *shutdownWatch // nil without ColdReboot
}

// launcher starts QEMU processes for one VM.
type launcher struct {
	ctx    context.Context
	c      Config
	p      paths
	stderr string
}

// start starts QEMU; since is how long ago the VM's first process started
// (0 for that one): the guest's clock keeps running across a power cycle.
func (l launcher) start(since time.Duration) (*process, error) {
	c := l.c
	if !c.RTCBase.IsZero() {
		c.RTCBase = c.RTCBase.Add(since)
	}
	stderr, err := os.OpenFile(l.stderr, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the QEMU log: %w", err)
	}
	defer stderr.Close()
	name, args := c.command(c.args(l.p))
	cmd := exec.CommandContext(l.ctx, name, args...)
	cmd.Dir = filepath.Dir(l.p.console)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	cmd.WaitDelay = 5 * time.Second
	// Killed with the test binary if that dies before its cleanup (a
	// test timeout ends it without running any).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting qemu: %w", err)
	}
	pr := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		pr.err = cmd.Wait()
		close(pr.exited)
	}()
	if c.ColdReboot {
		// Not before the event monitor is following: a reset it missed
		// would end the VM.
		pr.events = watchShutdown(l.p.events, pr.exited)
		select {
		case <-pr.events.ready:
		case <-pr.events.done:
			cmd.Process.Kill()
			<-pr.exited
			return nil, fmt.Errorf("starting qemu: %w%s", pr.events.err, tailOf(l.stderr))
		}
	}
	return pr, nil
}

// follow waits for the VM's QEMU processes: when one ends because the
// guest reset and the VM takes cold reboots, it starts the next; otherwise
// the VM is over.
func (vm *VM) follow(l launcher, pr *process) {
	defer close(vm.done)
	for {
		<-pr.exited
		err := pr.err
		reason := ""
		if pr.events != nil {
			select {
			case <-pr.events.done:
				reason = pr.events.reason
			case <-time.After(eventsDrain + time.Second):
			}
		}
		vm.mu.Lock()
		if err != nil || !resetReasons[reason] || vm.stopping || l.ctx.Err() != nil {
			vm.waitErr = err
			if pr.events != nil && pr.events.err != nil {
				// Why QEMU ended is not known: the VM is over, and the
				// console says why it was not started again.
				appendNote(l.p.console, "[qemu] QEMU ended; not started again: "+pr.events.err.Error())
			}
			vm.mu.Unlock()
			return
		}
		restart := vm.restarts + 1
		vm.mu.Unlock()
		appendNote(l.p.console, RebootNote)
		next, err := l.start(time.Since(vm.StartedAt))
		vm.mu.Lock()
		switch {
		case err != nil:
			vm.waitErr = fmt.Errorf("starting QEMU again after the guest rebooted: %w", err)
		case vm.stopping:
			// Kill came while it started.
			next.cmd.Process.Kill()
			<-next.exited
		default:
			pr = next
			vm.cmd = pr.cmd
			vm.restarts = restart
		}
		vm.mu.Unlock()
		if pr != next {
			return
		}
	}
}

// tailOf returns "; qemu said: " and the last lines of a QEMU log, or "".
func tailOf(path string) string {
	b, _ := os.ReadFile(path)
	if s := lastLines(string(b), 10); s != "" {
		return "; qemu said: " + s
	}
	return ""
}

// appendNote adds a line of the harness's own to a serial log.
func appendNote(path, note string) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "\r\n%s\r\n", note)
}

// Restarts returns how many times a ColdReboot VM started QEMU again
// after a guest reboot.
func (vm *VM) Restarts() int {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.restarts
}
