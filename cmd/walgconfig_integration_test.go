package cmd_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tusk-backup/tusk/internal/testenv"
)

// TestIntegrationWALGConfigFile: a wal-g user's ~/.walg.json, as wal-g reads
// it (a key given twice, the last winning; numbers; libpq's PGSSLMODE, which
// wal-g copies into its environment), drives a real archive_command wal-push
// and backup-push with nothing in the environment but HOME and the server's
// libpq settings; a key tusk cannot honour in the same file stops wal-push
// before it stores anything.
func TestIntegrationWALGConfigFile(t *testing.T) {
	bin := testenv.BuildTusk(t)
	repoDir := testenv.ServerTempDir(t)
	home := testenv.ServerTempDir(t)
	walgJSON := `{
  "WALG_FILE_PREFIX": "/nonexistent/first/value",
  "WALG_FILE_PREFIX": "` + repoDir + `",
  "walg_compression_method": "lz4",
  "WALG_UPLOAD_CONCURRENCY": 2,
  "WALG_PREVENT_WAL_OVERWRITE": true,
  "WALG_UPLOAD_DISK_CONCURRENCY": 1,
  "PGSSLMODE": "disable"
}`
	if err := os.WriteFile(filepath.Join(home, ".walg.json"), []byte(walgJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	repo := folderRepoAt(repoDir)
	repo.env = []string{"HOME=" + home} // the repository comes from ~/.walg.json only
	c := startCluster(t, repo, testenv.PostgresOptions{})
	pg, env := c.pg, c.env
	pg.SQL(t, "CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g")
	seg := archiveWAL(t, pg)
	if !strings.Contains(strings.Join(repo.keys(t), "\n"), seg) {
		t.Fatalf("segment %s is not in the repository of ~/.walg.json: %v", seg, repo.keys(t))
	}
	r := run(t, bin, env, "backup-push")
	wantExit(t, r, 0)
	if !strings.Contains(r.stderr, "WALG_UPLOAD_DISK_CONCURRENCY (in config file "+filepath.Join(home, ".walg.json")+") is ignored") {
		t.Errorf("backup-push did not note the ignored tuning knob:\n%s", r.stderr)
	}
	metas := listedMetas(t, run(t, bin, env, "backup-list", "--json"))
	if len(metas) != 1 || metas[0].Codec != "lz4" {
		t.Fatalf("backup-list after backup-push with ~/.walg.json: %+v, want one lz4 backup", metas)
	}

	// A PGP key in the file: wal-push refuses (exit 2) and stores nothing.
	bad := strings.Replace(walgJSON, `"PGSSLMODE"`, `"WALG_PGP_KEY_PATH": "/etc/wal-g/key.asc", "PGSSLMODE"`, 1)
	home2 := t.TempDir()
	if err := os.WriteFile(filepath.Join(home2, ".walg.json"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	before := repo.keys(t)
	walFile := filepath.Join(t.TempDir(), "000000010000000000000063")
	if err := os.WriteFile(walFile, make([]byte, 16<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	r = run(t, bin, []string{"HOME=" + home2}, "wal-push", walFile)
	wantExit(t, r, 2)
	if !strings.Contains(r.stderr, "WALG_PGP_KEY_PATH (in config file") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Errorf("wal-push with a PGP key in ~/.walg.json: want one sentence naming it, got:\n%s", r.stderr)
	}
	if after := repo.keys(t); len(after) != len(before) {
		t.Errorf("wal-push refused, yet the repository changed: %d objects, then %d", len(before), len(after))
	}
}
