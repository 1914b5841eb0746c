package cmd_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	tusk "github.com/tusk-backup/tusk/cmd"
	"github.com/tusk-backup/tusk/internal/testenv"
)

// dataSum is a checksum of everything the tests write: pgbench's accounts
// and the marks table.
const dataSum = `SELECT md5(string_agg(s, '|')) FROM (
	(SELECT md5(string_agg(aid::text || ':' || abalance::text, ',' ORDER BY aid)) AS s FROM pgbench_accounts)
	UNION ALL (SELECT coalesce(string_agg(n::text, ',' ORDER BY n), '') FROM marks)
	UNION ALL (SELECT count(*)::text FROM in_tablespace)) q`

// point is a moment recorded on the primary, to recover to.
type point struct {
	time, lsn, xid, name, sum string
}

// TestIntegrationBackupPITR: backup-push under load, then backup-fetch
// --recover to each kind of target restores exactly the data of that moment,
// into a new data directory with a mapped tablespace, and the restored
// directory passes pg_verifybackup against the stored manifest.
func TestIntegrationBackupPITR(t *testing.T) {
	bin := testenv.BuildTusk(t)
	for kind, repo := range repos(t) {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			// Several parts, and files split across them.
			c := startCluster(t, repo, testenv.PostgresOptions{Env: []string{"TUSK_BACKUP_PART_SIZE=4MiB"}})
			pg, env := c.pg, c.env
			tsDir := testenv.ServerTempDir(t)
			pg.SQL(t, "CREATE TABLESPACE ts LOCATION '"+tsDir+"'")
			pg.SQL(t, "CREATE TABLE in_tablespace TABLESPACE ts AS SELECT g AS n FROM generate_series(1, 50000) g")
			pg.SQL(t, "CREATE TABLE marks (n int)")
			pgbench(t, pg, "-i", "-s", "4", "-q")

			// A backup under load.
			load := pg.RunAsOwner(t.Context(), filepath.Join(pg.BinDir, "pgbench"), "-T", "4", "-c", "2", "-n")
			if err := load.Start(); err != nil {
				t.Fatal(err)
			}
			r := run(t, bin, env, "backup-push", pg.DataDir)
			load.Wait()
			wantExit(t, r, 0)
			t.Logf("%s", strings.TrimSpace(r.stdout))

			// Moments to recover to, with more writes between them.
			var points []point
			for i := 1; i <= 3; i++ {
				pgbench(t, pg, "-t", "200", "-c", "2", "-n")
				pg.SQL(t, "INSERT INTO marks VALUES ("+strconv.Itoa(i)+")")
				var p point
				p.sum = pg.SQL(t, dataSum)
				p.xid = pg.SQL(t, "SELECT xmin FROM marks WHERE n = "+strconv.Itoa(i))
				p.name = "rp" + strconv.Itoa(i)
				p.lsn = pg.SQL(t, "SELECT pg_create_restore_point('"+p.name+"')")
				time.Sleep(20 * time.Millisecond)
				p.time = pg.SQL(t, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
				time.Sleep(20 * time.Millisecond)
				points = append(points, p)
			}
			pgbench(t, pg, "-t", "200", "-c", "2", "-n")
			pg.SQL(t, "INSERT INTO marks VALUES (99)")
			archiveWAL(t, pg)

			metas := listBackups(t, bin, env)
			if len(metas) != 1 {
				t.Fatalf("backup-list --json: %d backups, want 1: %v", len(metas), names(metas))
			}
			if len(metas[0].Parts) < 4 {
				t.Fatalf("backup has %d parts, want several at a 4 MiB part size", len(metas[0].Parts))
			}

			// pg_verifybackup checks the restored files against the manifest.
			plain := filepath.Join(testenv.ServerTempDir(t), "plain")
			plainTS := filepath.Join(testenv.ServerTempDir(t), "plain-ts")
			wantExit(t, run(t, bin, env, "backup-fetch", plain, metas[0].Name, "--tablespace-mapping", tsDir+"="+plainTS), 0)
			verify := exec.Command(filepath.Join(pg.BinDir, "pg_verifybackup"), "-n", plain)
			if out, err := verify.CombinedOutput(); err != nil {
				t.Fatalf("pg_verifybackup: %v\n%s", err, out)
			}

			cases := []struct {
				name string
				args []string
				want string
			}{
				{"time", []string{"--target-time", points[0].time}, points[0].sum},
				{"lsn", []string{"--target-lsn", points[1].lsn}, points[1].sum},
				{"xid", []string{"--target-xid", points[2].xid}, points[2].sum},
				{"name", []string{"--target-name", points[1].name}, points[1].sum},
			}
			if kind == "s3" {
				cases = cases[1:3] // the folder covers the rest; keep the run short
			}
			for _, c := range cases {
				dest := filepath.Join(testenv.ServerTempDir(t), "pgdata")
				ts := filepath.Join(testenv.ServerTempDir(t), "ts")
				// Each restored server promotes and archives its new timeline
				// into the same repository, so stay on the backup's timeline.
				args := append([]string{"backup-fetch", dest, "LATEST", "--recover", "--json", "--target-action", "promote", "--target-timeline", "current",
					"--tablespace-mapping", tsDir + "=" + ts}, c.args...)
				r := run(t, bin, env, args...)
				t.Cleanup(func() { stopServer(t, pg, dest) })
				if r.code != 0 {
					ls, _ := exec.Command("ls", "-la", dest).CombinedOutput()
					t.Fatalf("%s: backup-fetch --recover: exit %d\n%s%s\n%s", c.name, r.code, r.stdout, r.stderr, ls)
				}
				if res := decode[tusk.FetchResult](t, r); res.Recovery == nil || res.Recovery.State != "promoted" {
					t.Fatalf("%s: backup-fetch --json: not promoted\n%s", c.name, r.stdout)
				}
				sock, port := recovered(t, r)
				got := psql(t, pg, sock, port, dataSum)
				if got != c.want {
					t.Fatalf("%s: restored data checksum %s, want %s (the moment recorded)", c.name, got, c.want)
				}
				if c.name == "time" {
					// After the timeline switch: write on the promoted server,
					// which archives its new timeline into the same repository,
					// and recover to a moment on that timeline.
					tli := psql(t, pg, sock, port, "SELECT timeline_id FROM pg_control_checkpoint()")
					psql(t, pg, sock, port, "INSERT INTO marks VALUES (1000)")
					afterSum := psql(t, pg, sock, port, dataSum)
					time.Sleep(20 * time.Millisecond)
					after := psql(t, pg, sock, port, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
					time.Sleep(20 * time.Millisecond)
					psql(t, pg, sock, port, "INSERT INTO marks VALUES (1001)")
					seg := psql(t, pg, sock, port, "SELECT pg_walfile_name(pg_current_wal_lsn())")
					psql(t, pg, sock, port, "SELECT pg_switch_wal()")
					waitArchivedIn(t, bin, env, seg)
					stopServer(t, pg, dest)
					dest2 := filepath.Join(testenv.ServerTempDir(t), "pgdata")
					r := run(t, bin, env, "backup-fetch", dest2, "LATEST", "--recover", "--json", "--target-action", "promote",
						"--target-timeline", tli, "--target-time", after, "--tablespace-mapping", tsDir+"="+filepath.Join(testenv.ServerTempDir(t), "ts"))
					t.Cleanup(func() { stopServer(t, pg, dest2) })
					wantExit(t, r, 0)
					sock2, port2 := recovered(t, r)
					if got := psql(t, pg, sock2, port2, dataSum); got != afterSum {
						t.Fatalf("restore to a moment on timeline %s: checksum %s, want %s", tli, got, afterSum)
					}
					stopServer(t, pg, dest2)
				}
				stopServer(t, pg, dest)
			}
		})
	}
}

