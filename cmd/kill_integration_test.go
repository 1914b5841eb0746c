package cmd_test

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/internal/testenv"
)

// TestIntegrationKillLoops keeps the attack run's kill -9 trials passing:
// backup-push to MinIO killed mid-stream leaves no listed backup and the
// next run succeeds; backup-fetch killed mid-restore leaves the repository
// as it was, and the next restore (into a fresh folder) comes out whole and
// verified. Kills land at random moments after the work has visibly begun.
func TestIntegrationKillLoops(t *testing.T) {
	bin := testenv.BuildTusk(t)
	c := startCluster(t, s3Repo(t), testenv.PostgresOptions{Env: []string{"TUSK_BACKUP_PART_SIZE=1MiB"}})
	pg, env := c.pg, c.env
	pgbench(t, pg, "-i", "-s", "10", "-q")
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	start := func(args ...string) *exec.Cmd {
		cmd := tuskCommand(t.Context(), bin, env, args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() }) // if a wait below fails first
		return cmd
	}
	for i := range 4 {
		cmd := start("backup-push")
		// Wait until the server is streaming to it, then kill at a random
		// moment of the stream.
		waitFor(t, time.Minute, func() bool { return backupLockHolders(t, pg) == "1" })
		time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		waitBackupLockFree(t, pg)
		if err == nil {
			continue // it finished before the kill: a whole backup, listed
		}
		for _, b := range listBackups(t, bin, env) {
			if r := run(t, bin, env, "verify", b.Name); r.code != 0 {
				t.Fatalf("kill %d of backup-push left a listed backup that does not verify:\n%s", i, r.stderr)
			}
		}
	}
	wantExit(t, run(t, bin, env, "backup-push"), 0)
	wantExit(t, run(t, bin, env, "delete", "garbage", "BACKUPS", "--confirm", "--leftover-age", "0s"), 0)
	backups := listBackups(t, bin, env)
	if len(backups) == 0 {
		t.Fatal("no backup listed after a good backup-push")
	}
	name := backups[len(backups)-1].Name

	for i := range 4 {
		dest := filepath.Join(t.TempDir(), "pgdata")
		cmd := start("backup-fetch", dest, name)
		// Kill once files are landing in the destination.
		waitFor(t, time.Minute, func() bool {
			des, _ := os.ReadDir(dest)
			return len(des) > 0
		})
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		t.Logf("backup-fetch kill %d done", i)
	}
	wantExit(t, run(t, bin, env, "verify", "--all", "--deep"), 0)
	dest := filepath.Join(t.TempDir(), "pgdata")
	wantExit(t, run(t, bin, env, "backup-fetch", dest, name), 0)
	if out, err := exec.Command(filepath.Join(pg.BinDir, "pg_verifybackup"), "-n", dest).CombinedOutput(); err != nil {
		t.Fatalf("pg_verifybackup of the restore after the kills: %v\n%s", err, out)
	}
}
