// Command nodebake-firstboot fills in a node's per-node data on every boot:
// it finds the node config (kernel command line nodebake.config=, the
// systemd credential nodebake.node, a config drive labelled NODEBAKE,
// or the platform the node runs on: a metadata service, a config-2 or
// cidata drive, nodebake.url=), validates it and writes wg0, the
// certificates, kubeconfigs and per-node kubelet and kube-proxy configs,
// then exits. It ends with one line on stderr saying how it went (the unit
// shows it on the console): on failure that line names the first problem,
// /run/nodebake/status.json lists them all, and the exit status is 1.
// Progress lines (the platform found, retries) go to stdout (the unit
// sends them to the journal only); none holds node config content.
//
// "nodebake-firstboot netroot --url U --sha256 H --out FILE" is another
// use: inside the initrd of a network-booted node it downloads the root
// filesystem image and verifies it (see package netroot).
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
	"os"
	"path/filepath"
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
	if len(os.Args) > 1 && os.Args[1] == "grow-var" {
		os.Exit(growVarMain(os.Args[2:]))
	}
	start := time.Now()
	root := flag.String("root", "/", "prefix of every path read and written")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "nodebake-firstboot: usage: nodebake-firstboot [--root DIR] | netroot --url URL --sha256 HEX --out FILE | grow-var\n")
		os.Exit(2)
	}
	opts := firstboot.Options{
		Root:           *root,
		Now:            start,
		Elapsed:        func() time.Duration { return time.Since(start) },
		CredentialsDir: os.Getenv("CREDENTIALS_DIRECTORY"),
		DriveWait:      3 * time.Second,
		Chown:          os.Geteuid() == 0,
		Log:            os.Stdout,
	}
	if filepath.Clean(*root) == "/" {
		opts.SetHostname = func(name string) error { return syscall.Sethostname([]byte(name)) }
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
	fmt.Fprintf(os.Stderr, "nodebake-firstboot: %s in %s\n", st.Summary(), time.Since(start).Round(time.Microsecond))
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