// TestIntegrationBackupFailures: a kill -9 of backup-push mid-stream leaves
// no listed backup and the next backup-push succeeds; bad input to
// backup-push and backup-fetch is one sentence, a non-zero exit, and no
// change to data.
func TestIntegrationBackupFailures(t *testing.T) {
	bin := testenv.BuildTusk(t)
	repo := folderRepo(t)
	repoDir := repo.dir
	c := startCluster(t, repo, testenv.PostgresOptions{})
	pg := c.pg
	env := append(c.env, "TUSK_BACKUP_PART_SIZE=1MiB")

	// Nothing to restore yet (the repository exists once the server has
	// archived a segment; before that it is not there at all).
	dest := filepath.Join(t.TempDir(), "pgdata")
	r := run(t, bin, env, "backup-fetch", dest, "LATEST")
	if line := errorLine(t, r.stderr); r.code == 0 || !strings.Contains(line, "holds no backups") && !strings.Contains(line, "no tusk repository there") {
		t.Fatalf("backup-fetch LATEST on an empty repository: exit %d: %s", r.code, r.stderr)
	}

	pgbench(t, pg, "-i", "-s", "20", "-q")
	// Throttle the server's sender so that the kill lands mid-stream.
	pg.SQL(t, "ALTER SYSTEM SET max_wal_senders = 10")
	for i := 0; i < 3; i++ {
		cmd := tuskCommand(t.Context(), bin, env, "backup-push")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait for the first part to be stored, then kill.
		waitFor(t, time.Minute, func() bool {
			m, _ := filepath.Glob(filepath.Join(repoDir, "backups", "*", "*", "base.*"))
			return len(m) > 0
		})
		time.Sleep(time.Duration(i*30) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		waitBackupLockFree(t, pg)
		r := run(t, bin, env, "backup-list", "--json")
		if r.code != 0 || strings.TrimSpace(r.stdout) != "[]" {
			t.Fatalf("after kill -9 #%d, backup-list: exit %d\n%s", i+1, r.code, r.stdout)
		}
		// The leftovers are garbage: kept while young (a backup-push may be
		// running), removed with their temporary files once old enough.
		files := func() []string {
			var fs []string
			filepath.WalkDir(filepath.Join(repoDir, "backups"), func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					fs = append(fs, p)
				}
				return nil
			})
			return fs
		}
		if i == 0 {
			n := len(files())
			if r := run(t, bin, env, "delete", "garbage", "--confirm"); r.code != 0 || len(files()) != n {
				t.Fatalf("delete garbage touched a young leftover: exit %d, %d files of %d left\n%s%s", r.code, len(files()), n, r.stdout, r.stderr)
			}
		}
		if r := run(t, bin, env, "delete", "garbage", "BACKUPS", "--confirm", "--leftover-age", "0s"); r.code != 0 || len(files()) != 0 {
			t.Fatalf("delete garbage BACKUPS --leftover-age 0s: exit %d, left %v\n%s%s", r.code, files(), r.stdout, r.stderr)
		}
	}
	wantExit(t, run(t, bin, env, "backup-push"), 0)
	list := run(t, bin, env, "backup-list", "--json")
	metas := listedMetas(t, list)
	if len(metas) != 1 {
		t.Fatalf("backup-list after a good push: %d backups, want 1\n%s", len(metas), list.stdout)
	}
	name := metas[0].Name

	nonEmpty := t.TempDir()
	os.WriteFile(filepath.Join(nonEmpty, "keep"), []byte("x"), 0o600)
	otherDir := t.TempDir()
	before := metas[0].FinishTime.Add(-time.Hour).Format(time.RFC3339)
	cases := []struct {
		name string
		args []string
		want string
		code int
	}{
		{"non-empty DEST", []string{"backup-fetch", nonEmpty, name}, nonEmpty + " is not empty", 1},
		{"unknown backup", []string{"backup-fetch", dest, "base_000000010000000000000099_20200101T000000Z"}, "no such backup", 1},
		{"malformed name", []string{"backup-fetch", dest, "../x"}, "is not a backup name", 2},
		{"target before the backup", []string{"backup-fetch", dest, name, "--target-time", before}, "after the target time", 2},
		{"no backup before the target", []string{"backup-fetch", dest, "LATEST", "--target-time", before}, "no backup finished before the target", 2},
		{"bad target time", []string{"backup-fetch", dest, "LATEST", "--target-time", "yesterday"}, "is not a time with a zone", 2},
		{"two targets", []string{"backup-fetch", dest, "LATEST", "--target-xid", "5", "--target-name", "x"}, "at most one of", 2},
		{"bad action", []string{"backup-fetch", dest, "LATEST", "--target-xid", "5", "--target-action", "explode"}, "is not pause, promote or shutdown", 2},
		{"xid too large", []string{"backup-fetch", dest, "LATEST", "--target-xid", "99999999999999999999999"}, "is too large for a transaction id", 2},
		{"LSN 0/0", []string{"backup-fetch", dest, "LATEST", "--target-lsn", "0/0"}, "is the start of WAL, never a place recovery stops", 2},
		{"malformed LSN", []string{"backup-fetch", dest, "LATEST", "--target-lsn", "0-3000060"}, "is not a WAL position", 2},
		{"delete before a malformed time", []string{"delete", "before", "2026-13-45", "--confirm"}, `delete before "2026-13-45" is not a valid time`, 2},
		{"wrong PGDATA", []string{"backup-push", otherDir}, "is not a PostgreSQL data directory", 1},
		{"server down", []string{"backup-push", "--pg-conn", "host=" + otherDir + " port=1"}, "connect to PostgreSQL", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := run(t, bin, env, c.args...)
			wantExit(t, r, c.code)
			if line := errorLine(t, r.stderr); !strings.Contains(line, c.want) {
				t.Fatalf("error %q does not say %q", line, c.want)
			}
		})
	}
	if _, err := os.Stat(dest); err == nil {
		t.Fatal("a refused backup-fetch created DEST")
	}
	if des, _ := os.ReadDir(nonEmpty); len(des) != 1 {
		t.Fatal("a refused backup-fetch changed the non-empty DEST")
	}
	if list2 := run(t, bin, env, "backup-list", "--json"); list2.stdout != list.stdout {
		t.Fatal("bad input changed the repository's backups")
	}
}

