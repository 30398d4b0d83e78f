// Command nodebake-firstboot fills in a node's per-node data on every boot:
// it finds the node config (kernel command line nodebake.config=, the
// systemd credential nodebake.node, a config drive labelled NODEBAKE,
// or the platform the node runs on: a metadata service, a config-2 or
// cidata drive, nodebake.url=), validates it and writes wg0, the
// certificates, kubeconfigs and per-node kubelet and kube-proxy configs,
// then exits. It ends with one line saying how it went (the unit shows it
// on the console): on success on stdout; on failure on stderr, naming the
// first problem, while /run/nodebake/status.json lists them all, and the
// exit status is 1. Progress lines (the platform found, retries, Azure's
// report) go to the journal only, never to the console; none holds node
// config content.
//
// "nodebake-firstboot netroot --url U --sha256 H --out FILE" is another
// use: inside the initrd of a network-booted node it downloads the root
// filesystem image and verifies it (see package netroot).
//
// "nodebake-firstboot health" is the third: on a verified image's counted
// boot it decides whether the node is healthy enough to keep the version
// it runs (see package health).
//
// "nodebake-firstboot grow-var" grows the /var partition to the end of the
// boot disk before /var is mounted (nodebake-grow-var.service; see package
// growvar): systemd-repart's output goes to stdout, the one line saying
// what happened to stderr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nodebake/nodebake/layers/firstboot"
	"github.com/nodebake/nodebake/layers/firstboot/growvar"
	"github.com/nodebake/nodebake/layers/firstboot/netroot"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "netroot" {
		os.Exit(netrootMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "health" {
		os.Exit(healthMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "grow-var" {
		os.Exit(growVarMain(os.Args[2:]))
	}
	start := time.Now()
	root := flag.String("root", "/", "prefix of every path read and written")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "nodebake-firstboot: usage: nodebake-firstboot [--root DIR] | netroot --url URL --sha256 HEX --out FILE | health | grow-var\n")
		os.Exit(2)
	}
	opts := firstboot.Options{
		Root:           *root,
		Now:            start,
		Elapsed:        func() time.Duration { return time.Since(start) },
		CredentialsDir: os.Getenv("CREDENTIALS_DIRECTORY"),
		DriveWait:      3 * time.Second,
		Chown:          os.Geteuid() == 0,
		Log:            newJournal(journalSocket),
	}
	onMachine := filepath.Clean(*root) == "/"
	if onMachine {
		opts.SetHostname = func(name string) error { return syscall.Sethostname([]byte(name)) }
		opts.Systemctl = systemctl
	}
	// Under --root, the clock counts as synchronized only through the
	// flag file under root: the kernel's state is the test machine's.
	opts.Clock = firstboot.NewSystemClock(*root, onMachine)
	opts.OnClockWait = func(w firstboot.ClockWait) {
		fmt.Printf("nodebake-firstboot: %s\n", w.Reason)
		// systemd would stop the unit at its start timeout; the wait is
		// bounded, so the timeout is extended by it (and a margin for
		// the rest of the run).
		_ = sdNotify(fmt.Sprintf("EXTEND_TIMEOUT_USEC=%d\nSTATUS=waiting up to %s for the clock to synchronize",
			(w.Limit + clockWaitMargin).Microseconds(), w.Limit))
	}
	opts.OnPlatformWait = func(limit time.Duration, what string) {
		// The platform's service is asked (or told) within limit.
		_ = sdNotify(fmt.Sprintf("EXTEND_TIMEOUT_USEC=%d\nSTATUS=%s, up to %s",
			(limit + clockWaitMargin).Microseconds(), what, limit))
	}
	st, err := firstboot.Run(context.Background(), opts)
	if err != nil {
		line := err.Error()
		if probs, ok := err.(nodeconfig.Problems); ok && len(probs) > 0 {
			line = probs[0].String()
		}
		fmt.Fprintf(os.Stderr, "nodebake-firstboot: %s\n", line)
		os.Exit(1)
	}
	fmt.Printf("nodebake-firstboot: %s in %s\n", st.Summary(), time.Since(start).Round(time.Microsecond))
}

// clockWaitMargin is the run time allowed after the clock wait (or the
// platform's lookup).
const clockWaitMargin = 30 * time.Second

// sdNotify sends state to the service manager ($NOTIFY_SOCKET, set when
// the unit has NotifyAccess=); without it, it does nothing.
func sdNotify(state string) error {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil
	}
	// A leading "@" is an abstract socket: the net package maps it.
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("connecting to the service manager: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("notifying the service manager: %w", err)
	}
	return nil
}

