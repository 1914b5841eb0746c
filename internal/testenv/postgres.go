package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// PostgresOptions configures a test server.
type PostgresOptions struct {
	// Version is the server's PostgreSQL major version: 0 for
	// DefaultVersion (Debian's 15), or one of MatrixVersions. Client
	// programs are 15's whatever the server's version (see BinDir).
	Version int
	// ArchiveCommand, if set, turns on archive_mode=on with this archive_command.
	ArchiveCommand string
	// Conf holds extra postgresql.conf settings (name -> value, written as
	// name = 'value', with ' doubled). They override testenv's own settings.
	Conf map[string]string
	// Env is extra environment for the server process (archive_command
	// inherits it) and for RunAsOwner, "K=V".
	Env []string
}

// Postgres is a PostgreSQL server run for one test. It listens only on a unix
// socket in SocketDir. All its files live in one temporary directory owned by
// the server user, removed at cleanup after the server is stopped.
type Postgres struct {
	DataDir   string // owned by the server user
	SocketDir string // unix socket directory (also PGHOST)
	Port      int
	User      string // database superuser name: "postgres"
	BinDir    string // PostgreSQL 15's programs: psql, pgbench, pg_basebackup, pg_verifybackup, ... (and its server's)
	// ServerBinDir holds initdb, pg_ctl and postgres of the server's
	// version: BinDir for PostgreSQL 15.
	ServerBinDir string
	Version      int    // the server's major version
	LogFile      string // server log, written by pg_ctl -l

	baseDir string
	opts    PostgresOptions
	owner   owner

	mu sync.Mutex // serializes Start and Stop
}

// stopTimeout bounds pg_ctl stop, which also runs from t.Cleanup after the
// test's context is cancelled.
const stopTimeout = 90 * time.Second

// StartPostgres creates a fresh cluster (initdb --data-checksums, trust
// authentication, superuser postgres), configures it (unix socket only, a
// free port, wal_level=replica, max_wal_senders=10, archiving as per opts),
// and starts it with pg_ctl start -w. The server runs as user postgres when
// the tests run as root. t.Cleanup stops it with pg_ctl stop -m fast and, if
// the test failed, logs the tail of the server log.
//
// The test is skipped (or fails under CI / TUSK_TEST_REQUIRE) when the
// PostgreSQL 15 binaries, or the server programs of opts.Version, are
// missing.
func StartPostgres(t testing.TB, opts PostgresOptions) *Postgres {
	t.Helper()
	p := NewPostgres(t, opts)
	p.InitDB(t)
	p.Start(t)
	return p
}

// NewPostgres prepares a server without creating or starting it: DataDir is
// an empty directory (mode 0700, owned by the server user), SocketDir exists,
// and Port is chosen. Use it to start a server on a restored data directory:
// fill DataDir (e.g. with RunAsOwner), call Configure to point the copied
// postgresql.conf at this instance's socket and port, write any signal files
// with WriteFile, then Start. StartPostgres is NewPostgres, InitDB and Start.
func NewPostgres(t testing.TB, opts PostgresOptions) *Postgres {
	t.Helper()
	binDir, ok := PostgresAvailable()
	Require(t, "initdb", ok, "no PostgreSQL 15 server binaries (initdb, pg_ctl, postgres, psql) in PATH or /usr/lib/postgresql/15/bin")
	o := requireOwner(t)
	serverDir, version := binDir, majorVersion(binDir)
	if opts.Version != 0 && opts.Version != version {
		dir, ok := VersionBinaries(opts.Version)
		Require(t, fmt.Sprintf("PostgreSQL %d", opts.Version), ok,
			fmt.Sprintf("no initdb, pg_ctl and postgres of PostgreSQL %d in %s", opts.Version, dir))
		var err error
		if serverDir, err = reachableBinaries(o, dir); err != nil {
			t.Fatalf("PostgreSQL %d: %v", opts.Version, err)
		}
		version = opts.Version
	}
	base := serverTempDir(t, o, "tusk-pg-")
	p := &Postgres{
		DataDir:      filepath.Join(base, "data"),
		SocketDir:    filepath.Join(base, "sock"),
		Port:         freePort(t),
		User:         "postgres",
		BinDir:       binDir,
		ServerBinDir: serverDir,
		Version:      version,
		LogFile:      filepath.Join(base, "server.log"),
		baseDir:      base,
		opts:         opts,
		owner:        o,
	}
	if err := mkdirOwned(o, p.DataDir, 0o700); err != nil {
		t.Fatalf("make data directory: %v", err)
	}
	if err := mkdirOwned(o, p.SocketDir, 0o755); err != nil {
		t.Fatalf("make socket directory: %v", err)
	}
	// Registered after serverTempDir's cleanup, so it runs before the
	// directory is removed.
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Errorf("stop postgres: %v", err)
		}
		if t.Failed() {
			t.Logf("postgres server log (last 50 lines) %s:\n%s", p.LogFile, p.LogTail(50))
		}
	})
	return p
}

