package cmd_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/internal/testenv"
	"github.com/tusk-backup/tusk/wal"
)

// localSum is a checksum of what the local-mode tests write: pgbench's
// accounts, the marks, the tablespace's table, the table truncated during
// the backup and whether the one dropped during it is gone.
const localSum = `SELECT md5(string_agg(s, '|')) FROM (
	(SELECT md5(string_agg(aid::text || ':' || abalance::text, ',' ORDER BY aid)) AS s FROM pgbench_accounts)
	UNION ALL (SELECT coalesce(string_agg(n::text, ',' ORDER BY n), '') FROM marks)
	UNION ALL (SELECT count(*)::text FROM in_tablespace)
	UNION ALL (SELECT count(*)::text || ':' || coalesce(sum(g), 0)::text FROM emptied)
	UNION ALL (SELECT (to_regclass('doomed') IS NULL)::text)) q`

// backupStarted reports whether a backup-push has written its
// backup_started.json into repo: the server's backup has started and the
// files are listed.
func backupStarted(t *testing.T, repo repository) bool {
	for _, k := range repo.keys(t) {
		if strings.HasSuffix(k, "/backup_started.json") {
			return true
		}
	}
	return false
}

// backupSessions counts the server's sessions of local-mode backup-pushes:
// the sessions that hold their backups.
func backupSessions(t *testing.T, pg *testenv.Postgres) string {
	out, err := pg.TrySQL(t.Context(), "SELECT count(*) FROM pg_stat_activity WHERE application_name = '"+basebackup.LocalApplicationName+"'")
	if err != nil {
		return err.Error()
	}
	return out
}

