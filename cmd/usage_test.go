package cmd

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
		{"unknown help topic", []string{"help", "bogus"}, `unknown help topic "bogus" (see tusk --help for the commands)`},
		{"unknown help topic with a suggestion", []string{"help", "chek"}, `unknown help topic "chek": did you mean check?`},
		{"unknown help subtopic", []string{"help", "delete", "bogus"}, `unknown help topic "delete bogus"`},
		{"unknown flag of tusk", []string{"--bogus"}, "unknown flag: --bogus (see tusk --help)"},
		{"unknown flag of a command", []string{"backup-list", "--bogus"}, "unknown flag: --bogus (see tusk backup-list --help)"},
		{"unknown flag of a subcommand", []string{"delete", "retain", "--bogus", "7"}, "unknown flag: --bogus (see tusk delete retain --help)"},
		{"unknown flag of delete before", []string{"delete", "before", "--bogus", "x"}, "unknown flag: --bogus (see tusk delete before --help)"},
		{"too many arguments", []string{"backup-list", "x"}, "backup-list takes no arguments; got 1 argument(s) (see tusk backup-list --help)"},
		{"retain -1", []string{"delete", "retain", "-1"}, "retain needs the number of backups to keep, at least 1; got -1"},
		{"delete before: month 13", []string{"delete", "before", "2026-13-45"}, `delete before "2026-13-45" is not a valid time: give one like 2026-11-20T03:00:00Z`},
		{"delete before FIND_FULL: February 30", []string{"delete", "before", "FIND_FULL", "2026-02-30T00:00:00Z"}, `delete before "2026-02-30T00:00:00Z" is not a valid time`},
		{"delete before: neither", []string{"delete", "before", "../x"}, `delete before "../x" is neither a backup name nor a time`},
		{"retain --after: malformed time", []string{"delete", "retain", "7", "--after", "2026-11-20 25:00:00"}, `--after "2026-11-20 25:00:00" is not a valid time`},
		{"retain: huge count", []string{"delete", "retain", "99999999999999999999"}, `retain needs the number of backups to keep, at least 1; got "99999999999999999999"`},
		{"retain FULL without a number", []string{"delete", "retain", "FULL"}, "retain FULL needs the number of backups to keep after it, e.g. tusk delete retain FULL 7"},
		{"before FIND_FULL without a bound", []string{"delete", "before", "FIND_FULL"}, "before takes [FIND_FULL] NAME|TIME"},
		{"target FIND_FULL without a name", []string{"delete", "target", "FIND_FULL"}, "target takes [FIND_FULL] NAME"},
		{"garbage: negative age", []string{"delete", "garbage", "--leftover-age", "-1h"}, "--leftover-age must not be negative"},
		{"push: not a file name", []string{"wal-push", "/etc/not a name"}, `"not a name" is not a WAL file name`},
		{"check: --timeout 0", []string{"check", "--timeout", "0s"}, "--timeout 0s leaves no time for the switched segment to arrive"},
		{"check: negative --timeout", []string{"check", "--timeout", "-5s"}, "--timeout -5s leaves no time"},
		{"check: --no-server --pg-conn", []string{"check", "--no-server", "--pg-conn", "host=/tmp"}, "--pg-conn names a server, and --no-server skips the server's checks"},
		{"check: --no-server --timeout", []string{"check", "--no-server", "--timeout", "5s"}, "--timeout is the wait for the WAL switch, which --no-server skips"},
		{"fetch: two tablespaces into one folder", []string{"backup-fetch", "/nonexistent/dest", "LATEST", "--tablespace-mapping", "/a=/c", "--tablespace-mapping", "/b=/c"}, "--tablespace-mapping maps both /a and /b to /c"},
		{"fetch: one tablespace twice", []string{"backup-fetch", "/nonexistent/dest", "LATEST", "--tablespace-mapping", "/a=/c", "--tablespace-mapping", "/a/=/d"}, "--tablespace-mapping maps /a twice, to /c and to /d"},
		{"fetch: relative mapping", []string{"backup-fetch", "/nonexistent/dest", "LATEST", "--tablespace-mapping", "a=/c"}, `--tablespace-mapping "a=/c" is not OLD=NEW with two absolute paths`},
		{"fetch: unknown owner", []string{"backup-fetch", "/nonexistent/dest", "LATEST", "--owner", "no-such-user-here"}, "--owner no-such-user-here is not a user on this host"},
		{"drill: unknown owner", []string{"restore-drill", "--owner", "no-such-user-here", "--scratch", "/nonexistent/scratch"}, "--owner no-such-user-here is not a user"},
		{"drill: empty --sql", []string{"restore-drill", "--sql", " ", "--scratch", "/nonexistent/scratch"}, "--sql is empty: give a query that must return a row"},
		{"drill: empty --database", []string{"restore-drill", "--database", "", "--scratch", "/nonexistent/scratch"}, "--database is empty"},
		{"backup-push: malformed --pg-conn", []string{"backup-push", "--pg-conn", "port=abc"}, "PostgreSQL connection settings: cannot parse"},
		{"backup-push: malformed PGPORT", []string{"backup-push", "--pg-conn", "host=/tmp port=99999"}, "PostgreSQL connection settings"},
		{"wal-verify: malformed --pg-conn", []string{"wal-verify", "--pg-conn", "port='abc"}, "PostgreSQL connection settings"},
		{"check: malformed --pg-conn", []string{"check", "--pg-conn", "port=abc"}, "PostgreSQL connection settings"},
		{"fetch: xid too large", []string{"backup-fetch", "/nonexistent/dest", "LATEST", "--target-xid", "99999999999999999999999"}, "--target-xid 99999999999999999999999 is too large"},
		{"fetch: lsn 0/0", []string{"backup-fetch", "/nonexistent/dest", "LATEST", "--target-lsn", "0/0"}, "--target-lsn 0/0 is the start of WAL"},
		{"fetch: port without --recover", []string{"backup-fetch", "/nonexistent/dest", "LATEST", "--port", "5433"}, "--port is for the server that --recover starts"},
		{"drill: malformed xid", []string{"restore-drill", "--target-xid", "abc", "--scratch", "/nonexistent/scratch"}, `--target-xid "abc" is not a transaction id`},
		{"drill: bad backup name", []string{"restore-drill", "../x", "--scratch", "/nonexistent/scratch"}, `../x`},
		{"drill: negative --max-rpo", []string{"restore-drill", "--max-rpo", "-5m", "--scratch", "/nonexistent/scratch"}, "--max-rpo -5m0s is negative"},
		{"drill: port out of range", []string{"restore-drill", "--port", "70000", "--scratch", "/nonexistent/scratch"}, "--port 70000 is not a TCP port"},
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
	err := execute(t, &stdout, &stderr, []string{"TUSK_REPO=file://" + repo, "TUSK_WAL_PREFETCH=0"}, args...)
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

