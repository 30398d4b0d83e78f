package harness

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// stdioProxy is the stdioproxy program, built once per test binary.
var stdioProxy struct {
	once sync.Once
	path string
	err  error
}

// StdioProxyPackage is the program GuestForward runs per connection.
const StdioProxyPackage = "./test/harness/internal/stdioproxy"

// GuestForward returns a QEMU user network option (for qemu.Config.UserNet)
// that forwards every guest TCP connection to guestIP:guestPort to hostAddr
// (an address on the host's loopback, e.g. "127.0.0.1:6443"), through one
// stdioproxy process per connection. Prefer it to
// guestfwd=tcp:IP:PORT-tcp:HOST:PORT, whose chardev connects once, when
// QEMU starts, and so carries a single connection.
func GuestForward(t testing.TB, guestIP string, guestPort int, hostAddr string) string {
	t.Helper()
	root := RepoRoot(t)
	stdioProxy.once.Do(func() {
		dir, err := os.MkdirTemp("", "nodebake-stdioproxy-")
		if err != nil {
			stdioProxy.err = err
			return
		}
		out := filepath.Join(dir, "stdioproxy")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, StdioProxyPackage)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
		if b, err := cmd.CombinedOutput(); err != nil {
			stdioProxy.err = errors.New(err.Error() + "\n" + string(b))
			return
		}
		stdioProxy.path = out
	})
	if stdioProxy.err != nil {
		t.Fatalf("building %s: %v", StdioProxyPackage, stdioProxy.err)
	}
	if strings.ContainsAny(stdioProxy.path, ", ") {
		t.Fatalf("guest forward: the proxy's path %q has a comma or space, which QEMU's option syntax cannot carry", stdioProxy.path)
	}
	return fmt.Sprintf("guestfwd=tcp:%s:%d-cmd:%s %s", guestIP, guestPort, stdioProxy.path, hostAddr)
}
