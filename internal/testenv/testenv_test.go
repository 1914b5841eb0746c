package testenv_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tusk-backup/tusk/internal/testenv"
)

func TestIntegrationPostgres(t *testing.T) {
	t.Parallel()
	archive := testenv.ServerTempDir(t)
	p := testenv.StartPostgres(t, testenv.PostgresOptions{
		// Fails unless opts.Env reaches archive_command, and the archive
		// directory is writable by the server user.
		ArchiveCommand: fmt.Sprintf(`test "$TUSK_TESTENV_MARK" = yes && cp %%p '%s/%%f'`, archive),
		Conf:           map[string]string{"cluster_name": "tusk's test"},
		Env:            []string{"TUSK_TESTENV_MARK=yes"},
	})

	checks := []struct{ query, want string }{
		{"select 1", "1"},
		{"show wal_level", "replica"},
		{"show data_checksums", "on"},
		{"show fsync", "on"},
		{"show max_wal_senders", "10"},
		{"show archive_mode", "on"},
		{"show listen_addresses", ""},
		{"show cluster_name", "tusk's test"},
	}
	for _, c := range checks {
		if got := p.SQL(t, c.query); got != c.want {
			t.Errorf("%s = %q, want %q", c.query, got, c.want)
		}
	}
	if v := p.SQL(t, "show server_version_num"); v < "150000" {
		t.Errorf("server_version_num = %s, want PostgreSQL 15 or newer", v)
	}

	conn, err := pgconn.Connect(t.Context(), p.ConnString())
	if err != nil {
		t.Fatalf("pgconn.Connect(%q): %v", p.ConnString(), err)
	}
	if err := conn.Close(t.Context()); err != nil {
		t.Errorf("close connection: %v", err)
	}

	out, err := p.RunAsOwner(t.Context(), "id", "-un").Output()
	if err != nil {
		t.Fatalf("RunAsOwner id: %v", err)
	}
	wantUser := "postgres"
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			t.Fatal(err)
		}
		wantUser = u.Username
	}
	if got := strings.TrimSpace(string(out)); got != wantUser {
		t.Errorf("RunAsOwner runs as %q, want %q", got, wantUser)
	}

	segment := p.SQL(t, "select pg_walfile_name(pg_current_wal_lsn())")
	p.SQL(t, "create table t (i int); insert into t values (1); select pg_switch_wal()")
	waitForFile(t, filepath.Join(archive, segment))

	p.Stop(t)
	p.Stop(t) // idempotent
	if _, err := p.TrySQL(t.Context(), "select 1"); err == nil {
		t.Errorf("query after Stop succeeded")
	}
	p.Start(t)
	if got := p.SQL(t, "select count(*) from t"); got != "1" {
		t.Errorf("rows after restart = %s, want 1", got)
	}
	if !strings.Contains(p.LogTail(20), "database system is ready to accept connections") {
		t.Errorf("LogTail(20) lacks the ready message:\n%s", p.LogTail(20))
	}

	// Stop also stops a server that was started without Start.
	p.Stop(t)
	start := p.RunAsOwner(t.Context(), filepath.Join(p.BinDir, "pg_ctl"), "start", "-w", "-D", p.DataDir, "-l", p.LogFile)
	if out, err := start.CombinedOutput(); err != nil {
		t.Fatalf("pg_ctl start: %v\n%s", err, out)
	}
	p.Start(t) // a no-op: it runs
	p.Stop(t)
	if _, err := p.TrySQL(t.Context(), "select 1"); err == nil {
		t.Errorf("query after Stop of an externally started server succeeded")
	}
}

// TestIntegrationPostgresVersions: every installed major version starts, as
// the server user, with testenv's settings, and Debian's 15 psql talks to it.
func TestIntegrationPostgresVersions(t *testing.T) {
	t.Parallel()
	for _, v := range testenv.MatrixVersions {
		t.Run(fmt.Sprint(v), func(t *testing.T) {
			t.Parallel()
			p := testenv.StartPostgres(t, testenv.PostgresOptions{Version: v})
			if p.Version != v {
				t.Errorf("Version = %d, want %d", p.Version, v)
			}
			if got, want := p.SQL(t, "select current_setting('server_version_num')::int / 10000"), fmt.Sprint(v); got != want {
				t.Errorf("server major version %s, want %s", got, want)
			}
			if got := p.SQL(t, "show data_checksums"); got != "on" {
				t.Errorf("data_checksums = %s, want on", got)
			}
			p.Stop(t)
		})
	}
}

