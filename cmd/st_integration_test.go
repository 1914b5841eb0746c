package cmd_test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tusk-backup/tusk/internal/testenv"
)

// TestIntegrationSt: wal-g's st commands on an encrypted folder repository
// that a real server archives into: ls in wal-g's columns, put (encrypted
// at rest, no overwrite without -f, never into tusk's or wal-g's keys),
// cat and get (decrypted; a WAL object decompressed and checked), rm
// (never of what tusk manages).
func TestIntegrationSt(t *testing.T) {
	bin := testenv.BuildTusk(t)
	repo := folderRepo(t)
	c := startCluster(t, repo, testenv.PostgresOptions{Env: []string{"TUSK_ENCRYPTION_KEY_FILE=" + keyFile(t), "TUSK_ENCRYPTION_KEY_TRANSFORM=hex"}})
	pg, env := c.pg, c.env
	seg := archiveWAL(t, pg)

	r := run(t, bin, env, "st", "ls")
	wantExit(t, r, 0)
	if !strings.HasPrefix(r.stdout, "type size last modified") || !regexp.MustCompile(`\ndir +0 +0001-01-01 00:00:00 \+0000 UTC +wal/\n`).MatchString(r.stdout) ||
		!strings.Contains(r.stdout, " tusk-repository.json\n") {
		t.Fatalf("st ls:\n%s", r.stdout)
	}
	r = run(t, bin, env, "st", "ls", "-r", "wal")
	wantExit(t, r, 0)
	if !strings.Contains(r.stdout, "0000000100000000/"+seg+"\n") {
		t.Fatalf("st ls -r wal: no %s:\n%s", seg, r.stdout)
	}

	secret := "the operator's notes: not for the bucket's eyes\n"
	local := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(local, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	wantExit(t, run(t, bin, env, "st", "put", local, "extra/notes.txt"), 0)
	stored, err := os.ReadFile(filepath.Join(repo.dir, "extra", "notes.txt"))
	if err != nil || bytes.Contains(stored, []byte("operator")) {
		t.Fatalf("st put stored %q (%v): want it encrypted", stored, err)
	}
	if r := run(t, bin, env, "st", "cat", "/extra/notes.txt"); r.code != 0 || r.stdout != secret {
		t.Fatalf("st cat: exit %d, %q", r.code, r.stdout)
	}
	r = run(t, bin, env, "st", "put", local, "extra/notes.txt")
	wantExit(t, r, 1)
	if !strings.Contains(r.stderr, "already exists") || !strings.Contains(r.stderr, "-f (--force)") {
		t.Errorf("st put over an object: %s", r.stderr)
	}
	cmd := tuskCommand(t.Context(), bin, env, "st", "put", "-f", "-s", "extra/notes.txt")
	cmd.Stdin = strings.NewReader("replaced\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("st put -f -s: %v\n%s", err, out)
	}
	if r := run(t, bin, env, "st", "cat", "extra/notes.txt"); r.stdout != "replaced\n" {
		t.Fatalf("st cat after put -f -s: %q", r.stdout)
	}
	for _, key := range []string{"wal/0000000100000000/" + seg, "backups/x.json", "tusk-repository.json", "basebackups_005/x", "wal_005/x.lz4"} {
		before := repo.keys(t)
		r := run(t, bin, env, "st", "put", "-f", local, key)
		wantExit(t, r, 2)
		if strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stderr, "is refused") {
			t.Errorf("st put %s: want one sentence refusing it, got %s", key, r.stderr)
		}
		if after := repo.keys(t); len(after) != len(before) {
			t.Errorf("st put %s was refused, yet the repository changed", key)
		}
	}

	// cat --decompress and get: a WAL segment's content, checked.
	walKey := "wal/0000000100000000/" + seg
	r = run(t, bin, env, "st", "cat", "--decompress", walKey)
	wantExit(t, r, 0)
	if len(r.stdout) != 16<<20 {
		t.Fatalf("st cat --decompress: %d bytes, want a 16 MiB segment", len(r.stdout))
	}
	dest := t.TempDir()
	wantExit(t, run(t, bin, env, "st", "get", walKey, dest), 0)
	got, err := os.ReadFile(filepath.Join(dest, seg))
	if err != nil || string(got) != r.stdout {
		t.Fatalf("st get into a folder: %d bytes, %v", len(got), err)
	}
	wantExit(t, run(t, bin, env, "st", "get", walKey, dest), 1) // the file exists: never overwritten
	if r := run(t, bin, env, "st", "cat", "extra/none"); r.code != 1 || !strings.Contains(r.stderr, "object extra/none is not in") {
		t.Errorf("st cat of a missing object: exit %d, %s", r.code, r.stderr)
	}

	// rm: the operator's objects, never tusk's.
	wantExit(t, run(t, bin, env, "st", "rm", "extra/"), 0)
	if _, err := os.Stat(filepath.Join(repo.dir, "extra", "notes.txt")); err == nil {
		t.Error("st rm extra/ left extra/notes.txt")
	}
	wantExit(t, run(t, bin, env, "st", "rm", "extra/"), 1)
	n := len(repo.keys(t))
	for _, args := range [][]string{{"st", "rm", "wal/"}, {"st", "rm", "/", "--target=all"}, {"st", "rm", walKey}, {"st", "rm", "backups"}} {
		wantExit(t, run(t, bin, env, args...), 2)
	}
	if len(repo.keys(t)) != n {
		t.Error("a refused st rm changed the repository")
	}
	wantExit(t, run(t, bin, env, "st", "ls", "--target", "s3-failover"), 2)

	// Without the key, st reads nothing of an encrypted repository.
	r = run(t, bin, without(env, "TUSK_ENCRYPTION_KEY"), "st", "cat", walKey)
	if r.code == 0 {
		t.Errorf("st cat without the key: exit 0")
	}
}
