package cmd_test

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	tusk "github.com/tusk-backup/tusk/cmd"
	"github.com/tusk-backup/tusk/internal/testenv"
)

// listChain is backup-list --json: every backup with its chain's size.
func listChain(t *testing.T, bin string, env []string) []tusk.ListEntry {
	t.Helper()
	r := run(t, bin, env, "backup-list", "--json")
	wantExit(t, r, 0)
	return decode[[]tusk.ListEntry](t, r)
}

// TestIntegrationIncrementalBackups: with TUSK_DELTA_MAX_STEPS, backup-push
// on PostgreSQL 17 takes incrementals on the newest backup until the chain
// is full, then a full one; --full, --delta-from-name and summarize_wal off
// behave as the help says.
func TestIntegrationIncrementalBackups(t *testing.T) {
	t.Parallel()
	bin := testenv.BuildTusk(t)
	c := startCluster(t, folderRepo(t), testenv.PostgresOptions{Version: 17, Env: []string{"TUSK_BACKUP_PART_SIZE=4MiB"},
		Conf: map[string]string{"summarize_wal": "on"}})
	pg, env := c.pg, c.env
	pgbench(t, pg, "-i", "-s", "4", "-q")
	delta := append(env[:len(env):len(env)], "TUSK_DELTA_MAX_STEPS=2")

	push := func(env []string, args ...string) result {
		t.Helper()
		r := run(t, bin, env, append([]string{"backup-push", pg.DataDir}, args...)...)
		wantExit(t, r, 0)
		return r
	}
	// 1% of the rows, in 1% of the pages.
	change := func() { pg.SQL(t, "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 4000") }

	if r := push(delta); !strings.Contains(r.stderr, "holds no backup of this cluster") {
		t.Errorf("the first backup-push with TUSK_DELTA_MAX_STEPS does not say why it takes a full backup:\n%s", r.stderr)
	}
	change()
	if r := push(delta); !strings.Contains(r.stdout, "incremental on base_") {
		t.Errorf("the second backup-push is not incremental:\n%s", r.stdout)
	}
	change()
	push(delta)
	change()
	if r := push(delta); !strings.Contains(r.stderr, "holds 2 incremental backups, TUSK_DELTA_MAX_STEPS allows 2") {
		t.Errorf("the fourth backup-push does not say the chain is full:\n%s", r.stderr)
	}
	change()
	push(delta, "--full")

	bs := listChain(t, bin, env)
	if len(bs) != 5 {
		t.Fatalf("backup-list shows %d backups, want 5", len(bs))
	}
	wantKinds := []string{"full", "incremental", "incremental", "full", "full"}
	for i, b := range bs {
		if b.Kind() != wantKinds[i] || b.ChainError != "" {
			t.Errorf("backup %d (%s) is %s (chain error %q), want %s", i, b.Name, b.Kind(), b.ChainError, wantKinds[i])
		}
	}
	full, inc1, inc2 := bs[0], bs[1], bs[2]
	if inc1.Parent != full.Name || inc1.ChainFull != full.Name || inc1.ChainDepth != 1 ||
		inc2.Parent != inc1.Name || inc2.ChainFull != full.Name || inc2.ChainDepth != 2 {
		t.Errorf("chain: %s <- %s (%s, %d) <- %s (%s, %d)", full.Name, inc1.Parent, inc1.ChainFull, inc1.ChainDepth, inc2.Parent, inc2.ChainFull, inc2.ChainDepth)
	}
	if inc1.DataSize*5 > full.DataSize {
		t.Errorf("an incremental after changing 1%% of the rows holds %d bytes, the full backup %d", inc1.DataSize, full.DataSize)
	}
	if want := full.StoredSize + inc1.StoredSize + inc2.StoredSize; inc2.ChainStoredSize != want {
		t.Errorf("chain stored size %d, want %d", inc2.ChainStoredSize, want)
	}

	// --delta-from-name that names nothing fails; one that names a backup
	// takes an incremental on it.
	r := run(t, bin, env, "backup-push", "--delta-from-name", "base_nope")
	wantExit(t, r, 1)
	if !strings.Contains(r.stderr, "--delta-from-name base_nope: no such backup") {
		t.Errorf("backup-push --delta-from-name base_nope:\n%s", r.stderr)
	}
	change()
	if r := push(env, "--delta-from-name", full.Name); !strings.Contains(r.stdout, "incremental on "+full.Name) {
		t.Errorf("backup-push --delta-from-name %s:\n%s", full.Name, r.stdout)
	}

	// Without WAL summaries there is no incremental: a full backup, and why.
	pg.SQL(t, "ALTER SYSTEM SET summarize_wal = off")
	pg.SQL(t, "SELECT pg_reload_conf()")
	waitFor(t, 30*time.Second, func() bool { return pg.SQL(t, "SHOW summarize_wal") == "off" })
	if r := push(delta); !strings.Contains(r.stderr, "summarize_wal is off") || !strings.Contains(r.stdout, "(full)") {
		t.Errorf("backup-push with summarize_wal off:\n%s%s", r.stdout, r.stderr)
	}
	r = run(t, bin, env, "backup-push", "--delta-from-name", full.Name)
	wantExit(t, r, 1)
	if !strings.Contains(r.stderr, "summarize_wal is off") {
		t.Errorf("backup-push --delta-from-name with summarize_wal off:\n%s", r.stderr)
	}
}