// TestIntegrationBackupNeedsArchiving: a backup waits for its WAL to be in
// the repository, so backup-push refuses, in one sentence, a server whose
// archiving is off or failing instead of hanging or taking a backup that
// cannot be restored, and fails once the server has archived the backup's
// WAL somewhere else.
func TestIntegrationBackupNeedsArchiving(t *testing.T) {
	bin := testenv.BuildTusk(t)
	repo := []string{"TUSK_REPO=file://" + testenv.ServerTempDir(t)}
	other := testenv.ServerTempDir(t)
	for _, c := range []struct {
		name, archiveCommand, want string
	}{
		{"archive_mode off", "", "archive_mode is off"},
		{"archiving failing", "false", "WAL archiving is failing"},
		{"archived elsewhere", "TUSK_REPO=file://" + other + " " + bin + " wal-push %p", "archive_command stores WAL somewhere else"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			pg := testenv.StartPostgres(t, testenv.PostgresOptions{ArchiveCommand: c.archiveCommand})
			if c.archiveCommand == "false" {
				pg.SQL(t, "CREATE TABLE x AS SELECT 1; SELECT pg_switch_wal()")
				waitFor(t, time.Minute, func() bool {
					n, err := pg.TrySQL(t.Context(), "SELECT failed_count FROM pg_stat_archiver")
					return err == nil && n != "0"
				})
			}
			r := run(t, bin, append(append([]string{}, repo...), pg.Env()...), "backup-push")
			if r.code != 1 || !strings.Contains(errorLine(t, r.stderr), c.want) {
				t.Fatalf("exit %d, want 1 and %q: %s", r.code, c.want, r.stderr)
			}
			if list := run(t, bin, repo, "backup-list"); strings.Contains(list.stdout, "base_") {
				t.Fatalf("a failed backup-push left a listed backup:\n%s", list.stdout)
			}
		})
	}
}

