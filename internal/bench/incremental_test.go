package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/internal/testenv"
)

// incrementalRounds is how many times each push of BenchmarkIncremental's
// first part, and each restore of its second, runs.
const incrementalRounds = 3

// chainSteps is how many incrementals the restored chain holds, and the
// TUSK_DELTA_MAX_STEPS every incremental backup-push runs with.
const chainSteps = 6

// changedRows is how many of pgbench_accounts' 10,000,000 rows (scale 100)
// one change updates: 1%.
const changedRows = 100_000

// BenchmarkIncremental measures PostgreSQL 17 incremental backups on one
// pgbench scale-100 cluster: a full backup-push against an incremental one
// after about 1% of pgbench_accounts' rows changed (stored bytes and time),
// and restoring a full backup plus 6 incrementals against restoring one
// full backup of the same state (time and tusk's peak memory). b.N is
// ignored: run it with -benchtime 1x.
func BenchmarkIncremental(b *testing.B) {
	tusk := buildTusk(b)
	repo := newTuskFolderRepo(b)
	var env []string
	for _, kv := range repo.env {
		env = append(env, "'"+kv+"'")
	}
	pg := testenv.StartPostgres(b, testenv.PostgresOptions{
		Version:        17,
		ArchiveCommand: "env " + strings.Join(env, " ") + " " + tusk + " wal-push %p",
		Conf: map[string]string{
			"summarize_wal":      "on",
			"max_wal_size":       "4GB",
			"checkpoint_timeout": "30min",
			// No vacuum rewrites pages between a change and the backup
			// after it: each incremental holds that change alone.
			"autovacuum": "off",
		},
	})
	ib := &incrementalBench{b: b, pg: pg, tusk: tusk, repo: repo}
	start := time.Now()
	runOwner(b, pg.RunAsOwner(b.Context(), filepath.Join(pg.BinDir, "pgbench"), "-i", "-s", "100", "-q"))
	pg.SQL(b, "CHECKPOINT")
	size := pg.SQL(b, "SELECT pg_database_size('postgres')")
	rows := pg.SQL(b, "SELECT count(*) FROM pgbench_accounts")
	serverVersion := pg.SQL(b, "SHOW server_version")
	b.Logf("pgbench -i -s 100 in %.0f s; database %s bytes, %s accounts", time.Since(start).Seconds(), size, rows)

	rs := newRunSet()
	all := rs.byMetric
	record := func(r backupRun) {
		rs.add(r)
		b.Logf("%-52s %6.2f s  stored %-10s rss %s", r.Label, r.Elapsed.Seconds(), formatBytes(r.Stored), formatBytes(r.MaxRSS))
		syscall.Sync()
	}
	var notes []string
	changes := map[string][]change{}

	// The first full backup-push is not timed: it warms the page cache,
	// as BenchmarkBackup's first pg_basebackup does.
	ib.quiesce()
	ib.push("warm-up", "", "", "--full")
	b.ResetTimer()

	// Part 1: a full backup, then incrementals after 1% of the rows
	// changed, contiguous and at random.
	pushFull := "TUSK_REPO=file://$REPO tusk backup-push --full --json"
	pushIncr := fmt.Sprintf("TUSK_REPO=file://$REPO TUSK_DELTA_MAX_STEPS=%d tusk backup-push --json", chainSteps)
	kinds := []changeKind{contiguous}
	if selected("tusk-push-incremental-random") {
		kinds = append(kinds, atRandom)
	}
	if selected("tusk-push-full") || selected("tusk-push-incremental") || selected("tusk-push-incremental-random") {
		for round := range incrementalRounds {
			ib.quiesce()
			r, full := ib.push("tusk backup-push --full (folder)", "tusk-push-full", pushFull, "--full")
			if full.Parent != "" {
				b.Fatalf("backup-push --full took an incremental backup %s on %s", full.Name, full.Parent)
			}
			record(r)
			parent := full
			// The second incremental of a round is taken on the first,
			// so each kind goes first in turn.
			for i := range kinds {
				kind := kinds[(i+round)%len(kinds)]
				c := ib.change(kind)
				changes[kind.metric] = append(changes[kind.metric], c)
				ib.quiesce()
				r, m := ib.push(kind.label, kind.metric, pushIncr)
				ib.checkIncremental(m, parent)
				record(r)
				parent = m
			}
		}
	}

	// Part 2: a chain of a full backup and 6 incrementals, each after
	// another 1% of the rows changed, and one full backup of the same
	// state as the newest incremental, restored in turn.
	var chainStored, fullStored int64
	var restoredChain, restoredFull int64
	if selected("tusk-fetch-chain") || selected("tusk-fetch-full") {
		ib.quiesce()
		_, root := ib.push("chain full", "", "", "--full")
		chainStored = root.StoredSize
		newest := root
		for step := range chainSteps {
			c := ib.change(contiguous)
			changes["chain"] = append(changes["chain"], c)
			ib.quiesce()
			_, m := ib.push(fmt.Sprintf("chain incremental %d", step+1), "", "")
			ib.checkIncremental(m, newest)
			chainStored += m.StoredSize
			newest = m
		}
		ib.quiesce()
		_, same := ib.push("full of the chain's state", "", "", "--full")
		fullStored = same.StoredSize

		// The first writes into fresh page cache cost several times
		// what later ones do (see BenchmarkBackup), so untimed restores
		// go first: they also check that the chain restores the same
		// tables as the full backup.
		rels := strings.Fields(pg.SQL(b, "SELECT string_agg(pg_relation_filepath(c), ' ') FROM unnest(ARRAY['pgbench_accounts', "+
			"'pgbench_accounts_pkey', 'pgbench_branches', 'pgbench_tellers', 'pgbench_history']::regclass[]) AS c"))
		compared := ib.compareRestores(newest.Name, same.Name, rels)
		notes = append(notes, fmt.Sprintf("Before the timed restores, one untimed restore of each is compared: the main forks of the pgbench tables and of pgbench_accounts' primary key (%d files, %s) are byte for byte the same from the chain as from the full backup (the benchmark fails otherwise; the visibility map and free space map forks, and the catalogs, may differ).", compared.files, formatBytes(compared.bytes)))
		restores := []struct {
			label, metric, shown, name string
			size                       *int64
		}{
			{fmt.Sprintf("tusk backup-fetch of a full + %d incrementals", chainSteps), "tusk-fetch-chain",
				"TUSK_REPO=file://$REPO tusk backup-fetch $DEST $NEWEST_INCREMENTAL", newest.Name, &restoredChain},
			{"tusk backup-fetch of one full backup", "tusk-fetch-full",
				"TUSK_REPO=file://$REPO tusk backup-fetch $DEST $FULL", same.Name, &restoredFull},
		}
		for round := range incrementalRounds {
			for i := range restores {
				if v := restores[(i+round)%len(restores)]; selected(v.metric) {
					r, n := ib.fetch(v.label, v.metric, v.shown, v.name)
					*v.size = n
					record(r)
				}
			}
		}
		notes = append(notes, fmt.Sprintf("Restored chain: a full backup and %d incrementals, each taken with TUSK_DELTA_MAX_STEPS=%d on the one before (`chain_depth` 1 to %d) after another contiguous 1%% change%s, "+
			"stored %s in all; `$NEWEST_INCREMENTAL` is the last of them. `$FULL` is a full backup of the same state (`backup-push --full` right after the newest incremental, with no change between), stored %s.",
			chainSteps, chainSteps, chainSteps, measured(changes["chain"]), formatBytes(chainStored), formatBytes(fullStored)))
		if restoredChain > 0 && restoredFull > 0 {
			notes = append(notes, fmt.Sprintf("Restored folders: %s from the chain, %s from the full backup.",
				formatBytes(restoredChain), formatBytes(restoredFull)))
		}
	}
	b.StopTimer()

	var runs []backupRun
	stored := map[string]int64{}
	cpu := map[string]time.Duration{}
	for _, m := range rs.order {
		runs = append(runs, medianRun(all[m]))
		stored[m] = medianOf(all[m], func(r backupRun) int64 { return r.Stored })
		cpu[m] = time.Duration(medianOf(all[m], func(r backupRun) int64 { return int64(r.CPU) }))
	}
	var ratios []ratio
	addTime := func(label, num, den, target string) {
		n, ok1 := findRun(runs, num)
		d, ok2 := findRun(runs, den)
		if ok1 && ok2 {
			ratios = append(ratios, ratio{Label: label, Metric: "x-" + num + "/" + den, Value: n.Elapsed.Seconds() / d.Elapsed.Seconds(), Target: target})
		}
	}
	addStored := func(label, num, den, target string) {
		if stored[num] > 0 && stored[den] > 0 {
			ratios = append(ratios, ratio{Label: label, Metric: "x-" + num + "/" + den + "-stored", Value: float64(stored[num]) / float64(stored[den]), Target: target})
		}
	}
	addCPU := func(label, num, den string) {
		if cpu[num] > 0 && cpu[den] > 0 {
			ratios = append(ratios, ratio{Label: label, Metric: "x-" + num + "/" + den + "-cpu", Value: cpu[num].Seconds() / cpu[den].Seconds()})
		}
	}
	addStored("incremental ÷ full backup-push after 1% of the rows changed (contiguous), stored bytes", "tusk-push-incremental", "tusk-push-full", "≤ 0.05")
	addTime("incremental ÷ full backup-push after 1% of the rows changed (contiguous), seconds", "tusk-push-incremental", "tusk-push-full", "≤ 0.25")
	addCPU("incremental ÷ full backup-push after 1% of the rows changed (contiguous), tusk's CPU seconds", "tusk-push-incremental", "tusk-push-full")
	addStored("incremental ÷ full backup-push after 1% of the rows changed (at random), stored bytes", "tusk-push-incremental-random", "tusk-push-full", "")
	addTime("incremental ÷ full backup-push after 1% of the rows changed (at random), seconds", "tusk-push-incremental-random", "tusk-push-full", "")
	addTime(fmt.Sprintf("restore of a full + %d incrementals ÷ restore of one full backup of the same state, seconds", chainSteps), "tusk-fetch-chain", "tusk-fetch-full", "≤ 1.3")
	if n, ok := findRun(runs, "tusk-fetch-chain"); ok {
		if d, ok := findRun(runs, "tusk-fetch-full"); ok {
			ratios = append(ratios, ratio{Label: fmt.Sprintf("restore of a full + %d incrementals ÷ restore of one full backup, fastest run's seconds", chainSteps),
				Metric: "x-tusk-fetch-chain/tusk-fetch-full-fastest", Value: n.All[0].Seconds() / d.All[0].Seconds()})
		}
	}
	addCPU(fmt.Sprintf("restore of a full + %d incrementals ÷ restore of one full backup, tusk's CPU seconds", chainSteps), "tusk-fetch-chain", "tusk-fetch-full")

	m := machineFacts(b, "")
	m.Postgres = "PostgreSQL " + serverVersion
	var out strings.Builder
	out.WriteString("## Incremental backups: BenchmarkIncremental\n\n")
	fmt.Fprintf(&out, "Command: %s.\n\n", benchInvocation("BenchmarkIncremental"))
	fmt.Fprintf(&out, "- Date: %s\n", m.Date.UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&out, "- Machine: %s\n", m)
	fmt.Fprintf(&out, "- Cluster: PostgreSQL %s with `summarize_wal = on` and `autovacuum = off`, `pgbench -i -s 100` (database %s bytes, %s rows in pgbench_accounts), checkpointed; page cache warmed by one untimed full backup-push first\n", serverVersion, size, rows)
	out.WriteString("- The machine is shared and noisy: compare the ratios, which are measured in the same run, more than the absolute figures.\n")
	fmt.Fprintf(&out, "- Every backup and restore runs %d times; the table shows each one's median run by time, every run's time (fastest first), the median stored size and the largest peak RSS, and the ratios are of medians.\n\n", incrementalRounds)
	out.WriteString("| run | seconds (median) | every run, seconds | tusk CPU seconds (median) | stored (median) | data sent (median run) | peak RSS | command |\n| --- | ---: | --- | ---: | ---: | ---: | ---: | --- |\n")
	for _, r := range runs {
		st, data, rss := "–", "–", "–"
		if s := stored[r.Metric]; s > 0 {
			st = formatBytes(s)
		}
		if r.Data > 0 {
			data = formatBytes(r.Data)
		}
		if r.MaxRSS > 0 {
			rss = formatBytes(r.MaxRSS)
		}
		var every []string
		for _, d := range r.All {
			every = append(every, fmt.Sprintf("%.2f", d.Seconds()))
		}
		fmt.Fprintf(&out, "| %s | %.2f | %s | %.2f | %s | %s | %s | `%s` |\n", r.Label, r.Elapsed.Seconds(), strings.Join(every, ", "), cpu[r.Metric].Seconds(), st, data, rss, r.Command)
	}
	out.WriteString("\n")
	writeRatios(&out, "Ratios", ratios)
	if r, ok := findRun(runs, "tusk-fetch-chain"); ok {
		fmt.Fprintf(&out, "Memory:\n\n- **restore of a full + %d incrementals, tusk's peak RSS: %s** (target < 100 MB)\n\n", chainSteps, formatBytes(r.MaxRSS))
	}
	var head []string
	if len(changes[contiguous.metric]) > 0 {
		if len(changes[atRandom.metric]) > 0 {
			head = append(head, fmt.Sprintf("Rounds: each of the %d rounds takes a full backup (`backup-push --full`), then changes 1%% of the rows and takes an incremental backup (TUSK_DELTA_MAX_STEPS=%d, so on the newest backup), then changes another 1%% chosen the other way and takes an incremental on that incremental; which kind of change goes first alternates by round. A full backup must come before its incrementals, so that order is not rotated.", incrementalRounds, chainSteps),
				fmt.Sprintf("Contiguous change: `UPDATE pgbench_accounts SET abalance = abalance + 1` on %d consecutive aids (1 to %d, then the next %d each time), which live in about 1%% of the table's pages%s.", changedRows, changedRows, changedRows, measured(changes[contiguous.metric])),
				fmt.Sprintf("Random change: the same UPDATE on %d aids drawn at random (`ORDER BY random() LIMIT %d` after `setseed`, a new seed each time), which are spread over many more pages%s.", changedRows, changedRows, measured(changes[atRandom.metric])))
		} else {
			head = append(head, fmt.Sprintf("Rounds: each of the %d rounds takes a full backup (`backup-push --full`), then changes 1%% of the rows and takes an incremental backup (TUSK_DELTA_MAX_STEPS=%d, so on the full one). A full backup must come before its incrementals, so that order is not rotated.", incrementalRounds, chainSteps),
				fmt.Sprintf("Contiguous change: `UPDATE pgbench_accounts SET abalance = abalance + 1` on %d consecutive aids (1 to %d, then the next %d each time), which live in about 1%% of the table's pages%s.", changedRows, changedRows, changedRows, measured(changes[contiguous.metric])))
		}
	}
	if len(changes[contiguous.metric]) > 0 || len(changes["chain"]) > 0 {
		head = append(head, "Pages: an UPDATE of pgbench_accounts (fillfactor 100) is not HOT, so besides the pages holding the old rows it writes the new rows' versions at the table's end and an entry per row in its primary key; the page counts in these notes are of the heap pages holding the old rows, of the heap's pages at the time. Both the UPDATE and the count find the rows through the primary key (`aid = ANY (...)`), so they read no other page: a sequential scan would also set hint bits on (with data checksums, WAL-log) and prune every page an earlier change left dead rows in, and the next incremental would hold those pages as well (measured: with the UPDATE joined to its rows by a hash join over a sequential scan, a 1% contiguous change made after a random one cost its incremental 52 MiB stored instead of 4 MiB).")
	}
	head = append(head, "Before every timed backup the server is checkpointed and its archiver has no segment left to archive, so full and incremental backups alike start from a clean buffer pool and wait only for their own WAL; `backup-push --json` reports each backup's `stored_size` (stored, the size column) and `data_size` (the tar bytes the server sent), and every incremental is checked to name the previous backup as its `parent` (the benchmark fails otherwise).",
		"tusk: default codec and concurrency, a folder repository, run as root against the server's unix socket; peak RSS and CPU seconds (user + system) are the tusk process's alone, through GNU time as in BenchmarkBackup (until 2 December 2026 they were the child's getrusage, whose peak counts from the fork and so was never below this benchmark process's size); CPU seconds move much less than wall time with the neighbours' load.")
	if chainStored > 0 {
		head = append(head, "Restores write into a fresh folder, removed after each, with `sync` between runs, and are not followed by WAL replay; the chain and the full backup are restored alternately (the chain first in the first and third rounds), after one untimed restore of each.")
	}
	notes = append(head, notes...)
	writeNotes(&out, notes)
	for _, r := range runs {
		b.ReportMetric(r.Elapsed.Seconds(), r.Metric+"-s")
		if stored[r.Metric] > 0 {
			b.ReportMetric(float64(stored[r.Metric]), r.Metric+"-stored-B")
		}
	}
	for _, r := range ratios {
		b.ReportMetric(r.Value, r.Metric)
	}
	publish(b, "incremental", out.String())
}

