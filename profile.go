//go:build tuskprofile

package main

import (
	"bytes"
	"os"
	"runtime"
	"runtime/pprof"
	"time"
)

// A build with -tags tuskprofile writes a CPU profile of the whole run to
// $CPUPROFILE, and a heap profile taken when the live heap was largest to
// $HEAPPROFILE (not TUSK_ names: tusk refuses unknown TUSK_ settings), for
// measuring where a command spends its time and its memory (go tool pprof
// bin/tusk FILE). Release builds leave it out, so wal-push and wal-fetch
// start no slower.
func init() {
	var stops []func()
	if path := os.Getenv("CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			panic(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			panic(err)
		}
		stops = append(stops, func() {
			pprof.StopCPUProfile()
			f.Close()
		})
	}
	if path := os.Getenv("HEAPPROFILE"); path != "" {
		runtime.MemProfileRate = 64 << 10
		done, finished := make(chan struct{}), make(chan struct{})
		go peakHeap(path, done, finished)
		stops = append(stops, func() {
			close(done)
			<-finished
		})
	}
	stopProfile = func() {
		for _, stop := range stops {
			stop()
		}
	}
}

// peakHeap keeps, every 50 ms, the heap profile of the largest live heap
// seen after a collection, and writes it to path when done closes.
func peakHeap(path string, done, finished chan struct{}) {
	defer close(finished)
	var best []byte
	var peak uint64
	var last uint32
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			if best != nil {
				os.WriteFile(path, best, 0o644)
			}
			return
		case <-tick.C:
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if ms.NumGC == last || ms.HeapAlloc < peak {
			continue
		}
		last, peak = ms.NumGC, ms.HeapAlloc
		var buf bytes.Buffer
		if err := pprof.Lookup("heap").WriteTo(&buf, 0); err == nil {
			best = buf.Bytes()
		}
	}
}
