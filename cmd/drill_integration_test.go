package cmd_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/internal/testenv"
)

// TestIntegrationRestoreDrill: restore-drill restores the newest backup into
// a scratch folder, replays the archive to its end, runs its checks, reports
// plausible RTO and RPO (also with a tablespace, restored inside the scratch
// folder), and leaves nothing behind and no server running; --max-rpo trips once the
// archive has gone quiet for longer than it; a corrupted part fails it.
func TestIntegrationRestoreDrill(t *testing.T) {
	bin := testenv.BuildTusk(t)
	dir := filepath.Join(testenv.ServerTempDir(t), "repo")
	env := []string{"TUSK_REPO=file://" + dir}
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{ArchiveCommand: bin + " wal-push %p", Env: env})
	envPG := append(append([]string{}, env...), pg.Env()...)
	pgbench(t, pg, "-i", "-s", "2", "-q")
	pg.SQL(t, "CREATE TABLESPACE ts LOCATION '"+testenv.ServerTempDir(t)+"'")
	pg.SQL(t, "CREATE TABLE in_ts TABLESPACE ts AS SELECT g FROM generate_series(1, 1000) g")
	if out, stderr, code := run(t, bin, envPG, "backup-push", pg.DataDir); code != 0 {
		t.Fatalf("backup-push: exit %d\n%s%s", code, out, stderr)
	}
	pgbench(t, pg, "-t", "300", "-c", "2", "-n")
	pg.SQL(t, "CREATE TABLE drill_mark AS SELECT 42 AS n")
	last := pg.SQL(t, "SELECT pg_walfile_name(pg_current_wal_lsn())")
	pg.SQL(t, "SELECT pg_switch_wal()")
	waitArchived(t, pg, last)
	committed := time.Now()

	scratch := testenv.ServerTempDir(t)
	out, stderr, code := run(t, bin, env, "restore-drill", "--scratch", scratch, "--json",
		"--sql", "SELECT n FROM drill_mark WHERE n = 42", "--sql", "SELECT count(*) FROM in_ts HAVING count(*) = 1000",
		"--max-rto", "10m", "--max-rpo", "10m")
	if code != 0 {
		t.Fatalf("restore-drill: exit %d\n%s%s", code, out, stderr)
	}
	t.Logf("%s", out)
	var r struct {
		OK        bool    `json:"ok"`
		Backup    string  `json:"backup"`
		RTO       float64 `json:"rto_seconds"`
		Restore   float64 `json:"restore_seconds"`
		Replay    float64 `json:"replay_seconds"`
		RPO       float64 `json:"rpo_seconds"`
		Relations int64   `json:"relations"`
		Segments  int     `json:"segments_replayed"`
		Checks    []struct {
			OK bool `json:"ok"`
		} `json:"checks"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if !r.OK || r.Backup == "" || len(r.Checks) != 4 || r.Relations < 100 || r.Segments < 1 {
		t.Fatalf("drill report: %+v", r)
	}
	if r.RTO <= 0 || r.RTO < r.Restore || r.RTO > 300 {
		t.Fatalf("RTO %.1fs (restore %.1fs, replay %.1fs) is not plausible", r.RTO, r.Restore, r.Replay)
	}
	if r.RPO < 0 || r.RPO > time.Since(committed).Seconds()+60 {
		t.Fatalf("RPO %.1fs is not plausible (the last commit was %.1fs ago)", r.RPO, time.Since(committed).Seconds())
	}
	if left, _ := filepath.Glob(filepath.Join(scratch, "tusk-drill-*")); len(left) != 0 {
		t.Fatalf("restore-drill left %v", left)
	}
	if out, _ := exec.Command("pgrep", "-f", "postgres -D "+scratch).Output(); len(out) != 0 {
		t.Fatalf("restore-drill left a server running: %s", out)
	}

	// The archive has been quiet for a few seconds: --max-rpo 1s trips.
	time.Sleep(2 * time.Second)
	out, stderr, code = run(t, bin, env, "restore-drill", "--scratch", scratch, "--max-rpo", "1s")
	if code != 1 || !strings.Contains(out, "exceeds --max-rpo") {
		t.Fatalf("restore-drill --max-rpo 1s: exit %d\n%s%s", code, out, stderr)
	}
	t.Logf("%s", out)

	// A corrupted part fails the drill.
	b := listBackups(t, bin, env)[0]
	part := filepath.Join(dir, filepath.FromSlash(b.Parts[0].Key))
	data, _ := os.ReadFile(part)
	data[len(data)/2] ^= 0x10
	os.WriteFile(part, data, 0o600)
	out, stderr, code = run(t, bin, env, "restore-drill", "--scratch", scratch)
	if code != 1 || !strings.Contains(out, "FAILED") {
		t.Fatalf("restore-drill on a corrupted backup: exit %d\n%s%s", code, out, stderr)
	}
	t.Logf("%s", out)
	if left, _ := filepath.Glob(filepath.Join(scratch, "tusk-drill-*")); len(left) != 0 {
		t.Fatalf("a failed restore-drill left %v", left)
	}
}
