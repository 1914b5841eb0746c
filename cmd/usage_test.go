package cmd

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUsageErrors runs the command line in-process with bad arguments: each
// must be a usage error (exit 2) of one sentence naming the thing and what
// to do, print nothing on stdout, and leave the repository untouched (it is
// never even created).
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown command", []string{"bogus"}, `unknown command "bogus" (see tusk --help for the commands)`},
		{"unknown command with a suggestion", []string{"wal-psh", "x"}, `unknown command "wal-psh": did you mean wal-push? (see tusk --help`},
		{"unknown flag of tusk", []string{"--bogus"}, "unknown flag: --bogus (see tusk --help)"},
		{"unknown flag of a command", []string{"backup-list", "--bogus"}, "unknown flag: --bogus (see tusk backup-list --help)"},
		{"unknown flag of a subcommand", []string{"delete", "retain", "--bogus", "7"}, "unknown flag: --bogus (see tusk delete retain --help)"},
		{"unknown flag of delete before", []string{"delete", "before", "--bogus", "x"}, "unknown flag: --bogus (see tusk delete before --help)"},
		{"too many arguments", []string{"backup-list", "x"}, "backup-list takes no arguments; got 1 argument(s) (see tusk backup-list --help)"},
		{"retain -1", []string{"delete", "retain", "-1"}, "retain needs the number of backups to keep, at least 1; got -1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			msg := executeUsage(t, c.args...)
			if !strings.Contains(msg, c.want) {
				t.Fatalf("tusk %s: %q; want a sentence containing %q", strings.Join(c.args, " "), msg, c.want)
			}
		})
	}
}

// executeUsage runs tusk args against a repository folder that does not
// exist and returns the usage error's sentence; it fails the test unless the
// command ended in a usage error of one line, with nothing on stdout and no
// repository created.
func executeUsage(t *testing.T, args ...string) string {
	t.Helper()
	repo := filepath.Join(t.TempDir(), "repo")
	var stdout, stderr bytes.Buffer
	root := newRootCmd(&rootOpts{stdout: &stdout, stderr: &stderr, env: []string{"TUSK_REPO=file://" + repo, "TUSK_WAL_PREFETCH=0"}})
	root.SetArgs(args)
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	err := root.ExecuteContext(t.Context())
	var usage *UsageError
	if !errors.As(err, &usage) {
		t.Fatalf("tusk %s: %v (%T); want a usage error", strings.Join(args, " "), err, err)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		t.Fatalf("tusk %s: the error is more than one line: %q", strings.Join(args, " "), msg)
	}
	if stdout.Len() > 0 {
		t.Fatalf("tusk %s: printed %q on stdout", strings.Join(args, " "), stdout.String())
	}
	if _, err := os.Stat(repo); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("tusk %s: the repository folder exists after a usage error (%v)", strings.Join(args, " "), err)
	}
	return msg
}
