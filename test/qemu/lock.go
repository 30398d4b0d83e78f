package qemu

import (
	"fmt"
	"os"
	"syscall"
)

// EnvLock names a lock file that tests take (flock, exclusive) around each
// guest they boot, so that several test processes on one machine run one
// guest at a time. Unset, Lock does nothing.
const EnvLock = "NODEBAKE_QEMU_LOCK"

// Lock waits for the lock named by $NODEBAKE_QEMU_LOCK and returns the
// function that releases it.
func Lock() (unlock func(), err error) {
	p := os.Getenv(EnvLock)
	if p == "" {
		return func() {}, nil
	}
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the QEMU lock %s: %w", p, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", p, err)
	}
	return func() { f.Close() }, nil
}
