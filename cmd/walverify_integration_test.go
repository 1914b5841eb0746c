package cmd_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tusk-backup/tusk/internal/testenv"
)

// TestIntegrationWALShowVerify: a backup restored and promoted keeps
// archiving its new timeline into the same repository; wal-show shows both
// timelines and where the second branched off; wal-verify follows the
// switch and passes, also against the running server; a deleted segment on
// either side of the switch makes it fail, naming the segment.
func TestIntegrationWALShowVerify(t *testing.T) {
	bin := testenv.BuildTusk(t)
	dir := filepath.Join(testenv.ServerTempDir(t), "repo")
	env := []string{"TUSK_REPO=file://" + dir}
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{ArchiveCommand: bin + " wal-push %p", Env: env})
	envPG := append(append([]string{}, env...), pg.Env()...)
	pgbench(t, pg, "-i", "-s", "1", "-q")
	if out, stderr, code := run(t, bin, envPG, "backup-push", pg.DataDir); code != 0 {
		t.Fatalf("backup-push: exit %d\n%s%s", code, out, stderr)
	}
	for range 3 {
		pgbench(t, pg, "-t", "200", "-c", "2", "-n")
		pg.SQL(t, "SELECT pg_switch_wal()")
	}
	last := pg.SQL(t, "SELECT pg_walfile_name(pg_current_wal_lsn())")
	pg.SQL(t, "SELECT pg_switch_wal()")
	waitArchived(t, pg, last)
	pg.Stop(t)

	// Restore, promote to timeline 2, write and archive on it.
	dest := filepath.Join(testenv.ServerTempDir(t), "pgdata")
	out, stderr, code := run(t, bin, envPG, "backup-fetch", dest, "LATEST", "--recover", "--json")
	t.Cleanup(func() { stopServer(t, pg, dest) })
	if code != 0 {
		t.Fatalf("backup-fetch --recover: exit %d\n%s%s", code, out, stderr)
	}
	sock, port := recovered(t, out)
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

	out, stderr, code = run(t, bin, env, "wal-show", "--json")
	if code != 0 {
		t.Fatalf("wal-show: exit %d\n%s", code, stderr)
	}
	var show struct {
		Timelines []struct {
			ID       uint32   `json:"timeline"`
			Parent   uint32   `json:"parent_timeline"`
			Switch   string   `json:"switch_lsn"`
			Segments int      `json:"segments"`
			Backups  []string `json:"backups"`
			Gaps     []any    `json:"gaps"`
		} `json:"timelines"`
	}
	if err := json.Unmarshal([]byte(out), &show); err != nil || len(show.Timelines) != 2 {
		t.Fatalf("wal-show --json: %v\n%s", err, out)
	}
	t1, t2 := show.Timelines[0], show.Timelines[1]
	if t1.ID != 1 || t2.ID != 2 || t2.Parent != 1 || t2.Switch == "" || len(t1.Backups) != 1 || t2.Segments < 2 {
		t.Fatalf("wal-show: %+v", show.Timelines)
	}
	out, _, _ = run(t, bin, env, "wal-show")
	t.Logf("wal-show:\n%s", out)

	conn := "host=" + sock + " port=" + strconv.Itoa(port) + " user=postgres dbname=postgres"
	for _, args := range [][]string{{"wal-verify"}, {"wal-verify", "--pg-conn", conn, "--json"}} {
		out, stderr, code := run(t, bin, env, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, stderr)
		}
		t.Logf("%v: %s", args, strings.TrimSpace(out))
	}
	var vr struct {
		OK   bool     `json:"ok"`
		Path []uint32 `json:"timeline_path"`
	}
	out, _, _ = run(t, bin, env, "wal-verify", "--json")
	if err := json.Unmarshal([]byte(out), &vr); err != nil || !vr.OK || len(vr.Path) != 2 {
		t.Fatalf("wal-verify --json: %v\n%s", err, out)
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
		out, stderr, code := run(t, bin, env, args...)
		if code != 1 || !strings.Contains(out, name) {
			t.Fatalf("wal-verify without %s: exit %d, want 1 naming it\n%s%s", name, code, out, stderr)
		}
		t.Logf("without %s: %s", name, strings.TrimSpace(out))
		if out, _, code := run(t, bin, env, "verify"); name == lost1 && (code != 1 || !strings.Contains(out, name)) {
			t.Fatalf("verify without %s: exit %d\n%s", name, code, out)
		}
		os.WriteFile(p, data, 0o600)
	}
}
