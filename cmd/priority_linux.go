package cmd

import (
	"os"
	"strconv"
	"syscall"
)

// lowerPriority sets every thread of this process to nice 10. On Linux
// setpriority changes one thread, not the process, and the Go runtime has
// started several threads by now (measured: the prefetcher ran 10 of its 11
// threads at nice 0 before this); threads started later inherit the nice
// value of the thread that starts them. A second pass catches threads that
// appear while the first works.
func lowerPriority() error {
	var last error
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
