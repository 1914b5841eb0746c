package cmd

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/tusk-backup/tusk/config"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSettingFlags: only the flags the operator gave reach config.Resolve,
// so a flag left at its empty default never beats the environment.
func TestSettingFlags(t *testing.T) {
	t.Parallel()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	addSettingFlags(fs, "TUSK_REPO", "TUSK_COMPRESSION", "TUSK_LOG_LEVEL", "TUSK_PG_READY_RENAME")
	if err := fs.Parse([]string{"--repo", "file:///from/flag", "--pg-ready-rename"}); err != nil {
		t.Fatal(err)
	}
	got := settingFlags(fs)
	if len(got) != 2 || got["repo"] != "file:///from/flag" || got["pg-ready-rename"] != "true" {
		t.Fatalf("settingFlags = %v, want repo and pg-ready-rename only", got)
	}
	v, err := config.Resolve(got, []string{"TUSK_COMPRESSION=lz4"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if v.Get("TUSK_REPO") != "file:///from/flag" || v.From("TUSK_REPO") != "flag --repo" || v.Get("TUSK_COMPRESSION") != "lz4" {
		t.Fatalf("resolved TUSK_REPO %q from %q, TUSK_COMPRESSION %q", v.Get("TUSK_REPO"), v.From("TUSK_REPO"), v.Get("TUSK_COMPRESSION"))
	}
}

// TestSettingErrorsAreUsageErrors: a bad setting exits 2 before any work.
func TestSettingErrorsAreUsageErrors(t *testing.T) {
	t.Parallel()
	for _, env := range [][]string{{"TUSK_UPLAOD_CONCURRENCY=8"}, {"TUSK_UPLOAD_CONCURRENCY=0"}, {"WALG_PGP_KEY=k"}} {
		o := &rootOpts{stdout: os.Stdout, stderr: os.Stderr, env: env}
		c := newRootCmd(o)
		_, _, err := o.load(c)
		var ue *UsageError
		if err == nil || !errors.As(err, &ue) {
			t.Errorf("%v: err = %v, want a usage error", env, err)
		}
	}
}

func TestSettingsTableHidesSecrets(t *testing.T) {
	t.Parallel()
	tbl := settingsTable()
	for _, s := range config.Settings {
		if !strings.Contains(tbl, s.Key) {
			t.Errorf("tusk help settings lacks %s", s.Key)
		}
		if s.Secret && s.Default != "" && strings.Contains(tbl, s.Default) {
			t.Errorf("tusk help settings shows the default of secret %s", s.Key)
		}
	}
}

// TestS3RetriesZero: TUSK_S3_MAX_RETRIES=0 means one try, which the s3
// package spells as a negative number (its 0 is the default).
func TestS3RetriesZero(t *testing.T) {
	t.Parallel()
	v, err := config.Resolve(nil, []string{"TUSK_S3_MAX_RETRIES=0"}, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Build(v)
	if err != nil {
		t.Fatal(err)
	}
	if got := s3Retries(cfg.S3.MaxRetries); got >= 0 {
		t.Errorf("TUSK_S3_MAX_RETRIES=0 reaches the s3 package as %d, want a negative number (no retries)", got)
	}
	if got := s3Retries(8); got != 8 {
		t.Errorf("s3Retries(8) = %d", got)
	}
}

// TestConnStringKeywords: libpq's settings besides host, port, user and
// database (from the environment or the config file) reach libpq as
// keywords.
func TestConnStringKeywords(t *testing.T) {
	t.Parallel()
	pg := config.PGSettings{Host: "/run/pg", SSLMode: "verify-full", SSLRootCert: "/ca it's.pem", AppName: "tusk"}
	got := connString(pg, "", true)
	want := `host='/run/pg' application_name='tusk' sslmode='verify-full' sslrootcert='/ca it\'s.pem' replication=database`
	if got != want {
		t.Fatalf("connString = %s\nwant          %s", got, want)
	}
	if got := connString(pg, "host=x", false); got != "host=x" {
		t.Fatalf("with --pg-conn: %s", got)
	}
}
