package main

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Outputs in the shape go test -v prints them (go 1.26).
const (
	okPkg = `=== RUN   TestA
--- PASS: TestA (0.00s)
PASS
ok  	example.com/m/a	0.012s
`
	crashPkg = `=== RUN   TestBoot
    boot_test.go:67: VM work directory /tmp/vm
    boot_test.go:73: first boot: waiting for "PROBE start" on the report: the guest kernel crashed:
        [   31.2] BUG: unable to handle page fault for address: ffff
        [   31.3] Kernel panic - not syncing: Fatal exception
--- FAIL: TestBoot (51.18s)
=== RUN   TestFormats
--- PASS: TestFormats (107.12s)
FAIL
FAIL	example.com/m/boot	160.5s
`
	otherPkg = `=== RUN   TestImage
    image_test.go:12: the root filesystem has 3 entries, want 4
--- FAIL: TestImage (2.00s)
FAIL
FAIL	example.com/m/image	2.1s
`
)

func TestParse(t *testing.T) {
	crash := Failure{Package: "example.com/m/boot", Test: "TestBoot", Duration: 51180 * time.Millisecond, Crashed: true}
	tests := []struct {
		name      string
		out       string
		failures  []Failure
		broken    []string
		rerun     map[string][]string
		rerunOK   bool
		nPackages int
	}{
		{name: "all pass", out: okPkg, nPackages: 1},
		{name: "a crash", out: okPkg + crashPkg, failures: []Failure{crash}, nPackages: 2,
			rerun: map[string][]string{"example.com/m/boot": {"TestBoot"}}, rerunOK: true},
		{name: "a crash and another failure", out: crashPkg + otherPkg, nPackages: 2,
			failures: []Failure{crash, {Package: "example.com/m/image", Test: "TestImage", Duration: 2 * time.Second}}},
		{name: "a crash in a subtest", nPackages: 1, out: `=== RUN   TestPlatforms
=== RUN   TestPlatforms/ec2
    boot_test.go:40: waiting for "PROBE": the guest kernel crashed:
=== RUN   TestPlatforms/gce
--- FAIL: TestPlatforms (300.00s)
    --- FAIL: TestPlatforms/ec2 (100.00s)
    --- PASS: TestPlatforms/gce (200.00s)
FAIL
FAIL	example.com/m/platform	301s
`,
			failures: []Failure{{Package: "example.com/m/platform", Test: "TestPlatforms", Duration: 300 * time.Second, Crashed: true}},
			rerun:    map[string][]string{"example.com/m/platform": {"TestPlatforms"}}, rerunOK: true},
		{name: "the crash text in another test's output", nPackages: 1, out: `=== RUN   TestTamper
    verified_test.go:10: the guest kernel crashed, as it must on a corrupted root
--- PASS: TestTamper (10.00s)
=== RUN   TestUpdate
    verified_test.go:90: slot B not booted
--- FAIL: TestUpdate (20.00s)
FAIL
FAIL	example.com/m/verified	30s
`,
			failures: []Failure{{Package: "example.com/m/verified", Test: "TestUpdate", Duration: 20 * time.Second}}},
		{name: "output switching between parallel tests", nPackages: 1, out: `=== RUN   TestA
=== PAUSE TestA
=== RUN   TestB
=== PAUSE TestB
=== CONT  TestA
=== CONT  TestB
=== NAME  TestA
    a_test.go:5: the guest kernel crashed:
=== NAME  TestB
    b_test.go:5: wrong answer
--- FAIL: TestB (1.00s)
--- FAIL: TestA (2.00s)
FAIL
FAIL	example.com/m/p	3s
`,
			failures: []Failure{{Package: "example.com/m/p", Test: "TestB", Duration: time.Second}, {Package: "example.com/m/p", Test: "TestA", Duration: 2 * time.Second, Crashed: true}}},
		{name: "a build failure", out: "# example.com/m/b\nb.go:3:1: syntax error\nFAIL\texample.com/m/b [build failed]\n" + crashPkg, nPackages: 2,
			failures: []Failure{crash}, broken: []string{"example.com/m/b"}},
		{name: "the test binary timed out after a crash", nPackages: 1, out: `=== RUN   TestBoot
    boot_test.go:73: the guest kernel crashed:
--- FAIL: TestBoot (51.18s)
=== RUN   TestSlow
panic: test timed out after 45m0s
	running tests:
		TestSlow (44m0s)
FAIL	example.com/m/boot	2700.1s
`,
			failures: []Failure{crash}, broken: []string{"example.com/m/boot"}},
		{name: "output cut before the summary", out: "=== RUN   TestBoot\n    x_test.go:1: the guest kernel crashed:\n--- FAIL: TestBoot (51.18s)\n",
			broken: []string{"(output cut before a package's summary)"}},
		{name: "a package with no tests", out: "?   \texample.com/m/doc\t[no test files]\n" + okPkg, nPackages: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Parse(strings.NewReader(tt.out))
			if err != nil {
				t.Fatal(err)
			}
			// The tails are TestParseTail's.
			for i := range res.Failures {
				res.Failures[i].Tail = nil
			}
			if !reflect.DeepEqual(res.Failures, tt.failures) {
				t.Errorf("failures:\n got %+v\nwant %+v", res.Failures, tt.failures)
			}
			if !reflect.DeepEqual(res.Broken, tt.broken) {
				t.Errorf("broken: got %q, want %q", res.Broken, tt.broken)
			}
			if len(res.Packages) != tt.nPackages {
				t.Errorf("packages: got %q, want %d", res.Packages, tt.nPackages)
			}
			rerun, ok := res.Rerunnable()
			if ok != tt.rerunOK || !reflect.DeepEqual(rerun, tt.rerun) {
				t.Errorf("Rerunnable() = %v, %v; want %v, %v", rerun, ok, tt.rerun, tt.rerunOK)
			}
		})
	}
}

