package cmd_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tusk "github.com/tusk-backup/tusk/cmd"
	"github.com/tusk-backup/tusk/internal/testenv"
)

// TestIntegrationRestoreDrill: restore-drill restores the newest backup into
// a scratch folder, replays the archive to its end, runs its checks, reports
// plausible RTO and RPO (also with a tablespace, restored inside the scratch
// folder), and leaves nothing behind and no server running; --max-rpo trips once the
// archive has gone quiet for longer than it; a corrupted part fails it.
func TestIntegrationRestoreDrill(t *testing.T) {
	bin := testenv.BuildTusk(t)
	repo := folderRepo(t)
	dir, env := repo.dir, repo.env
	c := startCluster(t, repo, testenv.PostgresOptions{})
	pg, envPG := c.pg, c.env
	pgbench(t, pg, "-i", "-s", "2", "-q")
	pg.SQL(t, "CREATE TABLESPACE ts LOCATION '"+testenv.ServerTempDir(t)+"'")
	pg.SQL(t, "CREATE TABLE in_ts TABLESPACE ts AS SELECT g FROM generate_series(1, 1000) g")
	wantExit(t, run(t, bin, envPG, "backup-push", pg.DataDir), 0)
	pgbench(t, pg, "-t", "300", "-c", "2", "-n")
	pg.SQL(t, "CREATE TABLE drill_mark AS SELECT 42 AS n")
	archiveWAL(t, pg)
	committed := time.Now()

	scratch := testenv.ServerTempDir(t)
	drill := run(t, bin, env, "restore-drill", "--scratch", scratch, "--json",
		"--sql", "SELECT n FROM drill_mark WHERE n = 42", "--sql", "SELECT count(*) FROM in_ts HAVING count(*) = 1000",
		"--max-rto", "10m", "--max-rpo", "10m")
	wantExit(t, drill, 0)
	t.Logf("%s", drill.stdout)
	r := decode[tusk.DrillResult](t, drill)
	if !r.OK || r.Backup == "" || len(r.Checks) != 4 || r.Relations < 100 || r.Segments < 1 {
		t.Fatalf("drill report: %+v", r)
	}
	if r.RTOSecs <= 0 || r.RTOSecs < r.RestoreSecs || r.RTOSecs > 300 {
		t.Fatalf("RTO %.1fs (restore %.1fs, replay %.1fs) is not plausible", r.RTOSecs, r.RestoreSecs, r.ReplaySecs)
	}
	if r.RPOSecs < 0 || r.RPOSecs > time.Since(committed).Seconds()+60 {
		t.Fatalf("RPO %.1fs is not plausible (the last commit was %.1fs ago)", r.RPOSecs, time.Since(committed).Seconds())
	}
	if left, _ := filepath.Glob(filepath.Join(scratch, "tusk-drill-*")); len(left) != 0 {
		t.Fatalf("restore-drill left %v", left)
	}
	if out, _ := exec.Command("pgrep", "-f", "postgres -D "+scratch).Output(); len(out) != 0 {
		t.Fatalf("restore-drill left a server running: %s", out)
	}

	// The archive has been quiet for a few seconds: --max-rpo 1s trips.
	time.Sleep(2 * time.Second)
	drill = run(t, bin, env, "restore-drill", "--scratch", scratch, "--max-rpo", "1s")
	wantExit(t, drill, 1)
	if !strings.Contains(drill.stdout, "exceeds --max-rpo") {
		t.Fatalf("restore-drill --max-rpo 1s: exit 1, but not for the RPO\n%s%s", drill.stdout, drill.stderr)
	}
	t.Logf("%s", drill.stdout)

	// A corrupted part fails the drill.
	b := listBackups(t, bin, env)[0]
	part := filepath.Join(dir, filepath.FromSlash(b.Parts[0].Key))
	data, _ := os.ReadFile(part)
	data[len(data)/2] ^= 0x10
	os.WriteFile(part, data, 0o600)
	drill = run(t, bin, env, "restore-drill", "--scratch", scratch)
	wantExit(t, drill, 1)
	if !strings.Contains(drill.stdout, "FAILED") {
		t.Fatalf("restore-drill on a corrupted backup: exit 1, but no check FAILED\n%s%s", drill.stdout, drill.stderr)
	}
	t.Logf("%s", drill.stdout)
	if left, _ := filepath.Glob(filepath.Join(scratch, "tusk-drill-*")); len(left) != 0 {
		t.Fatalf("a failed restore-drill left %v", left)
	}
}
