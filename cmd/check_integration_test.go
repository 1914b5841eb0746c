package cmd_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tusk-backup/tusk/internal/testenv"
)

// TestIntegrationCheck: check passes on a correctly set-up cluster (the
// switched segment arrives in the archive) and fails with a line saying
// what to change for archive_mode off, an archive_command that does not call
// tusk (another tool's is recognised before any WAL switch) or archives
// elsewhere, and a repository that cannot be written.
func TestIntegrationCheck(t *testing.T) {
	bin := testenv.BuildTusk(t)
	base := testenv.ServerTempDir(t)
	repo := func(name string) []string { return []string{"TUSK_REPO=file://" + filepath.Join(base, name)} }
	cases := []struct {
		name, archiveCommand string
		env                  []string
		want                 string // a line of stdout with this, "" for success
	}{
		{"good", bin + " wal-push %p", repo("good"), ""},
		{"archive_mode off", "", repo("off"), "FAILED   archive_mode"},
		{"archive_command not tusk", "true", repo("true"), "FAILED   archive_command"},
		// Another tool's wal-push fails at once, naming the tool, instead of
		// after the WAL switch's wait.
		{"archive_command of wal-g", "wal-g wal-push %p", repo("walg"), "which calls wal-g, not tusk wal-push %p"},
		{"archive_command elsewhere", "TUSK_REPO=file://" + filepath.Join(base, "other") + " " + bin + " wal-push %p", repo("elsewhere"), "FAILED   archive_command"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			pg := testenv.StartPostgres(t, testenv.PostgresOptions{ArchiveCommand: c.archiveCommand, Env: c.env})
			if c.want == "" {
				// Let the archiver (the server's user) make the repository
				// folder, as it would on a real server, before check (run as
				// root here) probes it.
				pg.SQL(t, "CREATE TABLE x AS SELECT 1")
				archiveWAL(t, pg)
			}
			r := run(t, bin, append(append([]string{}, c.env...), pg.Env()...), "check", "--timeout", "20s")
			t.Logf("%s:\n%s%s", c.name, r.stdout, r.stderr)
			if c.want == "" {
				wantExit(t, r, 0)
				if !strings.Contains(r.stdout, "OK       wal switch") || strings.Contains(r.stdout, "segment 000000010000000000000001 ") {
					t.Fatalf("check on a good set-up: exit %d", r.code)
				}
				return
			}
			wantExit(t, r, 1)
			if !strings.Contains(r.stdout, c.want) {
				t.Fatalf("check: exit %d, want 1 with a line %q", r.code, c.want)
			}
			if !strings.Contains(r.stdout, "FAILED   wal switch       not tried until the failures above are fixed") {
				t.Fatalf("check tried the WAL switch although the settings are wrong")
			}
		})
	}
	t.Run("unwritable repository", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "a-file")
		os.WriteFile(file, []byte("x"), 0o600)
		r := run(t, bin, []string{"TUSK_REPO=file://" + file + "/repo"}, "check", "--no-server")
		t.Logf("%s%s", r.stdout, r.stderr)
		wantExit(t, r, 1)
		if !strings.Contains(r.stdout, "FAILED   repository") {
			t.Fatalf("check: exit %d, and no line FAILED   repository", r.code)
		}
	})
}
