// Command nodebake bakes immutable, bootable Kubernetes worker images.
//
//	nodebake build [-o DIR] SPEC.yaml      build the image a spec describes
//	nodebake export --format LIST IMAGE.raw convert a built image into other formats
//	nodebake spec print SPEC.yaml          print the effective spec (defaults filled in)
//	nodebake spec validate SPEC.yaml       check a spec, reporting every problem
//	nodebake mirror build -d DIR SPEC.yaml build the spec's components from source into a release mirror
//	nodebake image import TAR LAYOUT       turn a filesystem tar into an OCI image layout (base OS, preloaded images)
//	nodebake push IMAGE REGISTRY/REPO:TAG  push an image (disk, manifest, SBOM) as an OCI artifact
//	nodebake pull [-o DIR] REGISTRY/REPO   fetch a pushed image, verified by digest
//	nodebake version
//
// Exit codes: 0 success, 1 internal error, 2 invalid input (usage, spec,
// files), 3 a download or source failed (network, checksum, build from
// source), 130 interrupted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/nodebake/nodebake/layers/failure"
)

// Exit codes.
const (
	exitOK          = 0
	exitInternal    = 1
	exitInvalid     = 2
	exitSource      = 3
	exitInterrupted = 130
)

// version is stamped at build time with -X main.version=...
var version = "dev"

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *env, args []string) error
}

// env is what a command may touch: its output streams.
type env struct {
	stdout, stderr io.Writer
}

func commands() []command {
	return []command{
		{"build", "build the worker image a spec describes", runBuild},
		{"export", "convert a built image into other formats (" + exportFormats() + ")", runExport},
		{"spec", "print or validate a spec (print, validate)", runSpec},
		{"mirror", "build a release mirror of a spec's components from source (build)", runMirror},
		{"image", "make OCI image layouts from filesystem tars: base OS, preloaded images (import)", runImage},
		{"base", "same as image (base import)", runImage},
		{"node", "per-node configuration: assemble a node config, write a config drive (config, drive)", runNode},
		{"push", "push a built image to a registry as an OCI artifact", runPush},
		{"pull", "fetch an image pushed with push, verified by digest", runPull},
		{"cache", "check the cache against its recorded digests, or remove what builds no longer use (verify, prune)", runCache},
		{"version", "print the version", func(_ context.Context, e *env, _ []string) error {
			fmt.Fprintln(e.stdout, "nodebake", version)
			return nil
		}},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "nodebake bakes immutable, bootable Kubernetes worker images.")
	fmt.Fprintln(w, "\nUsage: nodebake COMMAND [flags] [args]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'nodebake COMMAND --help' for a command's flags.")
	fmt.Fprintln(w, "Exit codes: 0 ok, 1 internal error, 2 invalid input, 3 download or source failure, 130 interrupted.")
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, &env{stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 {
		usage(e.stderr)
		return exitInvalid
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(e.stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, e, args[1:])
		if err == nil {
			return exitOK
		}
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		code := exitCode(ctx, err)
		if code == exitInterrupted {
			fmt.Fprintf(e.stderr, "nodebake %s: interrupted (%v): %v\n", c.name, interruption(ctx), err)
			return code
		}
		fmt.Fprintf(e.stderr, "nodebake %s: %v\n", c.name, err)
		return code
	}
	fmt.Fprintf(e.stderr, "nodebake: unknown command %q\n\n", args[0])
	usage(e.stderr)
	return exitInvalid
}

// interruption says what stopped the command: the signal, when one did.
func interruption(ctx context.Context) error {
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return context.Canceled
}

// newFlags returns a flag set whose --help prints the command's usage.
func newFlags(e *env, name, argsUsage, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet("nodebake "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: nodebake %s [flags] %s\n\n%s\n", name, argsUsage, summary)
		var any bool
		fs.VisitAll(func(*flag.Flag) { any = true })
		if any {
			fmt.Fprintln(fs.Output(), "\nFlags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parse parses flags; --help goes to stdout and ends the command.
func parse(e *env, fs *flag.FlagSet, args []string) error {
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" {
			fs.SetOutput(e.stdout)
			fs.Usage()
			return flag.ErrHelp
		}
		if a == "--" {
			break
		}
	}
	if err := fs.Parse(args); err != nil {
		return failure.New(failure.Invalid, err)
	}
	return nil
}

// usagef reports bad command-line input.
func usagef(format string, args ...any) error {
	return failure.Errorf(failure.Invalid, format, args...)
}