// TestIntegrationIncrementalNeedsPostgreSQL17: on PostgreSQL 15 in remote
// mode, TUSK_DELTA_MAX_STEPS takes full backups and says why (local mode
// takes incrementals there: TestIntegrationLocalIncremental).
func TestIntegrationIncrementalNeedsPostgreSQL17(t *testing.T) {
	t.Parallel()
	bin := testenv.BuildTusk(t)
	c := startCluster(t, folderRepo(t), testenv.PostgresOptions{})
	archiveWAL(t, c.pg) // the server's archiver (as the server's user) makes the repository
	for i := range 2 {
		r := run(t, bin, append(c.env, "WALG_DELTA_MAX_STEPS=3"), "backup-push", "--mode", "remote", c.pg.DataDir)
		wantExit(t, r, 0)
		if !strings.Contains(r.stdout, "(full)") {
			t.Fatalf("backup-push %d on PostgreSQL 15 is not full:\n%s", i, r.stdout)
		}
		if i == 1 && !strings.Contains(r.stderr, "incremental backups need PostgreSQL 17 or later") {
			t.Errorf("backup-push on PostgreSQL 15 with WALG_DELTA_MAX_STEPS does not say why it takes a full backup:\n%s", r.stderr)
		}
	}
}

// chainSum is a checksum of everything the chain test writes; the dropped
// and truncated tables count as what they held at the moment.
const chainSum = `SELECT md5(string_agg(s, '|')) FROM (
	(SELECT md5(string_agg(aid::text || ':' || abalance::text, ',' ORDER BY aid)) AS s FROM pgbench_accounts)
	UNION ALL (SELECT coalesce(string_agg(n::text, ',' ORDER BY n), '') FROM marks)
	UNION ALL (SELECT count(*)::text FROM pg_class WHERE relname = 'dropped_later')
	UNION ALL (SELECT count(*)::text FROM truncated_later)) q`

// TestIntegrationIncrementalWeek: a week of the cron job, compressed, on
// PostgreSQL 17 (a folder) and 18 (MinIO): a full backup and six
// incrementals under pgbench load, a table dropped and one truncated on the
// way; point-in-time restores to a moment inside the third incremental's
// window and to the newest point are exact, as are a standby and a
// restore-drill; then a second chain, and retain FULL 2 keeps both chains
// whole while retain FULL 1 deletes the first one and leaves the second
// restorable.
func TestIntegrationIncrementalWeek(t *testing.T) {
	bin := testenv.BuildTusk(t)
	for _, v := range []int{17, 18} {
		t.Run(strconv.Itoa(v), func(t *testing.T) {
			t.Parallel()
			repo := folderRepo(t)
			if v == 18 {
				repo = s3Repo(t)
			}
			testIncrementalWeek(t, bin, v, repo)
		})
	}
}