// TestIntegrationStandbyFromBackup: backup-fetch --standby makes a replica
// that catches up from the archive and then streams from the primary.
func TestIntegrationStandbyFromBackup(t *testing.T) {
	bin := testenv.BuildTusk(t)
	repo := folderRepo(t)
	c := startCluster(t, repo, testenv.PostgresOptions{})
	pg, env := c.pg, c.env
	pg.SQL(t, "CREATE TABLE marks (n int); INSERT INTO marks VALUES (1)")
	wantExit(t, run(t, bin, env, "backup-push"), 0)
	// Written after the backup and archived: the standby gets it from the archive.
	pg.SQL(t, "INSERT INTO marks VALUES (2)")
	archiveWAL(t, pg)

	sb := startStandby(t, bin, repo, pg)
	// Written now: reaches the standby only by streaming.
	pg.SQL(t, "INSERT INTO marks VALUES (3)")
	waitFor(t, time.Minute, func() bool { return sb.sql(t, pg, "SELECT string_agg(n::text, ',' ORDER BY n) FROM marks") == "1,2,3" })

	// A backup of the standby (archive_mode = always): the standby cannot
	// switch WAL itself, so the primary does, as archive_timeout would.
	wantExit(t, pushFromStandby(t, bin, sb.env, pg), 0)
	list := run(t, bin, env, "backup-list", "--json")
	metas := listedMetas(t, list)
	if len(metas) != 2 || !metas[1].FromStandby {
		t.Fatalf("backup-list after a backup from the standby:\n%s", list.stdout)
	}
	// It restores and replays.
	want := pg.SQL(t, "SELECT string_agg(n::text, ',' ORDER BY n) FROM marks")
	archiveWAL(t, pg)
	dest2 := filepath.Join(testenv.ServerTempDir(t), "pgdata")
	r := run(t, bin, env, "backup-fetch", dest2, metas[1].Name, "--recover", "--json", "--target-timeline", "current")
	t.Cleanup(func() { stopServer(t, pg, dest2) })
	wantExit(t, r, 0)
	sock, port := recovered(t, r)
	if got := psql(t, pg, sock, port, "SELECT string_agg(n::text, ',' ORDER BY n) FROM marks"); got != want {
		t.Fatalf("restored from the standby's backup: marks %s, want %s", got, want)
	}
}

