package cmd_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/internal/testenv"
)

// TestIntegrationDiskFull: backup-push into a folder repository that fills
// up says so (no space left on device) and exits 1, every time: before, the
// stream's cancellation won the race in six runs of ten, and the run exited
// 130 "interrupted". backup-fetch into a full disk blames the destination,
// not the backup.
func TestIntegrationDiskFull(t *testing.T) {
	bin := testenv.BuildTusk(t)
	mnt := testenv.MountTmpfs(t, testenv.ServerTempDir(t), "96m")
	c := startCluster(t, folderRepoAt(filepath.Join(mnt, "repo")), testenv.PostgresOptions{})
	pg := c.pg
	env := append(c.env, "TUSK_BACKUP_PART_SIZE=1MiB")
	pg.SQL(t, "CREATE TABLE filler AS SELECT g, md5(g::text) AS h FROM generate_series(1, 100000) g; SELECT pg_switch_wal()")
	// backup-push waits (for ever, warning each minute) for its WAL to be
	// archived: make sure the archiver works before relying on it.
	first := filepath.Join(mnt, "repo", "wal", "0000000100000000", "000000010000000000000001")
	waitFor(t, time.Minute, func() bool { _, err := os.Stat(first); return err == nil })

	wantExit(t, run(t, bin, env, "backup-push"), 0)
	t.Run("backup-fetch into a full disk", func(t *testing.T) {
		dest := filepath.Join(testenv.MountTmpfs(t, t.TempDir(), "4m"), "pgdata")
		r := run(t, bin, env, "backup-fetch", dest, "LATEST")
		line := errorLine(t, r.stderr)
		if r.code != 1 || !strings.Contains(line, "cannot write into "+dest+": no space left on device") || strings.Contains(line, "corrupt") {
			t.Fatalf("exit %d, %q; want exit 1 saying %s is full, and nothing corrupt", r.code, line, dest)
		}
	})

	// Leave about 6 MiB free: the next backup's parts fill it.
	var fs syscall.Statfs_t
	if err := syscall.Statfs(mnt, &fs); err != nil {
		t.Fatal(err)
	}
	free := int64(fs.Bavail) * fs.Bsize
	f, err := os.Create(filepath.Join(mnt, "ballast"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(make([]byte, free-6<<20)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// The first run must say it. The archiver writes into the same folder,
	// and once it has failed on the full disk backup-push refuses to start
	// (in its own sentence); until then every run must say it too.
	for i := range 6 {
		r := run(t, bin, env, "backup-push")
		line := errorLine(t, r.stderr)
		t.Logf("run %d: exit %d: %s", i+1, r.code, line)
		if i > 0 && r.code == 1 && strings.Contains(line, "WAL archiving is failing") {
			break
		}
		if r.code != 1 || !strings.Contains(line, "no space left on device") {
			t.Fatalf("run %d: exit %d, %q; want exit 1 saying no space left on device", i+1, r.code, line)
		}
	}
}
