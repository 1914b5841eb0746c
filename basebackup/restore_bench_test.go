package basebackup

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

// BenchmarkRestoreWrite restores one synthetic backup shaped like a
// pgbench cluster's (one 1 GiB relation segment and one of 256 MiB, each
// split across 64 MiB parts, and 300 small files) durably and with NoSync,
// rotated, 7 rounds, and reports each one's median time and CPU. The ways
// of writing that fileWriter's note compares were measured with it (each
// behind a switch since removed). b.N is ignored: run it
// with -benchtime 1x. The page cache is synced before each timed restore,
// so that no restore pays for another's writes.
func BenchmarkRestoreWrite(b *testing.B) {
	st := newStore(b)
	files := []file{{name: "PG_VERSION", data: []byte("15\n")}, {name: "global", dir: true}, {name: "global/pg_control", data: randomBytes(1, 8192)},
		{name: "base", dir: true}, {name: "base/5", dir: true},
		{name: "base/5/16397", data: randomBytes(2, 1<<30)}, {name: "base/5/16398", data: randomBytes(3, 256<<20)}}
	for i := range 300 {
		files = append(files, file{name: fmt.Sprintf("base/5/%d", 1000+i), data: randomBytes(uint64(10+i), 128<<10)})
	}
	files = append(files, file{name: "backup_label", data: []byte("START WAL LOCATION: 0/2000028\n")})
	archive := tarOf(b, files)
	files = nil
	m := push(b, st, 64<<20, map[string][]byte{"": archive}, []Tablespace{{}})
	archive = nil
	variants := []struct {
		name           string
		noSync, direct bool
		prealloc       bool
	}{{"durable", false, false, true}, {"durable-direct", false, true, true}, {"durable-direct-noprealloc", false, true, false}, {"no-sync", true, false, true}, {"no-sync-direct", true, true, true}}
	times := map[string][]time.Duration{}
	cpus := map[string][]time.Duration{}
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	scratch := b.TempDir()
	if d := os.Getenv("TUSK_RESTORE_BENCH_DIR"); d != "" {
		scratch = d
	}
	defer func() { restoreDirect = true }()
	b.ResetTimer()
	for round := range 7 {
		for i := range variants {
			v := variants[(i+round)%len(variants)]
			dest := filepath.Join(scratch, "pgdata")
			restoreDirect = v.direct
			syscall.Sync()
			start, c0 := time.Now(), cpu()
			if err := Restore(b.Context(), m, dest, FetchOptions{Store: st, Concurrency: 4, NoSync: v.noSync}); err != nil {
				b.Fatal(err)
			}
			times[v.name] = append(times[v.name], time.Since(start))
			cpus[v.name] = append(cpus[v.name], cpu()-c0)
			os.RemoveAll(dest)
		}
	}
	b.StopTimer()
	for _, v := range variants {
		ts := times[v.name]
		slices.Sort(ts)
		cs := cpus[v.name]
		slices.Sort(cs)
		b.Logf("%-22s median %.2f s, cpu %.2f s  all %v", v.name, ts[len(ts)/2].Seconds(), cs[len(cs)/2].Seconds(), ts)
		b.ReportMetric(ts[len(ts)/2].Seconds(), v.name+"-s")
	}
}