func testIncrementalWeek(t *testing.T, bin string, v int, repo repository) {
	c := startCluster(t, repo, testenv.PostgresOptions{Version: v, Env: []string{"TUSK_BACKUP_PART_SIZE=4MiB", "TUSK_DELTA_MAX_STEPS=6"},
		Conf: map[string]string{"summarize_wal": "on"}})
	pg, env := c.pg, c.env
	pg.SQL(t, "CREATE TABLE marks (n int)")
	pg.SQL(t, "CREATE TABLE dropped_later AS SELECT g AS n FROM generate_series(1, 100000) g")
	pg.SQL(t, "CREATE TABLE truncated_later AS SELECT g AS n FROM generate_series(1, 100000) g")
	pgbench(t, pg, "-i", "-s", "2", "-q")

	pushUnderLoad := func(want string) {
		t.Helper()
		load := pg.RunAsOwner(t.Context(), filepath.Join(pg.BinDir, "pgbench"), "-T", "2", "-c", "2", "-n")
		var loadOut strings.Builder
		load.Stdout, load.Stderr = &loadOut, &loadOut
		if err := load.Start(); err != nil {
			t.Fatal(err)
		}
		r := run(t, bin, env, "backup-push", pg.DataDir)
		if err := load.Wait(); err != nil {
			t.Fatalf("pgbench during backup-push: %v\n%s", err, loadOut.String())
		}
		wantExit(t, r, 0)
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("backup-push: want %q\n%s%s", want, r.stdout, r.stderr)
		}
	}
	var atThird struct{ sum, time string } // a moment inside the third incremental's window
	pushUnderLoad("(full)")
	for i := 1; i <= 6; i++ {
		pgbench(t, pg, "-t", "200", "-c", "2", "-n")
		switch i {
		case 2:
			pg.SQL(t, "DROP TABLE dropped_later")
		case 3:
			pg.SQL(t, "TRUNCATE truncated_later")
			pg.SQL(t, "INSERT INTO truncated_later SELECT g FROM generate_series(1, 10) g")
		}
		pushUnderLoad("incremental on base_")
		if i == 3 {
			pg.SQL(t, "INSERT INTO marks VALUES (3)")
			atThird.sum = pg.SQL(t, chainSum)
			time.Sleep(20 * time.Millisecond)
			atThird.time = pg.SQL(t, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
			time.Sleep(20 * time.Millisecond)
			pg.SQL(t, "INSERT INTO marks VALUES (4)")
		}
	}
	pgbench(t, pg, "-t", "200", "-c", "2", "-n")
	pg.SQL(t, "INSERT INTO marks VALUES (99)")
	newest := pg.SQL(t, chainSum)
	archiveWAL(t, pg)

	bs := listChain(t, bin, env)
	if len(bs) != 7 || bs[6].ChainDepth != 6 || bs[6].ChainFull != bs[0].Name {
		t.Fatalf("after a full backup and six incrementals backup-list shows %d backups, the newest at depth %d", len(bs), bs[len(bs)-1].ChainDepth)
	}
	wantExit(t, run(t, bin, env, "verify", "--deep", bs[6].Name), 0)

	recover := func(name, want string, args ...string) {
		t.Helper()
		recoverExactly(t, bin, env, pg, name, chainSum, want, args...)
	}
	recover("LATEST", atThird.sum, "--target-time", atThird.time, "--target-action", "promote")
	recover("LATEST", newest)

	// A standby of the chain, and a drill.
	standby := filepath.Join(testenv.ServerTempDir(t), "standby")
	wantExit(t, run(t, bin, env, "backup-fetch", standby, "LATEST", "--standby"), 0)
	if _, err := os.Stat(filepath.Join(standby, "standby.signal")); err != nil {
		t.Fatalf("backup-fetch --standby wrote no standby.signal: %v", err)
	}
	wantExit(t, run(t, bin, env, "restore-drill", "--pg-bin", pg.ServerBinDir, "--scratch", testenv.ServerTempDir(t), "--json", "--sql", "SELECT n FROM marks WHERE n = 99"), 0)

	// A second chain, then retention.
	pushUnderLoad("(full)")
	pushUnderLoad("incremental on base_")
	wantExit(t, run(t, bin, env, "delete", "retain", "FULL", "2", "--confirm"), 0)
	if got := listChain(t, bin, env); len(got) != 9 {
		t.Fatalf("retain FULL 2 with two chains left %d of 9 backups", len(got))
	}
	wantExit(t, run(t, bin, env, "delete", "retain", "FULL", "1", "--confirm"), 0)
	left := listChain(t, bin, env)
	if len(left) != 2 || left[0].Kind() != "full" || left[1].Parent != left[0].Name {
		t.Fatalf("retain FULL 1 left %d backups, want the second chain's two", len(left))
	}
	pg.SQL(t, "INSERT INTO marks VALUES (100)")
	newest = pg.SQL(t, chainSum)
	archiveWAL(t, pg)
	recover(left[1].Name, newest)
}

