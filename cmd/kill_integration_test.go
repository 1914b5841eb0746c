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
	m := testenv.StartMinIO(t)
	env := append(m.Env(), "TUSK_REPO="+m.URL("kills"), "TUSK_BACKUP_PART_SIZE=1MiB")
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{ArchiveCommand: bin + " wal-push %p", Env: env})
	env = append(env, pg.Env()...)
	pgbench(t, pg, "-i", "-s", "10", "-q")
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	start := func(args ...string) *exec.Cmd {
		cmd := exec.Command(bin, args...)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
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
			if _, stderr, code := run(t, bin, env, "verify", b.Name); code != 0 {
				t.Fatalf("kill %d of backup-push left a listed backup that does not verify:\n%s", i, stderr)
			}
		}
	}
	if out, stderr, code := run(t, bin, env, "backup-push"); code != 0 {
		t.Fatalf("backup-push after the kills: exit %d\n%s%s", code, out, stderr)
	}
	if out, stderr, code := run(t, bin, env, "delete", "garbage", "BACKUPS", "--confirm", "--leftover-age", "0s"); code != 0 {
		t.Fatalf("delete garbage after the kills: exit %d\n%s%s", code, out, stderr)
	}
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
	if _, stderr, code := run(t, bin, env, "verify", "--all", "--deep"); code != 0 {
		t.Fatalf("verify after the backup-fetch kills: exit %d\n%s", code, stderr)
	}
	dest := filepath.Join(t.TempDir(), "pgdata")
	if out, stderr, code := run(t, bin, env, "backup-fetch", dest, name); code != 0 {
		t.Fatalf("backup-fetch after the kills: exit %d\n%s%s", code, out, stderr)
	}
	if out, err := exec.Command(filepath.Join(pg.BinDir, "pg_verifybackup"), "-n", dest).CombinedOutput(); err != nil {
		t.Fatalf("pg_verifybackup of the restore after the kills: %v\n%s", err, out)
	}
}
