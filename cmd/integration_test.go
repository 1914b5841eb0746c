package cmd_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/archive"
	"github.com/tusk-backup/tusk/internal/testenv"
	"github.com/tusk-backup/tusk/wal"
)

// fakeWAL writes a WAL segment of size bytes (a power of two of at least
// 1 MiB, as PostgreSQL's) that wal-push accepts: a long page header, then
// filler.
func fakeWAL(t *testing.T, name string, size int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	b := bytes.Repeat([]byte("tusk-wal-"), size/9+1)[:size]
	n, err := wal.ParseName(name)
	if err != nil {
		t.Fatal(err)
	}
	copy(b, archive.LongPageHeader(n, uint32(size), 7000000000000000001))
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestIntegrationRepositoryErrors: every way of pointing tusk at a repository
// it cannot use ends in one sentence naming the thing to fix, a non-zero
// exit, and nothing written.
func TestIntegrationRepositoryErrors(t *testing.T) {
	bin := testenv.BuildTusk(t)
	m := testenv.StartMinIO(t)
	seg := fakeWAL(t, "000000010000000000000001", 1<<20)
	file := filepath.Join(t.TempDir(), "a-file")
	os.WriteFile(file, nil, 0o600)

	base := func(extra ...string) []string { return append(m.Env(), extra...) }
	cases := []struct {
		name string
		env  []string
		want string
		code int
	}{
		{"no repository", nil, "no repository is configured; set TUSK_REPO", 2},
		{"bad URL scheme", []string{"TUSK_REPO=gs://bucket/pg"}, `TUSK_REPO (from environment TUSK_REPO): scheme "gs" in "gs://bucket/pg" is not supported`, 2},
		{"relative folder", []string{"WALG_FILE_PREFIX=relative/repo"}, `TUSK_REPO (from environment WALG_FILE_PREFIX): "relative/repo" has no scheme`, 2},
		{"folder cannot be created", []string{"TUSK_REPO=file://" + file + "/repo"}, "repository folder " + file + "/repo cannot be created: not a directory", 1},
		{"missing bucket", base("WALG_S3_PREFIX=s3://no-such-bucket/pg"), "no-such-bucket", 1},
		{"wrong secret key", append(base("TUSK_REPO="+m.URL("pg")), "AWS_SECRET_ACCESS_KEY=wrong-secret-key"), "AWS_SECRET_ACCESS_KEY", 1},
		{"unknown access key", append(base("TUSK_REPO="+m.URL("pg")), "AWS_ACCESS_KEY_ID=nobody"), "AWS_ACCESS_KEY_ID", 1},
		{"PGP encryption set", base("TUSK_REPO="+m.URL("pg"), "WALG_PGP_KEY_PATH=/etc/wal-g/key.asc"), "WALG_PGP_KEY_PATH (in the environment) is refused", 2},
		{"unreachable endpoint", append(base("TUSK_REPO="+m.URL("pg")), "AWS_ENDPOINT=http://127.0.0.1:1", "TUSK_S3_MAX_RETRIES=2"), "127.0.0.1:1", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			r := run(t, bin, c.env, "wal-push", seg)
			line := errorLine(t, r.stderr)
			if r.code != c.code || !strings.Contains(line, c.want) {
				t.Fatalf("exit %d, %q; want exit %d and a sentence containing %q", r.code, line, c.code, c.want)
			}
			if strings.Contains(r.stderr, m.SecretKey) {
				t.Fatal("the secret key appears in the output")
			}
			if d := time.Since(start); d > 30*time.Second {
				t.Fatalf("took %v to fail", d)
			}
			t.Logf("exit %d: %s", r.code, line)
		})
	}
	// Nothing was written to the bucket by any failing case, not even the
	// repository marker: wal-fetch finds no repository there.
	r := run(t, bin, base("TUSK_REPO="+m.URL("pg")), "wal-fetch", "000000010000000000000001", filepath.Join(t.TempDir(), "x"))
	if r.code != 1 || !strings.Contains(errorLine(t, r.stderr), "no tusk repository there") {
		t.Fatalf("after the failing pushes wal-fetch exits %d (%s), want 1 (no repository)", r.code, r.stderr)
	}
}

