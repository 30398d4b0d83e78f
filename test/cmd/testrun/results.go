package main

import (
	"bufio"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// CrashText is what a test's failure says when the guest kernel panicked:
// the text of qemu.ErrGuestCrashed (test/qemu), which every wait on a
// guest wraps.
const CrashText = "the guest kernel crashed"

// maxLine bounds one line of go test's output (a test may log a whole
// console); longer lines are read in pieces.
const maxLine = 1 << 20

// A failure keeps the last tailLines lines of its test's output, each cut
// to tailLineLen bytes: what the test said last, the lines a reader of CI's
// output needs when the filtered output dropped them.
const (
	tailLines   = 40
	tailLineLen = 400
)

// Failure is one top-level test that failed.
type Failure struct {
	Package string
	Test    string
	// Duration is what go test reported for the test.
	Duration time.Duration
	// Crashed is set when the test's output says the guest kernel
	// crashed.
	Crashed bool
	// Tail is the last lines of the test's output (subtests included)
	// before its --- FAIL line.
	Tail []string
}

// Results is what one go test -v run reported.
type Results struct {
	// Failures are the top-level tests that failed, in the order they
	// ended.
	Failures []Failure
	// Broken are the packages that failed without a failing test to
	// name (a build failure, a test binary's panic or timeout, a failure
	// in TestMain): nothing in them can be run once more on its own.
	Broken []string
	// Packages are the packages that reported, passed or failed.
	Packages []string
}

var (
	runLine  = regexp.MustCompile(`^=== (?:RUN|CONT|NAME|PAUSE)\s+(Test[^/\s]*)`)
	failLine = regexp.MustCompile(`^--- FAIL: (Test[^/\s]*) \(([0-9.]+)s\)`)
	// go test's summary of a package: "ok  \tpath\t1.2s",
	// "FAIL\tpath\t1.2s", "FAIL\tpath [build failed]",
	// "ok  \tpath\t(cached)", "?   \tpath\t[no test files]".
	pkgLine = regexp.MustCompile(`^(ok|FAIL|\?)\s+(\S+)(?:\s|$)`)
)

// Parse reads the output of go test -v (one or more packages) and returns
// which tests failed and whether each failure was a guest kernel crash.
func Parse(r io.Reader) (Results, error) {
	var p parser
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := readLine(br)
		if line != "" {
			p.line(line)
		}
		if err == io.EOF {
			return p.results(), nil
		}
		if err != nil {
			return p.results(), err
		}
	}
}

// parser follows go test -v's output line by line. go test -v prints one
// package's output at a time, each ending with its summary line, so a
// failure belongs to the next summary.
type parser struct {
	res      Results
	current  string          // the top-level test whose output this is
	crashed  map[string]bool // tests of this package that crashed
	tails    map[string][]string
	pending  []Failure // failures of this package so far
	panicked bool      // the package's test binary panicked
}

func (p *parser) line(line string) {
	switch {
	case runLine.MatchString(line):
		p.current = runLine.FindStringSubmatch(line)[1]
	case failLine.MatchString(line):
		m := failLine.FindStringSubmatch(line)
		secs, _ := strconv.ParseFloat(m[2], 64)
		p.pending = append(p.pending, Failure{Test: m[1], Duration: time.Duration(secs * float64(time.Second)), Tail: p.tails[m[1]]})
	case pkgLine.MatchString(line):
		m := pkgLine.FindStringSubmatch(line)
		pkg := m[2]
		p.res.Packages = append(p.res.Packages, pkg)
		if m[1] == "FAIL" {
			if len(p.pending) == 0 || p.panicked {
				p.res.Broken = append(p.res.Broken, pkg)
			}
			for _, f := range p.pending {
				f.Package = pkg
				f.Crashed = p.crashed[f.Test]
				p.res.Failures = append(p.res.Failures, f)
			}
		}
		p.current, p.crashed, p.tails, p.pending, p.panicked = "", nil, nil, nil, false
	case strings.HasPrefix(line, "panic: "):
		// The test binary died (a panic, go test's -timeout): nothing of
		// the package can stand alone.
		p.panicked, p.current = true, ""
	}
	if p.current != "" && !failLine.MatchString(line) {
		p.keep(p.current, line)
	}
	if p.current != "" && strings.Contains(line, CrashText) {
		if p.crashed == nil {
			p.crashed = map[string]bool{}
		}
		p.crashed[p.current] = true
	}
}

// keep adds line to test's tail.
func (p *parser) keep(test, line string) {
	if p.tails == nil {
		p.tails = map[string][]string{}
	}
	if len(line) > tailLineLen {
		line = line[:tailLineLen] + " [cut]"
	}
	t := p.tails[test]
	if len(t) >= tailLines {
		// A new slice: a Failure may hold the old one.
		t = slices.Clone(t[len(t)-tailLines+1:])
	}
	p.tails[test] = append(t, line)
}

func (p *parser) results() Results {
	res := p.res
	if len(p.pending) > 0 || p.panicked {
		// Output that ends without the package's summary line (go test
		// itself was killed): those failures cannot be placed.
		res.Broken = append(slices.Clone(res.Broken), "(output cut before a package's summary)")
	}
	return res
}

// readLine returns the next line without its newline; a line longer than
// maxLine comes back in pieces.
func readLine(br *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		frag, isPrefix, err := br.ReadLine()
		b.Write(frag)
		if err != nil || !isPrefix || b.Len() >= maxLine {
			return b.String(), err
		}
	}
}

// Rerunnable returns the failures to run once more, by package, when
// every failure of the run was a guest kernel crash; ok is false when any
// failure was something else (then nothing is run again).
func (r Results) Rerunnable() (map[string][]string, bool) {
	if len(r.Failures) == 0 || len(r.Broken) > 0 {
		return nil, false
	}
	byPkg := map[string][]string{}
	for _, f := range r.Failures {
		if !f.Crashed {
			return nil, false
		}
		if !slices.Contains(byPkg[f.Package], f.Test) {
			byPkg[f.Package] = append(byPkg[f.Package], f.Test)
		}
	}
	return byPkg, true
}

// Duration is the time the failed tests took, the estimate of running
// them again.
func (r Results) Duration() time.Duration {
	var d time.Duration
	for _, f := range r.Failures {
		d += f.Duration
	}
	return d
}