// TestIntegrationLocalMode: backup-push --mode local under pgbench load,
// with a tablespace, a table dropped and one truncated while it reads the
// files, on PostgreSQL 15 (manifest version 1, checked by pg_verifybackup)
// and 17 (version 2): the backup says its mode, the restore to a moment
// after it has exactly that moment's data, and verify --deep passes. The
// same on 15 with --mode remote, which the other tests (passing PGDATA, so
// local by default) mostly leave to the basebackup package's.
func TestIntegrationLocalMode(t *testing.T) {
	bin := testenv.BuildTusk(t)
	for _, c := range []struct {
		v    int
		mode string
	}{{15, basebackup.ModeLocal}, {17, basebackup.ModeLocal}, {15, basebackup.ModeRemote}} {
		v, mode := c.v, c.mode
		t.Run(fmt.Sprintf("%d-%s", v, mode), func(t *testing.T) {
			t.Parallel()
			repo := folderRepo(t)
			c := startCluster(t, repo, testenv.PostgresOptions{Version: v, Env: []string{"TUSK_BACKUP_PART_SIZE=4MiB"}})
			pg, env := c.pg, c.env
			tsDir := testenv.ServerTempDir(t)
			pg.SQL(t, "CREATE TABLESPACE ts LOCATION '"+tsDir+"'")
			pg.SQL(t, "CREATE TABLE in_tablespace TABLESPACE ts AS SELECT g AS n FROM generate_series(1, 50000) g")
			pg.SQL(t, "CREATE TABLE marks (n int)")
			// Small tables: read last (the readers take the largest files
			// first), so they are dropped and truncated before or while
			// they are read.
			pg.SQL(t, "CREATE TABLE doomed AS SELECT g, md5(g::text) AS h FROM generate_series(1, 30000) g")
			pg.SQL(t, "CREATE TABLE emptied TABLESPACE ts AS SELECT g, md5(g::text) AS h FROM generate_series(1, 30000) g")
			pgbench(t, pg, "-i", "-s", "4", "-q")

			load := pg.RunAsOwner(t.Context(), filepath.Join(pg.BinDir, "pgbench"), "-T", "4", "-c", "2", "-n")
			if err := load.Start(); err != nil {
				t.Fatal(err)
			}
			// zstd makes the backup slow enough for the changes below to
			// land while it runs (checked after, against its end LSN).
			push := tuskCommand(t.Context(), bin, append(env, "TUSK_LOG_LEVEL=debug", "TUSK_COMPRESSION=zstd"), "backup-push", "--mode", mode, pg.DataDir)
			var out, errOut bytes.Buffer
			push.Stdout, push.Stderr = &out, &errOut
			if err := push.Start(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, time.Minute, func() bool { return backupStarted(t, repo) })
			pg.SQL(t, "DROP TABLE doomed")
			pg.SQL(t, "TRUNCATE emptied")
			pg.SQL(t, "INSERT INTO emptied SELECT g, 'again' FROM generate_series(1, 10) g")
			changed := pg.SQL(t, "SELECT pg_current_wal_lsn()")
			err := push.Wait()
			load.Wait()
			if err != nil {
				t.Fatalf("backup-push --mode %s: %v\n%s%s", mode, err, out.String(), errOut.String())
			}
			t.Logf("%s", strings.TrimSpace(out.String()))
			if !strings.Contains(out.String(), mode+" mode") {
				t.Errorf("the summary line does not say %s mode: %s", mode, out.String())
			}
			for _, l := range strings.Split(errOut.String(), "\n") {
				if strings.Contains(l, "vanished") || strings.Contains(l, "shrank") {
					t.Logf("%s", l)
				}
			}
			metas := listBackups(t, bin, env)
			if len(metas) != 1 {
				t.Fatalf("backup-list: %d backups, want 1", len(metas))
			}
			m := metas[0]
			if m.Mode != mode || len(m.BadPages) != 0 || len(m.Tablespaces) != 2 {
				t.Fatalf("metadata: mode %q, bad pages %v, tablespaces %+v; want %s, none, ts and the data directory", m.Mode, m.BadPages, m.Tablespaces, mode)
			}
			if lsn, err := wal.ParseLSN(changed); err != nil || lsn >= m.EndLSN {
				t.Fatalf("the drop and truncate (to %s) were not during the backup (%s to %s): %v", changed, m.StartLSN, m.EndLSN, err)
			}

			// A moment after the backup, with more writes after it.
			pgbench(t, pg, "-t", "200", "-c", "2", "-n")
			pg.SQL(t, "INSERT INTO marks VALUES (1)")
			want := pg.SQL(t, localSum)
			target := pg.SQL(t, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
			pgbench(t, pg, "-t", "200", "-c", "2", "-n")
			pg.SQL(t, "INSERT INTO marks VALUES (2)")
			last := pg.SQL(t, "SELECT pg_walfile_name(pg_switch_wal())")
			waitWAL(t, bin, env, 1, m.StartWAL, last)

			// The stored manifest is PostgreSQL's: 15's pg_verifybackup
			// reads version 1; verify --deep reads both.
			plain := filepath.Join(testenv.ServerTempDir(t), "plain")
			wantExit(t, run(t, bin, env, "backup-fetch", plain, m.Name, "--tablespace-mapping", tsDir+"="+filepath.Join(testenv.ServerTempDir(t), "ts")), 0)
			manifest, err := os.ReadFile(filepath.Join(plain, "backup_manifest"))
			if err != nil {
				t.Fatal(err)
			}
			wantVersion := `"PostgreSQL-Backup-Manifest-Version": 1,`
			if v >= 17 {
				wantVersion = `"PostgreSQL-Backup-Manifest-Version": 2,` + "\n" + `"System-Identifier": ` + m.SystemID + ","
			}
			if !bytes.HasPrefix(manifest, []byte("{ "+wantVersion)) {
				t.Errorf("backup_manifest starts %.120q, want %q", manifest, wantVersion)
			}
			if v <= 16 {
				if out, err := exec.Command(filepath.Join(pg.BinDir, "pg_verifybackup"), "-n", plain).CombinedOutput(); err != nil {
					t.Fatalf("pg_verifybackup: %v\n%s", err, out)
				}
			}
			wantExit(t, run(t, bin, env, "verify", m.Name, "--deep"), 0)
			for _, f := range []string{"postmaster.pid", "pg_wal/000000010000000000000001", "pg_internal.init"} {
				if _, err := os.Stat(filepath.Join(plain, f)); err == nil {
					t.Errorf("the restore holds %s, which a backup leaves out", f)
				}
			}
			if label, err := os.ReadFile(filepath.Join(plain, "backup_label")); err != nil || !strings.Contains(string(label), "START WAL LOCATION: "+m.StartLSN.String()) {
				t.Errorf("backup_label %q (%v) is not the backup's", label, err)
			}

			dest := filepath.Join(testenv.ServerTempDir(t), "pgdata")
			r := run(t, bin, env, "backup-fetch", dest, m.Name, "--recover", "--json", "--pg-bin", pg.ServerBinDir, "--target-time", target,
				"--target-action", "promote", "--target-timeline", "current", "--tablespace-mapping", tsDir+"="+filepath.Join(testenv.ServerTempDir(t), "ts"))
			t.Cleanup(func() { stopServer(t, pg, dest) })
			wantExit(t, r, 0)
			sock, port := recovered(t, r)
			if got := psql(t, pg, sock, port, localSum); got != want {
				t.Fatalf("restored data checksum %s, want %s (the moment recorded)", got, want)
			}
		})
	}
}

// TestIntegrationLocalBadPage: a page corrupted on disk is reported by file
// and block, on stderr and in the metadata, and the backup is kept; with
// --fail-on-bad-page backup-push fails and records nothing.
func TestIntegrationLocalBadPage(t *testing.T) {
	bin := testenv.BuildTusk(t)
	t.Parallel()
	repo := folderRepo(t)
	c := startCluster(t, repo, testenv.PostgresOptions{})
	pg, env := c.pg, c.env
	pg.SQL(t, "CREATE TABLE victim AS SELECT g, md5(g::text) AS h FROM generate_series(1, 10000) g")
	pg.SQL(t, "CHECKPOINT")
	rel := pg.SQL(t, "SELECT pg_relation_filepath('victim')")
	pg.Stop(t)
	f, err := os.OpenFile(filepath.Join(pg.DataDir, rel), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Block 2, in its tuples: the header stays valid.
	if _, err := f.WriteAt([]byte("corrupt!"), 2*8192+5000); err != nil {
		t.Fatal(err)
	}
	f.Close()
	pg.Start(t)

	r := run(t, bin, env, "backup-push", "--mode", "local")
	wantExit(t, r, 0)
	if !strings.Contains(r.stderr, "page checksum failed") || !strings.Contains(r.stderr, "file="+rel) || !strings.Contains(r.stderr, "block=2") {
		t.Errorf("stderr does not name the bad page (%s, block 2):\n%s", rel, r.stderr)
	}
	if !strings.Contains(r.stdout, "1 files with pages failing their checksum") {
		t.Errorf("the summary line does not say a file has bad pages: %s", r.stdout)
	}
	metas := listBackups(t, bin, env)
	if len(metas) != 1 {
		t.Fatalf("backup-list: %d backups, want 1", len(metas))
	}
	if bp := metas[0].BadPages; len(bp) != 1 || bp[0].File != rel || bp[0].Count != 1 || len(bp[0].Blocks) != 1 || bp[0].Blocks[0] != 2 {
		t.Errorf("metadata bad_pages %+v, want %s block 2", bp, rel)
	}

	r = run(t, bin, env, "backup-push", "--mode", "local", "--fail-on-bad-page")
	wantExit(t, r, 1)
	if line := errorLine(t, r.stderr); !strings.Contains(line, "failed their checksum") {
		t.Errorf("error %q does not say pages failed their checksum", line)
	}
	if n := len(listBackups(t, bin, env)); n != 1 {
		t.Errorf("backup-list: %d backups after --fail-on-bad-page, want the 1 from before", n)
	}
}

// TestIntegrationLocalRefusesOtherPGDATA: local mode reads only the
// server's own data directory: another cluster's is refused (as in remote
// mode), and so is a copy of this one (same system identifier, no running
// server); without --mode, such a copy gets a remote backup.
func TestIntegrationLocalRefusesOtherPGDATA(t *testing.T) {
	bin := testenv.BuildTusk(t)
	t.Parallel()
	repo := folderRepo(t)
	c := startCluster(t, repo, testenv.PostgresOptions{})
	pg, env := c.pg, c.env
	other := testenv.NewPostgres(t, testenv.PostgresOptions{})
	other.InitDB(t)
	r := run(t, bin, env, "backup-push", "--mode", "local", other.DataDir)
	wantExit(t, r, 1)
	if line := errorLine(t, r.stderr); !strings.Contains(line, "belongs to another cluster") {
		t.Errorf("another cluster's PGDATA: %s", line)
	}

	wantExit(t, run(t, bin, env, "backup-push", "--mode", "remote"), 0)
	backups := listBackups(t, bin, env)
	if len(backups) != 1 || backups[0].Mode != basebackup.ModeRemote {
		t.Fatalf("backup-list after --mode remote: %+v", backups)
	}
	cp := filepath.Join(testenv.ServerTempDir(t), "copy")
	wantExit(t, run(t, bin, env, "backup-fetch", cp, backups[0].Name), 0)
	r = run(t, bin, env, "backup-push", "--mode", "local", cp)
	wantExit(t, r, 1)
	if line := errorLine(t, r.stderr); !strings.Contains(line, "needs the server's own data directory") {
		t.Errorf("a copy of the data directory: %s", line)
	}
	r = run(t, bin, env, "backup-push", cp)
	wantExit(t, r, 0)
	if !strings.Contains(r.stdout, "remote mode") {
		t.Errorf("backup-push of a copy without --mode: %s, want remote mode", r.stdout)
	}
	r = run(t, bin, env, "backup-push", pg.DataDir)
	wantExit(t, r, 0)
	if !strings.Contains(r.stdout, "local mode") {
		t.Errorf("backup-push of the server's PGDATA without --mode: %s, want local mode", r.stdout)
	}
}

// TestIntegrationLocalKill9: a local-mode backup-push killed while it reads
// the files leaves no listed backup and no backup running on the server
// (the non-exclusive backup ends with its session), and the next one
// succeeds.
func TestIntegrationLocalKill9(t *testing.T) {
	bin := testenv.BuildTusk(t)
	t.Parallel()
	repo := folderRepo(t)
	c := startCluster(t, repo, testenv.PostgresOptions{Env: []string{"TUSK_BACKUP_PART_SIZE=1MiB", "TUSK_COMPRESSION=zstd"}})
	pg, env := c.pg, c.env
	pgbench(t, pg, "-i", "-s", "10", "-q")
	push := tuskCommand(t.Context(), bin, env, "backup-push", "--mode", "local")
	if err := push.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { push.Process.Kill(); push.Wait() })
	waitFor(t, time.Minute, func() bool { return backupStarted(t, repo) })
	if n := backupSessions(t, pg); n != "1" {
		t.Fatalf("%s sessions hold a backup while backup-push runs, want 1", n)
	}
	push.Process.Signal(syscall.SIGKILL)
	if err := push.Wait(); err == nil {
		t.Fatal("backup-push finished before the kill: make the backup slower")
	}
	waitFor(t, time.Minute, func() bool { return backupSessions(t, pg) == "0" })
	waitBackupLockFree(t, pg)
	if bs := listBackups(t, bin, env); len(bs) != 0 {
		t.Fatalf("backup-list after the kill: %v, want none", names(bs))
	}
	wantExit(t, run(t, bin, env, "backup-push", "--mode", "local"), 0)
	bs := listBackups(t, bin, env)
	if len(bs) != 1 {
		t.Fatalf("backup-list: %v, want one backup", names(bs))
	}
	wantExit(t, run(t, bin, env, "verify", bs[0].Name, "--deep"), 0)
}