// TestIntegrationIncrementalStandbyAndPromotion: an incremental backup of a
// standby, on a full backup of its primary; the standby promoted, and an
// incremental of it whose parent is on the old timeline; the chain across
// the timeline switch restores the promoted server's data exactly. On
// PostgreSQL 17 in remote mode (the server's WAL summaries), and on 15 in
// local mode (page LSNs; the parent checked against the promoted server's
// timeline history).
func TestIntegrationIncrementalStandbyAndPromotion(t *testing.T) {
	bin := testenv.BuildTusk(t)
	for _, v := range []int{17, 15} {
		t.Run(strconv.Itoa(v), func(t *testing.T) {
			t.Parallel()
			testIncrementalStandbyAndPromotion(t, bin, v)
		})
	}
}

func testIncrementalStandbyAndPromotion(t *testing.T, bin string, v int) {
	repo := folderRepo(t)
	opts := testenv.PostgresOptions{Version: 17, Conf: map[string]string{"summarize_wal": "on"}}
	mode := "remote mode"
	if v < 17 {
		opts, mode = testenv.PostgresOptions{}, "local mode"
	}
	c := startCluster(t, repo, opts)
	pg, env := c.pg, c.env
	pgbench(t, pg, "-i", "-s", "2", "-q")
	pg.SQL(t, "CREATE TABLE marks (n int); INSERT INTO marks VALUES (1)")
	wantExit(t, run(t, bin, env, "backup-push"), 0)
	pg.SQL(t, "INSERT INTO marks VALUES (2)")
	archiveWAL(t, pg)

	sb := startStandby(t, bin, repo, pg)
	dest := sb.dest
	pgCtl := filepath.Join(pg.ServerBinDir, "pg_ctl")
	onStandby := func(query string) string {
		t.Helper()
		return sb.sql(t, pg, query)
	}
	pg.SQL(t, "INSERT INTO marks VALUES (3)")
	waitFor(t, time.Minute, func() bool { return onStandby("SELECT string_agg(n::text, ',' ORDER BY n) FROM marks") == "1,2,3" })

	// An incremental of the standby: the primary switches WAL while it
	// waits for its last segment, as archive_timeout would.
	standbyEnv := append(slices.Clone(sb.env), "TUSK_DELTA_MAX_STEPS=3")
	pg.SQL(t, "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 2000")
	// A backup of a standby starts at its last restartpoint, which must be
	// past the parent's end (the server refuses otherwise, and backup-push
	// takes a full backup): a checkpoint on the primary, replayed.
	pg.SQL(t, "CHECKPOINT; INSERT INTO marks VALUES (30)")
	waitFor(t, time.Minute, func() bool { return onStandby("SELECT count(*) FROM marks WHERE n = 30") == "1" })
	r := pushFromStandby(t, bin, standbyEnv, pg)
	wantExit(t, r, 0)
	if !strings.Contains(r.stdout, "incremental on base_") || !strings.Contains(r.stdout, mode) {
		t.Fatalf("backup-push from the standby is not incremental:\n%s%s", r.stdout, r.stderr)
	}

	// Promoted: a new timeline, and an incremental on the standby's backup,
	// which is on the old one.
	pg.SQL(t, "INSERT INTO marks VALUES (4)")
	waitFor(t, time.Minute, func() bool { return onStandby("SELECT count(*) FROM marks WHERE n = 4") == "1" })
	if out, err := pg.RunAsOwner(t.Context(), pgCtl, "promote", "-w", "-D", dest).CombinedOutput(); err != nil {
		t.Fatalf("promote the standby: %v\n%s", err, out)
	}
	waitFor(t, time.Minute, func() bool { return onStandby("SELECT pg_is_in_recovery()") == "f" })
	onStandby("INSERT INTO marks VALUES (5); UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 2000")
	r = run(t, bin, standbyEnv, "backup-push")
	wantExit(t, r, 0)
	if !strings.Contains(r.stdout, "incremental on base_") || !strings.Contains(r.stdout, mode) {
		t.Fatalf("backup-push after the promotion is not incremental:\n%s%s", r.stdout, r.stderr)
	}
	bs := listChain(t, bin, env)
	if len(bs) != 3 || !bs[1].FromStandby || bs[1].Parent != bs[0].Name || bs[2].Parent != bs[1].Name || bs[2].StartTLI != 2 || bs[1].EndTLI != 1 {
		t.Fatalf("backups after the promotion: %+v", bs)
	}
	onStandby("INSERT INTO marks VALUES (6)")
	want := onStandby("SELECT md5(string_agg(aid::text || ':' || abalance::text, ',' ORDER BY aid)) || (SELECT string_agg(n::text, ',' ORDER BY n) FROM marks) FROM pgbench_accounts")
	last := onStandby("SELECT pg_walfile_name(pg_current_wal_lsn())")
	onStandby("SELECT pg_switch_wal()")
	waitArchivedIn(t, bin, repo.env, last)

	restored := filepath.Join(testenv.ServerTempDir(t), "pgdata")
	r = run(t, bin, env, "backup-fetch", restored, bs[2].Name, "--recover", "--json", "--pg-bin", pg.ServerBinDir)
	t.Cleanup(func() { stopServer(t, pg, restored) })
	wantExit(t, r, 0)
	sock, rport := recovered(t, r)
	if got := psql(t, pg, sock, rport, "SELECT md5(string_agg(aid::text || ':' || abalance::text, ',' ORDER BY aid)) || (SELECT string_agg(n::text, ',' ORDER BY n) FROM marks) FROM pgbench_accounts"); got != want {
		t.Fatalf("restore of the chain across the promotion: %s, want %s", got, want)
	}
}

