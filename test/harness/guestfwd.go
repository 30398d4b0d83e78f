package harness

import (
	"fmt"
	"strings"
	"testing"
)

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
	// Built into t's temporary directory, removed when t ends: pass the
	// test that owns the VM.
	proxy := GoBuild(t, StdioProxyPackage, t.TempDir())
	if strings.ContainsAny(proxy, ", ") {
		t.Fatalf("guest forward: the proxy's path %q has a comma or space, which QEMU's option syntax cannot carry", proxy)
	}
	return fmt.Sprintf("guestfwd=tcp:%s:%d-cmd:%s %s", guestIP, guestPort, proxy, hostAddr)
}