// TestIntegrationMissingRepositoryStopsRecovery: a folder repository that is
// missing or empty (a mount point whose file system went away) must never
// answer "not in the archive" during archive recovery: PostgreSQL would take
// it for the end of the archive and promote early. wal-fetch exits 200 there,
// and 1 only for a file missing from a repository that is there.
func TestIntegrationMissingRepositoryStopsRecovery(t *testing.T) {
	bin := testenv.BuildTusk(t)
	pgdata := t.TempDir()
	if err := os.WriteFile(filepath.Join(pgdata, "recovery.signal"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(pgdata, "pg_wal", "RECOVERYXLOG")
	os.Mkdir(filepath.Dir(dest), 0o700)
	empty := t.TempDir()
	repo := filepath.Join(t.TempDir(), "repo")
	cases := []struct {
		name, repo string
		code       int
		want       string
		extra      []string
	}{
		{"missing folder", "/nonexistent/tusk-repo", 200, "no tusk repository there", nil},
		{"empty folder (unmounted)", empty, 200, "is the folder mounted", nil},
		{"segment missing from a real repository", repo, 1, "", nil},
		// Settings that cannot be read are no answer about the archive.
		{"a refused setting", repo, 200, "WALG_PGP_KEY (in the environment) is refused", []string{"WALG_PGP_KEY=-----BEGIN PGP PRIVATE KEY BLOCK-----"}},
		{"a config file that is not there", repo, 200, "cannot be read", []string{"TUSK_CONFIG=/nonexistent/tusk.yaml"}},
	}
	// The real repository: wal-push writes its marker.
	seg := fakeWAL(t, "000000010000000000000001", 1<<20)
	wantExit(t, run(t, bin, []string{"TUSK_REPO=file://" + repo}, "wal-push", seg), 0)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := append([]string{"TUSK_REPO=file://" + c.repo, "PGDATA=" + pgdata, "TUSK_WAL_PREFETCH=0"}, c.extra...)
			r := run(t, bin, env, "wal-fetch", "000000010000000000000002", dest)
			wantExit(t, r, c.code)
			if c.want != "" && !strings.Contains(errorLine(t, r.stderr), c.want) {
				t.Fatalf("%q does not say %q", errorLine(t, r.stderr), c.want)
			}
			if _, err := os.Stat(filepath.Join(c.repo, "tusk-repository.json")); c.code == 200 && c.repo != repo && err == nil {
				t.Fatal("wal-fetch created a repository")
			}
		})
	}
}

var segmentRE = regexp.MustCompile(`^[0-9A-F]{24}$`)