// InitDB runs initdb into DataDir and then Configure(t, nil).
func (p *Postgres) InitDB(t testing.TB) {
	t.Helper()
	cmd := p.RunAsOwner(t.Context(), filepath.Join(p.ServerBinDir, "initdb"),
		"--pgdata", p.DataDir,
		"--data-checksums",
		"--auth", "trust",
		"--username", p.User,
		"--encoding", "UTF8",
		"--locale", "C",
		// Only initdb's own final flush of the fresh cluster is skipped;
		// the server runs with fsync on.
		"--no-sync",
		"--no-instructions",
	)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	p.Configure(t, nil)
}

// Configure appends to DataDir/postgresql.conf this instance's settings
// (an empty listen_addresses, unix_socket_directories, port, wal_level = replica,
// max_wal_senders = 10, archive_mode and archive_command when
// opts.ArchiveCommand is set), then opts.Conf, then conf. Later lines win, so
// it also overrides settings copied from another cluster. The server reads
// them at its next start (or pg_reload_conf() for reloadable ones).
func (p *Postgres) Configure(t testing.TB, conf map[string]string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("\n# added by internal/testenv\n")
	writeConf(&b, "listen_addresses", "")
	writeConf(&b, "unix_socket_directories", p.SocketDir)
	writeConf(&b, "port", strconv.Itoa(p.Port))
	writeConf(&b, "wal_level", "replica")
	writeConf(&b, "max_wal_senders", "10")
	if p.opts.ArchiveCommand != "" {
		writeConf(&b, "archive_mode", "on")
		writeConf(&b, "archive_command", p.opts.ArchiveCommand)
	}
	for _, m := range []map[string]string{p.opts.Conf, conf} {
		for _, name := range slices.Sorted(maps.Keys(m)) {
			writeConf(&b, name, m[name])
		}
	}
	if err := p.appendFile("postgresql.conf", []byte(b.String())); err != nil {
		t.Fatalf("configure postgres: %v", err)
	}
}

// writeConf writes one postgresql.conf line: name = 'value'.
func writeConf(b *strings.Builder, name, value string) {
	fmt.Fprintf(b, "%s = '%s'\n", name, strings.ReplaceAll(value, "'", "''"))
}

// WriteFile writes a file at name, relative to DataDir (e.g.
// "recovery.signal"), owned by the server user with mode 0600.
func (p *Postgres) WriteFile(t testing.TB, name string, data []byte) {
	t.Helper()
	path := filepath.Join(p.DataDir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("write %s: %v", name, err)
	}
	if err := p.owner.chown(path); err != nil {
		t.Fatalf("write %s: %v", name, err)
	}
}

// appendFile appends data to name in DataDir, creating it owned by the server
// user if needed.
func (p *Postgres) appendFile(name string, data []byte) error {
	path := filepath.Join(p.DataDir, name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("append to %s: %w", name, err)
	}
	return p.owner.chown(path)
}

// Start starts the server with pg_ctl start -w; a no-op when it is running.
// On failure it fails the test with the tail of the server log.
func (p *Postgres) Start(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	running, err := p.status(t.Context())
	if err != nil {
		t.Fatalf("start postgres: %v", err)
	}
	if running {
		return
	}
	cmd := p.RunAsOwner(t.Context(), filepath.Join(p.ServerBinDir, "pg_ctl"),
		"start", "--wait", "--timeout", "60",
		"--pgdata", p.DataDir, "--log", p.LogFile)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pg_ctl start: %v\n%s\nserver log (last 30 lines):\n%s", err, out, p.LogTail(30))
	}
}

// Stop stops the server with pg_ctl stop -m fast; a no-op when it is not
// running (however it was started).
func (p *Postgres) Stop(t testing.TB) {
	t.Helper()
	if err := p.stop(); err != nil {
		t.Fatalf("stop postgres: %v\nserver log (last 30 lines):\n%s", err, p.LogTail(30))
	}
}

func (p *Postgres) stop() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Not t.Context(): stop also runs from t.Cleanup, after that is cancelled.
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	running, err := p.status(ctx)
	if err != nil || !running {
		return err
	}
	cmd := p.RunAsOwner(ctx, filepath.Join(p.ServerBinDir, "pg_ctl"),
		"stop", "--mode", "fast", "--wait", "--timeout", "60", "--pgdata", p.DataDir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

// status reports whether a server runs on DataDir, by pg_ctl status: a stale
// postmaster.pid (after a crash) or a DataDir without a cluster is "not
// running".
func (p *Postgres) status(ctx context.Context) (running bool, err error) {
	cmd := p.RunAsOwner(ctx, filepath.Join(p.ServerBinDir, "pg_ctl"), "status", "--pgdata", p.DataDir)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &exit) && (exit.ExitCode() == 3 || exit.ExitCode() == 4):
		// 3: no server running; 4: no accessible data directory.
		return false, nil
	default:
		return false, fmt.Errorf("pg_ctl status: %w\n%s", err, out)
	}
}

