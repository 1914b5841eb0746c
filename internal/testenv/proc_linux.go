package testenv

import "syscall"

// childProcAttr makes a long-running child die with the test process, so that
// a test binary killed by its timeout leaves no server behind.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
