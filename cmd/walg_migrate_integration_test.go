package cmd_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tusk-backup/tusk/basebackup"
	tusk "github.com/tusk-backup/tusk/cmd"
	"github.com/tusk-backup/tusk/internal/testenv"
	"github.com/tusk-backup/tusk/internal/walgtest"
	"github.com/tusk-backup/tusk/storage/local"
	"github.com/tusk-backup/tusk/wal"
)

// migrateSum is a checksum of what TestIntegrationWALGMigration writes.
const migrateSum = `SELECT md5(string_agg(s, '|')) FROM (
	(SELECT md5(string_agg(aid::text || ':' || abalance::text, ',' ORDER BY aid)) AS s FROM pgbench_accounts)
	UNION ALL (SELECT coalesce(string_agg(n::text, ',' ORDER BY n), '') FROM marks)) q`

// TestIntegrationWALGMigration follows the README's "Switching from wal-g"
// step by step. A PostgreSQL 15 cluster under a little load (pgbench beside
// each backup and the switch) has been backed up by wal-g: its
// archive_command is wal-g's wal-push and it has a full backup and a delta,
// all written in wal-g's format by the generators, into the folder that the
// postgres user's ~/.walg.json names. Then, with that file as the only
// configuration: archive_command becomes tusk wal-push (a reload), tusk
// backup-push takes a backup, restores go to a point before the switch
// (wal-g's delta and WAL), to one after the switch from wal-g's full backup
// (its WAL, then tusk's), and to one after tusk's backup; delete retain FULL
// 1, a dry run first, then with --confirm, removes every wal-g object; and
// the newest point still restores.
func TestIntegrationWALGMigration(t *testing.T) {
	bin := testenv.BuildTusk(t)
	repoDir := testenv.ServerTempDir(t)
	home := testenv.ServerTempDir(t)
	walgJSON := `{
  "WALG_FILE_PREFIX": "` + repoDir + `",
  "WALG_COMPRESSION_METHOD": "lz4",
  "WALG_DELTA_MAX_STEPS": 6,
  "WALG_UPLOAD_CONCURRENCY": 2
}`
	if err := os.WriteFile(filepath.Join(home, ".walg.json"), []byte(walgJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	repo := folderRepoAt(repoDir)
	st, err := local.New(repoDir)
	if err != nil {
		t.Fatal(err)
	}

	// Before: wal-g archives and backs up.
	walgPush := startWALGArchiver(t, repo, st, walgtest.Options{Compression: "lz4"})
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{ArchiveCommand: walgPush.archiveCommand(), Env: []string{"HOME=" + home}})
	env := append([]string{"HOME=" + home}, pg.Env()...) // the postgres user's shell: ~/.walg.json, libpq's settings
	pg.SQL(t, "CREATE TABLE marks (n int)")
	pgbench(t, pg, "-i", "-s", "2", "-q")
	// load runs pgbench for a few seconds beside what the test does; wait
	// for it before recording a moment.
	load := func() (wait func()) {
		cmd := pg.RunAsOwner(t.Context(), filepath.Join(pg.BinDir, "pgbench"), "-T", "3", "-c", "2", "-n")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return func() {
			if err := cmd.Wait(); err != nil {
				t.Fatalf("pgbench beside the test: %v", err)
			}
		}
	}
	moment := func(i int) point {
		pgbench(t, pg, "-t", "100", "-c", "2", "-n")
		pg.SQL(t, "INSERT INTO marks VALUES ("+strconv.Itoa(i)+")")
		return point{sum: pg.SQL(t, migrateSum), lsn: pg.SQL(t, "SELECT pg_current_wal_lsn()")}
	}
	full := pushWALG(t, pg, st, "lz4", "")
	moment(1)
	delta := pushWALG(t, pg, st, "lz4", full)
	beforeSwitch := moment(2)
	switchWAL(t, pg, "", 0, st)

	// Step 1: the configuration stays; tusk lists wal-g's backups.
	if metas := listBackups(t, bin, env); len(metas) != 2 || metas[0].Origin != basebackup.OriginWALG || metas[1].Name != delta {
		t.Fatalf("backup-list --json before the switch: %+v, want wal-g's %s and %s", metas, full, delta)
	}

	// Step 2: archive_command becomes tusk's, under load; a reload is
	// enough. Each segment from now on lands in tusk's layout once the
	// archiver has read the new setting.
	wait := load()
	pg.SQL(t, "ALTER SYSTEM SET archive_command = '"+bin+" wal-push %p'")
	pg.SQL(t, "SELECT pg_reload_conf()")
	for i := 0; ; i++ {
		pg.SQL(t, "INSERT INTO marks VALUES (0)")
		seg := switchWAL(t, pg, "", 0, st)
		n, _ := wal.ParseSegment(seg)
		if _, err := st.Stat(t.Context(), n.Key()); err == nil {
			break
		}
		if i == 50 {
			t.Fatal("after the reload, tusk wal-push does not archive")
		}
	}
	wait()
	afterSwitch := moment(3)
	switchWAL(t, pg, "", 0, st)

	wantExit(t, run(t, bin, env, "check"), 0) // the settings, and a WAL switch that reaches the repository

	// Step 3: a tusk backup under load, with the configuration of
	// ~/.walg.json: a full one, though WALG_DELTA_MAX_STEPS is set (tusk's
	// incrementals are taken on tusk's backups only).
	wait = load()
	r := run(t, bin, env, "backup-push", pg.DataDir)
	wantExit(t, r, 0)
	wait()
	afterTusk := moment(4)
	switchWAL(t, pg, "", 0, st)
	metas := listBackups(t, bin, env)
	if len(metas) != 3 || metas[0].Name != full || metas[1].Name != delta || metas[2].Origin != "" || metas[2].Incremental() {
		t.Fatalf("backup-list --json: %v, want %s, %s and a tusk backup", names(metas), full, delta)
	}
	tuskFull := metas[2].Name

	// Step 4: restores, older points from wal-g's backups and WAL.
	restore := func(what, backup, chosen string, at point) {
		t.Helper()
		dest := filepath.Join(testenv.ServerTempDir(t), "pgdata")
		r := run(t, bin, env, "backup-fetch", dest, backup, "--recover", "--json", "--target-lsn", at.lsn,
			"--target-timeline", "current", "--target-action", "pause")
		t.Cleanup(func() { stopServer(t, pg, dest) })
		wantExit(t, r, 0)
		res := decode[tusk.FetchResult](t, r)
		if res.Backup != chosen || res.Recovery == nil || res.Recovery.State != "paused" {
			t.Fatalf("%s: backup-fetch --json: %s", what, r.stdout)
		}
		sock, port := recovered(t, r)
		if got := psql(t, pg, sock, port, migrateSum); got != at.sum {
			t.Fatalf("%s: restored data checksum %s, want %s (the moment recorded)", what, got, at.sum)
		}
		stopServer(t, pg, dest)
	}
	restore("before the switch", "LATEST", delta, beforeSwitch)
	restore("after the switch, from wal-g's full backup", full, full, afterSwitch)
	restore("after tusk's backup", "LATEST", tuskFull, afterTusk)

	// Step 5: retention from cron. A dry run names wal-g's objects and
	// deletes nothing; --confirm deletes them all.
	walgKeys := func() []string {
		var out []string
		for _, k := range repo.keys(t) {
			if strings.HasPrefix(k, "basebackups_005/") || strings.HasPrefix(k, "wal_005/") {
				out = append(out, k)
			}
		}
		return out
	}
	before := walgKeys()
	r = run(t, bin, env, "delete", "retain", "FULL", "1")
	wantExit(t, r, 0)
	for _, k := range before {
		if !strings.Contains(r.stderr, `msg="object would be deleted" key=`+k+"\n") {
			t.Fatalf("the dry run does not name %s:\n%s", k, r.stderr)
		}
	}
	if got := walgKeys(); len(got) != len(before) {
		t.Fatalf("the dry run deleted objects: %d wal-g objects, then %d", len(before), len(got))
	}
	r = run(t, bin, env, "delete", "retain", "FULL", "1", "--confirm")
	wantExit(t, r, 0)
	if left := walgKeys(); len(left) != 0 {
		t.Fatalf("after delete retain FULL 1 --confirm, wal-g's objects are left: %v\n%s", left, r.stdout)
	}
	for _, k := range before {
		if !strings.Contains(r.stderr, `msg="object deleted" key=`+k+"\n") {
			t.Fatalf("delete --confirm does not name %s:\n%s", k, r.stderr)
		}
	}
	if metas := listBackups(t, bin, env); len(metas) != 1 || metas[0].Name != tuskFull {
		t.Fatalf("backup-list after the delete: %v, want only %s", names(metas), tuskFull)
	}
	r = run(t, bin, env, "st", "ls", "wal_005/")
	wantExit(t, r, 0)
	if strings.Contains(r.stdout, "0000") {
		t.Fatalf("st ls wal_005/ after the delete:\n%s", r.stdout)
	}

	// The newest point still restores, from tusk's backup and WAL alone.
	newest := moment(5)
	switchWAL(t, pg, "", 0, st)
	restore("the newest point, after the delete", "LATEST", tuskFull, newest)
	wantExit(t, run(t, bin, env, "wal-verify"), 0)
}
