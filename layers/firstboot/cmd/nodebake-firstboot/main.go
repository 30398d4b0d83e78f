// Command nodebake-firstboot fills in a node's per-node data on every boot:
// it finds the node config (kernel command line nodebake.config=, the
// systemd credential nodebake.node, or a config drive labelled NODEBAKE),
// validates it and writes wg0, the certificates, kubeconfigs and per-node
// kubelet and kube-proxy configs, then exits. On failure it prints one line
// to stderr, writes /run/nodebake/status.json and exits 1.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nodebake/nodebake/layers/firstboot"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
)

func main() {
	start := time.Now()
	root := flag.String("root", "/", "prefix of every path read and written")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "nodebake-firstboot: usage: nodebake-firstboot [--root DIR]\n")
		os.Exit(2)
	}
	opts := firstboot.Options{
		Root:           *root,
		Now:            start,
		Elapsed:        func() time.Duration { return time.Since(start) },
		CredentialsDir: os.Getenv("CREDENTIALS_DIRECTORY"),
		DriveWait:      3 * time.Second,
		Chown:          os.Geteuid() == 0,
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
	fmt.Printf("nodebake-firstboot: %s in %s\n", st.Summary(), time.Since(start).Round(time.Microsecond))
}
