package qemu

import "syscall"

// parentDeathSignal makes the kernel send sig to a child when its parent
// dies.
func parentDeathSignal(sig syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: sig}
}
