package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/nodebake/nodebake/builder/build"
	"github.com/nodebake/nodebake/layers/cache"
	"github.com/nodebake/nodebake/layers/failure"
	"github.com/nodebake/nodebake/layers/gosource"
	"github.com/nodebake/nodebake/layers/spec"
)

func openCache(dir string) (*cache.Cache, error) {
	if dir == "" {
		d, err := cache.DefaultDir()
		if err != nil {
			return nil, err
		}
		dir = d
	}
	return cache.Open(dir)
}

// findFirstboot locates the nodebake-firstboot program: the flag, else next
// to this executable.
func findFirstboot(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	exe, err := os.Executable()
	if err == nil {
		p := filepath.Join(filepath.Dir(exe), "nodebake-firstboot")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", failure.Errorf(failure.Invalid, "the nodebake-firstboot program is not next to nodebake; build it (make bin) or pass --firstboot PATH")
}

func newBuildCmd(e *env) *cobra.Command {
	var o struct {
		out, cacheDir, firstboot, formats, netbootURL string
		offline, quiet                                bool
	}
	cmd := &cobra.Command{
		Use:   "build SPEC.yaml",
		Short: "Build the worker image a spec describes",
		Long: "Build the worker disk image a spec describes into DIR: the formats of output.formats (NAME.raw,\n" +
			"NAME.qcow2, ...), NAME.manifest.json, the SPDX SBOM NAME.spdx.json and NAME.SHA256SUMS.\n\n" +
			"A base image that is not there is invalid input (exit 2): build it with make base.\n\n" + formatHelp(true),
		Example: "  nodebake build images/worker.yaml -o out\n  nodebake build images/worker.yaml --format raw,qcow2 --offline",
		Args:    exactArgs(1, "exactly one spec file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var fl []spec.Format
			if o.formats != "" {
				var err error
				if fl, err = parseFormats("format", o.formats); err != nil {
					return err
				}
			}
			s, err := loadSpec(args[0])
			if err != nil {
				return err
			}
			fb, err := findFirstboot(o.firstboot)
			if err != nil {
				return err
			}
			c, err := openCache(o.cacheDir)
			if err != nil {
				return err
			}
			start := time.Now()
			p := newProgress(e, o.quiet)
			res, err := build.Build(cmd.Context(), s, build.Options{
				OutputDir:       o.out,
				Cache:           c,
				FirstbootBinary: fb,
				Offline:         o.offline,
				Go:              gosource.Builder{Log: p.goLog()},
				Progress:        p.event,
				Formats:         fl,
				NetbootURL:      o.netbootURL,
				ToolVersion:     version,
			})
			if err != nil {
				return err
			}
			m := res.Manifest
			if res.ImagePath != "" {
				fmt.Fprintf(e.stdout, "%s\n", res.ImagePath)
			}
			for _, o := range res.Outputs {
				fmt.Fprintf(e.stdout, "%s\n", o.Path)
			}
			if !o.quiet {
				fmt.Fprintf(e.stderr, "built %s in %s: %d MiB disk, %d MiB root filesystem, sha256 %s\n",
					m.Name, time.Since(start).Round(100*time.Millisecond), m.Image.Size>>20, m.Image.RootFilesystemSize>>20, m.Image.SHA256)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.out, "output", "o", "out", "output `DIR`")
	f.StringVar(&o.cacheDir, "cache", "", "cache `DIR` (default $NODEBAKE_CACHE or the user cache directory)")
	f.BoolVar(&o.offline, "offline", false, "use only what the cache holds; never download")
	f.StringVar(&o.firstboot, "firstboot", "", "the nodebake-firstboot program `PATH` (default: next to nodebake)")
	f.StringVar(&o.formats, "format", "", "the formats to write, comma-separated, instead of the spec's output.formats (`LIST`: "+spec.FormatNames()+")")
	f.StringVar(&o.netbootURL, "netboot-url", "", "the `URL` the netboot bundle will be served from (default: where boot.ipxe was loaded from)")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print only errors")
	cmd.RegisterFlagCompletionFunc("format", formatCompletion(true))
	return cmd
}

// progress prints build events on stderr.
type progress struct {
	mu    sync.Mutex
	e     *env
	quiet bool
	last  map[string]int64
}

func newProgress(e *env, quiet bool) *progress {
	return &progress{e: e, quiet: quiet, last: map[string]int64{}}
}

func (p *progress) event(ev build.Event) {
	if p.quiet {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if ev.Artifact != "" {
		// Download progress: one line per 10% (or per 16 MiB when the size is unknown).
		step := int64(16 << 20)
		if ev.Total > 0 {
			step = max(ev.Total/10, 1)
		}
		if ev.Done/step == p.last[ev.Artifact]/step && ev.Done != ev.Total {
			return
		}
		p.last[ev.Artifact] = ev.Done
		if ev.Total > 0 {
			fmt.Fprintf(p.e.stderr, "  %s: %d/%d MiB (%d%%)\n", ev.Artifact, ev.Done>>20, ev.Total>>20, ev.Done*100/ev.Total)
		} else {
			fmt.Fprintf(p.e.stderr, "  %s: %d MiB\n", ev.Artifact, ev.Done>>20)
		}
		return
	}
	fmt.Fprintf(p.e.stderr, "[%s] %s\n", ev.Stage, ev.Message)
}

func (p *progress) goLog() io.Writer {
	if p.quiet {
		return nil
	}
	return os.Stderr
}
