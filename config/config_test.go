package config

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// flags is what cmd passes for a command line of "--name value" pairs.
func flags(args ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(args); i += 2 {
		m[strings.TrimPrefix(args[i], "--")] = args[i+1]
	}
	return m
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrecedence(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "tusk.yaml", "TUSK_REPO: file:///from/file\nTUSK_LOG_LEVEL: warn\nTUSK_UPLOAD_CONCURRENCY: 7\nWALG_DOWNLOAD_CONCURRENCY: 3\n")
	cases := []struct {
		name   string
		args   []string
		env    []string
		key    string
		want   string
		source string
	}{
		{"flag beats env", []string{"--repo", "file:///from/flag"}, []string{"TUSK_REPO=file:///from/env"}, "TUSK_REPO", "file:///from/flag", "flag --repo"},
		{"env beats file", nil, []string{"TUSK_REPO=file:///from/env"}, "TUSK_REPO", "file:///from/env", "environment TUSK_REPO"},
		{"wal-g alias in env beats file", nil, []string{"WALG_FILE_PREFIX=/from/walg"}, "TUSK_REPO", "/from/walg", "environment WALG_FILE_PREFIX"},
		{"TUSK name beats wal-g alias", nil, []string{"WALG_S3_PREFIX=s3://b/p", "TUSK_REPO=file:///t"}, "TUSK_REPO", "file:///t", "environment TUSK_REPO"},
		{"file beats default", nil, nil, "TUSK_UPLOAD_CONCURRENCY", "7", "config file " + file + " (TUSK_UPLOAD_CONCURRENCY)"},
		{"alias in file", nil, nil, "TUSK_DOWNLOAD_CONCURRENCY", "3", "config file " + file + " (WALG_DOWNLOAD_CONCURRENCY)"},
		{"default", nil, nil, "TUSK_S3_PART_SIZE", "16MiB", "default"},
		{"empty env value is unset", nil, []string{"TUSK_LOG_LEVEL="}, "TUSK_LOG_LEVEL", "warn", "config file " + file + " (TUSK_LOG_LEVEL)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := Resolve(flags(c.args...), c.env, file)
			if err != nil {
				t.Fatal(err)
			}
			if v.Get(c.key) != c.want || v.From(c.key) != c.source {
				t.Errorf("%s = %q from %q, want %q from %q", c.key, v.Get(c.key), v.From(c.key), c.want, c.source)
			}
		})
	}
}

func TestConfigFileFromEnv(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "tusk.json", `{"TUSK_REPO": "s3://bucket/pg", "TUSK_S3_FORCE_PATH_STYLE": true, "TUSK_UPLOAD_CONCURRENCY": 9}`)
	v, err := Resolve(nil, []string{"TUSK_CONFIG=" + file}, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Build(v)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Repo.Bucket != "bucket" || cfg.Repo.Prefix != "pg" || !cfg.S3.ForcePathStyle || cfg.UploadConcurrency != 9 {
		t.Fatalf("config from JSON file = %+v", cfg)
	}
}

func TestUnknownSettings(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		env  []string
		file string
		want string
	}{
		{"typo in env", []string{"TUSK_UPLAOD_CONCURRENCY=8"}, "", "unknown setting TUSK_UPLAOD_CONCURRENCY in the environment (did you mean TUSK_UPLOAD_CONCURRENCY?)"},
		{"unknown in env", []string{"TUSK_NOTHING_LIKE_IT=1"}, "", "unknown setting TUSK_NOTHING_LIKE_IT in the environment;"},
		{"unknown in file", nil, "TUSK_REPO: file:///x\nWALG_S3_PREFX: s3://b\n", "is refused: it is not a setting tusk knows (did you mean WALG_S3_PREFIX?)"},
		{"nested value in file", nil, "TUSK_REPO:\n  a: b\n", "TUSK_REPO must be a single value"},
		{"not yaml", nil, "TUSK_REPO: [unclosed\n", "is not valid YAML:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := ""
			if c.file != "" {
				path = writeFile(t, "c.yaml", c.file)
			}
			_, err := Resolve(nil, c.env, path)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one containing %q", err, c.want)
			}
		})
	}
	if _, err := Resolve(nil, nil, filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "cannot be read") {
		t.Fatalf("missing config file: err = %v", err)
	}
}

