// Command nodebake bakes immutable, bootable Kubernetes worker images.
//
//	nodebake build SPEC.yaml [-o DIR]       build the image a spec describes
//	nodebake export IMAGE.raw --format LIST convert a built image into other formats
//	nodebake run IMAGE [--node-config F]    boot an image under QEMU, the console on the terminal
//	nodebake spec print|validate SPEC.yaml  print the effective spec, or check it
//	nodebake spec schema                    print the spec's JSON Schema
//	nodebake mirror build SPEC.yaml -d DIR  build the spec's components from source into a release mirror
//	nodebake image import TAR LAYOUT        turn a filesystem tar into an OCI image layout (base OS, preloaded images)
//	nodebake node config|check|drive        assemble, check or deliver a node config
//	nodebake push IMAGE REGISTRY/REPO:TAG   push an image (disk, manifest, SBOM) as an OCI artifact
//	nodebake pull REGISTRY/REPO [-o DIR]    fetch a pushed image, verified by digest
//	nodebake cache verify|prune             check the cache against its digests, or remove what builds no longer use
//	nodebake version | --version
//	nodebake help [COMMAND]
//	nodebake completion bash|zsh|fish|powershell
//
// Flags may come before or after the arguments. Exit codes: 0 success, 1
// internal error, 2 invalid input (usage, spec, files), 3 a download or
// source failed (network, checksum, build from source), 130 interrupted.
// The code comes from the error's kind (package failure).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

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

// env is what a command may touch: its input and output streams.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:])
	stop()
	os.Exit(code)
}

// run runs the command line args and returns the exit code.
func run(ctx context.Context, e *env, args []string) int {
	root := newRootCmd(e)
	root.SetArgs(longFlagsWithOneDash(root, args))
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	if cmd == nil {
		cmd = root
	}
	code := exitCode(ctx, err)
	if code == exitInterrupted {
		fmt.Fprintf(e.stderr, "%s: interrupted (%v): %v\n", cmd.CommandPath(), interruption(ctx), err)
		return code
	}
	fmt.Fprintf(e.stderr, "%s: %v\n", cmd.CommandPath(), err)
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(e.stderr, "\n%s", cmd.UsageString())
	}
	return code
}

// interruption says what stopped the command: the signal, when one did.
func interruption(ctx context.Context) error {
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return context.Canceled
}

// exitCode maps an error to the exit code that tells invalid input from
// failed sources from internal errors: an interruption by the context, else
// the error's kind.
func exitCode(ctx context.Context, err error) int {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) {
		return exitInterrupted
	}
	switch failure.KindOf(err) {
	case failure.Invalid:
		return exitInvalid
	case failure.Source:
		return exitSource
	}
	return exitInternal
}

// usageError is a command line that does not fit the command: an unknown
// command or flag, a missing or extra argument. It is invalid input, and
// the command's usage is shown with it.
type usageError struct{ err error }

func (u *usageError) Error() string { return u.err.Error() }
func (u *usageError) Unwrap() error { return u.err }

// asUsage makes err a usage error (of kind failure.Invalid).
func asUsage(err error) error {
	var ue *usageError
	if errors.As(err, &ue) {
		return err
	}
	return &usageError{failure.New(failure.Invalid, err)}
}

// usagef reports a command line that does not fit the command.
func usagef(format string, args ...any) error {
	return asUsage(fmt.Errorf(format, args...))
}

const rootLong = `nodebake bakes immutable, bootable Kubernetes worker images.

Flags may come before or after the arguments. Exit codes: 0 ok, 1 internal error,
2 invalid input (usage, spec, files, a missing base image), 3 a download or source
failed, 130 interrupted.`

