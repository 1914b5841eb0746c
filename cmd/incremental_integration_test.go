package cmd_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/internal/testenv"
)

// chainEntry is one backup as backup-list --json prints it.
type chainEntry struct {
	basebackup.Meta
	ChainStoredSize int64  `json:"chain_stored_size"`
	ChainError      string `json:"chain_error"`
}

func listChain(t *testing.T, bin string, env []string) []chainEntry {
	t.Helper()
	out, stderr, code := run(t, bin, env, "backup-list", "--json")
	if code != 0 {
		t.Fatalf("backup-list: exit %d\n%s", code, stderr)
	}
	var bs []chainEntry
	if err := json.Unmarshal([]byte(out), &bs); err != nil {
		t.Fatalf("backup-list --json: %v\n%s", err, out)
	}
	return bs
}

// TestIntegrationIncrementalBackups: with TUSK_DELTA_MAX_STEPS, backup-push
// on PostgreSQL 17 takes incrementals on the newest backup until the chain
// is full, then a full one; --full, --delta-from-name and summarize_wal off
// behave as the help says.
func TestIntegrationIncrementalBackups(t *testing.T) {
	t.Parallel()
	bin := testenv.BuildTusk(t)
	env := []string{"TUSK_REPO=file://" + filepath.Join(testenv.ServerTempDir(t), "repo"), "TUSK_BACKUP_PART_SIZE=4MiB"}
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{Version: 17, ArchiveCommand: bin + " wal-push %p", Env: env,
		Conf: map[string]string{"summarize_wal": "on"}})
	env = append(env, pg.Env()...)
	pgbench(t, pg, "-i", "-s", "4", "-q")
	delta := append(env[:len(env):len(env)], "TUSK_DELTA_MAX_STEPS=2")

	push := func(env []string, args ...string) (string, string) {
		t.Helper()
		stdout, stderr, code := run(t, bin, env, append([]string{"backup-push", pg.DataDir}, args...)...)
		if code != 0 {
			t.Fatalf("backup-push %v: exit %d\n%s%s", args, code, stdout, stderr)
		}
		return stdout, stderr
	}
	change := func() { pg.SQL(t, "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 4000") } // 1% of the rows, in 1% of the pages

	_, stderr := push(delta)
	if !strings.Contains(stderr, "holds no backup of this cluster") {
		t.Errorf("the first backup-push with TUSK_DELTA_MAX_STEPS does not say why it takes a full backup:\n%s", stderr)
	}
	change()
	out, _ := push(delta)
	if !strings.Contains(out, "incremental on base_") {
		t.Errorf("the second backup-push is not incremental:\n%s", out)
	}
	change()
	push(delta)
	change()
	_, stderr = push(delta)
	if !strings.Contains(stderr, "holds 2 incremental backups, TUSK_DELTA_MAX_STEPS allows 2") {
		t.Errorf("the fourth backup-push does not say the chain is full:\n%s", stderr)
	}
	change()
	push(delta, "--full")

	bs := listChain(t, bin, env)
	if len(bs) != 5 {
		t.Fatalf("backup-list shows %d backups, want 5", len(bs))
	}
	wantKinds := []string{"full", "incremental", "incremental", "full", "full"}
	for i, b := range bs {
		if b.Kind() != wantKinds[i] || b.ChainError != "" {
			t.Errorf("backup %d (%s) is %s (chain error %q), want %s", i, b.Name, b.Kind(), b.ChainError, wantKinds[i])
		}
	}
	full, inc1, inc2 := bs[0], bs[1], bs[2]
	if inc1.Parent != full.Name || inc1.ChainFull != full.Name || inc1.ChainDepth != 1 ||
		inc2.Parent != inc1.Name || inc2.ChainFull != full.Name || inc2.ChainDepth != 2 {
		t.Errorf("chain: %s <- %s (%s, %d) <- %s (%s, %d)", full.Name, inc1.Parent, inc1.ChainFull, inc1.ChainDepth, inc2.Parent, inc2.ChainFull, inc2.ChainDepth)
	}
	if inc1.DataSize*5 > full.DataSize {
		t.Errorf("an incremental after changing 1%% of the rows holds %d bytes, the full backup %d", inc1.DataSize, full.DataSize)
	}
	if want := full.StoredSize + inc1.StoredSize + inc2.StoredSize; inc2.ChainStoredSize != want {
		t.Errorf("chain stored size %d, want %d", inc2.ChainStoredSize, want)
	}

	// --delta-from-name that names nothing fails; one that names a backup
	// takes an incremental on it.
	if out, stderr, code := run(t, bin, env, "backup-push", "--delta-from-name", "base_nope"); code != 1 || !strings.Contains(stderr, "--delta-from-name base_nope: no such backup") {
		t.Errorf("backup-push --delta-from-name base_nope: exit %d\n%s%s", code, out, stderr)
	}
	change()
	if out, _ := push(env, "--delta-from-name", full.Name); !strings.Contains(out, "incremental on "+full.Name) {
		t.Errorf("backup-push --delta-from-name %s:\n%s", full.Name, out)
	}

	// Without WAL summaries there is no incremental: a full backup, and why.
	pg.SQL(t, "ALTER SYSTEM SET summarize_wal = off")
	pg.SQL(t, "SELECT pg_reload_conf()")
	waitFor(t, 30e9, func() bool { return pg.SQL(t, "SHOW summarize_wal") == "off" })
	if out, stderr := push(delta); !strings.Contains(stderr, "summarize_wal is off") || !strings.Contains(out, "(full)") {
		t.Errorf("backup-push with summarize_wal off:\n%s%s", out, stderr)
	}
	if out, stderr, code := run(t, bin, env, "backup-push", "--delta-from-name", full.Name); code != 1 || !strings.Contains(stderr, "summarize_wal is off") {
		t.Errorf("backup-push --delta-from-name with summarize_wal off: exit %d\n%s%s", code, out, stderr)
	}
}

// TestIntegrationIncrementalNeedsPostgreSQL17: on PostgreSQL 15,
// TUSK_DELTA_MAX_STEPS takes full backups and says why.
func TestIntegrationIncrementalNeedsPostgreSQL17(t *testing.T) {
	t.Parallel()
	bin := testenv.BuildTusk(t)
	env := []string{"TUSK_REPO=file://" + filepath.Join(testenv.ServerTempDir(t), "repo")}
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{ArchiveCommand: bin + " wal-push %p", Env: env})
	env = append(env, pg.Env()...)
	// The server's archiver (as the server's user) makes the repository.
	waitArchived(t, pg, pg.SQL(t, "SELECT pg_walfile_name(pg_switch_wal())"))
	for i := range 2 {
		out, stderr, code := run(t, bin, append(env, "WALG_DELTA_MAX_STEPS=3"), "backup-push", pg.DataDir)
		if code != 0 || !strings.Contains(out, "(full)") {
			t.Fatalf("backup-push %d: exit %d\n%s%s", i, code, out, stderr)
		}
		if i == 1 && !strings.Contains(stderr, "incremental backups need PostgreSQL 17 or later") {
			t.Errorf("backup-push on PostgreSQL 15 with WALG_DELTA_MAX_STEPS does not say why it takes a full backup:\n%s", stderr)
		}
	}
}
