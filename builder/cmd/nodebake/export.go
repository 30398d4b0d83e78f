package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/nodebake/nodebake/builder/build"
	"github.com/nodebake/nodebake/layers/spec"
)

// parseFormats reads a --format value: formats separated by commas.
func parseFormats(flagName, v string) ([]spec.Format, error) {
	var out []spec.Format
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		ff := spec.Format(f)
		if _, ok := ff.Info(); !ok {
			return nil, usagef("--%s: unknown format %q (known: %s)", flagName, f, spec.FormatNames())
		}
		if slices.Contains(out, ff) {
			return nil, usagef("--%s: %s is listed twice", flagName, f)
		}
		out = append(out, ff)
	}
	if len(out) == 0 {
		return nil, usagef("--%s: no format given", flagName)
	}
	return out, nil
}

// formatHelp describes every format, one per line, from the format table;
// without raw when the raw image is the input.
func formatHelp(withRaw bool) string {
	var b strings.Builder
	b.WriteString("Formats:")
	for _, i := range spec.FormatTable() {
		if i.Format == spec.FormatRaw && !withRaw {
			continue
		}
		ext := i.Extension
		if i.Directory {
			ext += "/"
		}
		fmt.Fprintf(&b, "\n  %-8s NAME%-9s %s", i.Format, ext, i.Summary)
	}
	return b.String()
}

// exportFormats lists the formats export converts to, for the command
// summary.
func exportFormats() string {
	var s []string
	for _, f := range spec.Formats() {
		if f != spec.FormatRaw {
			s = append(s, string(f))
		}
	}
	return strings.Join(s, ", ")
}

// formatCompletion completes a --format list from the format table.
func formatCompletion(withRaw bool) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		done, last := "", toComplete
		if i := strings.LastIndex(toComplete, ","); i >= 0 {
			done, last = toComplete[:i+1], toComplete[i+1:]
		}
		var out []cobra.Completion
		for _, i := range spec.FormatTable() {
			if i.Format == spec.FormatRaw && !withRaw || !strings.HasPrefix(string(i.Format), last) {
				continue
			}
			out = append(out, cobra.CompletionWithDesc(done+string(i.Format), i.Summary))
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	}
}

func newExportCmd(e *env) *cobra.Command {
	var o struct {
		out, formats, firstboot, netbootURL string
		quiet                               bool
	}
	cmd := &cobra.Command{
		Use:   "export IMAGE.raw --format LIST",
		Short: "Convert a built image into other formats (" + exportFormats() + ")",
		Long: "Convert a built image into other formats, next to it or into -o DIR: the image's manifest must be beside it,\n" +
			"and the image must match the manifest's sha256.\n\n" + formatHelp(false),
		Example: "  nodebake export out/worker.raw --format qcow2,vhd",
		Args:    exactArgs(1, "exactly one image"),
		RunE: func(cmd *cobra.Command, args []string) error {
			fl, err := parseFormats("format", o.formats)
			if err != nil {
				return err
			}
			var fb string
			if slices.Contains(fl, spec.FormatNetboot) {
				if fb, err = findFirstboot(o.firstboot); err != nil {
					return err
				}
			}
			start := time.Now()
			p := newProgress(e, o.quiet)
			res, err := build.Export(cmd.Context(), args[0], build.ExportOptions{
				OutputDir:       o.out,
				Formats:         fl,
				FirstbootBinary: fb,
				NetbootURL:      o.netbootURL,
				Progress:        p.event,
			})
			if err != nil {
				return err
			}
			for _, o := range res.Outputs {
				fmt.Fprintln(e.stdout, o.Path)
			}
			if !o.quiet {
				fmt.Fprintf(e.stderr, "exported %d formats in %s\n", len(res.Outputs), time.Since(start).Round(100*time.Millisecond))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.out, "output", "o", "", "output `DIR` (default: the image's directory)")
	f.StringVar(&o.formats, "format", "", "the formats to write, comma-separated (`LIST`)")
	f.StringVar(&o.firstboot, "firstboot", "", "the nodebake-firstboot program `PATH`, for the netboot bundle (default: next to nodebake)")
	f.StringVar(&o.netbootURL, "netboot-url", "", "the `URL` the netboot bundle will be served from (default: where boot.ipxe was loaded from)")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print only errors")
	cmd.RegisterFlagCompletionFunc("format", formatCompletion(false))
	return cmd
}
