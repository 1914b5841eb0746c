//go:build tuskprofile

package main

import (
	"os"
	"runtime/pprof"
)

// A build with -tags tuskprofile writes a CPU profile of the whole run to
// $CPUPROFILE (not a TUSK_ name: tusk refuses unknown TUSK_ settings), for measuring where a command spends its time
// (go tool pprof bin/tusk FILE). Release builds leave it out, so wal-push
// and wal-fetch start no slower.
func init() {
	path := os.Getenv("CPUPROFILE")
	if path == "" {
		return
	}
	f, err := os.Create(path)
	if err != nil {
		panic(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		panic(err)
	}
	stopProfile = func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
