//go:build !linux

package testenv

import "syscall"

// childProcAttr: only Linux can tie a child's life to ours.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{}
}
