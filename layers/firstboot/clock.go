package firstboot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nodebake/nodebake/layers/firstboot/cmdline"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
)

// Time-aware first boot. A machine without a battery-backed clock (or with
// a reset one) boots with its clock in the past, so that certificates
// issued "now" are not yet valid; a minute later NTP corrects the clock.
// When the only problems of the node config are certificates not valid at
// the system time (nodeconfig.KindValidity) and the clock is not
// synchronized, first boot waits for it to be, at most ClockWaitParam on
// the kernel command line (DefaultClockWait), and checks the certificates
// again at the new time:
//
//   - the clock synchronized and the certificates valid: first boot goes
//     on; the status says how long it waited;
//   - the clock synchronized and the certificates still not valid: they
//     are wrong, and first boot fails closed with their problems;
//   - the wait ended without synchronization: first boot fails closed,
//     its first problem (field "clock") naming the clock, the wait and
//     the system time, unless the certificates have become valid at the
//     system time meanwhile (the clock was set by other means);
//   - the clock already synchronized: the certificates are wrong; first
//     boot fails at once, as it always has.
//
// Any other problem fails first boot at once, without waiting.
//
// Synchronized means the kernel's STA_UNSYNC status bit is clear
// (adjtimex), or systemd-timesyncd's flag file TimesyncFlagPath exists.
// The kernel sets STA_UNSYNC at boot and on every step of the clock
// (settimeofday, clock_settime), so systemd moving the clock to its build
// time, or timesyncd to its last saved time, does not count; every NTP
// client (timesyncd, chrony, ntpd) clears it when it disciplines the
// clock. The flag file covers timesyncd on a machine whose RTC keeps local
// time, where timesyncd leaves STA_UNSYNC set on purpose. These are the
// signals systemd-time-wait-sync and timedatectl use. first boot polls
// them itself, with its own bound, instead of ordering itself after
// time-sync.target, which systemd-time-wait-sync would hold back without
// any bound.

// Parameters of the wait.
const (
	// ClockWaitParam on the kernel command line sets the longest wait,
	// as a Go duration ("90s", "5m"); 0 turns waiting off.
	ClockWaitParam = "nodebake.timewait"
	// DefaultClockWait is the longest wait unless ClockWaitParam says.
	DefaultClockWait = 5 * time.Minute
	// MaxClockWait bounds ClockWaitParam.
	MaxClockWait = time.Hour
	// ClockPoll is how often the clock's state is read while waiting.
	ClockPoll = time.Second

	// TimesyncFlagPath is created by systemd-timesyncd once it has
	// synchronized the clock.
	TimesyncFlagPath = "/run/systemd/timesync/synchronized"

	// ClockField is the field of the problem that names the clock.
	ClockField = "clock"
)

// staUnsync is the kernel's STA_UNSYNC status bit (linux/timex.h).
const staUnsync = 0x0040

// Clock is the system clock as first boot's wait needs it.
type Clock interface {
	// Now reads the wall clock, which certificates are checked at.
	Now() time.Time
	// Elapsed is the time since a fixed point, unaffected when the wall
	// clock is set: the wait is measured with it.
	Elapsed() time.Duration
	// Synchronized reports whether an NTP client has synchronized the
	// wall clock.
	Synchronized() (bool, error)
	// Sleep waits for d, or until ctx is done.
	Sleep(ctx context.Context, d time.Duration) error
}

// SystemClock is the machine's clock. Its synchronization state is the
// kernel's, when Kernel is set, or systemd-timesyncd's flag file under
// Root. Make it with NewSystemClock.
type SystemClock struct {
	root   string
	kernel bool
	start  time.Time
}

// NewSystemClock returns the machine's clock. kernel says whether the
// kernel's state counts (not when root is a test directory, whose machine
// is not this one).
func NewSystemClock(root string, kernel bool) SystemClock {
	return SystemClock{root: root, kernel: kernel, start: time.Now()}
}

// Now returns the wall clock's time.
func (c SystemClock) Now() time.Time { return time.Now() }

// Elapsed is measured on Go's monotonic clock.
func (c SystemClock) Elapsed() time.Duration { return time.Since(c.start) }

// Synchronized reads the kernel's STA_UNSYNC bit (when the kernel counts)
// and TimesyncFlagPath.
func (c SystemClock) Synchronized() (bool, error) {
	if c.kernel {
		var tx syscall.Timex // modes 0: read only, no privilege needed
		if _, err := syscall.Adjtimex(&tx); err != nil {
			return false, fmt.Errorf("reading the kernel clock's state (adjtimex): %w", err)
		}
		if tx.Status&staUnsync == 0 {
			return true, nil
		}
	}
	_, err := os.Lstat(filepath.Join(c.root, TimesyncFlagPath))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, errorAt("checking", TimesyncFlagPath, err)
}

