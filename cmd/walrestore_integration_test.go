package cmd_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tusk-backup/tusk/internal/testenv"
	"github.com/tusk-backup/tusk/wal"
)

// TestIntegrationWALRestore: wal-g's wal-restore before a pg_rewind. A
// primary's backup is restored and promoted (timeline 2) while the primary
// goes on writing on timeline 1; both stop. The promoted cluster's pg_wal
// loses the segments of timeline 2 it recycled; wal-restore fetches exactly
// those back from the archive, verified, and pg_rewind of the old primary
// from it then succeeds (fetching the old primary's own WAL with
// --restore-target-wal and tusk wal-fetch).
func TestIntegrationWALRestore(t *testing.T) {
	bin := testenv.BuildTusk(t)
	repo := folderRepo(t)
	c := startCluster(t, repo, testenv.PostgresOptions{Conf: map[string]string{"wal_log_hints": "on"}})
	pg, envPG := c.pg, c.env
	pgbench(t, pg, "-i", "-s", "1", "-q")
	wantExit(t, run(t, bin, envPG, "backup-push", pg.DataDir), 0)
	archiveWAL(t, pg)

	dest := filepath.Join(testenv.ServerTempDir(t), "pgdata")
	r := run(t, bin, envPG, "backup-fetch", dest, "LATEST", "--recover", "--json")
	t.Cleanup(func() { stopServer(t, pg, dest) })
	wantExit(t, r, 0)
	sock, port := recovered(t, r)
	for range 3 {
		psql(t, pg, sock, port, "CREATE TABLE IF NOT EXISTS t2 AS SELECT 1 AS n; INSERT INTO t2 SELECT generate_series(1, 50000)")
		psql(t, pg, sock, port, "SELECT pg_switch_wal()")
	}
	seg2 := psql(t, pg, sock, port, "SELECT pg_walfile_name(pg_current_wal_lsn())")
	psql(t, pg, sock, port, "SELECT pg_switch_wal()")
	waitArchivedIn(t, bin, repo.env, seg2)
	// The old primary goes on on timeline 1: the two diverge.
	pgbench(t, pg, "-t", "200", "-n")
	pg.Stop(t)
	if out, err := pg.RunAsOwner(t.Context(), filepath.Join(pg.ServerBinDir, "pg_ctl"), "stop", "-D", dest, "-m", "fast", "-w").CombinedOutput(); err != nil {
		t.Fatalf("stop the promoted cluster: %v\n%s", err, out)
	}

	// The promoted cluster's checkpoints recycled its older segments of
	// timeline 2, from the switch on; one more is removed by hand.
	walDir := filepath.Join(dest, "pg_wal")
	hf, err := os.Open(filepath.Join(walDir, "00000002.history"))
	if err != nil {
		t.Fatal(err)
	}
	hist, err := wal.ParseHistory(hf)
	hf.Close()
	if err != nil || len(hist) != 1 {
		t.Fatalf("history of timeline 2: %v, %v", hist, err)
	}
	names, err := wal.Range(wal.SegmentAt(2, hist[0].End.Pos(16<<20), 16<<20).File, seg2, 16<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(walDir, seg2)); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var removed []string
	for _, f := range names {
		if _, err := os.Stat(filepath.Join(walDir, f)); os.IsNotExist(err) {
			removed = append(removed, f)
		}
	}
	if len(removed) < 2 {
		t.Fatalf("the promoted cluster's pg_wal lacks only %v of timeline 2's %v", removed, names)
	}

	wantExit(t, run(t, bin, repo.env, "wal-restore", dest, dest), 2) // one timeline: nothing to rewind across
	r = run(t, bin, repo.env, "wal-restore", pg.DataDir, dest)
	wantExit(t, r, 0)
	for _, f := range removed {
		got, err := os.ReadFile(filepath.Join(walDir, f))
		if err != nil {
			t.Fatalf("wal-restore did not bring %s back: %v\n%s", f, err, r.stderr)
		}
		want := run(t, bin, repo.env, "st", "cat", "--decompress", "wal/"+f[:16]+"/"+f)
		wantExit(t, want, 0)
		if string(got) != want.stdout {
			t.Fatalf("%s restored by wal-restore differs from the archive's", f)
		}
		if !strings.Contains(r.stderr, "wal="+f) {
			t.Errorf("wal-restore did not name %s:\n%s", f, r.stderr)
		}
	}
	// Nothing is missing any more.
	r = run(t, bin, repo.env, "wal-restore", pg.DataDir, dest)
	wantExit(t, r, 0)
	if !strings.Contains(r.stderr, "no WAL files to restore") {
		t.Errorf("second wal-restore:\n%s", r.stderr)
	}
	// The old primary's own WAL since its last checkpoint before the fork
	// is pg_rewind's to fetch (--restore-target-wal, through the target's
	// restore_command), as with wal-g.
	pg.Configure(t, map[string]string{"restore_command": bin + " wal-fetch %f %p"})
	out, err := pg.RunAsOwner(t.Context(), filepath.Join(pg.ServerBinDir, "pg_rewind"), "-D", pg.DataDir, "--source-pgdata", dest, "--restore-target-wal").CombinedOutput()
	if err != nil {
		t.Fatalf("pg_rewind after wal-restore: %v\n%s", err, out)
	}
}