// TestTarget: the recovery target flags are checked as PostgreSQL would
// check them, before any work, and conflicting ones are refused.
func TestTarget(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		o    backupFetchOpts
		want string // "" for accepted
	}{
		{"no target", backupFetchOpts{}, ""},
		{"xid", backupFetchOpts{targetXID: "1234"}, ""},
		{"xid, the largest 32-bit", backupFetchOpts{targetXID: "4294967295"}, ""},
		{"xid with an epoch", backupFetchOpts{targetXID: "8589935592"}, ""},
		{"xid, the largest 64-bit", backupFetchOpts{targetXID: "18446744073709551615"}, ""},
		{"xid too large", backupFetchOpts{targetXID: "99999999999999999999999"}, "--target-xid 99999999999999999999999 is too large for a transaction id"},
		{"xid 2^64", backupFetchOpts{targetXID: "18446744073709551616"}, "is too large for a transaction id"},
		{"xid not a number", backupFetchOpts{targetXID: "12a"}, `--target-xid "12a" is not a transaction id: give a decimal number`},
		{"xid negative", backupFetchOpts{targetXID: "-5"}, `--target-xid "-5" is not a transaction id`},
		{"xid hexadecimal", backupFetchOpts{targetXID: "0x10"}, `--target-xid "0x10" is not a transaction id`},
		{"xid 0", backupFetchOpts{targetXID: "0"}, "--target-xid 0 is reserved"},
		{"xid 2 (frozen)", backupFetchOpts{targetXID: "2"}, "--target-xid 2 is reserved"},
		{"xid 0 of epoch 1", backupFetchOpts{targetXID: "4294967296"}, "--target-xid 4294967296 is epoch 1, transaction 0"},
		{"lsn", backupFetchOpts{targetLSN: "0/3000060"}, ""},
		{"lsn, lower case", backupFetchOpts{targetLSN: "16/b374d848"}, ""},
		{"lsn 0/0", backupFetchOpts{targetLSN: "0/0"}, "--target-lsn 0/0 is the start of WAL, never a place recovery stops"},
		{"lsn 00000000/00000000", backupFetchOpts{targetLSN: "00000000/00000000"}, "is the start of WAL"},
		{"lsn without a slash", backupFetchOpts{targetLSN: "3000060"}, `--target-lsn "3000060" is not a WAL position`},
		{"lsn with 9 digits", backupFetchOpts{targetLSN: "123456789/0"}, "is not a WAL position: give two hexadecimal numbers of up to 8 digits"},
		{"lsn with a sign", backupFetchOpts{targetLSN: "+0/1"}, "is not a WAL position"},
		{"lsn half", backupFetchOpts{targetLSN: "0/"}, "is not a WAL position"},
		{"lsn not hexadecimal", backupFetchOpts{targetLSN: "0/xyz"}, "is not a WAL position"},
		{"time", backupFetchOpts{targetTime: "2026-11-22 03:00:00+00"}, ""},
		{"time, month 13", backupFetchOpts{targetTime: "2026-13-45 03:00:00+00"}, `--target-time "2026-13-45 03:00:00+00" is not a time with a zone`},
		{"time without a zone", backupFetchOpts{targetTime: "2026-11-22 03:00:00"}, "is not a time with a zone"},
		{"two targets", backupFetchOpts{targetXID: "5", targetName: "x"}, "give at most one of"},
		{"action without a target", backupFetchOpts{targetAction: "promote"}, "--target-action needs a target"},
		{"unknown action", backupFetchOpts{targetName: "x", targetAction: "stop"}, `--target-action "stop" is not pause, promote or shutdown`},
		{"timeline latest", backupFetchOpts{targetTimeline: "latest"}, ""},
		{"timeline 2", backupFetchOpts{targetTimeline: "2"}, ""},
		{"timeline 0", backupFetchOpts{targetTimeline: "0"}, `--target-timeline "0" is not latest, current or a timeline number from 1 to 4294967295`},
		{"timeline too large", backupFetchOpts{targetTimeline: "4294967296"}, "a timeline number from 1 to 4294967295"},
		{"timeline in hexadecimal", backupFetchOpts{targetTimeline: "0000000A"}, "decimal"},
		{"exclusive with a time", backupFetchOpts{targetTime: "2026-11-22T03:00:00Z", targetExclusive: true}, ""},
		{"exclusive with a name", backupFetchOpts{targetName: "x", targetExclusive: true}, "--target-exclusive applies to --target-time, --target-lsn or --target-xid"},
		{"exclusive alone", backupFetchOpts{targetExclusive: true}, "--target-exclusive applies to"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := c.o.target()
			checkUsage(t, err, c.want)
		})
	}
}

