package cmd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tusk-backup/tusk/basebackup"
	tusk "github.com/tusk-backup/tusk/cmd"
	"github.com/tusk-backup/tusk/internal/testenv"
	"github.com/tusk-backup/tusk/verify"
	"github.com/tusk-backup/tusk/wal"
)

// The fixtures of the tests that run the tusk binary: one run of it
// (run, result, wantExit, errorLine; tuskCommand to start one), its --json
// output (decode), a repository (repository, folderRepo, s3Repo, repos), a
// PostgreSQL server that archives into one (startCluster, archiveWAL), what
// wal-show says the repository holds (waitArchived, waitArchivedIn,
// waitWALShows), and the servers tusk starts (recovered, psql, stopServer).

// result is what one run of tusk left: its arguments, its output and its
// exit code.
type result struct {
	args           []string
	stdout, stderr string
	code           int
}

// run runs the tusk binary with exactly env (plus PATH).
func run(t *testing.T, bin string, env []string, args ...string) result {
	t.Helper()
	cmd := tuskCommand(t.Context(), bin, env, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	r := result{args: args}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("run tusk: %v", err)
	}
	r.stdout, r.stderr = o.String(), e.String()
	return r
}

// tuskCommand is the command that runs the tusk binary with exactly env
// (plus PATH), for a test that starts, kills or waits for it itself.
func tuskCommand(ctx context.Context, bin string, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	return cmd
}

// wantExit fails the test unless r exited with code, showing the command
// and all it printed.
func wantExit(t *testing.T, r result, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("tusk %s: exit %d, want %d\n%s%s", strings.Join(r.args, " "), r.code, code, r.stdout, r.stderr)
	}
}

// errorLine returns the one "tusk: " line of stderr, failing the test if
// there is not exactly one.
func errorLine(t *testing.T, stderr string) string {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "tusk: ") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("stderr has %d error lines, want 1:\n%s", len(lines), stderr)
	}
	return lines[0]
}

// decode decodes r's --json output into the type the command printed:
// []basebackup.Meta (backup-list), verify.Archive (wal-show), verify.Result
// (wal-verify), []tusk.VerifyResult (verify), tusk.PlanOutput (delete),
// tusk.FetchResult (backup-fetch), tusk.DrillResult (restore-drill). Output
// that is not such a document fails the test, whatever the exit code.
func decode[T any](t *testing.T, r result) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("tusk %s: exit %d, and its output is not a %T: %v\n%s%s", strings.Join(r.args, " "), r.code, v, err, r.stdout, r.stderr)
	}
	return v
}

// repository is a repository for one test.
type repository struct {
	env   []string       // TUSK_REPO and, on S3, MinIO's endpoint and credentials
	dir   string         // the folder of a folder repository; "" on S3
	minio *testenv.MinIO // the server of an S3 repository; nil for a folder
	// keys lists the repository's objects, sorted.
	keys func(t *testing.T) []string
}

// folderRepo is a folder repository in a folder the server's user owns, so
// that its archiver can write there whoever runs the test.
func folderRepo(t *testing.T) repository {
	return folderRepoAt(testenv.ServerTempDir(t))
}

// folderRepoAt is a folder repository in dir.
func folderRepoAt(dir string) repository {
	return repository{
		env: []string{"TUSK_REPO=file://" + dir},
		dir: dir,
		keys: func(t *testing.T) []string {
			var keys []string
			err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				rel, _ := filepath.Rel(dir, p)
				keys = append(keys, filepath.ToSlash(rel))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(keys)
			return keys
		},
	}
}

