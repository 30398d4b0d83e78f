//go:build !linux

package qemu

import "syscall"

// parentDeathSignal: only Linux has a parent-death signal.
func parentDeathSignal(syscall.Signal) *syscall.SysProcAttr { return nil }
