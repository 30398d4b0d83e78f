package main

import (
	"context"
	"fmt"
)

func runSpec(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(e.stdout, "Usage: nodebake spec print SPEC.yaml     print the effective spec, defaults filled in")
		fmt.Fprintln(e.stdout, "       nodebake spec validate SPEC.yaml  check a spec; every problem is reported with its field path")
		if len(args) == 0 {
			return usagef("missing subcommand")
		}
		return nil
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "print", "validate":
		fs := newFlags(e, "spec "+sub, "SPEC.yaml", "Print the effective spec (print) or check it (validate).")
		if err := parse(e, fs, rest); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return usagef("want exactly one spec file")
		}
		s, err := loadSpec(fs.Arg(0))
		if err != nil {
			return err
		}
		if sub == "validate" {
			fmt.Fprintf(e.stdout, "%s: valid\n", fs.Arg(0))
			return nil
		}
		out, err := s.Dump()
		if err != nil {
			return err
		}
		_, err = e.stdout.Write(out)
		return err
	}
	return usagef("unknown subcommand %q (want print or validate)", sub)
}