// ServerEnv returns the extra environment the server runs with
// (PostgresOptions.Env), which archive_command inherits: the repository
// settings its tusk wal-push archives with.
func (p *Postgres) ServerEnv() []string { return slices.Clone(p.opts.Env) }

// Env returns libpq's environment for this server as "K=V": PGHOST, PGPORT,
// PGUSER, PGDATABASE=postgres, PGDATA.
func (p *Postgres) Env() []string {
	return []string{
		"PGHOST=" + p.SocketDir,
		"PGPORT=" + strconv.Itoa(p.Port),
		"PGUSER=" + p.User,
		"PGDATABASE=postgres",
		"PGDATA=" + p.DataDir,
	}
}

// ConnString returns a libpq keyword/value connection string for pgx:
// host=<SocketDir> port=<Port> user=<User> dbname=postgres.
func (p *Postgres) ConnString() string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=postgres",
		quoteConnValue(p.SocketDir), p.Port, quoteConnValue(p.User))
}

// quoteConnValue quotes a libpq keyword/value value when it needs quoting.
func quoteConnValue(v string) string {
	if v != "" && !strings.ContainsAny(v, ` '\`) {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// SQL runs query with psql -XAtq -v ON_ERROR_STOP=1 as the database superuser
// and returns its trimmed output; it fails the test on error.
func (p *Postgres) SQL(t testing.TB, query string) string {
	t.Helper()
	out, err := p.TrySQL(t.Context(), query)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return out
}

// TrySQL is SQL for queries that may fail, for example while the server is
// stopped: the error includes psql's stderr.
func (p *Postgres) TrySQL(ctx context.Context, query string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(p.BinDir, "psql"), "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", query)
	cmd.Env = append(cleanEnv(), p.Env()...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("psql %q: %w: %s", query, err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// RunAsOwner returns a command that runs as the server user (postgres when
// the tests run as root), in a directory that user can access, with the
// environment: ours without PG* variables, then p.Env(), then opts.Env.
// Callers may append to cmd.Env (later entries win).
func (p *Postgres) RunAsOwner(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(p.owner.env(p.baseDir), p.Env()...)
	cmd.Env = append(cmd.Env, p.opts.Env...)
	cmd.Dir = p.baseDir
	cmd.WaitDelay = 10 * time.Second
	p.owner.apply(cmd)
	return cmd
}

// LogTail returns the last n lines of the server log.
func (p *Postgres) LogTail(n int) string {
	return tailFile(p.LogFile, n)
}

// tailFile returns the last n lines of the file at path, reading at most its
// last MiB.
func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	const maxTail = 1 << 20
	if fi, err := f.Stat(); err == nil && fi.Size() > maxTail {
		if _, err := f.Seek(fi.Size()-maxTail, io.SeekStart); err != nil {
			return fmt.Sprintf("(read log: %v)", err)
		}
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(read log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// PostgresAvailable finds the PostgreSQL 15 binaries: the directory of initdb
// in PATH (after resolving symlinks), else /usr/lib/postgresql/15/bin. The
// directory must hold initdb, pg_ctl, postgres and psql; a newer major version
// is accepted only when no version 15 is found.
func PostgresAvailable() (binDir string, ok bool) {
	var candidates []string
	if path, err := exec.LookPath("initdb"); err == nil {
		if resolved, err := filepath.EvalSymlinks(path); err == nil {
			candidates = append(candidates, filepath.Dir(resolved))
		}
		candidates = append(candidates, filepath.Dir(path))
	}
	candidates = append(candidates, "/usr/lib/postgresql/15/bin")
	var newer string
	for _, dir := range candidates {
		if !hasServerBinaries(dir) {
			continue
		}
		switch v := majorVersion(dir); {
		case v == 15:
			return dir, true
		case v > 15 && newer == "":
			newer = dir
		}
	}
	return newer, newer != ""
}

func hasServerBinaries(dir string) bool {
	return hasPrograms(dir, "initdb", "pg_ctl", "postgres", "psql")
}

// hasPrograms reports whether dir holds every named executable file.
func hasPrograms(dir string, names ...string) bool {
	for _, name := range names {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return false
		}
	}
	return true
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)`)

// majorVersion returns the major version of dir/postgres, or 0.
func majorVersion(dir string) int {
	out, err := exec.Command(filepath.Join(dir, "postgres"), "--version").Output()
	if err != nil {
		return 0
	}
	m := versionRE.FindSubmatch(out)
	if m == nil {
		return 0
	}
	v, err := strconv.Atoi(string(m[1]))
	if err != nil {
		return 0
	}
	return v
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	return port
}
