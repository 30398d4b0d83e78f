package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestHealth runs "nodebake-firstboot health" on a root where first boot
// applied no node config: unhealthy at once, exit 1, the reason on
// stderr. (package health tests the verdicts; test/e2e runs it on a node.)
func TestHealth(t *testing.T) {
	for _, tt := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"--root", t.TempDir(), "--timeout", "1m"}, 1, "node config was not applied"},
		{[]string{"extra"}, 2, "unexpected argument"},
		{[]string{"--timeout", "soon"}, 2, "invalid value"},
	} {
		cmd := exec.Command(os.Args[0], append([]string{"health"}, tt.args...)...)
		cmd.Env = append(os.Environ(), asMain+"=1")
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tt.code || !strings.Contains(e.String(), tt.stderr) {
			t.Errorf("health %v: exit %d, stderr %q; want %d and %q (stdout %q)", tt.args, code, e.String(), tt.code, tt.stderr, o.String())
		}
	}
}
