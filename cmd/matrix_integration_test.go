package cmd_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	tusk "github.com/tusk-backup/tusk/cmd"
	"github.com/tusk-backup/tusk/internal/testenv"
	"github.com/tusk-backup/tusk/verify"
)

// matrixSum is a checksum of the data the matrix test writes.
const matrixSum = `SELECT md5(string_agg(s, '|')) FROM (
	(SELECT md5(string_agg(aid::text || ':' || abalance::text, ',' ORDER BY aid)) AS s FROM pgbench_accounts)
	UNION ALL (SELECT count(*)::text FROM in_tablespace)) q`

// TestIntegrationMatrix: the whole cycle on each other PostgreSQL major
// version (15 has the full suite): WAL archived under a pgbench load,
// backup-push under load (with a tablespace), backup-fetch --recover to a
// time and to a restore point with exactly that moment's data, the backup
// manifest checked (by 15's pg_verifybackup where it reads the manifest's
// version, and by verify --deep always), and a promotion whose new timeline
// is archived; check and wal-verify --server read the server's archiving
// state.
func TestIntegrationMatrix(t *testing.T) {
	bin := testenv.BuildTusk(t)
	for _, v := range testenv.MatrixVersions {
		t.Run(fmt.Sprint(v), func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			testMatrixVersion(t, bin, v)
			t.Logf("PostgreSQL %d: the cycle took %v", v, time.Since(start).Round(100*time.Millisecond))
		})
	}
}

