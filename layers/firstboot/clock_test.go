package firstboot

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/layers/firstboot/internal/testpki"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
)

// fakeClock is a clock whose time passes only in Sleep. At syncAfter of
// sleeping (if set) an NTP client synchronizes it, setting the wall clock
// to syncTo; at stepAfter (if set) something sets the wall clock to
// stepTo without synchronizing it.
type fakeClock struct {
	now     time.Time
	elapsed time.Duration
	synced  bool
	err     error // from Synchronized

	syncAfter, stepAfter time.Duration
	syncTo, stepTo       time.Time

	sleeps int
	cancel context.CancelFunc // called at the first Sleep, when set
}

func (c *fakeClock) Now() time.Time              { return c.now }
func (c *fakeClock) Elapsed() time.Duration      { return c.elapsed }
func (c *fakeClock) Synchronized() (bool, error) { return c.synced, c.err }

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.sleeps++
	if c.cancel != nil {
		c.cancel()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c.elapsed += d
	c.now = c.now.Add(d)
	if c.stepAfter > 0 && c.elapsed >= c.stepAfter && !c.stepTo.IsZero() {
		c.now, c.stepTo = c.stepTo, time.Time{}
	}
	if c.syncAfter > 0 && c.elapsed >= c.syncAfter && !c.synced {
		c.now, c.synced = c.syncTo, true
	}
	return nil
}

