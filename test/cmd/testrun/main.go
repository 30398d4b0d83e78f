// Command testrun runs nodebake's real-world test tiers: go test -v on the
// given packages, the whole output kept in a log and the lines worth
// reading (test starts and ends, FIGURE lines, failures, a crashed guest's
// kernel report) on standard output.
//
// A TCG guest can crash for reasons of the emulator on a loaded host (the
// crash report names them: a fault inside the guest kernel's own code,
// which the same image does not repeat). When every failure of the run is
// such a crash, testrun runs those tests once more, each printed as a
// RERUN line, and their second result is the result; a test that crashes
// twice fails, and any other failure fails the run at once. When
// $NODEBAKE_CI_DEADLINE (unix seconds) leaves too little time for the
// second run, it is not started and the run fails.
//
//	testrun -log build/test-slow.log -timeout 45m ./test/boot ./test/cis
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// worth is what goes to standard output: test starts and ends, package
// results, FIGURE lines, a test's log lines, and the kernel log lines and
// console tails that failures carry.
var worth = regexp.MustCompile(`^(=== RUN|--- |PASS|FAIL|ok|FIGURE|RERUN|\s+\S+_test\.go|\s+\[\s*[0-9]+\.[0-9]+\]|\s+--- last lines)`)

// rerunMargin is the time kept free beyond the estimate of a second run.
const rerunMargin = 3 * time.Minute

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "testrun:", err)
		os.Exit(1)
	}
}

func run() error {
	logPath := flag.String("log", "", "write go test's whole output to `FILE` (required)")
	timeout := flag.Duration("timeout", 45*time.Minute, "go test's -timeout")
	flag.Parse()
	pkgs := flag.Args()
	if *logPath == "" || len(pkgs) == 0 {
		return errors.New("usage: testrun -log FILE [-timeout D] PACKAGE...")
	}
	deadline, err := ciDeadline()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	log, err := os.Create(*logPath)
	if err != nil {
		return err
	}
	defer log.Close()

	res, runErr := goTest(ctx, log, *timeout, "", pkgs)
	if runErr == nil {
		return nil
	}
	again, ok := res.Rerunnable()
	if !ok {
		summarize(res)
		return fmt.Errorf("go test: %w", runErr)
	}
	names := describe(again)
	estimate := res.Duration()
	if !deadline.IsZero() {
		left := time.Until(deadline)
		if left < estimate*3/2+rerunMargin {
			summarize(res)
			return fmt.Errorf("the guest kernel crashed in %s; not run again: %s of the CI budget left, the tests took %s", names, left.Round(time.Second), estimate.Round(time.Second))
		}
		*timeout = min(*timeout, left-time.Minute)
	}
	say(log, "RERUN %s: every failure of the run was a crash of the guest kernel (the reports are above); running them once more", names)
	for _, pkg := range slices.Sorted(maps.Keys(again)) {
		run := "^(" + strings.Join(again[pkg], "|") + ")$"
		if res, err := goTest(ctx, log, *timeout, run, []string{pkg}); err != nil {
			summarize(res)
			say(log, "RERUN %s in %s failed again", strings.Join(again[pkg], ", "), pkg)
			return fmt.Errorf("go test (run again after a guest kernel crash): %w", err)
		}
		say(log, "RERUN %s in %s passed on the second run", strings.Join(again[pkg], ", "), pkg)
	}
	return nil
}

// goTest runs go test -v on pkgs (only the tests matching run when it is
// set), appends its output to log and the lines worth reading to standard
// output, and returns what the output reports.
func goTest(ctx context.Context, log io.Writer, timeout time.Duration, run string, pkgs []string) (Results, error) {
	goCmd := os.Getenv("GO")
	if goCmd == "" {
		goCmd = "go"
	}
	args := []string{"test", "-count=1", "-v", "-timeout", timeout.String()}
	if run != "" {
		args = append(args, "-run", run)
	}
	cmd := exec.CommandContext(ctx, goCmd, append(args, pkgs...)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = time.Minute
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return Results{}, err
	}
	waitErr := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		pw.Close()
		waitErr <- err
	}()
	var p parser
	br := bufio.NewReaderSize(pr, 64<<10)
	for {
		line, err := readLine(br)
		if line != "" || err == nil {
			p.line(line)
			fmt.Fprintln(log, line)
			if worth.MatchString(line) {
				fmt.Println(line)
			}
		}
		if err != nil {
			break
		}
	}
	return p.results(), <-waitErr
}

// ciDeadline reads $NODEBAKE_CI_DEADLINE; zero when unset.
func ciDeadline() (time.Time, error) {
	v := os.Getenv("NODEBAKE_CI_DEADLINE")
	if v == "" {
		return time.Time{}, nil
	}
	secs, err := strconv.ParseInt(v, 10, 64)
	if err != nil || secs <= 0 {
		return time.Time{}, fmt.Errorf("NODEBAKE_CI_DEADLINE=%q: want unix seconds", v)
	}
	return time.Unix(secs, 0), nil
}

func say(log io.Writer, format string, a ...any) {
	line := fmt.Sprintf(format, a...)
	fmt.Println(line)
	fmt.Fprintln(log, line)
}

// summarize prints, last, each failed test's last lines of output, whole:
// the filter above keeps only some of them, and a reader of CI's output
// sees its end first.
func summarize(res Results) {
	for _, f := range res.Failures {
		fmt.Printf("FAILED %s (%s, %s); the last %d lines of its output:\n", f.Test, f.Package, f.Duration.Round(time.Second), len(f.Tail))
		for _, l := range f.Tail {
			fmt.Println("|", l)
		}
	}
	for _, b := range res.Broken {
		fmt.Printf("FAILED %s without a failing test to name (a build failure, a panic or timeout of the test binary); see the log\n", b)
	}
}

func describe(byPkg map[string][]string) string {
	var parts []string
	for _, pkg := range slices.Sorted(maps.Keys(byPkg)) {
		parts = append(parts, strings.Join(byPkg[pkg], ", ")+" ("+pkg+")")
	}
	return strings.Join(parts, "; ")
}
