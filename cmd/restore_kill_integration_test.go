package cmd_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/internal/testenv"
)

// TestIntegrationRestoreKilledMidway: backup-fetch killed with SIGKILL
// mid-restore leaves a folder PostgreSQL will not start from, which a
// second backup-fetch into it calls unfinished; one into a fresh folder
// restores the backup whole.
//
// The kill lands at the worst moment, deterministically: every part
// written (pg_control too, under its held name), only the backup manifest,
// the recovery settings and the seal to come. The restore reads the parts
// one at a time in order and then the manifest, whose object is replaced by
// a FIFO: backup-fetch blocks opening it, and the test knows it got there
// when it can open the FIFO's other end without blocking.
func TestIntegrationRestoreKilledMidway(t *testing.T) {
	bin := testenv.BuildTusk(t)
	repo := folderRepo(t)
	c := startCluster(t, repo, testenv.PostgresOptions{Env: []string{"TUSK_BACKUP_PART_SIZE=1MiB"}})
	pg, env := c.pg, c.env
	pgbench(t, pg, "-i", "-s", "2", "-q")
	wantExit(t, run(t, bin, env, "backup-push"), 0)
	backups := listBackups(t, bin, env)
	b := backups[len(backups)-1]
	if len(b.Parts) < 10 {
		t.Fatalf("%d parts, want many at 1 MiB each", len(b.Parts))
	}

	manifest := filepath.Join(repo.dir, filepath.FromSlash(b.Manifest.Key))
	if err := os.Rename(manifest, manifest+".saved"); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(manifest, 0o600); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(testenv.ServerTempDir(t), "pgdata")
	cmd := tuskCommand(t.Context(), bin, append(append([]string{}, repo.env...), "TUSK_DOWNLOAD_CONCURRENCY=1"), "backup-fetch", dest, b.Name)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Opening a FIFO for writing without blocking fails (ENXIO) until a
	// reader has it open; the writer end is kept open, so backup-fetch
	// stays blocked reading until it is killed.
	var writer int
	waitFor(t, 2*time.Minute, func() bool {
		select {
		case err := <-exited:
			t.Fatalf("backup-fetch ended (%v) before reading the manifest:\n%s", err, stderr.String())
		default:
		}
		fd, err := syscall.Open(manifest, syscall.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			return false
		}
		writer = fd
		return true
	})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err == nil {
		t.Fatal("backup-fetch exited 0 though killed")
	}
	syscall.Close(writer)

	// What the kill left: every part's files, and no pg_control.
	for _, f := range []string{"PG_VERSION", "backup_label", "global/pg_control.tusk-restoring", "tusk-restore-unfinished"} {
		if _, err := os.Stat(filepath.Join(dest, f)); err != nil {
			t.Errorf("the killed restore was further along than the test expects: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(dest, "global", "pg_control")); err == nil {
		t.Fatal("the killed restore left global/pg_control in place")
	}

	// PostgreSQL will not start from it. The leftover is given to the
	// server's user first, so that the start fails for the reason that
	// matters, not for ownership; the port and socket are the test's own.
	owner, err := os.Stat(testenv.ServerTempDir(t))
	if err != nil {
		t.Fatal(err)
	}
	uid, gid := int(owner.Sys().(*syscall.Stat_t).Uid), int(owner.Sys().(*syscall.Stat_t).Gid)
	filepath.Walk(dest, func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			err = os.Lchown(p, uid, gid)
		}
		return err
	})
	sock := testenv.ServerTempDir(t)
	logFile := filepath.Join(sock, "start.log")
	start := pg.RunAsOwner(t.Context(), filepath.Join(pg.ServerBinDir, "pg_ctl"), "start", "-w", "-t", "60", "-D", dest, "-l", logFile,
		"-o", "-c port="+strconv.Itoa(pg.Port+1)+" -c listen_addresses='' -c unix_socket_directories="+sock+" -c archive_mode=off")
	out, err := start.CombinedOutput()
	log, _ := os.ReadFile(logFile)
	if err == nil {
		stopServer(t, pg, dest)
		t.Fatalf("PostgreSQL started from the folder a killed restore left:\n%s%s", out, log)
	}
	if !strings.Contains(string(log), "pg_control") {
		t.Fatalf("pg_ctl start failed, but not for want of pg_control:\n%s%s", out, log)
	}
	t.Logf("pg_ctl start on the leftover: %s", strings.TrimSpace(string(log)))

	// The repository is whole again; a second backup-fetch into the same
	// folder says what the folder is; one into a fresh folder succeeds.
	if err := os.Remove(manifest); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(manifest+".saved", manifest); err != nil {
		t.Fatal(err)
	}
	r := run(t, bin, env, "backup-fetch", dest, b.Name)
	if line := errorLine(t, r.stderr); r.code != 1 || !strings.Contains(line, dest+" holds an unfinished restore") || !strings.Contains(line, "remove it") {
		t.Fatalf("backup-fetch into the killed restore's folder: exit %d, %q; want exit 1 saying it holds an unfinished restore", r.code, line)
	}
	fresh := filepath.Join(testenv.ServerTempDir(t), "pgdata")
	wantExit(t, run(t, bin, env, "backup-fetch", fresh, b.Name), 0)
	if out, err := exec.Command(filepath.Join(pg.BinDir, "pg_verifybackup"), "-n", fresh).CombinedOutput(); err != nil {
		t.Fatalf("pg_verifybackup of the second restore: %v\n%s", err, out)
	}
	for _, f := range []string{"global/pg_control.tusk-restoring", "tusk-restore-unfinished"} {
		if _, err := os.Stat(filepath.Join(fresh, f)); err == nil {
			t.Errorf("the finished restore holds %s", f)
		}
	}
}
