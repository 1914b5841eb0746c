package cmd_test

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tusk-backup/tusk/internal/testenv"
)

// TestIntegrationWALBadInput: each kind of bad input to wal-push and
// wal-fetch ends in one sentence naming the thing, a non-zero exit, and
// nothing written.
func TestIntegrationWALBadInput(t *testing.T) {
	bin := testenv.BuildTusk(t)
	repo := filepath.Join(t.TempDir(), "repo")
	env := []string{"TUSK_REPO=file://" + repo}
	seg := fakeWAL(t, "000000010000000000000001", 1<<20)
	wantExit(t, run(t, bin, env, "wal-push", seg), 0)
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "000000010000000000000002"), 0o700)
	file := filepath.Join(dir, "plain-file")
	os.WriteFile(file, nil, 0o600)
	// Files under segment names that PostgreSQL never wrote.
	empty := filepath.Join(dir, "000000010000000000000004")
	os.WriteFile(empty, nil, 0o600)
	short := filepath.Join(dir, "000000010000000000000005")
	os.WriteFile(short, make([]byte, 100), 0o600)
	cut := filepath.Join(dir, "000000010000000000000006")
	whole, _ := os.ReadFile(fakeWAL(t, "000000010000000000000006", 2<<20))
	os.WriteFile(cut, whole[:1<<20], 0o600)
	// A whole segment of another cluster in this cluster's pg_wal.
	pgdata := t.TempDir()
	os.MkdirAll(filepath.Join(pgdata, "global"), 0o700)
	os.MkdirAll(filepath.Join(pgdata, "pg_wal"), 0o700)
	control := make([]byte, 8192)
	binary.LittleEndian.PutUint64(control, 42)
	os.WriteFile(filepath.Join(pgdata, "global", "pg_control"), control, 0o600)
	foreign := filepath.Join(pgdata, "pg_wal", "000000010000000000000007")
	other, _ := os.ReadFile(fakeWAL(t, "000000010000000000000007", 1<<20))
	os.WriteFile(foreign, other, 0o600)
	cases := []struct {
		name string
		args []string
		want string
		code int
	}{
		{"push: not a file name", []string{"wal-push", filepath.Join(dir, "plain file")}, `"plain file" is not a WAL file name`, 2},
		{"push: not a WAL name, missing", []string{"wal-push", filepath.Join(dir, "nope")}, "cannot read", 1},
		{"unknown command", []string{"wal-psh", file}, `unknown command "wal-psh": did you mean wal-push?`, 2},
		{"unknown flag", []string{"wal-push", "--bogus", file}, "unknown flag: --bogus (see tusk wal-push --help)", 2},
		{"push: missing file", []string{"wal-push", filepath.Join(dir, "000000010000000000000003")}, "000000010000000000000003: no such file or directory", 1},
		{"push: a directory", []string{"wal-push", filepath.Join(dir, "000000010000000000000002")}, "is not a regular file", 1},
		{"push: no argument", []string{"wal-push"}, "wal-push takes the path of the WAL file to archive", 2},
		{"push: empty segment", []string{"wal-push", empty}, "segment 000000010000000000000004: not a whole WAL segment: it is 0 bytes long, and a segment is at least 1 MiB (wal_segment_size), so it is not archived", 1},
		{"push: 100-byte segment", []string{"wal-push", short}, "segment 000000010000000000000005: not a whole WAL segment: it is 100 bytes long", 1},
		{"push: cut-short segment", []string{"wal-push", cut}, "it is 1048576 bytes long, but its header gives the segment size 2097152 (is it cut short?)", 1},
		{"push: another cluster's segment", []string{"wal-push", foreign}, "it belongs to the cluster with system identifier 7000000000000000001, not to this one (42)", 1},
		{"fetch: not a WAL name", []string{"wal-fetch", "../../etc/passwd", filepath.Join(dir, "x")}, "is not a WAL file name", 2},
		{"fetch: destination folder missing", []string{"wal-fetch", "000000010000000000000001", filepath.Join(dir, "nope", "x")}, "destination folder", 1},
		{"fetch: destination is a folder", []string{"wal-fetch", "000000010000000000000001", dir}, "is a folder", 1},
		{"fetch: destination under a file", []string{"wal-fetch", "000000010000000000000001", filepath.Join(file, "x")}, "not a folder", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before, _ := os.ReadDir(dir)
			r := run(t, bin, append(env, "TUSK_WAL_PREFETCH=0"), c.args...)
			line := errorLine(t, r.stderr)
			if r.code != c.code || !strings.Contains(line, c.want) {
				t.Fatalf("exit %d, %q; want exit %d and a sentence containing %q", r.code, line, c.code, c.want)
			}
			if after, _ := os.ReadDir(dir); len(after) != len(before) {
				t.Fatalf("bad input changed the destination folder: %d entries, was %d", len(after), len(before))
			}
		})
	}
	var objects int
	filepath.WalkDir(repo, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() != "tusk-repository.json" {
			objects++
		}
		return nil
	})
	if objects != 1 {
		t.Fatalf("the repository holds %d objects after the bad pushes, want 1", objects)
	}
}