// incrementalBench holds what BenchmarkIncremental's steps share.
type incrementalBench struct {
	b        *testing.B
	pg       *testenv.Postgres
	tusk     string
	repo     *tuskRepo
	nextAid  int // the first aid of the next contiguous change
	nextSeed int // the TABLESAMPLE seed of the next random change
}

// pushedBackup is the part of backup-push --json's metadata the benchmark
// reads.
type pushedBackup struct {
	Name       string `json:"name"`
	DataSize   int64  `json:"data_size"`
	StoredSize int64  `json:"stored_size"`
	Parent     string `json:"parent"`
	ChainFull  string `json:"chain_full"`
	ChainDepth int    `json:"chain_depth"`
}

// push runs tusk backup-push --json with TUSK_DELTA_MAX_STEPS set and args,
// and returns the run and the backup's metadata.
func (ib *incrementalBench) push(label, metric, shown string, args ...string) (backupRun, pushedBackup) {
	b := ib.b
	b.Helper()
	cmd := exec.CommandContext(b.Context(), ib.tusk, append([]string{"backup-push", "--json"}, args...)...)
	cmd.Env = append(hermetic(os.Environ()), ib.repo.env...)
	cmd.Env = append(cmd.Env, ib.pg.Env()...)
	cmd.Env = append(cmd.Env, "TUSK_DELTA_MAX_STEPS="+strconv.Itoa(chainSteps))
	r, stdout := timedStdout(b, cmd, label, metric, shown)
	var m pushedBackup
	if err := json.Unmarshal(stdout, &m); err != nil || m.Name == "" {
		b.Fatalf("%s: backup-push --json printed no metadata (%v):\n%s", label, err, stdout)
	}
	r.Stored, r.Data = m.StoredSize, m.DataSize
	b.Logf("%s: backup %s, %s sent, %s stored, parent %q, chain depth %d", label, m.Name, formatBytes(m.DataSize), formatBytes(m.StoredSize), m.Parent, m.ChainDepth)
	return r, m
}