// newRootCmd returns the command tree, writing to e's streams.
func newRootCmd(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:           "nodebake",
		Short:         "Bake immutable, bootable Kubernetes worker images",
		Long:          rootLong,
		Version:       version,
		SilenceErrors: true,
		SilenceUsage:  true,
		// Completion for files is the shells' own.
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: false},
	}
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.SetVersionTemplate("nodebake {{.Version}}\n")
	// A command that groups others runs only to say that one is missing:
	// its usage shows "nodebake spec [command]", not a runnable line.
	root.SetUsageTemplate(strings.Replace(root.UsageTemplate(), "{{if .Runnable}}", "{{if and .Runnable (not .HasAvailableSubCommands)}}", 1))
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return asUsage(err) })
	root.AddCommand(
		newBuildCmd(e),
		newExportCmd(e),
		newRunCmd(e),
		newSpecCmd(e),
		newMirrorCmd(e),
		newImageCmd(e),
		newNodeCmd(e),
		newPushCmd(e),
		newPullCmd(e),
		newCacheCmd(e),
		&cobra.Command{
			Use:   "version",
			Short: "Print the version",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				_, err := fmt.Fprintln(e.stdout, "nodebake", version)
				return err
			},
		},
	)
	root.SetHelpCommand(newHelpCmd())
	root.InitDefaultCompletionCmd()
	forEachCommand(root, func(c *cobra.Command) {
		if c.HasSubCommands() && c.Run == nil && c.RunE == nil {
			c.Args = cobra.ArbitraryArgs
			c.RunE = groupRun
		}
		if c.Args != nil {
			c.Args = usageArgs(c.Args)
		}
	})
	return root
}

// forEachCommand calls f on c and every command below it.
func forEachCommand(c *cobra.Command, f func(*cobra.Command)) {
	f(c)
	for _, sub := range c.Commands() {
		forEachCommand(sub, f)
	}
}

// groupRun runs a command that only groups others: called alone or with an
// unknown subcommand, it is a usage error.
func groupRun(cmd *cobra.Command, args []string) error {
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	want := strings.Join(names, ", ")
	if len(args) == 0 {
		return usagef("missing command (want %s)", want)
	}
	msg := fmt.Sprintf("unknown command %q (want %s)", args[0], want)
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf("; did you mean %s?", strings.Join(s, " or "))
	}
	return usagef("%s", msg)
}

// usageArgs makes the errors of an argument check usage errors.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return asUsage(err)
		}
		return nil
	}
}

// exactArgs wants n arguments, described by what ("a spec file").
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("want %s, got %d arguments", what, len(args))
		}
		return nil
	}
}

// newHelpCmd is `nodebake help [COMMAND]`: the help of a command, and a
// usage error for one that does not exist.
func newHelpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "help [COMMAND]",
		Short: "Help about any command",
		Long:  "Help shows the help of any command: nodebake help node config.",
		ValidArgsFunction: func(c *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			cmd, _, err := c.Root().Find(args)
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var out []cobra.Completion
			for _, sub := range cmd.Commands() {
				if sub.IsAvailableCommand() && strings.HasPrefix(sub.Name(), toComplete) {
					out = append(out, cobra.CompletionWithDesc(sub.Name(), sub.Short))
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(c *cobra.Command, args []string) error {
			cmd, rest, err := c.Root().Find(args)
			if err == nil && len(rest) > 0 {
				err = fmt.Errorf("%s has no command %q", cmd.CommandPath(), rest[0])
			}
			if err != nil {
				return usagef("unknown help topic %q: %v", strings.Join(args, " "), err)
			}
			cmd.InitDefaultHelpFlag()
			cmd.InitDefaultVersionFlag()
			return cmd.Help()
		},
	}
}

// longFlagsWithOneDash rewrites -name and -name=value to --name and
// --name=value when name is a long flag of the command the arguments
// select, so that command lines written for the earlier flag parser (which
// took long flags with one dash) keep working instead of being read as a
// cluster of one-letter flags (-offline as -o ffline).
func longFlagsWithOneDash(root *cobra.Command, args []string) []string {
	cmd, _, err := root.Find(args)
	if err != nil || cmd == nil {
		return args
	}
	out := make([]string, len(args))
	copy(out, args)
	for i, a := range out {
		if a == "--" {
			break
		}
		if len(a) < 3 || a[0] != '-' || a[1] == '-' {
			continue
		}
		name, _, _ := strings.Cut(a[1:], "=")
		if name == "help" || len(name) > 1 && cmd.Flag(name) != nil {
			out[i] = "-" + a
		}
	}
	return out
}