// TestClockWait runs first boot with a node config whose certificates are
// valid from 2026-12-01 to 2027-12-01, on a clock that starts at
// 2026-04-13 (or elsewhere) and may be synchronized during the wait.
func TestClockWait(t *testing.T) {
	var (
		validFrom = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		validTo   = time.Date(2027, 12, 1, 0, 0, 0, 0, time.UTC)
		behind    = time.Date(2026, 4, 13, 0, 0, 5, 0, time.UTC) // systemd's epoch, say
		ahead     = time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)  // a reset RTC in the future
		real      = time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)
	)
	p := newPKI(t)
	nodeCert, nodeKey := issue(t, p.ca, testpki.Leaf{CommonName: "system:node:worker01", Organization: []string{"system:nodes"}, Seed: 2,
		NotBefore: validFrom, NotAfter: validTo})
	worker02Cert, worker02Key := issue(t, p.ca, testpki.Leaf{CommonName: "system:node:worker02", Organization: []string{"system:nodes"}, Seed: 4,
		NotBefore: validFrom, NotAfter: validTo})
	const notYet = `kubernetes.nodeCert: certificate "system:node:worker01" is not valid before 2026-12-01 00:00:00 UTC`

	tests := []struct {
		name    string
		clock   fakeClock
		startAt time.Time // the time first boot started at, when not the clock's
		cmdline string    // the kernel command line, when set
		wrongCN bool      // the certificate is worker02's: a problem the clock cannot fix
		ctxDone bool      // the context ends during the wait

		ok      bool
		line    string // the first problem, when not ok (a prefix)
		outcome ClockOutcome
		synced  bool
		waited  time.Duration
		limit   time.Duration
		noWait  bool // no OnClockWait, no Sleep
		noClock bool // no clock status
	}{
		{name: "not yet valid, unsynchronized: waits, synchronizes, succeeds",
			clock: fakeClock{now: behind, syncAfter: 23 * time.Second, syncTo: real},
			ok:    true, outcome: ClockWaited, synced: true, waited: 23 * time.Second, limit: DefaultClockWait},
		{name: "expired, a clock ahead: waits, synchronizes, succeeds",
			clock: fakeClock{now: ahead, syncAfter: 2 * time.Second, syncTo: real},
			ok:    true, outcome: ClockWaited, synced: true, waited: 2 * time.Second, limit: DefaultClockWait},
		{name: "synchronized: fails at once",
			clock: fakeClock{now: behind, synced: true},
			line:  notYet, outcome: ClockSynchronized, synced: true, limit: DefaultClockWait, noWait: true},
		{name: "synchronized since first boot started: succeeds",
			clock:   fakeClock{now: real, synced: true},
			startAt: behind,
			ok:      true, outcome: ClockWaited, synced: true, limit: DefaultClockWait, noWait: true},
		{name: "other problems: fail at once, without waiting",
			clock:   fakeClock{now: behind, syncAfter: time.Second, syncTo: real},
			wrongCN: true,
			line:    `nodeName: "worker01" does not match the node certificate's subject CN "system:node:worker02"`, noWait: true, noClock: true},
		{name: "the wait ends: fails closed naming the clock",
			clock:   fakeClock{now: behind},
			cmdline: "root=PARTUUID=x ro nodebake.timewait=20s console=ttyS0",
			line:    "clock: not synchronized within 20s, and the certificates are not valid at the system time 2026-04-13 00:00:25 UTC (" + notYet + " (line 27))",
			outcome: ClockTimedOut, waited: 20 * time.Second, limit: 20 * time.Second},
		{name: "synchronized, still not valid: fails with the certificate",
			clock: fakeClock{now: behind, syncAfter: 5 * time.Second, syncTo: validFrom.Add(-time.Hour)},
			line:  notYet, outcome: ClockWaited, synced: true, waited: 5 * time.Second, limit: DefaultClockWait},
		{name: "set by other means, not synchronized: valid at the end of the wait",
			clock:   fakeClock{now: behind, stepAfter: 3 * time.Second, stepTo: real},
			cmdline: "nodebake.timewait=10s",
			ok:      true, outcome: ClockWaited, waited: 10 * time.Second, limit: 10 * time.Second},
		{name: "waiting off: fails at once naming the clock",
			clock:   fakeClock{now: behind, syncAfter: time.Second, syncTo: real},
			cmdline: "nodebake.timewait=0",
			line:    "clock: not synchronized within 0s, and the certificates are not valid at the system time 2026-04-13 00:00:05 UTC",
			outcome: ClockTimedOut, limit: 0, noWait: true},
		{name: "bad wait on the kernel command line",
			clock:   fakeClock{now: behind, syncAfter: time.Second, syncTo: real},
			cmdline: "nodebake.timewait=5min",
			line:    `kernel-cmdline nodebake.timewait: "5min" is not a duration such as 90s or 5m`, noWait: true, noClock: true},
		{name: "wait beyond the limit on the kernel command line",
			clock:   fakeClock{now: behind, syncAfter: time.Second, syncTo: real},
			cmdline: "nodebake.timewait=2h",
			line:    `kernel-cmdline nodebake.timewait: "2h" is longer than the limit of 1h0m0s`, noWait: true, noClock: true},
		{name: "the state cannot be read",
			clock: fakeClock{now: behind, err: errors.New("adjtimex: operation not permitted")},
			line:  notYet, noWait: true, noClock: true},
		{name: "interrupted",
			clock:   fakeClock{now: behind, syncAfter: time.Minute, syncTo: real},
			ctxDone: true,
			line:    notYet, limit: DefaultClockWait, noClock: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := p.config()
			cfg.Kubernetes.NodeCert, cfg.Kubernetes.NodeKey = nodeCert, nodeKey
			if tt.wrongCN {
				cfg.Kubernetes.NodeCert, cfg.Kubernetes.NodeKey = worker02Cert, worker02Key
			}
			root := newRoot(t, marshal(t, cfg))
			if tt.cmdline != "" {
				writeFile(t, root, "/proc/cmdline", []byte(tt.cmdline+"\n"))
			}
			clock := tt.clock
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.ctxDone {
				clock.cancel = cancel
			}
			var waits []ClockWait
			opts := options(root)
			opts.Now, opts.Clock = clock.now, &clock
			if !tt.startAt.IsZero() {
				opts.Now = tt.startAt
			}
			opts.OnClockWait = func(w ClockWait) { waits = append(waits, w) }

			st, err := Run(ctx, opts)

			if tt.ok != (err == nil) || tt.ok != st.OK {
				t.Fatalf("Run: ok %v, %v; want ok %v", st.OK, err, tt.ok)
			}
			if !tt.ok {
				probs := err.(nodeconfig.Problems)
				if got := probs[0].String(); !strings.HasPrefix(got, tt.line) {
					t.Errorf("first problem:\n got %s\nwant %s", got, tt.line)
				}
			}
			_, rerr := os.Stat(filepath.Join(root, ReadyPath))
			if tt.ok != (rerr == nil) {
				t.Errorf("node-ready: %v, want it only on success", rerr)
			}
			var fromFile Status
			b, err := os.ReadFile(filepath.Join(root, StatusPath))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &fromFile); err != nil {
				t.Fatal(err)
			}
			if tt.noWait && (len(waits) > 0 || clock.sleeps > 0) {
				t.Errorf("waited: %d calls of OnClockWait, %d sleeps", len(waits), clock.sleeps)
			}
			if !tt.noWait && !tt.ctxDone {
				if len(waits) != 1 || waits[0].Limit != tt.limit || !strings.Contains(waits[0].Reason, `kubernetes.nodeCert: certificate "system:node:worker01"`) {
					t.Errorf("OnClockWait calls %+v, want one with limit %s naming the certificate", waits, tt.limit)
				}
			}
			if tt.noClock {
				if st.Clock != nil || fromFile.Clock != nil {
					t.Errorf("clock status %+v, want none", st.Clock)
				}
				return
			}
			cs := fromFile.Clock
			if cs == nil {
				t.Fatalf("no clock in the status file:\n%s", b)
			}
			if cs.Outcome != tt.outcome || cs.Synchronized != tt.synced || cs.WaitedMicros != tt.waited.Microseconds() || cs.LimitMicros != tt.limit.Microseconds() {
				t.Errorf("clock status %+v, want outcome %s, synchronized %v, waited %s of %s", cs, tt.outcome, tt.synced, tt.waited, tt.limit)
			}
			if !cs.FirstChecked.Equal(opts.Now) {
				t.Errorf("first checked at %s, want %s", cs.FirstChecked, opts.Now)
			}
			if tt.ok {
				if !cs.LastChecked.Equal(clock.now) || !strings.Contains(st.Summary(), cs.Message) {
					t.Errorf("last checked at %s (clock %s); summary %q", cs.LastChecked, clock.now, st.Summary())
				}
				if tt.synced && !strings.HasPrefix(cs.Message, "waited "+tt.waited.String()+" for the clock to synchronize") {
					t.Errorf("message %q", cs.Message)
				}
			}
		})
	}
}

