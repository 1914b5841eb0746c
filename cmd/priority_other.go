//go:build !linux

package cmd

import "syscall"

// lowerPriority sets this process to nice 10.
func lowerPriority() error {
	return syscall.Setpriority(syscall.PRIO_PROCESS, 0, 10)
}