// Sleep waits for d or until ctx is done.
func (c SystemClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// ClockOutcome says how first boot dealt with certificates that were not
// valid at the system time.
type ClockOutcome string

const (
	// ClockSynchronized: the clock was synchronized already, so the
	// certificates are wrong; no wait.
	ClockSynchronized ClockOutcome = "synchronized"
	// ClockWaited: the clock was synchronized during the wait, or the
	// certificates became valid at the system time; they were checked
	// again then.
	ClockWaited ClockOutcome = "waited"
	// ClockTimedOut: the wait ended and the certificates are still not
	// valid at the unsynchronized clock's time.
	ClockTimedOut ClockOutcome = "timed-out"
)

// ClockStatus is in the status when the node config's only problems were
// certificates not valid at the system time.
type ClockStatus struct {
	Outcome ClockOutcome `json:"outcome"`
	// Synchronized is the clock's state when first boot stopped waiting.
	Synchronized bool `json:"synchronized"`
	// WaitedMicros is how long first boot waited; LimitMicros the most
	// it would have.
	WaitedMicros int64 `json:"waitedMicros"`
	LimitMicros  int64 `json:"limitMicros"`
	// FirstChecked is the system time the certificates were first
	// checked at, LastChecked the time they were last checked at.
	FirstChecked time.Time `json:"firstChecked"`
	LastChecked  time.Time `json:"lastChecked"`
	// Message says what happened, in a line.
	Message string `json:"message"`
}

// ClockWait is what a caller hears when first boot starts waiting: the
// longest it will wait and the line that says why.
type ClockWait struct {
	Limit  time.Duration
	Reason string
}

// timeLayout is how times are shown in messages.
const timeLayout = "2006-01-02 15:04:05 UTC"

// onlyValidity reports whether every problem is a certificate's validity.
func onlyValidity(probs nodeconfig.Problems) bool {
	for _, p := range probs {
		if p.Kind != nodeconfig.KindValidity {
			return false
		}
	}
	return len(probs) > 0
}

// waitForClock is called with the problems of loading data at opts.Now.
// When they are all certificates' validity and opts.Clock is set and not
// synchronized, it waits for the clock as the package describes and loads
// data again; otherwise it returns loadErr as it is. It records what it
// did in st.Clock.
func waitForClock(ctx context.Context, opts Options, st *Status, data []byte, facts nodeconfig.ImageFacts, loadErr error) (*nodeconfig.NodeConfig, error) {
	var probs nodeconfig.Problems
	if opts.Clock == nil || !errors.As(loadErr, &probs) || !onlyValidity(probs) {
		return nil, loadErr
	}
	clock := opts.Clock
	limit, err := clockWaitLimit(opts.Root)
	if err != nil {
		return nil, append(nodeconfig.Problems{{Field: "kernel-cmdline " + ClockWaitParam, Message: err.Error()}}, probs...)
	}
	cs := &ClockStatus{FirstChecked: opts.Now.UTC(), LimitMicros: limit.Microseconds()}
	synced, err := clock.Synchronized()
	if err != nil {
		return nil, append(probs, nodeconfig.Problem{Field: ClockField, Message: err.Error()})
	}
	already := synced
	if !synced && limit > 0 && opts.OnClockWait != nil {
		opts.OnClockWait(ClockWait{Limit: limit, Reason: fmt.Sprintf(
			"waiting up to %s for the clock to synchronize: at %s, %s", limit, opts.Now.UTC().Format(timeLayout), probs[0])})
	}
	start := clock.Elapsed()
	waited := time.Duration(0)
	for !synced && waited < limit {
		if err := clock.Sleep(ctx, min(ClockPoll, limit-waited)); err != nil {
			return nil, append(probs, nodeconfig.Problem{Field: ClockField, Message: fmt.Sprintf("waiting for the clock to synchronize: %v", err)})
		}
		if synced, err = clock.Synchronized(); err != nil {
			return nil, append(probs, nodeconfig.Problem{Field: ClockField, Message: err.Error()})
		}
		waited = clock.Elapsed() - start
	}

	// Checked again even when the clock was synchronized at once: it may
	// have been since Now was read.
	now := clock.Now()
	cs.Synchronized, cs.WaitedMicros, cs.LastChecked = synced, waited.Microseconds(), now.UTC()
	st.Clock = cs
	at, w := now.UTC().Format(timeLayout), waited.Round(time.Second)
	cfg, err := nodeconfig.Load(data, facts, now)
	switch {
	case already && err != nil:
		cs.Outcome = ClockSynchronized
		cs.Message = fmt.Sprintf("the clock is synchronized (%s): the certificates are not valid", at)
	case synced && err == nil:
		cs.Outcome = ClockWaited
		cs.Message = fmt.Sprintf("waited %s for the clock to synchronize (%s)", w, at)
	case synced:
		cs.Outcome = ClockWaited
		cs.Message = fmt.Sprintf("waited %s for the clock to synchronize (%s): the certificates are still not valid", w, at)
	case err == nil:
		cs.Outcome = ClockWaited
		cs.Message = fmt.Sprintf("waited %s; the clock is not synchronized, but the certificates are valid at its time %s", w, at)
	default:
		cs.Outcome = ClockTimedOut
		still := asProblems(err)
		cs.Message = fmt.Sprintf("not synchronized within %s, and the certificates are not valid at the system time %s (%s)", limit, at, still[0])
		return nil, append(nodeconfig.Problems{{Field: ClockField, Message: cs.Message}}, still...)
	}
	return cfg, err
}

// clockWaitLimit reads ClockWaitParam from the kernel command line under
// root: DefaultClockWait when it is absent.
func clockWaitLimit(root string) (time.Duration, error) {
	params, err := cmdline.Read(root)
	if err != nil {
		return 0, err
	}
	v, ok := params.Get(ClockWaitParam)
	if !ok {
		return DefaultClockWait, nil
	}
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%q is not a duration such as 90s or 5m", v)
	case d < 0:
		return 0, fmt.Errorf("%q is negative", v)
	case d > MaxClockWait:
		return 0, fmt.Errorf("%q is longer than the limit of %s", v, MaxClockWait)
	}
	return d, nil
}
