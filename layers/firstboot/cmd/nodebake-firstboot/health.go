package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/nodebake/nodebake/layers/firstboot/health"
)

// healthMain runs the health subcommand and returns the exit code: 0 for
// a healthy node, 1 for an unhealthy one, 2 for bad usage.
func healthMain(args []string) int {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	var o health.Options
	fs.StringVar(&o.Root, "root", "/", "prefix of every path read")
	fs.DurationVar(&o.Timeout, "timeout", health.DefaultTimeout, "give up after this long")
	fs.IntVar(&o.MaxRestarts, "max-restarts", health.DefaultMaxRestarts, "kubelet restarts that make the node unhealthy")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "nodebake-firstboot health: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	o.Log = func(s string) { fmt.Printf("nodebake-health: %s\n", s) }
	err := health.Check(context.Background(), o)
	var u *health.Unhealthy
	switch {
	case errors.As(err, &u):
		fmt.Fprintf(os.Stderr, "nodebake-health: %v: this boot is not marked good\n", err)
		return 1
	case err != nil:
		fmt.Fprintf(os.Stderr, "nodebake-health: %v\n", err)
		return 1
	}
	fmt.Println("nodebake-health: healthy: this boot is marked good")
	return 0
}
