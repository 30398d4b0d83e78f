package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The tests of a throwaway module that testrun runs with the real go test.
// TestGuest fails like a boot test whose guest crashed, as many times as
// CRASHES says (counted in a file), then passes.
const moduleTests = `package m

import (
	"os"
	"strconv"
	"testing"
)

func TestGuest(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("CRASHES"))
	count := os.Getenv("COUNT_FILE")
	b, _ := os.ReadFile(count)
	done, _ := strconv.Atoi(string(b))
	os.WriteFile(count, []byte(strconv.Itoa(done+1)), 0o644)
	if done < n {
		t.Fatalf("first boot: waiting for \"PROBE start\": " + "the guest kernel" + " crashed:\n[   31.3] Kernel panic - not syncing: Fatal exception")
	}
}

func TestOther(t *testing.T) {
	if os.Getenv("OTHER_FAILS") != "" {
		t.Fatal("the image has no /etc/machine-id")
	}
}
`

// TestRerunRealGoTest runs testrun on a module of its own with the real
// go test: a crash is run once more and passes, a second crash fails, any
// other failure fails at once, and a close CI deadline keeps the second run
// from starting.
func TestRerunRealGoTest(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs go test")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "testrun")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building testrun: %v\n%s", err, out)
	}
	mod := filepath.Join(dir, "m")
	if err := os.MkdirAll(mod, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"go.mod": "module example.com/m\n\ngo 1.26\n", "m_test.go": moduleTests} {
		if err := os.WriteFile(filepath.Join(mod, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name       string
		crashes    int
		otherFails bool
		deadline   time.Duration // from now; 0: no deadline
		wantOK     bool
		wantRuns   int // of TestGuest
		wantOut    []string
	}{
		{name: "no failure", wantOK: true, wantRuns: 1},
		{name: "one crash", crashes: 1, wantOK: true, wantRuns: 2,
			wantOut: []string{"RERUN TestGuest (example.com/m): every failure", "Kernel panic - not syncing", "RERUN TestGuest in example.com/m passed on the second run"}},
		{name: "two crashes", crashes: 2, wantRuns: 2,
			wantOut: []string{"RERUN TestGuest in example.com/m failed again", "FAILED TestGuest (example.com/m, "}},
		{name: "a crash and another failure", crashes: 1, otherFails: true, wantRuns: 1,
			wantOut: []string{"--- FAIL: TestOther", "FAILED TestOther (example.com/m, 0s); the last 2 lines of its output:\n| === RUN   TestOther\n|     m_test.go:"}},
		{name: "a crash with the CI deadline close", crashes: 1, deadline: time.Minute, wantRuns: 1,
			wantOut: []string{"not run again"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			count := filepath.Join(dir, "count"+strconv.Itoa(i))
			log := filepath.Join(dir, "log"+strconv.Itoa(i))
			cmd := exec.Command(bin, "-log", log, "-timeout", "5m", "./")
			cmd.Dir = mod
			cmd.Env = append(os.Environ(), "CRASHES="+strconv.Itoa(tt.crashes), "COUNT_FILE="+count, "GOFLAGS=", "NODEBAKE_CI_DEADLINE=")
			if tt.otherFails {
				cmd.Env = append(cmd.Env, "OTHER_FAILS=1")
			}
			if tt.deadline > 0 {
				cmd.Env = append(cmd.Env, "NODEBAKE_CI_DEADLINE="+strconv.FormatInt(time.Now().Add(tt.deadline).Unix(), 10))
			}
			out, err := cmd.CombinedOutput()
			if (err == nil) != tt.wantOK {
				t.Errorf("testrun: err %v, want ok=%v\n%s", err, tt.wantOK, out)
			}
			b, _ := os.ReadFile(count)
			if runs, _ := strconv.Atoi(string(b)); runs != tt.wantRuns {
				t.Errorf("TestGuest ran %d times, want %d\n%s", runs, tt.wantRuns, out)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if logged, err := os.ReadFile(log); err != nil || !strings.Contains(string(logged), "=== RUN   TestGuest") {
				t.Errorf("the log %s does not hold go test's output (%v)", log, err)
			}
			if tt.crashes == 1 && tt.wantOK && strings.Count(string(out), "=== RUN   TestOther") != 1 {
				t.Errorf("TestOther, which passed, was run again:\n%s", out)
			}
		})
	}
}