// TestIntegrationArchiveAndRestore: PostgreSQL archives through wal-push under
// a pgbench load without a failure, every segment is in the archive and comes
// back byte-identical through wal-fetch, and a base backup restored with
// restore_command = 'tusk wal-fetch %f %p' replays the archive to its end and
// sees the primary's data.
func TestIntegrationArchiveAndRestore(t *testing.T) {
	bin := testenv.BuildTusk(t)
	for kind, repo := range repos(t) {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			env := repo.env
			pg := startCluster(t, repo, testenv.PostgresOptions{Conf: map[string]string{"wal_keep_size": "2GB"}}).pg
			spool := testenv.ServerTempDir(t)
			restored := testenv.NewPostgres(t, testenv.PostgresOptions{Env: append(slices.Clone(env), "TUSK_SPOOL_DIR="+spool)})
			backup := pg.RunAsOwner(t.Context(), filepath.Join(pg.BinDir, "pg_basebackup"), "-D", restored.DataDir, "-X", "none", "-c", "fast")
			if out, err := backup.CombinedOutput(); err != nil {
				t.Fatalf("pg_basebackup: %v\n%s", err, out)
			}
			pgbench(t, pg, "-i", "-s", "4", "-q")
			pgbench(t, pg, "-T", "5", "-c", "2", "-n")
			want := pg.SQL(t, "SELECT sum(abalance)::text || '/' || count(*) FROM pgbench_accounts")
			last := archiveWAL(t, pg)
			if failed := pg.SQL(t, "SELECT failed_count FROM pg_stat_archiver"); failed != "0" {
				t.Fatalf("pg_stat_archiver.failed_count = %s, want 0", failed)
			}

			// Every segment up to the last one is archived and identical.
			first := ""
			entries, err := os.ReadDir(filepath.Join(pg.DataDir, "pg_wal"))
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, e := range entries {
				name := e.Name()
				if !segmentRE.MatchString(name) || name > last {
					continue
				}
				if first == "" {
					first = name
				}
				dest := filepath.Join(t.TempDir(), "seg")
				wantExit(t, run(t, bin, env, "wal-fetch", name, dest), 0)
				got, _ := os.ReadFile(dest)
				orig, _ := os.ReadFile(filepath.Join(pg.DataDir, "pg_wal", name))
				if !bytes.Equal(got, orig) {
					t.Fatalf("archived %s differs from pg_wal's copy", name)
				}
				n++
			}
			if n < 5 {
				t.Fatalf("only %d segments compared (%s..%s); the load produced too little WAL", n, first, last)
			}
			t.Logf("%d segments archived and identical, %s..%s", n, first, last)

			// Restore: replay the whole archive, promote to timeline 2, and keep
			// archiving to the same repository.
			pg.Stop(t)
			restored.Configure(t, map[string]string{
				"restore_command":        bin + " wal-fetch %f %p",
				"archive_mode":           "on",
				"archive_command":        bin + " wal-push %p",
				"recovery_target_action": "promote",
			})
			restored.WriteFile(t, "recovery.signal", nil)
			restored.Start(t)
			waitFor(t, 2*time.Minute, func() bool {
				out, err := restored.TrySQL(t.Context(), "SELECT pg_is_in_recovery()")
				return err == nil && out == "f"
			})
			if got := restored.SQL(t, "SELECT sum(abalance)::text || '/' || count(*) FROM pgbench_accounts"); got != want {
				t.Fatalf("restored data %s, primary had %s", got, want)
			}
			if tli := restored.SQL(t, "SELECT timeline_id FROM pg_control_checkpoint()"); tli != "2" {
				t.Fatalf("restored server is on timeline %s, want 2", tli)
			}
			restored.SQL(t, "CREATE TABLE after_promotion AS SELECT 1 AS x")
			archiveWAL(t, restored)
			if failed := restored.SQL(t, "SELECT failed_count FROM pg_stat_archiver"); failed != "0" {
				t.Fatalf("archiving on timeline 2 failed %s times:\n%s", failed, restored.LogTail(40))
			}
			hist := filepath.Join(t.TempDir(), "00000002.history")
			wantExit(t, run(t, bin, env, "wal-fetch", "00000002.history", hist), 0)
			got, _ := os.ReadFile(hist)
			orig, _ := os.ReadFile(filepath.Join(restored.DataDir, "pg_wal", "00000002.history"))
			if len(orig) == 0 || !bytes.Equal(got, orig) {
				t.Fatalf("archived 00000002.history = %q, pg_wal has %q", got, orig)
			}
			// Timeline 1's segments are untouched.
			dest := filepath.Join(t.TempDir(), "seg")
			wantExit(t, run(t, bin, env, "wal-fetch", first, dest), 0)
			if log := restored.LogTail(2000); !strings.Contains(log, "wal restored from prefetch") {
				t.Errorf("recovery never used a prefetched segment; server log:\n%s", log)
			}
			// The prefetcher followed recovery and ended with it.
			spools, _ := filepath.Glob(filepath.Join(spool, "fetch-*"))
			if len(spools) != 1 {
				t.Fatalf("spool folders %q, want one", spools)
			}
			waitFor(t, 5*time.Second, func() bool { return !archive.Locked(spools[0]) })
			plog, _ := os.ReadFile(filepath.Join(spools[0], archive.SpoolLog))
			if !strings.Contains(string(plog), `msg="prefetch ended" reason="recovery ended"`) {
				t.Errorf("the prefetcher did not end with recovery; its log:\n%s", plog)
			}
		})
	}
}