// s3Repo is a repository under the prefix "repo/" of a MinIO server of its
// own.
func s3Repo(t *testing.T) repository {
	m := testenv.StartMinIO(t)
	return repository{
		env:   append(m.Env(), "TUSK_REPO="+m.URL("repo")),
		minio: m,
		keys: func(t *testing.T) []string {
			var keys []string
			pages := s3.NewListObjectsV2Paginator(m.Client(), &s3.ListObjectsV2Input{Bucket: aws.String(m.Bucket), Prefix: aws.String("repo/")})
			for pages.HasMorePages() {
				page, err := pages.NextPage(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range page.Contents {
					keys = append(keys, strings.TrimPrefix(*o.Key, "repo/"))
				}
			}
			slices.Sort(keys)
			return keys
		},
	}
}

// repos returns one repository of each kind, by kind: "folder" and "s3".
func repos(t *testing.T) map[string]repository {
	return map[string]repository{"folder": folderRepo(t), "s3": s3Repo(t)}
}

// cluster is a PostgreSQL server whose archive_command is tusk wal-push
// into a repository.
type cluster struct {
	pg *testenv.Postgres
	// env is the server's environment (the repository, then opts.Env of
	// startCluster), then its libpq settings (PGHOST, PGDATA, ...): what a
	// tusk command that connects to the server runs with.
	env []string
}

// startCluster starts a server (opts: its version, settings and extra
// environment) that archives into repo with tusk wal-push %p.
func startCluster(t *testing.T, repo repository, opts testenv.PostgresOptions) cluster {
	t.Helper()
	opts.ArchiveCommand = testenv.BuildTusk(t) + " wal-push %p"
	opts.Env = slices.Concat(repo.env, opts.Env)
	pg := testenv.StartPostgres(t, opts)
	return cluster{pg: pg, env: slices.Clip(slices.Concat(opts.Env, pg.Env()))}
}

// archiveWAL switches pg to a new WAL segment and waits until the
// repository holds the one it was writing, and every one before it; it
// returns that segment's name.
func archiveWAL(t *testing.T, pg *testenv.Postgres) string {
	t.Helper()
	last := pg.SQL(t, "SELECT pg_walfile_name(pg_current_wal_lsn())")
	pg.SQL(t, "SELECT pg_switch_wal()")
	waitArchived(t, pg, last)
	return last
}

// waitArchived waits until the repository pg archives into (tusk's own
// listing, through the server's environment) holds segment and every
// segment before it on its timeline without a gap. It never reads
// pg_stat_archiver: push-ahead marks segments .done itself, so PostgreSQL
// never records them as archived.
func waitArchived(t *testing.T, pg *testenv.Postgres, segment string) {
	t.Helper()
	waitArchivedIn(t, testenv.BuildTusk(t), pg.ServerEnv(), segment)
}

// waitArchivedIn is waitArchived for a server tusk started (backup-fetch
// --recover), which archives into the repository of env.
func waitArchivedIn(t *testing.T, bin string, env []string, segment string) {
	t.Helper()
	n, err := wal.ParseName(segment)
	if err != nil {
		t.Fatal(err)
	}
	// The first run of the timeline's segments holds segment.
	waitWALShows(t, bin, env, "WAL through "+segment, func(a verify.Archive) bool {
		for _, tl := range a.Timelines {
			if tl.ID == n.Timeline && len(tl.Ranges) > 0 {
				return tl.Ranges[0].First <= segment && segment <= tl.Ranges[0].Last
			}
		}
		return false
	})
}

// waitWALShows waits until tusk wal-show --json, run with env, shows what
// shows looks for; what says what that is, for the failure after 2 minutes.
// A wal-show that fails is waited out; one whose output is not JSON fails
// the test.
func waitWALShows(t *testing.T, bin string, env []string, what string, shows func(verify.Archive) bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		r := run(t, bin, env, "wal-show", "--json")
		shown := r.stdout
		if r.code != 0 {
			shown = fmt.Sprintf("exit %d: %s", r.code, r.stderr)
		} else if shows(decode[verify.Archive](t, r)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the repository does not hold %s after 2 minutes; wal-show --json:\n%s", what, shown)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitFor waits until cond holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// listBackups is backup-list --json, which must succeed.
func listBackups(t *testing.T, bin string, env []string) []basebackup.Meta {
	t.Helper()
	r := run(t, bin, env, "backup-list", "--json")
	wantExit(t, r, 0)
	return listedMetas(t, r)
}

// listedMetas is the metadata of the backups backup-list --json printed,
// in r.
func listedMetas(t *testing.T, r result) []basebackup.Meta {
	t.Helper()
	var out []basebackup.Meta
	for _, e := range decode[[]tusk.ListEntry](t, r) {
		out = append(out, e.Meta)
	}
	return out
}

// names are the names of backups bs.
func names(bs []basebackup.Meta) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.Name)
	}
	return out
}

// recovered reads where backup-fetch --recover --json left the server.
func recovered(t *testing.T, r result) (socketDir string, port int) {
	t.Helper()
	res := decode[tusk.FetchResult](t, r)
	if res.Recovery == nil || res.Recovery.Port == 0 {
		t.Fatalf("backup-fetch --recover --json: no server\n%s", r.stdout)
	}
	return res.Recovery.SocketDir, res.Recovery.Port
}

func pgbench(t *testing.T, pg *testenv.Postgres, args ...string) {
	t.Helper()
	cmd := pg.RunAsOwner(t.Context(), filepath.Join(pg.BinDir, "pgbench"), args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pgbench %v: %v\n%s", args, err, out)
	}
}

