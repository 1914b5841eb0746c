package cmd_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tusk-backup/tusk/internal/testenv"
	"github.com/tusk-backup/tusk/verify"
)

// TestIntegrationWALShowVerify: a backup restored and promoted keeps
// archiving its new timeline into the same repository; wal-show shows both
// timelines and where the second branched off; wal-verify follows the
// switch and passes, also against the running server; a deleted segment on
// either side of the switch makes it fail, naming the segment.
func TestIntegrationWALShowVerify(t *testing.T) {
	bin := testenv.BuildTusk(t)
	repo := folderRepo(t)
	dir, env := repo.dir, repo.env
	c := startCluster(t, repo, testenv.PostgresOptions{})
	pg, envPG := c.pg, c.env
	pgbench(t, pg, "-i", "-s", "1", "-q")
	wantExit(t, run(t, bin, envPG, "backup-push", pg.DataDir), 0)
	for range 3 {
		pgbench(t, pg, "-t", "200", "-c", "2", "-n")
		pg.SQL(t, "SELECT pg_switch_wal()")
	}
	archiveWAL(t, pg)
	pg.Stop(t)

	// Restore, promote to timeline 2, write and archive on it.
	dest := filepath.Join(testenv.ServerTempDir(t), "pgdata")
	r := run(t, bin, envPG, "backup-fetch", dest, "LATEST", "--recover", "--json")
	t.Cleanup(func() { stopServer(t, pg, dest) })
	wantExit(t, r, 0)
	sock, port := recovered(t, r)
	if tli := psql(t, pg, sock, port, "SELECT timeline_id FROM pg_control_checkpoint()"); tli != "2" {
		t.Fatalf("restored server on timeline %s, want 2", tli)
	}
	for range 2 {
		psql(t, pg, sock, port, "CREATE TABLE IF NOT EXISTS t2 AS SELECT 1 AS n; INSERT INTO t2 SELECT generate_series(1, 100000)")
		psql(t, pg, sock, port, "SELECT pg_switch_wal()")
	}
	seg2 := psql(t, pg, sock, port, "SELECT pg_walfile_name(pg_current_wal_lsn())")
	psql(t, pg, sock, port, "SELECT pg_switch_wal()")
	waitArchivedIn(t, bin, env, seg2)

	r = run(t, bin, env, "wal-show", "--json")
	wantExit(t, r, 0)
	show := decode[verify.Archive](t, r)
	if len(show.Timelines) != 2 {
		t.Fatalf("wal-show --json: %d timelines, want 2\n%s", len(show.Timelines), r.stdout)
	}
	t1, t2 := show.Timelines[0], show.Timelines[1]
	if t1.ID != 1 || t2.ID != 2 || t2.Parent != 1 || t2.Switch == "" || len(t1.Backups) != 1 || t2.Segments < 2 {
		t.Fatalf("wal-show: %+v, %+v", *t1, *t2)
	}
	t.Logf("wal-show:\n%s", run(t, bin, env, "wal-show").stdout)

	conn := "host=" + sock + " port=" + strconv.Itoa(port) + " user=postgres dbname=postgres"
	for _, args := range [][]string{{"wal-verify"}, {"wal-verify", "--pg-conn", conn, "--json"}} {
		r := run(t, bin, env, args...)
		wantExit(t, r, 0)
		t.Logf("%v: %s", args, strings.TrimSpace(r.stdout))
	}
	r = run(t, bin, env, "wal-verify", "--json")
	if vr := decode[verify.Result](t, r); !vr.OK || len(vr.Path) != 2 {
		t.Fatalf("wal-verify --json:\n%s", r.stdout)
	}

	// A segment lost on each side of the switch.
	b := listBackups(t, bin, env)[0]
	tl2, _ := filepath.Glob(filepath.Join(dir, "wal", "00000002*", "00000002????????????????"))
	if len(tl2) < 2 {
		t.Fatalf("timeline 2 segments: %v", tl2)
	}
	lost1 := b.EndWAL              // on timeline 1, needed to replay the backup
	lost2 := filepath.Base(tl2[0]) // the first on timeline 2, where recovery switches
	lost3 := seg2                  // the newest: only the server can tell it is lost
	for _, name := range []string{lost1, lost2, lost3} {
		p := filepath.Join(dir, "wal", name[:16], name)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(p)
		args := []string{"wal-verify"}
		if name == lost3 {
			args = append(args, "--pg-conn", conn)
		}
		r := run(t, bin, env, args...)
		if r.code != 1 || !strings.Contains(r.stdout, name) {
			t.Fatalf("wal-verify without %s: exit %d, want 1 naming it\n%s%s", name, r.code, r.stdout, r.stderr)
		}
		t.Logf("without %s: %s", name, strings.TrimSpace(r.stdout))
		if r := run(t, bin, env, "verify"); name == lost1 && (r.code != 1 || !strings.Contains(r.stdout, name)) {
			t.Fatalf("verify without %s: exit %d\n%s", name, r.code, r.stdout)
		}
		os.WriteFile(p, data, 0o600)
	}
}