// TestIntegrationRecoveryAbortsOnStorageFailure: when the repository fails
// during archive recovery, wal-fetch must make PostgreSQL stop (exit > 125),
// never promote at the wrong point; once storage is back, recovery completes.
func TestIntegrationRecoveryAbortsOnStorageFailure(t *testing.T) {
	bin := testenv.BuildTusk(t)
	repo := s3Repo(t)
	m := repo.minio
	pg := startCluster(t, repo, testenv.PostgresOptions{Env: []string{"TUSK_S3_MAX_RETRIES=2"}}).pg
	restored := testenv.NewPostgres(t, testenv.PostgresOptions{Env: pg.ServerEnv()})
	backup := pg.RunAsOwner(t.Context(), filepath.Join(pg.BinDir, "pg_basebackup"), "-D", restored.DataDir, "-X", "none", "-c", "fast")
	if out, err := backup.CombinedOutput(); err != nil {
		t.Fatalf("pg_basebackup: %v\n%s", err, out)
	}
	pg.SQL(t, "CREATE TABLE t AS SELECT generate_series(1, 100000) AS i")
	archiveWAL(t, pg)

	restored.Configure(t, map[string]string{
		"restore_command":        bin + " wal-fetch %f %p",
		"archive_mode":           "off",
		"recovery_target_action": "promote",
	})
	restored.WriteFile(t, "recovery.signal", nil)
	m.Stop(t)
	start := restored.RunAsOwner(t.Context(), filepath.Join(restored.BinDir, "pg_ctl"), "start", "-w", "-t", "120",
		"-D", restored.DataDir, "-l", restored.LogFile)
	out, err := start.CombinedOutput()
	if err == nil {
		restored.Stop(t)
		t.Fatalf("the server started while its archive was unreachable:\n%s\n%s", out, restored.LogTail(30))
	}
	log := restored.LogTail(40)
	if !strings.Contains(log, "exit code 200") {
		t.Fatalf("server log does not show wal-fetch's exit 200:\n%s", log)
	}
	if strings.Contains(log, "selected new timeline") {
		t.Fatalf("the server promoted although the archive was unreachable:\n%s", log)
	}

	m.Start(t)
	restored.Start(t)
	waitFor(t, 2*time.Minute, func() bool {
		out, err := restored.TrySQL(t.Context(), "SELECT pg_is_in_recovery()")
		return err == nil && out == "f"
	})
	if got := restored.SQL(t, "SELECT count(*) FROM t"); got != "100000" {
		t.Fatalf("restored table has %s rows, want 100000", got)
	}
}

// TestIntegrationPushAheadRecords: with TUSK_PG_READY_RENAME=false, push-ahead
// still uploads later segments early, but leaves archive_status to
// PostgreSQL: the archiver calls wal-push for every segment, so
// pg_stat_archiver counts each one and monitoring sees no false lag.
func TestIntegrationPushAheadRecords(t *testing.T) {
	repo := folderRepo(t)
	pg := startCluster(t, repo, testenv.PostgresOptions{Env: []string{"TUSK_PG_READY_RENAME=false"}}).pg
	// Let segments pile up .ready (an empty archive_command pauses
	// archiving), so that the first call has later ones to push ahead.
	pg.SQL(t, "ALTER SYSTEM SET archive_command = ''")
	pg.SQL(t, "SELECT pg_reload_conf()")
	pgbench(t, pg, "-i", "-s", "10", "-q")
	last := pg.SQL(t, "SELECT pg_walfile_name(pg_current_wal_lsn())")
	pg.SQL(t, "SELECT pg_switch_wal()")
	pg.SQL(t, "ALTER SYSTEM RESET archive_command")
	pg.SQL(t, "SELECT pg_reload_conf()")
	waitArchived(t, pg, last)
	// Every call reaches PostgreSQL's own statistics (the property under
	// test, so waiting on pg_stat_archiver is right here).
	waitFor(t, 2*time.Minute, func() bool {
		got, err := pg.TrySQL(t.Context(), "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
		return err == nil && got >= last
	})
	// The statistics first, then the segments archived up to what they
	// name: a segment archived in between (background WAL) is not counted.
	row := strings.Fields(pg.SQL(t, "SELECT archived_count || ' ' || failed_count || ' ' || last_archived_wal FROM pg_stat_archiver"))
	if len(row) != 3 {
		t.Fatalf("pg_stat_archiver: %v", row)
	}
	stats, upTo := row[0]+" "+row[1], row[2]
	var segments int
	filepath.WalkDir(filepath.Join(repo.dir, "wal"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && segmentRE.MatchString(d.Name()) && d.Name() <= upTo {
			segments++
		}
		return nil
	})
	if want := fmt.Sprintf("%d 0", segments); stats != want || segments < 5 {
		t.Fatalf("pg_stat_archiver archived/failed = %s, want %s (one call per archived segment)", stats, want)
	}
	log, _ := os.ReadFile(pg.LogFile)
	if n := strings.Count(string(log), `by=push-ahead`); n == 0 {
		t.Fatalf("no call was answered from a push-ahead record; %d segments", segments)
	}
	t.Logf("%d segments, each counted by pg_stat_archiver; %d calls answered from records", segments, strings.Count(string(log), `by=push-ahead`))
}