func TestHarnessVariablesAreNotSettings(t *testing.T) {
	t.Parallel()
	if _, err := Resolve(nil, []string{"TUSK_TEST_REQUIRE=1", "TUSK_BENCH_SCALE=10", "WALG_SOMETHING_ELSE=1"}, ""); err != nil {
		t.Fatal(err)
	}
}

func TestParseRepo(t *testing.T) {
	t.Parallel()
	good := []struct{ in, url, scheme, path, bucket, prefix string }{
		{"file:///var/lib/tusk/repo/", "file:///var/lib/tusk/repo", "file", "/var/lib/tusk/repo", "", ""},
		{"/var/lib/tusk", "file:///var/lib/tusk", "file", "/var/lib/tusk", "", ""},
		{"s3://bucket", "s3://bucket", "s3", "", "bucket", ""},
		{"s3://bucket/a/b/", "s3://bucket/a/b", "s3", "", "bucket", "a/b"},
	}
	for _, g := range good {
		r, err := ParseRepo(g.in)
		if err != nil {
			t.Errorf("ParseRepo(%q): %v", g.in, err)
			continue
		}
		if r.URL != g.url || r.Scheme != g.scheme || r.Path != g.path || r.Bucket != g.bucket || r.Prefix != g.prefix {
			t.Errorf("ParseRepo(%q) = %+v", g.in, r)
		}
	}
	bad := map[string]string{
		"relative/path":         "has no scheme",
		"file://host/path":      "three slashes",
		"file://":               "no absolute folder path",
		"s3:///prefix":          "has no bucket",
		"gs://bucket/x":         `scheme "gs"`,
		"s3://bucket/a//b":      "empty path segment",
		"http://127.0.0.1:9000": `scheme "http"`,
		"s3://key:secret@b/p":   "must not hold credentials",
		"s3://bucket:9000/p":    "may hold only",
		"s3://bucket/p?v=1":     "query",
		"s3://bucket/a/../b":    `".."`,
	}
	for in, want := range bad {
		if _, err := ParseRepo(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseRepo(%q) = %v, want an error containing %q", in, err, want)
		}
	}
}

func TestBuildConfigErrorsNameTheSetting(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"TUSK_UPLOAD_CONCURRENCY=0":        "TUSK_UPLOAD_CONCURRENCY (from environment TUSK_UPLOAD_CONCURRENCY)",
		"WALG_UPLOAD_CONCURRENCY=lots":     "TUSK_UPLOAD_CONCURRENCY (from environment WALG_UPLOAD_CONCURRENCY)",
		"TUSK_S3_PART_SIZE=1MiB":           "outside S3's part size limits",
		"TUSK_S3_MAX_RETRIES=-1":           `TUSK_S3_MAX_RETRIES (from environment TUSK_S3_MAX_RETRIES): "-1" is not a whole number from 0 to 100`,
		"WALG_PREVENT_WAL_OVERWRITE=mebbe": `"mebbe" is not true or false`,
		"TUSK_LOG_FORMAT=xml":              `"xml" is not text or json`,
		"AWS_ENDPOINT=127.0.0.1:9000":      "is not an http:// or https:// URL",
		"WALG_COMPRESSION_METHOD=brotli":   "TUSK_COMPRESSION (from environment WALG_COMPRESSION_METHOD)",
	}
	for env, want := range cases {
		v, err := Resolve(nil, []string{env}, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Build(v); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want it to contain %q", env, err, want)
		}
	}
}

func TestSecretsStayHidden(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-VALUE-xyz"
	v, err := Resolve(nil, []string{"AWS_SECRET_ACCESS_KEY=" + secret, "AWS_SESSION_TOKEN=" + secret, "PGPASSWORD=" + secret, "WALG_S3_PREFIX=s3://b/p"}, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Build(v)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.S3.SecretAccessKey != secret || cfg.PG.Password != secret {
		t.Fatal("secrets were not resolved")
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("config", "s3", cfg.S3, "pg", cfg.PG)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "s3", cfg.S3, "pg", cfg.PG)
	if strings.Contains(buf.String(), secret) {
		t.Fatalf("a secret reached the log: %s", buf.String())
	}
	for _, s := range Settings {
		if s.Secret && s.Flag != "" {
			t.Errorf("secret setting %s has a flag (flags show in ps and shell history)", s.Key)
		}
	}
}

func TestParseSize(t *testing.T) {
	t.Parallel()
	cases := map[string]int64{"16MiB": 16 << 20, "16MB": 16 << 20, "5m": 5 << 20, "1GiB": 1 << 30, "1024": 1024, "64 KiB": 64 << 10}
	for in, want := range cases {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "lots", "-1MiB", "1.5GiB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) succeeded", in)
		}
	}
}

