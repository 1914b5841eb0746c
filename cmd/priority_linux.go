package cmd

import (
	"errors"
	"os"
	"strconv"
	"syscall"
)

// lowerPriority sets every thread of this process, and its autogroup, to
// nice 10. On Linux
// setpriority changes one thread, not the process, and the Go runtime has
// started several threads by now (measured: the prefetcher ran 10 of its 11
// threads at nice 0 before this); threads started later inherit the nice
// value of the thread that starts them. A second pass catches threads that
// appear while the first works.
func lowerPriority() error {
	var last error
	// With the kernel's autogroup scheduling (sched_autogroup_enabled),
	// the CPU is shared between sessions first and nice values count only
	// within one. The prefetcher runs in its own session (Setsid), as
	// every PostgreSQL process does, so the nice value of its session is
	// what ranks it below recovery.
	if err := os.WriteFile("/proc/self/autogroup", []byte("10"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
		last = err
	}
	for range 2 {
		des, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		for _, de := range des {
			if tid, err := strconv.Atoi(de.Name()); err == nil {
				if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, 10); err != nil {
					last = err
				}
			}
		}
	}
	return last
}
