package harness

import (
	"bufio"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
)

// TestGuestForward runs the proxy the forward names, as QEMU would for one
// guest connection, against an echo server on the loopback.
func TestGuestForward(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	opt := GuestForward(t, "10.0.2.100", 6443, l.Addr().String())
	prefix := "guestfwd=tcp:10.0.2.100:6443-cmd:"
	if !strings.HasPrefix(opt, prefix) {
		t.Fatalf("GuestForward = %q, want prefix %q", opt, prefix)
	}
	args := strings.Fields(strings.TrimPrefix(opt, prefix))
	if len(args) != 2 || args[1] != l.Addr().String() {
		t.Fatalf("GuestForward = %q, want the proxy and %s", opt, l.Addr())
	}
	cmd := exec.CommandContext(t.Context(), args[0], args[1])
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(stdin, "ping\n")
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ping\n" {
		t.Errorf("through the proxy: read %q, %v; want the echo", line, err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Errorf("the proxy did not end cleanly after its input closed: %v", err)
	}
}
