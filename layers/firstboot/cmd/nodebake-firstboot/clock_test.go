package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/layers/firstboot"
	"github.com/nodebake/nodebake/layers/firstboot/internal/testpki"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig/nodeconfigtest"
)

// notYetValidNode returns a node config whose node certificate becomes
// valid a day from now, by this machine's clock.
func notYetValidNode(t *testing.T) []byte {
	t.Helper()
	p, err := nodeconfigtest.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	cfg := p.Config()
	from := time.Now().Add(24 * time.Hour).Truncate(time.Second)
	cfg.Kubernetes.NodeCert, cfg.Kubernetes.NodeKey, err = p.CA.Issue(testpki.Leaf{CommonName: "system:node:worker01",
		Organization: []string{"system:nodes"}, Seed: 2, NotBefore: from, NotAfter: from.Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return nodeconfigtest.YAML(cfg)
}

// listenNotify makes a service manager's notification socket and returns
// its path and the messages it receives.
func listenNotify(t *testing.T) (string, <-chan string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	msgs := make(chan string, 10)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	return path, msgs
}

func readStatus(t *testing.T, root string) firstboot.Status {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, firstboot.StatusPath))
	if err != nil {
		t.Fatal(err)
	}
	var st firstboot.Status
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if st.Clock == nil {
		t.Fatalf("no clock in the status:\n%s", b)
	}
	return st
}

// TestClockTimesOut: the program waits as long as the kernel command line
// says, tells the service manager to extend its start timeout by that,
// and fails closed with a line that names the clock.
func TestClockTimesOut(t *testing.T) {
	root := setup(t, notYetValidNode(t))
	if err := os.MkdirAll(filepath.Join(root, "proc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "proc/cmdline"), []byte("ro nodebake.timewait=1500ms\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sock, msgs := listenNotify(t)
	t.Setenv("NOTIFY_SOCKET", sock)
	start := time.Now()
	stdout, stderr, code := runMain(t, root)
	took := time.Since(start)
	if code != 1 || !strings.HasPrefix(stderr, "nodebake-firstboot: clock: not synchronized within 1.5s, and the certificates are not valid at the system time ") ||
		!strings.Contains(stderr, `(kubernetes.nodeCert: certificate "system:node:worker01" is not valid before `) {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if !strings.HasPrefix(stdout, "nodebake-firstboot: waiting up to 1.5s for the clock to synchronize: at ") {
		t.Errorf("stdout %q", stdout)
	}
	if took < 1500*time.Millisecond {
		t.Errorf("the program ended %s after it started, before its wait", took)
	}
	select {
	case m := <-msgs:
		if want := "EXTEND_TIMEOUT_USEC=31500000\nSTATUS=waiting up to 1.5s for the clock to synchronize"; m != want {
			t.Errorf("notification %q, want %q", m, want)
		}
	case <-time.After(5 * time.Second):
		t.Error("no notification")
	}
	st := readStatus(t, root)
	if st.OK || st.Field != firstboot.ClockField || st.Clock.Outcome != firstboot.ClockTimedOut || st.Clock.Synchronized ||
		st.Clock.WaitedMicros < 1500000 || st.Clock.LimitMicros != 1500000 || len(st.Problems) != 2 || st.Problems[1].Field != "kubernetes.nodeCert" {
		t.Errorf("status %+v, clock %+v", st, st.Clock)
	}
	if _, err := os.Stat(filepath.Join(root, firstboot.ReadyPath)); !os.IsNotExist(err) {
		t.Errorf("node-ready: %v", err)
	}
}

// TestClockSynchronized: with the clock synchronized (systemd-timesyncd's
// flag file, already there or appearing during the wait) the certificate
// is wrong, and that is the line.
func TestClockSynchronized(t *testing.T) {
	for _, during := range []bool{false, true} {
		root := setup(t, notYetValidNode(t))
		flag := filepath.Join(root, firstboot.TimesyncFlagPath)
		if err := os.MkdirAll(filepath.Dir(flag), 0o755); err != nil {
			t.Fatal(err)
		}
		// The flag file is there before the program starts, or appears
		// 1.5 s after.
		touched := make(chan error, 1)
		touch := func() { touched <- os.WriteFile(flag, nil, 0o644) }
		if during {
			time.AfterFunc(1500*time.Millisecond, touch)
		} else {
			touch()
		}
		_, stderr, code := runMain(t, root)
		if err := <-touched; err != nil {
			t.Fatal(err)
		}
		if code != 1 || !strings.HasPrefix(stderr, `nodebake-firstboot: kubernetes.nodeCert: certificate "system:node:worker01" is not valid before `) {
			t.Errorf("flag file during the wait %v: exit %d, stderr %q", during, code, stderr)
		}
		st := readStatus(t, root)
		want := firstboot.ClockSynchronized
		if during {
			want = firstboot.ClockWaited
		}
		if st.Clock.Outcome != want || !st.Clock.Synchronized || during != (st.Clock.WaitedMicros > 0) {
			t.Errorf("flag file during the wait %v: clock %+v, want outcome %s", during, st.Clock, want)
		}
	}
}