// checkIncremental fails the benchmark unless m is an incremental backup
// on parent.
func (ib *incrementalBench) checkIncremental(m, parent pushedBackup) {
	ib.b.Helper()
	if m.Parent == "" {
		ib.b.Fatalf("backup-push with TUSK_DELTA_MAX_STEPS=%d took a full backup %s, not an incremental on %s (see its log above)", chainSteps, m.Name, parent.Name)
	}
	if m.Parent != parent.Name || m.ChainDepth != parent.ChainDepth+1 {
		ib.b.Fatalf("incremental backup %s is on %s at chain depth %d, want on %s at depth %d", m.Name, m.Parent, m.ChainDepth, parent.Name, parent.ChainDepth+1)
	}
}

// fetch restores backup name into a fresh folder with tusk backup-fetch,
// removes it again, and returns the run and the restored folder's size.
func (ib *incrementalBench) fetch(label, metric, shown, name string) (backupRun, int64) {
	b := ib.b
	b.Helper()
	dest := filepath.Join(testenv.ServerTempDir(b), "pgdata")
	cmd := exec.CommandContext(b.Context(), ib.tusk, "backup-fetch", dest, name)
	cmd.Env = append(hermetic(os.Environ()), ib.repo.env...)
	r, _ := timedStdout(b, cmd, label, metric, shown)
	size, err := treeSize(dest)
	if err != nil {
		b.Fatalf("%s: %v", label, err)
	}
	if err := os.RemoveAll(dest); err != nil {
		b.Fatal(err)
	}
	syscall.Sync()
	return r, size
}

