package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nodebake/nodebake/builder/build"
	"github.com/nodebake/nodebake/builder/spec"
	"github.com/nodebake/nodebake/layers/cache"
	"github.com/nodebake/nodebake/layers/fetch"
	"github.com/nodebake/nodebake/layers/gosource"
)

// exitCode maps an error to the exit code that tells invalid input from
// failed downloads from internal errors.
func exitCode(ctx context.Context, err error) int {
	var (
		ve *spec.ValidationError
		ue usageError
		ie *inputError
		be *build.InputError
		de *fetch.DownloadError
		ce *cache.ChecksumError
		se *sourceError
	)
	switch {
	case ctx.Err() != nil || errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.As(err, &ve), errors.As(err, &ue), errors.As(err, &ie), errors.As(err, &be):
		return exitInvalid
	case errors.As(err, &de), errors.As(err, &ce), errors.As(err, &se), errors.Is(err, cache.ErrCorrupt):
		return exitSource
	}
	return exitInternal
}

// inputError marks an unreadable or malformed input file.
type inputError struct{ err error }

func (e *inputError) Error() string { return e.err.Error() }
func (e *inputError) Unwrap() error { return e.err }

// sourceError marks a failure to obtain a source (a build from source).
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// loadSpec reads, defaults and validates a spec file.
func loadSpec(p string) (*spec.Spec, error) {
	s, err := spec.LoadAndValidate(p)
	if err != nil {
		var ve *spec.ValidationError
		if errors.As(err, &ve) {
			return nil, err
		}
		return nil, &inputError{err}
	}
	return s, nil
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
	fs := newFlags(e, "build", "SPEC.yaml", "Build the worker disk image a spec describes into DIR: the formats of output.formats (NAME.raw,\nNAME.qcow2, ...), NAME.manifest.json, the SPDX SBOM NAME.spdx.json and NAME.SHA256SUMS.")
	out := fs.String("o", "out", "output `DIR`")
	cacheDir := fs.String("cache", "", "cache `DIR` (default $NODEBAKE_CACHE or the user cache directory)")
	offline := fs.Bool("offline", false, "use only what the cache holds; never download")
	firstboot := fs.String("firstboot", "", "the nodebake-firstboot program `PATH` (default: next to nodebake)")
	formats := fs.String("format", "", "the formats to write, comma-separated, instead of the spec's output.formats (`LIST`: "+formatNames()+")")
	netbootURL := fs.String("netboot-url", "", "the `URL` the netboot bundle will be served from (default: where boot.ipxe was loaded from)")
	quiet := fs.Bool("q", false, "print only errors")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want exactly one spec file, got %d arguments", fs.NArg())
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
	})
	if err != nil {
		if strings.Contains(err.Error(), "building ") && strings.Contains(err.Error(), "from source") {
			return &sourceError{err}
		}
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