// journalSocket is where journald takes native-protocol messages.
const journalSocket = "/run/systemd/journal/socket"

// journal writes each line written to it to the journal as one message
// (native protocol: MESSAGE=, SYSLOG_IDENTIFIER=, PRIORITY=), so that
// progress lines stay off the console the unit shows stdout and stderr
// on. Where there is no journal (a test, --root on a build machine), the
// lines are dropped.
type journal struct {
	conn *net.UnixConn
	buf  []byte
}

func newJournal(socket string) *journal {
	j := &journal{}
	if os.Getenv("JOURNAL_STREAM") != "" { // run by systemd, output to the journal
		j.conn, _ = net.DialUnix("unixgram", nil, &net.UnixAddr{Name: socket, Net: "unixgram"})
	}
	return j
}

func (j *journal) Write(p []byte) (int, error) {
	j.buf = append(j.buf, p...)
	for {
		i := strings.IndexByte(string(j.buf), '\n')
		if i < 0 {
			break
		}
		line := strings.ToValidUTF8(string(j.buf[:i]), "?")
		j.buf = j.buf[i+1:]
		if j.conn != nil && !strings.ContainsAny(line, "\x00") {
			_, _ = j.conn.Write([]byte("PRIORITY=6\nSYSLOG_IDENTIFIER=nodebake-firstboot\nMESSAGE=" + line + "\n"))
		}
	}
	return len(p), nil
}

// systemctl runs systemctl with args; its output goes into the error.
func systemctl(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "systemctl", args...).CombinedOutput()
	if err != nil {
		if msg := strings.TrimSpace(string(out)); msg != "" {
			return fmt.Errorf("%w: %s", err, msg)
		}
		return err
	}
	return nil
}

// netrootMain runs the netroot subcommand and returns the exit code.
func netrootMain(args []string) int {
	fs := flag.NewFlagSet("netroot", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	var o netroot.Options
	fs.StringVar(&o.URL, "url", "", "http:// or https:// URL of the root filesystem image")
	fs.StringVar(&o.SHA256, "sha256", "", "its expected SHA-256, 64 hex digits")
	fs.StringVar(&o.Out, "out", "", "file to write")
	fs.DurationVar(&o.Timeout, "timeout", netroot.DefaultTimeout, "give up after this long, retries included")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "nodebake-firstboot netroot: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	o.Log = os.Stderr
	res, err := netroot.Fetch(context.Background(), o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "nodebake-firstboot netroot: %v\n", err)
		return 1
	}
	fmt.Printf("nodebake-firstboot netroot: %s\n", res.Describe(o.Out))
	return 0
}

// growVarMain runs the grow-var subcommand and returns the exit code. A
// node without a /var partition (network boot) has nothing to grow.
func growVarMain(args []string) int {
	if len(args) > 0 {
		fmt.Fprintf(os.Stderr, "nodebake-firstboot grow-var: unexpected argument %q\n", args[0])
		return 2
	}
	res, err := growvar.Grow(context.Background(), growvar.Options{Log: os.Stdout})
	if errors.Is(err, growvar.ErrNoPartition) {
		fmt.Fprintf(os.Stderr, "nodebake-firstboot grow-var: %v: nothing to grow\n", err)
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "nodebake-firstboot grow-var: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "nodebake-firstboot grow-var: %s\n", res)
	return 0
}
