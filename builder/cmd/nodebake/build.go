package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nodebake/nodebake/builder/build"
	"github.com/nodebake/nodebake/layers/cache"
	"github.com/nodebake/nodebake/layers/failure"
	"github.com/nodebake/nodebake/layers/gosource"
	"github.com/nodebake/nodebake/layers/spec"
)

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

// loadSpec reads, defaults and validates a spec file.
func loadSpec(p string) (*spec.Spec, error) {
	return spec.LoadAndValidate(p)
}

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
	return "", usagef("the nodebake-firstboot program is not next to nodebake; build it (make bin) or pass --firstboot PATH")
}

func runBuild(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "build", "SPEC.yaml", "Build the worker disk image a spec describes into DIR: the formats of output.formats (NAME.raw,\nNAME.qcow2, ...), NAME.manifest.json, the SPDX SBOM NAME.spdx.json and NAME.SHA256SUMS.\n\n"+formatHelp(true))
	out := fs.String("o", "out", "output `DIR`")
	cacheDir := fs.String("cache", "", "cache `DIR` (default $NODEBAKE_CACHE or the user cache directory)")
	offline := fs.Bool("offline", false, "use only what the cache holds; never download")
	firstboot := fs.String("firstboot", "", "the nodebake-firstboot program `PATH` (default: next to nodebake)")
	formats := fs.String("format", "", "the formats to write, comma-separated, instead of the spec's output.formats (`LIST`: "+spec.FormatNames()+")")
	netbootURL := fs.String("netboot-url", "", "the `URL` the netboot bundle will be served from (default: where boot.ipxe was loaded from)")
	signingKey := fs.String("signing-key", "", "sign systemd-boot and the UKI of a verified image with the RSA key at `PATH` (mode 0600),\ninstead of the spec's output.verifiedBoot.signing")
	signingCert := fs.String("signing-cert", "", "the certificate `PATH` of --signing-key")
	quiet := fs.Bool("q", false, "print only errors")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want exactly one spec file, got %d arguments", fs.NArg())
	}
	var signing *spec.Signing
	if *signingKey != "" || *signingCert != "" {
		if *signingKey == "" || *signingCert == "" {
			return usagef("--signing-key and --signing-cert go together")
		}
		signing = &spec.Signing{Key: *signingKey, Certificate: *signingCert}
	}
	var fl []spec.Format
	if *formats != "" {
		var err error
		if fl, err = parseFormats("format", *formats); err != nil {
			return err
		}
	}
	s, err := loadSpec(fs.Arg(0))
	if err != nil {
		return err
	}
	if signing != nil && !s.VerifiedBootEnabled() {
		return usagef("--signing-key: %s does not enable output.verifiedBoot", fs.Arg(0))
	}
	fb, err := findFirstboot(*firstboot)
	if err != nil {
		return err
	}
	c, err := openCache(*cacheDir)
	if err != nil {
		return err
	}
	start := time.Now()
	p := newProgress(e, *quiet)
	res, err := build.Build(ctx, s, build.Options{
		OutputDir:       *out,
		Cache:           c,
		FirstbootBinary: fb,
		Offline:         *offline,
		Go:              gosource.Builder{Log: p.goLog()},
		Progress:        p.event,
		Formats:         fl,
		NetbootURL:      *netbootURL,
		ToolVersion:     version,
		Signing:         signing,
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
	if !*quiet {
		fmt.Fprintf(e.stderr, "built %s in %s: %d MiB disk, %d MiB root filesystem, sha256 %s\n",
			m.Name, time.Since(start).Round(100*time.Millisecond), m.Image.Size>>20, m.Image.RootFilesystemSize>>20, m.Image.SHA256)
	}
	return nil
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