// TestParseTail checks the lines a failure keeps: its own test's (subtests
// and parallel output placed by name), the last tailLines of them, each cut
// to a bound, not its --- FAIL line and nothing of another test.
func TestParseTail(t *testing.T) {
	var many strings.Builder
	many.WriteString("=== RUN   TestLong\n")
	for i := range 100 {
		fmt.Fprintf(&many, "    long_test.go:%d: line %d\n", i, i)
	}
	many.WriteString("    long_test.go:100: " + strings.Repeat("x", 5000) + "\n--- FAIL: TestLong (1.00s)\nFAIL\nFAIL\texample.com/m/l\t1s\n")

	tests := []struct {
		name string
		out  string
		want map[string][]string // test: its tail
	}{
		{name: "parallel tests and subtests", out: `=== RUN   TestA
=== PAUSE TestA
=== RUN   TestB
=== RUN   TestB/sub
    b_test.go:3: b says
=== PAUSE TestB
=== CONT  TestA
    a_test.go:5: a says
=== NAME  TestB
    b_test.go:5: b fails
--- FAIL: TestB (1.00s)
    --- FAIL: TestB/sub (1.00s)
--- FAIL: TestA (2.00s)
FAIL
FAIL	example.com/m/p	3s
`, want: map[string][]string{
			"TestB": {"=== RUN   TestB", "=== RUN   TestB/sub", "    b_test.go:3: b says", "=== PAUSE TestB", "=== NAME  TestB", "    b_test.go:5: b fails"},
			"TestA": {"=== RUN   TestA", "=== PAUSE TestA", "=== CONT  TestA", "    a_test.go:5: a says"},
		}},
		{name: "a passing test before", out: okPkg + otherPkg, want: map[string][]string{
			"TestImage": {"=== RUN   TestImage", "    image_test.go:12: the root filesystem has 3 entries, want 4"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Parse(strings.NewReader(tt.out))
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][]string{}
			for _, f := range res.Failures {
				got[f.Test] = f.Tail
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("tails:\n got %q\nwant %q", got, tt.want)
			}
		})
	}

	t.Run("bounded", func(t *testing.T) {
		res, err := Parse(strings.NewReader(many.String()))
		if err != nil || len(res.Failures) != 1 {
			t.Fatalf("Parse: %+v, %v", res, err)
		}
		tail := res.Failures[0].Tail
		if len(tail) != tailLines {
			t.Fatalf("%d lines kept, want %d", len(tail), tailLines)
		}
		if want := "    long_test.go:61: line 61"; tail[0] != want {
			t.Errorf("first line kept %q, want %q", tail[0], want)
		}
		last := tail[len(tail)-1]
		if len(last) > tailLineLen+len(" [cut]") || !strings.HasSuffix(last, " [cut]") {
			t.Errorf("the long line was kept as %d bytes, want it cut to %d", len(last), tailLineLen)
		}
	})
}

func TestParseLongLine(t *testing.T) {
	long := "    x_test.go:1: " + strings.Repeat("x", 3*maxLine) + " " + CrashText + "\n"
	out := "=== RUN   TestBoot\n" + long + "--- FAIL: TestBoot (1.00s)\nFAIL\nFAIL\texample.com/m/boot\t1s\n"
	res, err := Parse(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Failures) != 1 || !res.Failures[0].Crashed {
		t.Errorf("a crash at the end of a %d-byte line: got %+v", len(long), res.Failures)
	}
}