func TestREADMEListsEverySetting(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, _, ok := strings.Cut(strings.TrimPrefix(l, "| `"), "`"); ok && strings.HasPrefix(l, "| `TUSK_") {
			rows[k] = l
		}
	}
	for _, s := range Settings {
		// The table says what tusk help settings says.
		if row, ok := rows[s.Key]; ok && !strings.HasSuffix(row, "| "+s.Help+" |") {
			t.Errorf("README.md's row of %s does not end in its help text %q:\n%s", s.Key, s.Help, row)
		}
		for _, k := range append([]string{s.Key}, s.Aliases...) {
			if !strings.Contains(string(b), "`"+k+"`") {
				t.Errorf("README.md's settings table lacks %s", k)
			}
		}
	}
}

// TestWALGNames: a wal-g setting tusk does not honour is refused when going
// on without it would change what is stored or how it is protected, and
// noted otherwise, in the environment and in a config file alike.
func TestWALGNames(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		env     []string
		file    string
		refused string // the usage error's text, "" for none
		note    string // a note's text, "" for none
	}{
		{"libsodium key", []string{"WALG_LIBSODIUM_KEY=secret"}, "", "", ""},
		{"pgp key path", []string{"WALG_PGP_KEY_PATH=/etc/key"}, "", "WALG_PGP_KEY_PATH (in the environment) is refused: it turns on a kind of wal-g client-side encryption that tusk does not read or write", ""},
		{"cse kms", []string{"WALG_CSE_KMS_ID=arn:aws:kms:x"}, "", "WALG_CSE_KMS_ID (in the environment) is refused", ""},
		{"gpg key id", []string{"WALG_GPG_KEY_ID=ABCD"}, "", "WALG_GPG_KEY_ID (in the environment) is refused", ""},
		{"wal-e gpg", []string{"WALE_GPG_KEY_ID=ABCD"}, "", "WALE_GPG_KEY_ID (in the environment) is refused", ""},
		{"key in a config file", nil, "TUSK_REPO: file:///x\nWALG_PGP_KEY_PATH: /k\n", "WALG_PGP_KEY_PATH (in config file", ""},
		{"other storage", []string{"WALG_GS_PREFIX=gs://b/p"}, "", "names a kind of storage tusk does not support", ""},
		{"unknown, by its name a key", []string{"WALG_FANCY_NEW_KEY=x"}, "", "by its name it may change how or where data is stored", ""},
		{"empty value is unset", []string{"WALG_LIBSODIUM_KEY="}, "", "", ""},
		{"tuning knob", []string{"WALG_NETWORK_RATE_LIMIT=100"}, "", "", "WALG_NETWORK_RATE_LIMIT (in the environment) is ignored: tusk has no rate limits"},
		{"wal delta", []string{"WALG_USE_WAL_DELTA=true"}, "", "", "WALG_USE_WAL_DELTA (in the environment) is ignored: tusk's incremental backups use PostgreSQL 17's WAL summaries"},
		{"knob in a config file", nil, "WALG_TAR_SIZE_THRESHOLD: 1073741823\n", "", "WALG_TAR_SIZE_THRESHOLD (in config file"},
		{"unknown wal-g name", []string{"WALG_SOMETHING_ELSE=1"}, "", "", "WALG_SOMETHING_ELSE (in the environment) is ignored: tusk does not know this wal-g setting"},
		{"not wal-g's", []string{"HOME=/root", "EDITOR=vi"}, "", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := ""
			if c.file != "" {
				path = writeFile(t, "c.yaml", c.file)
			}
			v, err := Resolve(nil, c.env, path)
			switch {
			case c.refused != "" && (err == nil || !strings.Contains(err.Error(), c.refused)):
				t.Fatalf("err = %v, want one containing %q", err, c.refused)
			case c.refused == "" && err != nil:
				t.Fatalf("err = %v, want none", err)
			case c.refused != "":
				return
			}
			notes := strings.Join(v.Notes(), "\n")
			if (c.note == "") != (notes == "") || !strings.Contains(notes, c.note) {
				t.Fatalf("notes %q, want one containing %q", notes, c.note)
			}
		})
	}
}
