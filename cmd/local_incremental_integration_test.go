package cmd_test

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/internal/testenv"
)

// TestIntegrationLocalIncremental: incremental backups by page LSN in local
// mode, on PostgreSQL 15 and 16 (which keep no WAL summaries), 14, and 17
// with --mode local (auto takes the server's own incrementals there): a full
// backup and three incrementals under pgbench load, a table dropped and one
// truncated on the way, a table in a tablespace changed; point-in-time restores inside the chain and to its
// newest point are exact (table checksums, an index scan); backup-list
// shows the chain; an incremental after changing 1% of pgbench_accounts
// stores a small part of what a full backup does.
func TestIntegrationLocalIncremental(t *testing.T) {
	bin := testenv.BuildTusk(t)
	for _, v := range []int{14, 15, 16, 17} {
		t.Run(strconv.Itoa(v), func(t *testing.T) {
			t.Parallel()
			testLocalIncremental(t, bin, v)
		})
	}
}

// localChainSum is chainSum and the table in a tablespace.
const localChainSum = `SELECT (` + chainSum + `) || ':' || (SELECT md5(string_agg(g::text || '=' || v::text, ',' ORDER BY g)) FROM spaced)`

func testLocalIncremental(t *testing.T, bin string, v int) {
	opts := testenv.PostgresOptions{Env: []string{"TUSK_BACKUP_PART_SIZE=4MiB", "TUSK_DELTA_MAX_STEPS=3"}}
	if v != 15 {
		opts.Version = v
	}
	if v >= 17 {
		// Without summarize_wal: the page LSNs are all local mode needs.
		opts.Env = append(opts.Env, "TUSK_BACKUP_MODE=local")
	}
	c := startCluster(t, folderRepo(t), opts)
	pg, env := c.pg, c.env
	pg.SQL(t, "CREATE TABLE marks (n int)")
	pg.SQL(t, "CREATE TABLE dropped_later AS SELECT g AS n FROM generate_series(1, 100000) g")
	pg.SQL(t, "CREATE TABLE truncated_later AS SELECT g AS n FROM generate_series(1, 100000) g")
	tsDir := testenv.ServerTempDir(t)
	pg.SQL(t, "CREATE TABLESPACE ts LOCATION '"+tsDir+"'")
	pg.SQL(t, "CREATE TABLE spaced TABLESPACE ts AS SELECT g, 0 AS v FROM generate_series(1, 50000) g")
	pgbench(t, pg, "-i", "-s", "2", "-q")

	pushUnderLoad := func(env []string, want string, args ...string) result {
		t.Helper()
		load := pg.RunAsOwner(t.Context(), filepath.Join(pg.BinDir, "pgbench"), "-T", "2", "-c", "2", "-n")
		var loadOut strings.Builder
		load.Stdout, load.Stderr = &loadOut, &loadOut
		if err := load.Start(); err != nil {
			t.Fatal(err)
		}
		r := run(t, bin, env, append([]string{"backup-push", pg.DataDir}, args...)...)
		if err := load.Wait(); err != nil {
			t.Fatalf("pgbench during backup-push: %v\n%s", err, loadOut.String())
		}
		wantExit(t, r, 0)
		if !strings.Contains(r.stdout, want) || !strings.Contains(r.stdout, "local mode") {
			t.Fatalf("backup-push: want %q in local mode\n%s%s", want, r.stdout, r.stderr)
		}
		return r
	}
	var atSecond struct{ sum, time string } // a moment inside the second incremental's window
	pushUnderLoad(env, "(full)")
	for i := 1; i <= 3; i++ {
		pgbench(t, pg, "-t", "200", "-c", "2", "-n")
		pg.SQL(t, "UPDATE spaced SET v = v + 1 WHERE g <= "+strconv.Itoa(1000*i))
		switch i {
		case 1:
			pg.SQL(t, "DROP TABLE dropped_later")
		case 2:
			pg.SQL(t, "TRUNCATE truncated_later")
			pg.SQL(t, "INSERT INTO truncated_later SELECT g FROM generate_series(1, 10) g")
		}
		pushUnderLoad(env, "incremental on base_")
		if i == 2 {
			pg.SQL(t, "INSERT INTO marks VALUES (2)")
			atSecond.sum = pg.SQL(t, localChainSum)
			time.Sleep(20 * time.Millisecond)
			atSecond.time = pg.SQL(t, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
			time.Sleep(20 * time.Millisecond)
			pg.SQL(t, "INSERT INTO marks VALUES (3)")
		}
	}
	// The chain is full: the next one is a full backup, and says why.
	if r := pushUnderLoad(env, "(full)"); !strings.Contains(r.stderr, "holds 3 incremental backups, TUSK_DELTA_MAX_STEPS allows 3") {
		t.Errorf("the fifth backup-push does not say the chain is full:\n%s", r.stderr)
	}
	pgbench(t, pg, "-t", "200", "-c", "2", "-n")
	pg.SQL(t, "INSERT INTO marks VALUES (99)")
	newest := pg.SQL(t, localChainSum)
	archiveWAL(t, pg)

	bs := listChain(t, bin, env)
	if len(bs) != 5 {
		t.Fatalf("backup-list shows %d backups, want 5", len(bs))
	}
	for i, b := range bs[:4] {
		wantKind := "incremental"
		if i == 0 {
			wantKind = "full"
		}
		if b.Kind() != wantKind || b.ChainError != "" || b.ChainDepth != i || (i > 0 && (b.Parent != bs[i-1].Name || b.ChainFull != bs[0].Name)) {
			t.Errorf("backup %d (%s) is %s on %q (chain of %q, depth %d, error %q)", i, b.Name, b.Kind(), b.Parent, b.ChainFull, b.ChainDepth, b.ChainError)
		}
	}
	if bs[4].Kind() != "full" {
		t.Errorf("the fifth backup is %s, want full", bs[4].Kind())
	}
	if want := bs[0].StoredSize + bs[1].StoredSize + bs[2].StoredSize + bs[3].StoredSize; bs[3].ChainStoredSize != want {
		t.Errorf("chain stored size %d, want %d", bs[3].ChainStoredSize, want)
	}
	wantExit(t, run(t, bin, env, "verify", "--deep", bs[3].Name), 0)

	recover := func(name, want string, args ...string) {
		t.Helper()
		recoverExactly(t, bin, env, pg, name, localChainSum, want, append([]string{"--tablespace-mapping", tsDir + "=" + filepath.Join(testenv.ServerTempDir(t), "ts")}, args...)...)
	}
	// Inside the second incremental's window, from the chain up to it; then
	// the newest point from the chain's last incremental.
	recover(bs[2].Name, atSecond.sum, "--target-time", atSecond.time, "--target-action", "promote")
	recover(bs[3].Name, newest)

	// 1% of pgbench_accounts, a contiguous range of rows in contiguous
	// pages, changed after a full backup: the incremental stores a small
	// part of it. The table is loaded again first: after the load above the
	// rows of a range are spread over the table, and so are the free
	// spaces their new versions go to (measured: 2000 rows changed 1989 of
	// its 3336 pages, as PostgreSQL 17's WAL summaries would have named).
	pgbench(t, pg, "-i", "-s", "2", "-q")
	full := run(t, bin, env, "backup-push", pg.DataDir, "--full", "--json")
	wantExit(t, full, 0)
	type sizes struct {
		Name       string `json:"name"`
		Parent     string `json:"parent"`
		DataSize   int64  `json:"data_size"`
		StoredSize int64  `json:"stored_size"`
	}
	fm := decode[sizes](t, full)
	pg.SQL(t, "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid BETWEEN 100001 AND 102000")
	inc := run(t, bin, env, "backup-push", pg.DataDir, "--delta-from-name", fm.Name, "--json")
	wantExit(t, inc, 0)
	im := decode[sizes](t, inc)
	if im.Parent != fm.Name || fm.DataSize == 0 || im.DataSize*5 >= fm.DataSize {
		t.Errorf("an incremental on %s after changing 1%% of the accounts holds %d bytes (parent %q), the full backup %d", fm.Name, im.DataSize, im.Parent, fm.DataSize)
	}
	t.Logf("PostgreSQL %d: full %d bytes (%d stored), incremental after 1%% changed %d bytes (%.1f%%; %d stored, %.1f%%)", v, fm.DataSize, fm.StoredSize,
		im.DataSize, 100*float64(im.DataSize)/float64(fm.DataSize), im.StoredSize, 100*float64(im.StoredSize)/float64(fm.StoredSize))
	pg.SQL(t, "INSERT INTO marks VALUES (100)")
	newest = pg.SQL(t, localChainSum)
	archiveWAL(t, pg)
	recover("LATEST", newest)
}