// TestIntegrationConcurrentBackupPush: a second backup-push on a server that
// is being backed up refuses in one sentence (tusk's backup lock, held by the
// first run's connection), and backup-push runs started together never record
// a backup that does not verify, nor two under one name.
func TestIntegrationConcurrentBackupPush(t *testing.T) {
	bin := testenv.BuildTusk(t)
	c := startCluster(t, folderRepo(t), testenv.PostgresOptions{})
	pg := c.pg
	env := append(c.env, "TUSK_BACKUP_PART_SIZE=1MiB")
	pgbench(t, pg, "-i", "-s", "5", "-q")

	// Another session holds the lock, as a running backup-push's connection
	// does: backup-push refuses, and runs once it is released.
	// It is connected to another database than backup-push: advisory
	// locks are per database, and the lock must hold server-wide.
	holder := pg.RunAsOwner(t.Context(), filepath.Join(pg.BinDir, "psql"), "-XAtq", "-v", "ON_ERROR_STOP=1",
		"-h", pg.SocketDir, "-p", strconv.Itoa(pg.Port), "-U", "postgres", "-d", "template1")
	stdin, err := holder.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); holder.Wait() })
	fmt.Fprintln(stdin, "SELECT pg_advisory_lock(1953723243, 1);")
	waitFor(t, time.Minute, func() bool { return backupLockHolders(t, pg) == "1" })
	r := run(t, bin, env, "backup-push")
	if line := errorLine(t, r.stderr); r.code == 0 || !strings.Contains(line, "another tusk backup-push is already backing up this server") {
		t.Fatalf("backup-push while the lock is held: exit %d, %s", r.code, r.stderr)
	}
	if list := run(t, bin, env, "backup-list", "--json"); strings.TrimSpace(list.stdout) != "[]" {
		t.Fatalf("a refused backup-push left a backup:\n%s", list.stdout)
	}
	stdin.Close()
	holder.Wait()
	waitBackupLockFree(t, pg)

	// Three at once: each waits for the lock (up to 10 s) or refuses with
	// the sentence; those that run record distinct, verifiable backups.
	type result struct {
		code   int
		stderr string
	}
	results := make(chan result, 3)
	for range 3 {
		go func() {
			cmd := tuskCommand(t.Context(), bin, env, "backup-push")
			var e bytes.Buffer
			cmd.Stderr = &e
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				code = -1
			}
			results <- result{code, e.String()}
		}()
	}
	ok := 0
	for range 3 {
		r := <-results
		switch {
		case r.code == 0:
			ok++
		case !strings.Contains(r.stderr, "another tusk backup-push is already backing up this server"):
			t.Fatalf("a concurrent backup-push failed otherwise: exit %d\n%s", r.code, r.stderr)
		}
	}
	list := run(t, bin, env, "backup-list", "--json")
	if metas := listedMetas(t, list); len(metas) != ok || ok == 0 {
		t.Fatalf("%d runs succeeded; backup-list:\n%s", ok, list.stdout)
	}
	wantExit(t, run(t, bin, env, "verify", "--all"), 0)
	t.Logf("%d of 3 concurrent runs recorded a backup", ok)
}

// backupLockHolders counts the sessions that hold tusk's backup lock.
func backupLockHolders(t *testing.T, pg *testenv.Postgres) string {
	out, err := pg.TrySQL(t.Context(), "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 1953723243 AND objid = 1 AND granted")
	if err != nil {
		return err.Error()
	}
	return out
}

// waitBackupLockFree waits until no session holds tusk's backup lock: the
// server process of a killed backup-push ends once it notices.
func waitBackupLockFree(t *testing.T, pg *testenv.Postgres) {
	t.Helper()
	waitFor(t, time.Minute, func() bool { return backupLockHolders(t, pg) == "0" })
}
