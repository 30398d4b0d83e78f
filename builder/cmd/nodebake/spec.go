package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nodebake/nodebake/layers/spec"
)

func newSpecCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "spec",
		Short: "Print, validate or describe a spec (print, validate, schema)",
		Long: "A spec (apiVersion " + spec.APIVersion + ", kind " + spec.Kind + ") describes a worker image.\n" +
			"The reference of every field is docs/spec.md; nodebake spec schema prints its JSON Schema.",
	}
	cmd.AddCommand(
		&cobra.Command{
			Use:   "print SPEC.yaml",
			Short: "Print the effective spec, every default filled in",
			Args:  exactArgs(1, "exactly one spec file"),
			RunE: func(_ *cobra.Command, args []string) error {
				s, err := loadSpec(args[0])
				if err != nil {
					return err
				}
				out, err := s.Dump()
				if err != nil {
					return err
				}
				_, err = e.stdout.Write(out)
				return err
			},
		},
		&cobra.Command{
			Use:   "validate SPEC.yaml",
			Short: "Check a spec; every problem is reported with its field path",
			Args:  exactArgs(1, "exactly one spec file"),
			RunE: func(_ *cobra.Command, args []string) error {
				if _, err := loadSpec(args[0]); err != nil {
					return err
				}
				_, err := fmt.Fprintf(e.stdout, "%s: valid\n", args[0])
				return err
			},
		},
		&cobra.Command{
			Use:   "schema",
			Short: "Print the JSON Schema (draft 2020-12) of a spec",
			Long: "Print the JSON Schema (draft 2020-12) of a spec file, generated from the spec's Go types and\n" +
				"their doc comments: every field with its description, the enums (arch, formats, component\n" +
				"sources, pod networks), the component keys of the catalogue and the patterns of names,\n" +
				"versions, digests and checksums. Editors use it to complete and check specs; nodebake spec\n" +
				"validate checks the rest (CIDRs, version skew, files over managed paths, ...).",
			Args: cobra.NoArgs,
			RunE: func(_ *cobra.Command, _ []string) error {
				_, err := e.stdout.Write(spec.Schema())
				return err
			},
		},
	)
	return cmd
}

// loadSpec reads, defaults and validates a spec file.
func loadSpec(p string) (*spec.Spec, error) {
	return spec.LoadAndValidate(p)
}