// TestServerFlags: --port must be a port, and the flags of the server
// --recover starts need --recover.
func TestServerFlags(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		o          backupFetchOpts
		recovering bool
		want       string
	}{
		{"none", backupFetchOpts{}, false, ""},
		{"port with --recover", backupFetchOpts{port: 5433}, true, ""},
		{"port without --recover", backupFetchOpts{port: 5433}, false, "--port is for the server that --recover starts; add --recover, or drop --port"},
		{"socket folder without --recover", backupFetchOpts{socketDir: "/tmp"}, false, "--socket-dir is for the server that --recover starts"},
		{"programs without --recover", backupFetchOpts{pgBin: "/usr/bin"}, false, "--pg-bin is for the server that --recover starts"},
		{"owner", backupFetchOpts{owner: "root"}, false, ""},
		{"unknown owner", backupFetchOpts{owner: "no-such-user-here"}, false, "--owner no-such-user-here is not a user on this host"},
		{"negative port", backupFetchOpts{port: -1}, true, "--port -1 is not a TCP port: give one from 1 to 65535"},
		{"port too large", backupFetchOpts{port: 65536}, true, "--port 65536 is not a TCP port"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			checkUsage(t, c.o.serverFlags(c.recovering), c.want)
		})
	}
}

// checkUsage fails unless err is nil for want "", or a one-line usage error
// containing want.
func checkUsage(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return
	}
	var usage *UsageError
	if !errors.As(err, &usage) || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("got %v (%T); want a one-line usage error containing %q", err, err, want)
	}
}

