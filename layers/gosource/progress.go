package gosource

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Progress reports a build from source under way.
type Progress struct {
	// Component and Version say what is built.
	Component, Version string
	// Compiled counts the packages compiled so far; packages the Go build
	// cache already holds are not compiled again.
	Compiled int
	// Total is the number of packages the binaries are built from (the
	// standard library's included), or 0 while the modules are resolved.
	Total int
	// Elapsed is the time since the build started.
	Elapsed time.Duration
	// Done is set on the last report, sent when the build has finished.
	Done bool
}

// String says it in one line: "building kubelet v1.35.4: 812/1403
// packages compiled, 2m10s".
func (p Progress) String() string {
	elapsed := p.Elapsed.Round(time.Second)
	switch {
	case p.Done:
		return fmt.Sprintf("built %s %s in %s (%d of %d packages compiled)", p.Component, p.Version, elapsed, p.Compiled, p.Total)
	case p.Total == 0:
		return fmt.Sprintf("building %s %s: resolving modules, %s", p.Component, p.Version, elapsed)
	}
	return fmt.Sprintf("building %s %s: %d/%d packages compiled, %s", p.Component, p.Version, p.Compiled, p.Total, elapsed)
}

// reporter counts what a build does and reports it at a steady pace. A nil
// reporter (no Builder.Progress) does nothing.
type reporter struct {
	fn    func(Progress)
	start time.Time
	quit  chan struct{}
	done  chan struct{}

	mu       sync.Mutex
	p        Progress
	compiled map[string]bool
	finished bool
}

// startReporter starts the reports of a build of component at version.
func (b Builder) startReporter(component, version string) *reporter {
	if b.Progress == nil {
		return nil
	}
	every := b.ProgressInterval
	if every <= 0 {
		every = DefaultProgressInterval
	}
	r := &reporter{
		fn: b.Progress, start: time.Now(), quit: make(chan struct{}), done: make(chan struct{}),
		p: Progress{Component: component, Version: version}, compiled: map[string]bool{},
	}
	go func() {
		defer close(r.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-r.quit:
				return
			case <-t.C:
				r.report(false)
			}
		}
	}()
	return r
}

func (r *reporter) setTotal(n int) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.p.Total = n
	r.mu.Unlock()
}

// compiledPackage counts a package `go build -v` named.
func (r *reporter) compiledPackage(name string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.compiled[name] = true
	r.p.Compiled = len(r.compiled)
	r.p.Total = max(r.p.Total, r.p.Compiled)
	r.mu.Unlock()
}

// report sends the current state; the last report, once.
func (r *reporter) report(done bool) {
	r.mu.Lock()
	if r.finished {
		r.mu.Unlock()
		return
	}
	r.finished = done
	p := r.p
	p.Elapsed, p.Done = time.Since(r.start), done
	r.mu.Unlock()
	r.fn(p)
}

// finish stops the ticker and sends the last report.
func (r *reporter) finish() {
	if r == nil {
		return
	}
	r.stop()
	r.report(true)
}

// stop stops the ticker; the build failed when no report said Done.
func (r *reporter) stop() {
	if r == nil {
		return
	}
	select {
	case <-r.quit:
	default:
		close(r.quit)
	}
	<-r.done
}

// packageFilter splits what `go build -v` writes to stderr: a line that is
// a bare import path names a package it compiled and goes to the reporter;
// every other line (errors, warnings, downloads) goes to rest.
type packageFilter struct {
	rep  *reporter
	rest io.Writer
	buf  []byte
}

func (f *packageFilter) Write(b []byte) (int, error) {
	f.buf = append(f.buf, b...)
	for {
		i := bytes.IndexByte(f.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		f.line(f.buf[:i+1])
		f.buf = f.buf[i+1:]
	}
}

func (f *packageFilter) line(l []byte) {
	s := strings.TrimRight(string(l), "\r\n")
	if isImportPath(s) {
		f.rep.compiledPackage(s)
		return
	}
	f.rest.Write(l)
}

// flush passes on an unterminated last line.
func (f *packageFilter) flush() {
	if len(f.buf) > 0 {
		f.line(f.buf)
		f.buf = nil
	}
}

// isImportPath reports whether a line of `go build -v` is a package's
// import path: one word that is not a compiler's "# pkg" header or a
// "file.go:line:" position.
func isImportPath(s string) bool {
	return s != "" && !strings.ContainsAny(s, " \t:#") && !strings.HasPrefix(s, "-")
}
