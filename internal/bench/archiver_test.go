package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/internal/testenv"
)

// archiveRetryDelay is how long PostgreSQL's archiver waits before calling a
// failed archive_command again.
const archiveRetryDelay = time.Second

// maxFailures bounds the retries of one segment: PostgreSQL would retry
// forever, a benchmark gives up.
const maxFailures = 10

// archiveSite is a data directory as PostgreSQL's archiver sees it while the
// server is busy: a copy of the corpus cluster whose pg_wal holds every
// corpus segment (hard links to the cache). The server is never started.
type archiveSite struct {
	pg       *testenv.Postgres
	segments []string
	owner    ids
	logDir   string
}

func newArchiveSite(b *testing.B, c *corpus) *archiveSite {
	b.Helper()
	pg := testenv.NewPostgres(b, testenv.PostgresOptions{})
	if err := os.Remove(pg.DataDir); err != nil {
		b.Fatal(err)
	}
	err := copyTree(c.pgdataDir(), pg.DataDir, treeOptions{
		// WAL files, status files and the like stay behind.
		Skip: func(rel string) bool { return strings.HasPrefix(rel, "pg_wal/") },
	})
	if err != nil {
		b.Fatalf("copy the corpus cluster: %v", err)
	}
	owner, err := ownerOf(pg.DataDir)
	if err != nil {
		b.Fatal(err)
	}
	walDir := filepath.Join(pg.DataDir, "pg_wal")
	for _, name := range c.Segments {
		if err := os.Link(c.segmentPath(name), filepath.Join(walDir, name)); err != nil {
			if err := copyFile(c.segmentPath(name), filepath.Join(walDir, name), 0o600); err != nil {
				b.Fatal(err)
			}
			if err := os.Lchown(filepath.Join(walDir, name), owner.uid, owner.gid); err != nil {
				b.Fatal(err)
			}
		}
	}
	return &archiveSite{pg: pg, segments: c.Segments, owner: owner, logDir: b.TempDir()}
}

// warm reads every segment once, so that no command pays for the first read
// from disk.
func (s *archiveSite) warm(b *testing.B) {
	b.Helper()
	for _, name := range s.segments {
		f, err := os.Open(s.walPath(name))
		if err != nil {
			b.Fatal(err)
		}
		_, err = io.Copy(io.Discard, f)
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
}

func (s *archiveSite) walPath(name string) string {
	return filepath.Join(s.pg.DataDir, "pg_wal", name)
}

// markReady empties archive_status and marks every segment .ready, owned by
// the server user like the files PostgreSQL writes.
func (s *archiveSite) markReady(b *testing.B) {
	b.Helper()
	status := filepath.Join(s.pg.DataDir, "pg_wal", "archive_status")
	if err := os.RemoveAll(status); err != nil {
		b.Fatal(err)
	}
	if err := mkdirOwned(status, 0o700, s.owner); err != nil {
		b.Fatal(err)
	}
	for _, name := range s.segments {
		p := filepath.Join(status, name+".ready")
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			b.Fatal(err)
		}
		if err := os.Lchown(p, s.owner.uid, s.owner.gid); err != nil {
			b.Fatal(err)
		}
	}
}

// shell returns `sh -c command` run as the server user in the data
// directory, with env added to the server's environment.
func (s *archiveSite) shell(ctx context.Context, command string, env []string) *exec.Cmd {
	cmd := s.pg.RunAsOwner(ctx, "/bin/sh", "-c", command)
	cmd.Dir = s.pg.DataDir
	cmd.Env = append(hermetic(cmd.Env), env...)
	return cmd
}

// hermetic drops the settings of tusk, wal-g, AWS and pgBackRest that the
// caller's environment may hold, so that only the benchmark's own reach the
// commands.
func hermetic(env []string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "TUSK_") && !strings.HasPrefix(k, "TUSK_BENCH_") && !strings.HasPrefix(k, "TUSK_TEST_"),
			strings.HasPrefix(k, "WALG_"), strings.HasPrefix(k, "AWS_"), strings.HasPrefix(k, "PGBACKREST_"):
			continue
		}
		out = append(out, kv)
	}
	return out
}

// archiveAll plays PostgreSQL 15's archiver (pgarch.c) over every segment:
// it marks them all .ready, then for each in order
//
//   - checks that its .ready is still there and skips it if not, because
//     "the archive_command for a previous file may have already marked it
//     done" (pgarch_readyXlog), as tusk's push-ahead does;
//   - runs command (with %p and %f substituted) until it exits 0, waiting
//     archiveRetryDelay after each failure;
//   - renames .ready to .done; a .ready that the command itself already
//     renamed is only a warning to PostgreSQL (durable_rename at WARNING
//     level), and is counted as a skip here.
//
// It returns the wall time from the first call until every segment is
// .done, and fails unless every segment ends up .done. Output of the calls
// goes to a log file named after label.
func (s *archiveSite) archiveAll(b *testing.B, label, command string, env []string) pushRun {
	b.Helper()
	s.markReady(b)
	logPath := filepath.Join(s.logDir, strings.NewReplacer(" ", "-", ",", "", "/", "-").Replace(label)+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	defer logf.Close()
	status := filepath.Join(s.pg.DataDir, "pg_wal", "archive_status")

	run := pushRun{Label: label, Command: command, Segments: len(s.segments), RepoBytes: -1}
	calls := make([]time.Duration, 0, len(s.segments))
	start := time.Now()
	for _, name := range s.segments {
		ready := filepath.Join(status, name+".ready")
		if _, err := os.Stat(ready); errors.Is(err, fs.ErrNotExist) {
			run.Skipped++
			continue
		} else if err != nil {
			b.Fatal(err)
		}
		failures := 0
		for {
			cmd := s.shell(b.Context(), expandCommand(command, "pg_wal/"+name, name), env)
			cmd.Stdout, cmd.Stderr = logf, logf
			callStart := time.Now()
			err := cmd.Run()
			if err == nil {
				calls = append(calls, time.Since(callStart))
				break
			}
			failures++
			run.Failures++
			fmt.Fprintf(logf, "bench: archive of %s failed: %v\n", name, err)
			if failures >= maxFailures || b.Context().Err() != nil {
				b.Fatalf("%s: archiving %s failed %d times; last: %v\n%s", label, name, failures, err, tail(logPath, 30))
			}
			time.Sleep(archiveRetryDelay)
		}
		run.Calls++
		if err := os.Rename(ready, filepath.Join(status, name+".done")); errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(logf, "bench: %s was already marked done when its call returned\n", name)
		} else if err != nil {
			b.Fatal(err)
		}
	}
	run.Elapsed = time.Since(start)
	for _, name := range s.segments {
		if _, err := os.Stat(filepath.Join(status, name+".done")); err != nil {
			b.Fatalf("%s: %s is not marked done after the run: %v", label, name, err)
		}
	}
	if len(calls) > 0 {
		slices.Sort(calls)
		run.Median, run.Slowest = calls[len(calls)/2], calls[len(calls)-1]
	}
	if run.Failures > 0 {
		b.Logf("%s: %d failed calls were retried; log %s:\n%s", label, run.Failures, logPath, tail(logPath, 30))
	}
	return run
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