// TestClockWaitPolls checks that the wait reads the clock's state every
// ClockPoll and ends at the limit, whatever the wall clock does.
func TestClockWaitPolls(t *testing.T) {
	p := newPKI(t)
	cfg := p.config()
	cfg.Kubernetes.NodeCert, cfg.Kubernetes.NodeKey = issue(t, p.ca, testpki.Leaf{CommonName: "system:node:worker01", Organization: []string{"system:nodes"}, Seed: 2,
		NotBefore: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2027, 12, 1, 0, 0, 0, 0, time.UTC)})
	root := newRoot(t, marshal(t, cfg))
	writeFile(t, root, "/proc/cmdline", []byte("nodebake.timewait=2500ms\n"))
	// The wall clock jumps back by a day during the wait (unsynchronized):
	// the wait is measured on Elapsed, not on the wall clock.
	clock := &fakeClock{now: time.Date(2026, 4, 13, 0, 0, 0, 0, time.UTC), stepAfter: time.Second, stepTo: time.Date(2026, 4, 12, 0, 0, 0, 0, time.UTC)}
	opts := options(root)
	opts.Now, opts.Clock = clock.now, clock
	if _, err := Run(context.Background(), opts); err == nil {
		t.Fatal("Run succeeded")
	}
	if clock.sleeps != 3 || clock.elapsed != 2500*time.Millisecond {
		t.Errorf("%d sleeps, %s in all; want 3 (1s, 1s, 500ms)", clock.sleeps, clock.elapsed)
	}
}

// TestSystemClock reads this machine's clock: the flag file under a root
// counts as synchronized; the kernel's state can be read without
// privileges.
func TestSystemClock(t *testing.T) {
	root := t.TempDir()
	c := NewSystemClock(root, false)
	if ok, err := c.Synchronized(); ok || err != nil {
		t.Errorf("without the flag file: %v, %v", ok, err)
	}
	writeFile(t, root, TimesyncFlagPath, nil)
	if ok, err := c.Synchronized(); !ok || err != nil {
		t.Errorf("with the flag file: %v, %v", ok, err)
	}
	if _, err := NewSystemClock(t.TempDir(), true).Synchronized(); err != nil {
		t.Errorf("the kernel's state: %v", err)
	}
	if ok, err := NewSystemClock(root, true).Synchronized(); !ok || err != nil {
		t.Errorf("the kernel's state or the flag file: %v, %v", ok, err)
	}

	e := c.Elapsed()
	if err := c.Sleep(context.Background(), 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if d := c.Elapsed() - e; d < 20*time.Millisecond {
		t.Errorf("slept 20ms, Elapsed moved %s", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep with a cancelled context: %v", err)
	}
}