// compared counts what compareRestores compared.
type compared struct {
	files int
	bytes int64
}

// compareRestores restores backups a and b (untimed) and fails the
// benchmark unless the files of each relation in rels (paths relative to
// the data directory, as pg_relation_filepath returns them: every segment
// of the main fork) have the same bytes in both.
func (ib *incrementalBench) compareRestores(a, b string, rels []string) compared {
	tb := ib.b
	tb.Helper()
	var dirs []string
	for _, name := range []string{a, b} {
		dest := filepath.Join(testenv.ServerTempDir(tb), "pgdata")
		cmd := exec.CommandContext(tb.Context(), ib.tusk, "backup-fetch", dest, name)
		cmd.Env = append(hermetic(os.Environ()), ib.repo.env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			tb.Fatalf("untimed restore of %s: %v\n%s", name, err, out)
		}
		dirs = append(dirs, dest)
	}
	var c compared
	for _, rel := range rels {
		for seg := 0; ; seg++ {
			file := rel
			if seg > 0 {
				file = fmt.Sprintf("%s.%d", rel, seg)
			}
			_, errA := os.Stat(filepath.Join(dirs[0], file))
			_, errB := os.Stat(filepath.Join(dirs[1], file))
			if errA != nil && errB != nil {
				break
			}
			n, err := sameBlocks(filepath.Join(dirs[0], file), filepath.Join(dirs[1], file))
			if err != nil {
				tb.Fatalf("%s restored from the chain of %s differs from the full backup %s of the same state: %v", file, a, b, err)
			}
			c.files++
			c.bytes += n
		}
	}
	for _, d := range dirs {
		os.RemoveAll(d)
	}
	syscall.Sync()
	return c
}

