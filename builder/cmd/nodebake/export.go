package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

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

func runExport(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "export", "IMAGE.raw",
		"Convert a built image into other formats, next to it or into -o DIR: the image's manifest must be beside it,\nand the image must match the manifest's sha256.\n\n"+formatHelp(false))
	out := fs.String("o", "", "output `DIR` (default: the image's directory)")
	formats := fs.String("format", "", "the formats to write, comma-separated (`LIST`)")
	firstboot := fs.String("firstboot", "", "the nodebake-firstboot program `PATH`, for the netboot bundle (default: next to nodebake)")
	netbootURL := fs.String("netboot-url", "", "the `URL` the netboot bundle will be served from (default: where boot.ipxe was loaded from)")
	quiet := fs.Bool("q", false, "print only errors")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want exactly one image, got %d arguments", fs.NArg())
	}
	fl, err := parseFormats("format", *formats)
	if err != nil {
		return err
	}
	var fb string
	if slices.Contains(fl, spec.FormatNetboot) {
		if fb, err = findFirstboot(*firstboot); err != nil {
			return err
		}
	}
	start := time.Now()
	p := newProgress(e, *quiet)
	res, err := build.Export(ctx, fs.Arg(0), build.ExportOptions{
		OutputDir:       *out,
		Formats:         fl,
		FirstbootBinary: fb,
		NetbootURL:      *netbootURL,
		Progress:        p.event,
	})
	if err != nil {
		return err
	}
	for _, o := range res.Outputs {
		fmt.Fprintln(e.stdout, o.Path)
	}
	if !*quiet {
		fmt.Fprintf(e.stderr, "exported %d formats in %s\n", len(res.Outputs), time.Since(start).Round(100*time.Millisecond))
	}
	return nil
}