// TestParseBound: delete's NAME|TIME reads a time in each accepted form, a
// backup name, and calls a malformed time a malformed time.
func TestParseBound(t *testing.T) {
	t.Parallel()
	utc := func(s string) time.Time { tm, _ := time.Parse(time.RFC3339, s); return tm }
	cases := []struct {
		in   string
		time time.Time
		name string
		want string // the error, "" for none
	}{
		{in: "2026-11-20T03:00:00Z", time: utc("2026-11-20T03:00:00Z")},
		{in: "2026-11-20 03:00:00+01", time: utc("2026-11-20T02:00:00Z")},
		{in: "2026-11-20T03:00:00", time: utc("2026-11-20T03:00:00Z")},
		{in: "2026-11-20", time: utc("2026-11-20T00:00:00Z")},
		{in: "base_000000010000000000000002_20261122T030000Z", name: "base_000000010000000000000002_20261122T030000Z"},
		{in: "2026-13-45", want: `x "2026-13-45" is not a valid time`},
		{in: "2026-11-20T03:00", want: "is not a valid time"},
		{in: "2026-11-31", want: "is not a valid time"},
		{in: "2026-1-2", want: "is not a valid time"},
		{in: "../x", want: "is neither a backup name nor a time"},
	}
	for _, c := range cases {
		b, err := parseBound(c.in, "x")
		if c.want != "" {
			var usage *UsageError
			if !errors.As(err, &usage) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("parseBound(%q): %v; want a usage error containing %q", c.in, err, c.want)
			}
			continue
		}
		if err != nil || !b.Time.Equal(c.time) || b.Name != c.name {
			t.Errorf("parseBound(%q) = %+v, %v; want time %s, name %q", c.in, b, err, c.time, c.name)
		}
	}
}

// execute runs tusk args in-process with env as the environment.
func execute(t *testing.T, stdout, stderr *bytes.Buffer, env []string, args ...string) error {
	t.Helper()
	root := newRootCmd(&rootOpts{stdout: stdout, stderr: stderr, env: env})
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return root.ExecuteContext(t.Context())
}

// TestHelp: help, help TOPIC and a bare tusk print help and succeed.
func TestHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{}, {"help"}, {"help", "settings"}, {"help", "delete", "retain"}, {"wal-push", "--help"}} {
		var stdout, stderr bytes.Buffer
		if err := execute(t, &stdout, &stderr, nil, args...); err != nil || stdout.Len() == 0 {
			t.Errorf("tusk %s: %v, %d bytes of help", strings.Join(args, " "), err, stdout.Len())
		}
	}
	var stdout, stderr bytes.Buffer
	execute(t, &stdout, &stderr, nil, "help", "settings")
	if !strings.Contains(stdout.String(), "TUSK_S3_MAX_RETRIES") {
		t.Errorf("tusk help settings lacks the settings table:\n%s", stdout.String())
	}
}
