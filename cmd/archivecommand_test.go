package cmd

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/tusk-backup/tusk/check"
)

// TestJudgeArchiveCommand: check recognises at once an archive_command that
// does not hand PostgreSQL tusk wal-push %p's exit status.
func TestJudgeArchiveCommand(t *testing.T) {
	t.Parallel()
	identify := func(w string) check.Program {
		switch {
		case strings.Contains(w, "$"), filepath.Base(w) == "archive.sh":
			return check.ProgramScript
		case filepath.Base(w) == "tusk", w == "/opt/bin/tusk-1.4":
			return check.ProgramTusk
		}
		return check.ProgramOther
	}
	cases := []struct {
		cmd    string
		status string
		want   string // in the detail
	}{
		{"tusk wal-push %p", "ok", "tusk wal-push %p"},
		{"/usr/local/bin/tusk wal-push %p", "ok", ""},
		{"/opt/bin/tusk-1.4 wal-push %p", "ok", ""},
		{`tusk wal-push "%p"`, "ok", ""},
		{"tusk wal-push pg_wal/%f", "ok", ""},
		{"env X=Y tusk wal-push %p", "ok", ""},
		{"env -i PATH=/usr/bin TUSK_REPO=file:///r tusk wal-push %p", "ok", ""},
		{"TUSK_REPO=s3://b/p AWS_REGION=eu-west-1 tusk wal-push %p", "ok", ""},
		{"tusk --config /etc/tusk.yaml wal-push %p", "ok", ""},
		{"tusk --config=/etc/tusk.yaml --log-level debug wal-push --compression zstd %p", "ok", ""},
		{"nice -n 10 ionice -c 3 timeout 300 tusk wal-push %p", "ok", ""},
		{"exec tusk wal-push %p", "ok", ""},
		{"test ! -f /tmp/stop && tusk wal-push %p", "ok", ""},
		{"mkdir -p /x; tusk wal-push %p", "ok", ""},
		{"tusk wal-push %p 2>>/var/log/tusk.log", "ok", ""},
		{"! tusk wal-push %p", "failed", "inverts an exit status"},
		{"sh -c 'tusk wal-push %p'", "ok", ""},
		{"wal-g wal-push %p", "failed", "calls wal-g, not tusk wal-push %p; set archive_command = 'tusk wal-push %p'"},
		{"/usr/local/bin/wal-g wal-push %p", "failed", "calls /usr/local/bin/wal-g, not tusk"},
		{"envdir /etc/wal-g.d/env wal-g wal-push %p", "failed", "calls wal-g, not tusk"},
		{"pgbackrest --stanza=main archive-push %p", "failed", "calls pgbackrest, not tusk"},
		{"test ! -f /mnt/server/archivedir/%f && cp %p /mnt/server/archivedir/%f", "failed", "calls cp, not tusk"},
		{"true", "failed", "calls true, not tusk"},
		{"", "failed", "is empty"},
		{"tusk wal-fetch %f %p", "failed", `calls tusk as "tusk wal-fetch %f %p", not as tusk wal-push %p`},
		{"tusk wal-push /var/lib/postgresql/x", "failed", "not as tusk wal-push %p"},
		{"tusk wal-push", "failed", "not as tusk wal-push %p"},
		{"tusk wal-push --bogus %p", "failed", "not as tusk wal-push %p"},
		{"tusk wal-push '%p", "failed", "which the shell cannot run (a single quote is not closed)"},
		{"tusk wal-push %p || true", "failed", `after tusk wal-push %p comes "||", so a failed upload can reach PostgreSQL as archived`},
		{"tusk wal-push %p; echo done", "failed", `after tusk wal-push %p comes ";"`},
		{"tusk wal-push %p | logger -t tusk", "failed", `comes "|"`},
		{"tusk wal-push %p &", "failed", "runs in the background"},
		{"tusk wal-push %p && touch /tmp/last-archived", "warning", "a command after tusk wal-push %p decides the exit status"},
		{"test -f /tmp/skip || tusk wal-push %p", "warning", "runs only when the command before || fails"},
		{"sudo -u postgres /usr/bin/tusk wal-push %p", "warning", "calls tusk wal-push %p through sudo, a command check does not know"},
		{"sudo -u postgres wal-g wal-push %p", "failed", "calls sudo, not tusk"},
		{"/usr/local/bin/archive.sh %p", "warning", "calls /usr/local/bin/archive.sh, a script or expansion that check cannot see into"},
		{`"$TUSK_BIN" wal-push %p`, "warning", "calls $TUSK_BIN, a script or expansion"},
		{"sh -c 'wal-g wal-push %p'", "failed", "whose shell command \"wal-g wal-push %p\", which calls wal-g, not tusk"},
	}
	for _, c := range cases {
		status, detail := check.ArchiveCommand(c.cmd, identify, isWALPushP)
		if status != c.status || !strings.Contains(detail, c.want) || strings.Contains(detail, "\n") {
			t.Errorf("ArchiveCommand(%q) = %s, %q; want %s with %q", c.cmd, status, detail, c.status, c.want)
		}
	}
}