// TestIntegrationIncrementalDamage: a corrupt or missing part of a parent,
// and a parent deleted behind tusk's back, make a restore of the chain fail
// in one sentence that names the object, leave the destination as it was,
// and never restore a chain that lacks blocks; backup-list and verify say
// which backup is broken.
func TestIntegrationIncrementalDamage(t *testing.T) {
	t.Parallel()
	bin := testenv.BuildTusk(t)
	repo := folderRepo(t)
	c := startCluster(t, repo, testenv.PostgresOptions{Version: 17, Env: []string{"TUSK_DELTA_MAX_STEPS=3", "TUSK_BACKUP_PART_SIZE=1MiB"},
		Conf: map[string]string{"summarize_wal": "on"}})
	pg, env := c.pg, c.env
	pgbench(t, pg, "-i", "-s", "2", "-q")
	for i := range 3 {
		if i > 0 {
			pg.SQL(t, "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 2000")
		}
		wantExit(t, run(t, bin, env, "backup-push"), 0)
	}
	bs := listChain(t, bin, env)
	full, inc2 := bs[0], bs[2]
	if inc2.ChainDepth != 2 {
		t.Fatalf("backups: %+v", bs)
	}
	fetchFails := func(what, want string) {
		t.Helper()
		dest := filepath.Join(testenv.ServerTempDir(t), "pgdata")
		r := run(t, bin, env, "backup-fetch", dest, inc2.Name)
		wantExit(t, r, 1)
		if line := errorLine(t, r.stderr); !strings.Contains(line, want) {
			t.Errorf("%s: backup-fetch says %q, want it to contain %q", what, line, want)
		}
		if _, err := os.Stat(dest); !os.IsNotExist(err) {
			t.Errorf("%s: the failed restore left %s behind (%v)", what, dest, err)
		}
		r = run(t, bin, env, "verify", inc2.Name)
		wantExit(t, r, 1)
	}

	// A flipped byte in a part of the full backup.
	part := filepath.Join(repo.dir, filepath.FromSlash(full.Parts[len(full.Parts)/2].Key))
	good, err := os.ReadFile(part)
	if err != nil {
		t.Fatal(err)
	}
	bad := slices.Clone(good)
	bad[len(bad)/2] ^= 0xff
	if err := os.WriteFile(part, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	fetchFails("a corrupt part of the full backup", full.Parts[len(full.Parts)/2].Key)
	// The same part gone.
	if err := os.Remove(part); err != nil {
		t.Fatal(err)
	}
	fetchFails("a missing part of the full backup", "is missing from the repository")
	if err := os.WriteFile(part, good, 0o600); err != nil {
		t.Fatal(err)
	}
	wantExit(t, run(t, bin, env, "verify", inc2.Name), 0)

	// The full backup's metadata deleted behind tusk's back.
	if err := os.Remove(filepath.Join(repo.dir, "backups", full.Name+".json")); err != nil {
		t.Fatal(err)
	}
	fetchFails("the full backup deleted", "which the repository no longer holds")
	for _, b := range listChain(t, bin, env) {
		if b.ChainError == "" {
			t.Errorf("backup-list shows %s's chain as sound after its full backup was deleted", b.Name)
		}
	}
	r := run(t, bin, env, "backup-fetch", filepath.Join(testenv.ServerTempDir(t), "pgdata"), "LATEST")
	if r.code == 0 {
		t.Errorf("backup-fetch LATEST restored a chain without its full backup:\n%s", r.stdout)
	}
}

// recoverExactly restores backup name with backup-fetch --recover (and
// args) on the backup's timeline (each restored server promotes and
// archives a new timeline into the same repository), and checks that
// sumQuery answers want and that an index scan counts the 200,000 accounts
// of pgbench scale 2 (stale visibility-map pages would count more).
func recoverExactly(t *testing.T, bin string, env []string, pg *testenv.Postgres, name, sumQuery, want string, args ...string) {
	t.Helper()
	dest := filepath.Join(testenv.ServerTempDir(t), "pgdata")
	r := run(t, bin, env, append([]string{"backup-fetch", dest, name, "--recover", "--json", "--target-timeline", "current", "--pg-bin", pg.ServerBinDir}, args...)...)
	t.Cleanup(func() { stopServer(t, pg, dest) })
	wantExit(t, r, 0)
	sock, port := recovered(t, r)
	if got := psql(t, pg, sock, port, sumQuery); got != want {
		t.Fatalf("restore of %s %v: checksum %s, want %s", name, args, got, want)
	}
	if n := psql(t, pg, sock, port, "SET enable_seqscan = off; SELECT count(*) FROM pgbench_accounts WHERE aid > 0"); n != "200000" {
		t.Fatalf("restore of %s: an index scan counts %s accounts, want 200000", name, n)
	}
	stopServer(t, pg, dest)
}