func testMatrixVersion(t *testing.T, bin string, v int) {
	// One repository kind per version: MinIO for 17, a folder otherwise.
	repo := folderRepo(t)
	if v == 17 {
		repo = s3Repo(t)
	}
	// Several parts, files split across them.
	c := startCluster(t, repo, testenv.PostgresOptions{Version: v, Env: []string{"TUSK_BACKUP_PART_SIZE=4MiB"}})
	pg, env := c.pg, c.env
	if got := pg.SQL(t, "SELECT current_setting('server_version_num')::int / 10000"); got != fmt.Sprint(v) {
		t.Fatalf("the server is PostgreSQL %s, want %d", got, v)
	}
	tsDir := testenv.ServerTempDir(t)
	pg.SQL(t, "CREATE TABLESPACE ts LOCATION '"+tsDir+"'")
	pg.SQL(t, "CREATE TABLE in_tablespace TABLESPACE ts AS SELECT g AS n FROM generate_series(1, 20000) g")
	pg.SQL(t, "CREATE TABLE marks (n int)")
	pgbench(t, pg, "-i", "-s", "2", "-q")

	// backup-push while pgbench writes.
	load := pg.RunAsOwner(t.Context(), filepath.Join(pg.BinDir, "pgbench"), "-T", "3", "-c", "2", "-n")
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
	t.Logf("%s", strings.TrimSpace(r.stdout))
	backups := listBackups(t, bin, env)
	if len(backups) != 1 {
		t.Fatalf("backup-list shows %d backups, want 1", len(backups))
	}
	b := backups[0]
	if b.Mode != "local" {
		t.Fatalf("backup-push PGDATA on the database host took a %q backup, want local mode", b.Mode)
	}
	// The other mode (BASE_BACKUP over the replication protocol), which
	// the point-in-time restores below use (LATEST).
	r = run(t, bin, env, "backup-push", "--mode", "remote", pg.DataDir)
	wantExit(t, r, 0)
	wantExit(t, run(t, bin, env, "verify", "LATEST", "--deep"), 0)

	// Two moments, with writes before, between and after them: a time
	// (read after the commit of marks 1, so before any later commit) and a
	// restore point.
	pgbench(t, pg, "-t", "100", "-c", "2", "-n")
	pg.SQL(t, "INSERT INTO marks VALUES (1)")
	atTime := pg.SQL(t, matrixSum)
	targetTime := pg.SQL(t, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
	pgbench(t, pg, "-t", "100", "-c", "2", "-n")
	pg.SQL(t, "INSERT INTO marks VALUES (2)")
	atName := pg.SQL(t, matrixSum)
	pg.SQL(t, "SELECT pg_create_restore_point('matrix')")
	pgbench(t, pg, "-t", "100", "-c", "2", "-n")
	pg.SQL(t, "INSERT INTO marks VALUES (3)")
	last := pg.SQL(t, "SELECT pg_walfile_name(pg_switch_wal())")
	waitWAL(t, bin, env, 1, b.StartWAL, last)
	// The commands that ask the server about its archiving, on this version.
	for _, args := range [][]string{{"check", "--timeout", "1m"}, {"wal-verify", "--server"}} {
		wantExit(t, run(t, bin, env, args...), 0)
	}

	// The manifest check, on a plain restore.
	plain := filepath.Join(testenv.ServerTempDir(t), "plain")
	mapping := func() string { return tsDir + "=" + filepath.Join(testenv.ServerTempDir(t), "ts") }
	wantExit(t, run(t, bin, env, "backup-fetch", plain, b.Name, "--tablespace-mapping", mapping()), 0)
	manifest, err := os.ReadFile(filepath.Join(plain, "backup_manifest"))
	if err != nil {
		t.Fatal(err)
	}
	manifestVersion := regexp.MustCompile(`"PostgreSQL-Backup-Manifest-Version": (\d+)`).FindSubmatch(manifest)
	if manifestVersion == nil {
		t.Fatalf("backup_manifest has no version:\n%.300s", manifest)
	}
	out, err := exec.Command(filepath.Join(pg.BinDir, "pg_verifybackup"), "-n", plain).CombinedOutput()
	switch mv := string(manifestVersion[1]); {
	case mv == "1" && err != nil:
		t.Fatalf("pg_verifybackup: %v\n%s", err, out)
	case mv == "1":
		t.Logf("manifest version 1: PostgreSQL 15's pg_verifybackup: %s", strings.TrimSpace(string(out)))
	case err == nil:
		t.Logf("manifest version %s: PostgreSQL 15's pg_verifybackup reads it now: %s", mv, strings.TrimSpace(string(out)))
	default:
		// PostgreSQL 17's version 2 adds the system identifier, which 15's
		// pg_verifybackup refuses; verify --deep below stands in.
		t.Logf("manifest version %s: PostgreSQL 15's pg_verifybackup cannot read it (%s); tusk verify --deep checks it",
			mv, strings.TrimSpace(string(out)))
	}
	wantExit(t, run(t, bin, env, "verify", b.Name, "--deep"), 0)

	// Point-in-time restores. Each promotes and archives a new timeline
	// into the same repository, so each stays on the backup's timeline.
	recoverTo := func(target ...string) (sock string, port int, dest string) {
		t.Helper()
		dest = filepath.Join(testenv.ServerTempDir(t), "pgdata")
		args := append([]string{"backup-fetch", dest, "LATEST", "--recover", "--json", "--pg-bin", pg.ServerBinDir,
			"--target-action", "promote", "--target-timeline", "current", "--tablespace-mapping", mapping()}, target...)
		r := run(t, bin, env, args...)
		t.Cleanup(func() { stopServer(t, pg, dest) })
		wantExit(t, r, 0)
		// backup-fetch follows the server log: each version's wording of
		// where recovery stopped must still be understood.
		res := decode[tusk.FetchResult](t, r)
		if rec := res.Recovery; rec == nil || rec.State != "promoted" || rec.StopLSN == "" || rec.Timeline == "" || !strings.HasPrefix(rec.StopReason, "recovery stopping ") {
			t.Errorf("backup-fetch --recover %v: recovery %+v, want promoted with where and why it stopped", target, rec)
		}
		t.Logf("recovery to %v: %+v", target, res.Recovery)
		sock, port = recovered(t, r)
		return sock, port, dest
	}
	check := func(what string, sock string, port int, wantSum, wantMarks string) {
		t.Helper()
		if got := psql(t, pg, sock, port, "SELECT coalesce(string_agg(n::text, ',' ORDER BY n), '') FROM marks"); got != wantMarks {
			t.Errorf("restored to %s: marks %q, want %q", what, got, wantMarks)
		}
		if got := psql(t, pg, sock, port, matrixSum); got != wantSum {
			t.Errorf("restored to %s: data checksum %s, want %s (the moment recorded)", what, got, wantSum)
		}
	}

	sock, port, dest := recoverTo("--target-time", targetTime)
	check("time", sock, port, atTime, "1")
	// The promoted server archives its new timeline: its history file and
	// the segment it writes after a row of its own. (Waiting for it also
	// makes the next restore see timeline 2 and promote to 3.)
	if tli := psql(t, pg, sock, port, "SELECT timeline_id FROM pg_control_checkpoint()"); tli != "2" {
		t.Fatalf("the restore promoted to timeline %s, want 2", tli)
	}
	psql(t, pg, sock, port, "INSERT INTO marks VALUES (1000)")
	seg := psql(t, pg, sock, port, "SELECT pg_walfile_name(pg_switch_wal())")
	waitWAL(t, bin, env, 2, seg, seg)
	history := filepath.Join(t.TempDir(), "00000002.history")
	wantExit(t, run(t, bin, env, "wal-fetch", "00000002.history", history), 0)
	if h, _ := os.ReadFile(history); !strings.HasPrefix(string(h), "1\t") {
		t.Errorf("00000002.history does not branch off timeline 1:\n%s", h)
	}
	stopServer(t, pg, dest)

	sock, port, dest = recoverTo("--target-name", "matrix")
	check("restore point", sock, port, atName, "1,2")
	if tli := psql(t, pg, sock, port, "SELECT timeline_id FROM pg_control_checkpoint()"); tli != "3" {
		t.Errorf("the second restore promoted to timeline %s, want 3 (the first made 2)", tli)
	}
	stopServer(t, pg, dest)
}

// waitWAL waits until the repository holds every segment from first to last
// on timeline tli (and tli's history file, for tli > 1), as tusk wal-show
// lists them. It waits on the repository rather than on pg_stat_archiver,
// which never hears of the segments push-ahead archives.
func waitWAL(t *testing.T, bin string, env []string, tli uint32, first, last string) {
	t.Helper()
	// first..last in one run on timeline tli (with its history file, for
	// tli > 1).
	waitWALShows(t, bin, env, fmt.Sprintf("%s..%s on timeline %d", first, last, tli), func(a verify.Archive) bool {
		for _, tl := range a.Timelines {
			if tl.ID != tli || (tli > 1 && !tl.HasHistory) {
				continue
			}
			for _, r := range tl.Ranges {
				if r.First <= first && last <= r.Last {
					return true
				}
			}
		}
		return false
	})
}