func TestIntegrationBuildTusk(t *testing.T) {
	t.Parallel()
	bin := testenv.BuildTusk(t)
	if again := testenv.BuildTusk(t); again != bin {
		t.Errorf("second BuildTusk = %s, want the first build %s", again, bin)
	}
	// The server user (archive_command) must be able to run it. NewPostgres
	// runs no initdb and starts nothing.
	p := testenv.NewPostgres(t, testenv.PostgresOptions{})
	if out, err := p.RunAsOwner(t.Context(), bin, "--help").CombinedOutput(); err != nil {
		t.Errorf("%s --help as the server user: %v\n%s", bin, err, out)
	}
}

// waitForFile waits up to 30 s for path to exist.
func waitForFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := os.Stat(path)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear: %v", path, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestIntegrationMinIO(t *testing.T) {
	t.Parallel()
	m := testenv.StartMinIO(t)
	client := m.Client()
	const key = "dir/object"
	body := []byte("hello, tusk")

	if _, err := client.PutObject(t.Context(), &s3.PutObjectInput{
		Bucket: aws.String(m.Bucket),
		Key:    aws.String(key),
		Body:   bytes.NewReader(body),
	}); err != nil {
		t.Fatalf("put: %v", err)
	}
	if got := getObject(t, client, m.Bucket, key); !bytes.Equal(got, body) {
		t.Errorf("get = %q, want %q", got, body)
	}

	m.Stop(t)
	m.Stop(t) // idempotent
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	_, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(m.Bucket), Key: aws.String(key)})
	if err == nil {
		t.Errorf("head after Stop succeeded")
	}

	m.Start(t)
	if got := getObject(t, client, m.Bucket, key); !bytes.Equal(got, body) {
		t.Errorf("get after restart = %q, want %q", got, body)
	}

	if got, want := m.URL("a/b"), "s3://"+m.Bucket+"/a/b"; got != want {
		t.Errorf("URL = %q, want %q", got, want)
	}
	env := strings.Join(m.Env(), "\n")
	for _, want := range []string{"AWS_ENDPOINT=" + m.Endpoint, "AWS_SECRET_ACCESS_KEY=" + m.SecretKey, "AWS_S3_FORCE_PATH_STYLE=true"} {
		if !strings.Contains(env, want) {
			t.Errorf("Env() lacks %s", want)
		}
	}
}

func getObject(t *testing.T, client *s3.Client, bucket, key string) []byte {
	t.Helper()
	out, err := client.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return data
}

// fakeTB records whether Require skipped or failed.
type fakeTB struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skipped, f.msg = true, fmt.Sprintf(format, args...)
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed, f.msg = true, fmt.Sprintf(format, args...)
}

func TestRequire(t *testing.T) {
	tests := []struct {
		name                string
		ci, require         string
		available           bool
		wantSkip, wantFatal bool
	}{
		{name: "available", available: true},
		{name: "missing", wantSkip: true},
		{name: "missing in CI", ci: "true", wantFatal: true},
		{name: "missing with TUSK_TEST_REQUIRE", require: "1", wantFatal: true},
		{name: "available in CI", ci: "true", available: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			t.Setenv("TUSK_TEST_REQUIRE", tt.require)
			f := &fakeTB{TB: t}
			testenv.Require(f, "minio", tt.available, "no binary at /x/minio")
			if f.skipped != tt.wantSkip || f.failed != tt.wantFatal {
				t.Fatalf("skipped=%v failed=%v, want %v %v (%s)", f.skipped, f.failed, tt.wantSkip, tt.wantFatal, f.msg)
			}
			if f.msg != "" && (!strings.Contains(f.msg, "minio is missing") || !strings.Contains(f.msg, "install-test-deps.sh")) {
				t.Errorf("message does not say what is missing and how to install it: %s", f.msg)
			}
		})
	}
}