// sameBlocks compares two files 8 KiB block by block and returns their
// size, or an error naming the first block that differs.
func sameBlocks(a, b string) (int64, error) {
	fa, err := os.Open(a)
	if err != nil {
		return 0, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return 0, err
	}
	defer fb.Close()
	ra, rb := bufio.NewReaderSize(fa, 1<<20), bufio.NewReaderSize(fb, 1<<20)
	const blockSize = 8192
	pa, pb := make([]byte, blockSize), make([]byte, blockSize)
	for block := int64(0); ; block++ {
		na, errA := io.ReadFull(ra, pa)
		nb, errB := io.ReadFull(rb, pb)
		if !bytes.Equal(pa[:na], pb[:nb]) {
			return 0, fmt.Errorf("block %d differs (%d and %d bytes read)", block, na, nb)
		}
		if errA != nil || errB != nil {
			if (errA == io.EOF || errA == io.ErrUnexpectedEOF) && (errB == io.EOF || errB == io.ErrUnexpectedEOF) {
				return block*blockSize + int64(na), nil
			}
			return 0, errors.Join(errA, errB)
		}
	}
}

// quiesce checkpoints the server and waits until its archiver has no
// finished segment left to archive.
func (ib *incrementalBench) quiesce() {
	b := ib.b
	b.Helper()
	ib.pg.SQL(b, "CHECKPOINT")
	deadline := time.Now().Add(5 * time.Minute)
	for {
		n := ib.pg.SQL(b, "SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'")
		if n == "0" {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("the archiver still has %s segments to archive after 5 minutes:\n%s", n, ib.pg.LogTail(20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// changeKind is a way of choosing the 1% of rows a change updates.
type changeKind struct {
	metric, label string
}

var (
	contiguous = changeKind{"tusk-push-incremental", "tusk backup-push, incremental, 1% contiguous (folder)"}
	atRandom   = changeKind{"tusk-push-incremental-random", "tusk backup-push, incremental, 1% at random (folder)"}
)

// change is what one UPDATE of pgbench_accounts touched.
type change struct {
	Rows, Pages, TablePages int64
}

// change updates about 1% of pgbench_accounts' rows, chosen as kind says,
// and reports how many rows it changed and how many heap pages held them.
// Both the UPDATE and the count find the rows through the primary key
// (aid = ANY of an array), so that they read no other page: a sequential
// scan would set hint bits on, and prune, the pages an earlier change left
// dead rows in, and the next incremental would hold those pages too.
func (ib *incrementalBench) change(kind changeKind) change {
	b := ib.b
	b.Helper()
	var seed, ids string
	switch kind {
	case contiguous:
		if ib.nextAid == 0 {
			ib.nextAid = 1
		}
		ids = fmt.Sprintf("SELECT generate_series(%d, %d) AS aid", ib.nextAid, ib.nextAid+changedRows-1)
		ib.nextAid += changedRows
	case atRandom:
		ib.nextSeed++
		seed = fmt.Sprintf("SELECT setseed(%g); ", float64(ib.nextSeed)/100)
		ids = fmt.Sprintf("SELECT aid FROM generate_series(1, (SELECT max(aid) FROM pgbench_accounts)) AS aid ORDER BY random() LIMIT %d", changedRows)
	}
	pages := ib.pg.SQL(b, "SELECT pg_relation_size('pgbench_accounts') / current_setting('block_size')::int")
	out := ib.pg.SQL(b, seed+"WITH ids AS MATERIALIZED ("+ids+"), "+
		"s AS MATERIALIZED (SELECT ctid AS old FROM pgbench_accounts WHERE aid = ANY (ARRAY(SELECT aid FROM ids))), "+
		"u AS (UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = ANY (ARRAY(SELECT aid FROM ids)) RETURNING 1) "+
		"SELECT (SELECT count(*) FROM u) || ' ' || (SELECT count(DISTINCT (old::text::point)[0]) FROM s)")
	// psql prints setseed's empty result too: the figures are the last line.
	lines := strings.Split(out, "\n")
	var c change
	if _, err := fmt.Sscan(lines[len(lines)-1]+" "+pages, &c.Rows, &c.Pages, &c.TablePages); err != nil {
		b.Fatalf("change %s: %q: %v", kind.metric, out, err)
	}
	b.Logf("changed %d rows in %d of %d heap pages (%.1f%%)", c.Rows, c.Pages, c.TablePages, 100*float64(c.Pages)/float64(c.TablePages))
	return c
}

// measured sums up the changes of one kind for a note: " (measured: ...)",
// or "" when there were none.
func measured(cs []change) string {
	if len(cs) == 0 {
		return ""
	}
	var parts []string
	for _, c := range cs {
		parts = append(parts, fmt.Sprintf("%d rows in %d of %d pages (%.1f%%)", c.Rows, c.Pages, c.TablePages, 100*float64(c.Pages)/float64(c.TablePages)))
	}
	return " (measured: " + strings.Join(parts, "; ") + ")"
}

// medianOf is the median of f over the runs.
func medianOf(rs []backupRun, f func(backupRun) int64) int64 {
	var s []int64
	for _, r := range rs {
		s = append(s, f(r))
	}
	slices.Sort(s)
	return s[len(s)/2]
}

// timedStdout is timed, with the command's stdout returned apart from its
// stderr (which is shown only when it fails).
func timedStdout(b *testing.B, cmd *exec.Cmd, label, metric, shown string) (backupRun, []byte) {
	b.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	usage := measureUsage(b, cmd, metric)
	start := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("%s: %v\n%s%s", label, err, stdout.String(), stderr.String())
	}
	r := backupRun{Label: label, Metric: metric, Command: shown, Elapsed: time.Since(start)}
	usage(&r)
	if strings.Contains(stderr.String(), "taking a full backup") && metric != "" {
		b.Logf("%s: %s", label, strings.TrimSpace(stderr.String()))
	}
	return r, stdout.Bytes()
}

// benchInvocation is the command that produced this run's figures: make
// bench for a whole run, else the go test line with TUSK_BENCH_ONLY.
func benchInvocation(name string) string {
	pattern := "."
	if f := flag.Lookup("test.bench"); f != nil {
		pattern = f.Value.String()
	}
	only := os.Getenv("TUSK_BENCH_ONLY")
	if only == "" && pattern == "." {
		return "`make bench` (`go test -run '^$' -bench . -benchtime 1x ./internal/bench/`), " + name
	}
	line := fmt.Sprintf("go test -run '^$' -bench '%s' -benchtime 1x ./internal/bench/", pattern)
	if only != "" {
		line = "TUSK_BENCH_ONLY=" + only + " " + line
	}
	return "`" + line + "`"
}