// psql runs one query against a server tusk started.
func psql(t *testing.T, pg *testenv.Postgres, socketDir string, port int, query string) string {
	t.Helper()
	cmd := pg.RunAsOwner(t.Context(), filepath.Join(pg.BinDir, "psql"), "-XAtq", "-v", "ON_ERROR_STOP=1",
		"-h", socketDir, "-p", strconv.Itoa(port), "-U", "postgres", "-d", "postgres", "-c", query)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// stopServer stops a server tusk started on dest, if it runs. Not with
// t.Context(): it also runs from t.Cleanup, after that is cancelled.
func stopServer(t *testing.T, pg *testenv.Postgres, dest string) {
	if _, err := os.Stat(filepath.Join(dest, "postmaster.pid")); err != nil {
		return
	}
	pg.RunAsOwner(context.Background(), filepath.Join(pg.ServerBinDir, "pg_ctl"), "stop", "-D", dest, "-m", "immediate").Run()
}

// pushFromStandby runs backup-push, with env, against a standby of
// primary. A standby cannot switch WAL segments itself, so while backup-push
// waits for its last segment the primary writes a little WAL and switches
// every 300 ms, as archive_timeout would.
func pushFromStandby(t *testing.T, bin string, env []string, primary *testenv.Postgres, args ...string) result {
	t.Helper()
	args = append([]string{"backup-push"}, args...)
	cmd := tuskCommand(t.Context(), bin, env, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case err := <-done:
			r := result{args: args, stdout: o.String(), stderr: e.String()}
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				r.code = ee.ExitCode()
			} else if err != nil {
				t.Fatalf("run tusk: %v", err)
			}
			return r
		case <-time.After(300 * time.Millisecond):
			primary.SQL(t, "SELECT pg_logical_emit_message(false, 'tusk-test', 'switch'); SELECT pg_switch_wal()")
		case <-t.Context().Done():
			t.Fatalf("tusk %s against the standby did not finish", strings.Join(args, " "))
		}
	}
}

// damageWALObject flips a bit in every 16th byte of a stored WAL object
// after its first 64 (the header stays readable). One flipped bit is not
// enough: a mostly empty segment compresses to a few hundred bytes, many of
// them s2's per-chunk checksums and its index, which wal-fetch and
// wal-verify skip because they check the whole content's checksum instead,
// so a single flip could land where it changes nothing that is restored.
func damageWALObject(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) <= 64 {
		t.Fatalf("WAL object %s holds only %d bytes", path, len(b))
	}
	for i := 64; i < len(b); i += 16 {
		b[i] ^= 0x04
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// standby is a hot standby that backup-fetch --standby made of primary's
// newest backup, streaming from primary and archiving (archive_mode =
// always) into the repository.
type standby struct {
	dir, dest string // its socket folder, and its data directory under it
	port      int
	env       []string // the repository's settings and its libpq settings, for tusk commands against it
}

// startStandby restores the repository's newest backup as a standby of
// pg, starts it with the server programs of pg's version and waits until
// it streams.
func startStandby(t *testing.T, bin string, repo repository, pg *testenv.Postgres) standby {
	t.Helper()
	s := standby{dir: testenv.ServerTempDir(t), port: pg.Port + 1}
	s.dest = filepath.Join(s.dir, "standby")
	conninfo := "host=" + pg.SocketDir + " port=" + strconv.Itoa(pg.Port) + " user=postgres"
	wantExit(t, run(t, bin, slices.Concat(repo.env, pg.Env()), "backup-fetch", s.dest, "LATEST", "--standby", "--primary-conninfo", conninfo), 0)
	if _, err := os.Stat(filepath.Join(s.dest, "standby.signal")); err != nil {
		t.Fatal("backup-fetch --standby wrote no standby.signal")
	}
	start := pg.RunAsOwner(t.Context(), filepath.Join(pg.ServerBinDir, "pg_ctl"), "start", "-w", "-D", s.dest, "-l", filepath.Join(s.dir, "standby.log"),
		"-o", "-p "+strconv.Itoa(s.port)+" -k "+s.dir+" -c archive_mode=always")
	t.Cleanup(func() { stopServer(t, pg, s.dest) })
	if out, err := start.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "standby.log"))
		t.Fatalf("start the standby: %v\n%s\n%s", err, out, log)
	}
	waitFor(t, time.Minute, func() bool {
		return s.sql(t, pg, "SELECT coalesce((SELECT status FROM pg_stat_wal_receiver), 'none')") == "streaming"
	})
	s.env = slices.Concat(repo.env, []string{"PGHOST=" + s.dir, "PGPORT=" + strconv.Itoa(s.port), "PGUSER=postgres", "PGDATA=" + s.dest})
	return s
}

// sql runs one query on the standby.
func (s standby) sql(t *testing.T, pg *testenv.Postgres, query string) string {
	t.Helper()
	return psql(t, pg, s.dir, s.port, query)
}
