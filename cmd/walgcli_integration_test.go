package cmd_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/internal/testenv"
)

// TestIntegrationWALGCommandLines: wal-g's command lines as its own test
// scripts write them (docker/pg_tests), against a real server archiving
// with "wal-push %p --pg-ready-rename=true": backup-push -p --turbo -f,
// backup-list in wal-g's columns (cut, awk and grep as the scripts read
// it), --detail's true/false, backup-mark -i, wal-verify integrity
// timeline in wal-g's report and JSON, and delete garbage naming what it
// deletes.
func TestIntegrationWALGCommandLines(t *testing.T) {
	bin := testenv.BuildTusk(t)
	repo := folderRepo(t)
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{
		ArchiveCommand: bin + " wal-push %p --pg-ready-rename=true",
		Env:            repo.env,
	})
	env := append(append([]string{}, repo.env...), pg.Env()...)
	pg.SQL(t, "CREATE TABLE t AS SELECT g FROM generate_series(1, 10000) g")
	archiveWAL(t, pg)

	r := run(t, bin, env, "backup-push", "-p", "--turbo", "-f", pg.DataDir)
	wantExit(t, r, 0)
	if !strings.Contains(r.stderr, "--turbo is ignored: tusk has no throttling to turn off") {
		t.Errorf("backup-push --turbo: no note on stderr:\n%s", r.stderr)
	}
	archiveWAL(t, pg)
	wantExit(t, run(t, bin, env, "backup-push", pg.DataDir), 0)

	// backup-list as wal-g's scripts read it.
	r = run(t, bin, env, "backup-list")
	wantExit(t, r, 0)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0])[:4], " ") != "backup_name modified wal_file_name storage_name" {
		t.Fatalf("backup-list: want a heading and two backups:\n%s", r.stdout)
	}
	first := strings.Fields(lines[1])
	rfc3339 := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)
	if !strings.HasPrefix(first[0], "base_") || !rfc3339.MatchString(first[1]) || len(first[2]) != 24 || first[3] != "default" {
		t.Fatalf("backup-list row %q: want wal-g's backup_name, modified, wal_file_name, storage_name", lines[1])
	}
	detail := func() []string {
		r := run(t, bin, env, "backup-list", "--detail")
		wantExit(t, r, 0)
		var out []string
		for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n")[1:] {
			out = append(out, strings.Join(regexp.MustCompile(`\b(true|false)\b`).FindAllString(l, -1), ","))
		}
		return out
	}
	if got := detail(); len(got) != 2 || got[0] != "true" || got[1] != "false" {
		t.Fatalf("backup-list --detail: true/false words %q, want one per line: true, false", got)
	}
	wantExit(t, run(t, bin, env, "backup-mark", "-i", first[0]), 0)
	if got := detail(); got[0] != "false" {
		t.Fatalf("after backup-mark -i: %q", got)
	}
	r = run(t, bin, env, "backup-list", "--pretty", "--detail")
	wantExit(t, r, 0)
	t.Logf("tusk backup-list --pretty --detail:\n%s", r.stdout)
	if !strings.Contains(r.stdout, "| # | BACKUP NAME ") || !strings.Contains(r.stdout, "| 1 | base_") {
		t.Errorf("backup-list --pretty:\n%s", r.stdout)
	}
	r = run(t, bin, env, "backup-list", "--json")
	wantExit(t, r, 0)
	var list []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 2 {
		t.Fatalf("backup-list --json: %v\n%s", err, r.stdout)
	}
	if _, ok := list[0]["start_lsn"].(float64); !ok || list[0]["backup_name"] != first[0] || list[0]["storage_name"] != "default" {
		t.Errorf("backup-list --json: %v", list[0])
	}
	if _, err := time.Parse(time.RFC3339Nano, list[0]["time"].(string)); err != nil {
		t.Errorf("backup-list --json time: %v", err)
	}

	// wal-verify integrity timeline, wal-g's report.
	seg := archiveWAL(t, pg)
	r = run(t, bin, env, "wal-verify", "integrity", "timeline")
	wantExit(t, r, 0)
	t.Logf("tusk wal-verify integrity timeline:\n%s", r.stdout)
	for _, want := range []string{"[wal-verify] integrity check status: OK\n", "[wal-verify] integrity check details:\n",
		"| TLI | START ", " FOUND |", "[wal-verify] timeline check status: OK\n", "Highest timeline found in storage: 1\n", "Current cluster timeline: 1\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("wal-verify integrity timeline: no %q in\n%s", want, r.stdout)
		}
	}
	r = run(t, bin, env, "wal-verify", "integrity", "timeline", "--json")
	wantExit(t, r, 0)
	var rep struct {
		Integrity struct {
			Status  string `json:"status"`
			Details []struct {
				Timeline uint32 `json:"timeline_id"`
				Start    string `json:"start_segment"`
				End      string `json:"end_segment"`
				Count    int    `json:"segments_count"`
				Status   string `json:"status"`
			} `json:"details"`
		} `json:"integrity"`
		Timeline struct {
			Status  string `json:"status"`
			Details struct {
				Current uint32 `json:"current_timeline_id"`
				Highest uint32 `json:"highest_storage_timeline_id"`
			} `json:"details"`
		} `json:"timeline"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("wal-verify --json: %v\n%s", err, r.stdout)
	}
	d := rep.Integrity.Details
	if rep.Integrity.Status != "OK" || len(d) == 0 || d[len(d)-1].End < seg || d[0].Status != "FOUND" || rep.Timeline.Details.Current != 1 || rep.Timeline.Details.Highest != 1 {
		t.Fatalf("wal-verify --json: %+v", rep)
	}
	// A lost segment: FAILURE, and (tusk's one difference) exit 1.
	lost := filepath.Join(repo.dir, "wal", seg[:16], d[0].Start)
	if err := os.Remove(lost); err != nil {
		t.Fatal(err)
	}
	r = run(t, bin, env, "wal-verify", "integrity")
	wantExit(t, r, 1)
	if !strings.Contains(r.stdout, "[wal-verify] integrity check status: FAILURE") || !strings.Contains(r.stdout, "MISSING_LOST") {
		t.Fatalf("wal-verify integrity with a lost segment:\n%s", r.stdout)
	}
	wantExit(t, run(t, bin, env, "wal-verify", "integrity", "bogus"), 2)

	// wal-push of files not named like WAL, as wal-g's test_wal_overwrites
	// pushes them: stored as they are; a .history name is never
	// overwritten, another only without overwrite protection.
	dir := t.TempDir()
	push := func(name, content string, extra ...string) result {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return run(t, bin, append(append([]string{}, env...), extra...), "wal-push", filepath.Join(dir, name))
	}
	noProtect := "TUSK_PREVENT_WAL_OVERWRITE=false"
	wantExit(t, push("test_file.history", "test\n", noProtect), 0)
	wantExit(t, push("test_file.history", "test\n", noProtect), 0)
	wantExit(t, push("test_file.history", "test1\n", noProtect), 1)
	wantExit(t, push("test_file", "test\n"), 0)
	wantExit(t, push("test_file", "test\n"), 0)
	if r := push("test_file", "test1\n"); r.code != 1 || !strings.Contains(r.stderr, "already archived with different content") {
		t.Fatalf("wal-push of changed test_file with overwrite protection: exit %d\n%s", r.code, r.stderr)
	}
	wantExit(t, push("test_file", "test1\n", noProtect), 0)
	wantExit(t, push("1"+seg, "copy\n"), 0)
	if got, err := os.ReadFile(filepath.Join(repo.dir, "wal", "files", "test_file")); err != nil || string(got) != "test1\n" {
		t.Fatalf("wal/files/test_file: %q, %v", got, err)
	}
	wantExit(t, run(t, bin, env, "wal-push", filepath.Join(dir, "bad name")), 2)
	wantExit(t, run(t, bin, env, "wal-show"), 0)

	// delete garbage names each object it deletes.
	wantExit(t, run(t, bin, env, "delete", "before", list[1]["backup_name"].(string), "--confirm"), 0)
	r = run(t, bin, env, "delete", "garbage", "--confirm", "--json")
	wantExit(t, r, 0)
	var del struct {
		Objects []string `json:"objects"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &del); err != nil {
		t.Fatalf("delete garbage --json: %v\n%s", err, r.stdout)
	}
	for _, k := range del.Objects {
		if !strings.Contains(r.stderr, "key="+k) {
			t.Errorf("delete garbage deleted %s without naming it on stderr", k)
		}
		if _, err := os.Stat(filepath.Join(repo.dir, k)); err == nil {
			t.Errorf("delete garbage names %s, which is still there", k)
		}
	}
}
