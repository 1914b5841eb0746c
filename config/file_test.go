package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFilePath: --config, then TUSK_CONFIG, then WALG_CONFIG_PATH, then the
// first ~/.walg.* in viper's order of extensions.
func TestFilePath(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	if got := FilePath("", nil, home); got != "" {
		t.Fatalf("no file: FilePath = %q", got)
	}
	for _, name := range []string{".walg.yaml", ".walg.toml", ".walg.json"} {
		if err := os.WriteFile(filepath.Join(home, name), []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(home, ".walg.hcl"), 0o700); err != nil { // a folder is no file
		t.Fatal(err)
	}
	cases := []struct {
		flag string
		env  []string
		want string
	}{
		{"", nil, filepath.Join(home, ".walg.json")},
		{"", []string{"WALG_CONFIG_PATH="}, filepath.Join(home, ".walg.json")},
		{"", []string{"WALG_CONFIG_PATH=/etc/wal-g.json"}, "/etc/wal-g.json"},
		{"", []string{"WALG_CONFIG_PATH=/etc/wal-g.json", "TUSK_CONFIG=/etc/tusk.yaml"}, "/etc/tusk.yaml"},
		{"/x.yaml", []string{"TUSK_CONFIG=/etc/tusk.yaml"}, "/x.yaml"},
	}
	for _, c := range cases {
		if got := FilePath(c.flag, c.env, home); got != c.want {
			t.Errorf("FilePath(%q, %v) = %q, want %q", c.flag, c.env, got, c.want)
		}
	}
	if err := os.Remove(filepath.Join(home, ".walg.json")); err != nil {
		t.Fatal(err)
	}
	if got := FilePath("", nil, home); got != filepath.Join(home, ".walg.toml") {
		t.Errorf("without .walg.json: FilePath = %q, want .walg.toml (viper's order)", got)
	}
}

// TestWALGConfigFile: a .walg.json as wal-g users write it.
func TestWALGConfigFile(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, file, content string
		env                 []string
		key, want, from     string
	}{
		{"duplicate key: the last wins", "w.json", `{"WALG_FILE_PREFIX": "/first", "WALG_FILE_PREFIX": "/last"}`, nil, "TUSK_REPO", "/last", "WALG_FILE_PREFIX"},
		{"keys are case-insensitive", "w.json", `{"walg_compression_method": "lz4"}`, nil, "TUSK_COMPRESSION", "lz4", "WALG_COMPRESSION_METHOD"},
		{"numbers as written", "w.json", `{"WALG_UPLOAD_CONCURRENCY": 16}`, nil, "TUSK_UPLOAD_CONCURRENCY", "16", "WALG_UPLOAD_CONCURRENCY"},
		{"booleans", "w.json", `{"WALG_PREVENT_WAL_OVERWRITE": false}`, nil, "TUSK_PREVENT_WAL_OVERWRITE", "false", "WALG_PREVENT_WAL_OVERWRITE"},
		{"WALE_ spelling", "w.json", `{"WALE_S3_PREFIX": "s3://b/p"}`, nil, "TUSK_REPO", "s3://b/p", "WALE_S3_PREFIX"},
		{"storage setting with WALG_", "w.json", `{"WALG_AWS_ENDPOINT": "http://127.0.0.1:9000"}`, nil, "TUSK_S3_ENDPOINT", "http://127.0.0.1:9000", "WALG_AWS_ENDPOINT"},
		{"libpq's PGSSLMODE", "w.json", `{"PGSSLMODE": "disable"}`, nil, "TUSK_PGSSLMODE", "disable", "PGSSLMODE"},
		{"environment beats the file", "w.json", `{"PGSSLMODE": "disable"}`, []string{"PGSSLMODE=require"}, "TUSK_PGSSLMODE", "require", ""},
		{"wal-g's log level", "w.json", `{"WALG_LOG_LEVEL": "DEVEL"}`, nil, "TUSK_LOG_LEVEL", "DEVEL", "WALG_LOG_LEVEL"},
		{"the prefetch folder", "w.json", `{"WALG_PREFETCH_DIR": "/var/tmp/wal"}`, nil, "TUSK_SPOOL_DIR", "/var/tmp/wal", "WALG_PREFETCH_DIR"},
		{"yaml", "w.yaml", "WALG_FILE_PREFIX: /y\n", nil, "TUSK_REPO", "/y", "WALG_FILE_PREFIX"},
		{"toml", "w.toml", "WALG_FILE_PREFIX = \"/t\"\nWALG_UPLOAD_CONCURRENCY = 3\n", nil, "TUSK_REPO", "/t", "WALG_FILE_PREFIX"},
		{"no extension: JSON", "w", `{"WALG_FILE_PREFIX": "/a", "WALG_FILE_PREFIX": "/b"}`, nil, "TUSK_REPO", "/b", "WALG_FILE_PREFIX"},
		{"trailing newline trimmed", "w.json", `{"WALG_FILE_PREFIX": "/n\n"}`, nil, "TUSK_REPO", "/n", "WALG_FILE_PREFIX"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, c.file, c.content)
			v, err := Resolve(nil, c.env, path)
			if err != nil {
				t.Fatal(err)
			}
			if v.Get(c.key) != c.want {
				t.Fatalf("%s = %q from %q, want %q", c.key, v.Get(c.key), v.From(c.key), c.want)
			}
			if c.from != "" && v.From(c.key) != "config file "+path+" ("+c.from+")" {
				t.Fatalf("%s from %q, want the file's %s", c.key, v.From(c.key), c.from)
			}
			if _, err := Build(v); err != nil {
				t.Fatalf("Build: %v", err)
			}
		})
	}
}

// TestWALGConfigFileRefusals: what tusk cannot read as wal-g does, or would
// go on without to the operator's harm, is one sentence before any work.
func TestWALGConfigFileRefusals(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, file, content, want string }{
		{"yaml key twice", "w.yaml", "WALG_FILE_PREFIX: /a\nwalg_file_prefix: /b\n", "names walg_file_prefix twice (lines 1 and 2)"},
		{"properties", "w.properties", "WALG_FILE_PREFIX=/a\n", "is a .properties file, which tusk does not read"},
		{"env file", "w.env", "WALG_FILE_PREFIX=/a\n", "is a .env file"},
		{"not an object", "w.json", `["WALG_FILE_PREFIX"]`, "is not valid JSON: it is not an object of settings"},
		{"broken json", "w.json", `{"WALG_FILE_PREFIX": `, "is not valid JSON"},
		{"pgp key", "w.json", `{"WALG_FILE_PREFIX": "/a", "WALG_PGP_KEY_PATH": "/k"}`, "WALG_PGP_KEY_PATH (in config file"},
		{"sse-c", "w.json", `{"WALG_S3_SSE_C": "k"}`, "WALG_S3_SSE_C (in config file"},
		{"an SDK setting in the file", "w.json", `{"AWS_SHARED_CREDENTIALS_FILE": "/c"}`, "reads it from the environment only"},
		{"role", "w.json", `{"AWS_ROLE_ARN": "arn:aws:iam::1:role/x"}`, "does not assume the role"},
		{"endpoint source", "w.json", `{"S3_ENDPOINT_SOURCE": "http://x"}`, "does not look its S3 endpoint up"},
		{"failover storages (a map)", "w.json", `{"WALG_FAILOVER_STORAGES": {"a": {"WALG_S3_PREFIX": "s3://x"}}}`, "WALG_FAILOVER_STORAGES (in config file"},
		{"unknown", "w.json", `{"WALG_FILE_PREFX": "/a"}`, "did you mean WALG_FILE_PREFIX?"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := Resolve(nil, nil, writeFile(t, c.file, c.content))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one containing %q", err, c.want)
			}
		})
	}
}

// TestProcessSettingsInTheEnvironment: GOMAXPROCS and AWS_CONFIG_FILE in
// the environment are the runtime's and the SDK's, honoured without a note.
func TestProcessSettingsInTheEnvironment(t *testing.T) {
	t.Parallel()
	v, err := Resolve(nil, []string{"GOMAXPROCS=2", "AWS_CONFIG_FILE=/c", "WALG_CONFIG_PATH=", "UPLOAD_CONCURRENCY=3"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Notes()) != 0 || v.Get("TUSK_UPLOAD_CONCURRENCY") != "3" {
		t.Fatalf("notes %q, upload concurrency %q", v.Notes(), v.Get("TUSK_UPLOAD_CONCURRENCY"))
	}
}

// TestKeyInConfigFileEncrypts: wal-g's libsodium key, however its name is
// cased in the file, turns encryption on: a configured key never results in
// a plaintext upload.
func TestKeyInConfigFileEncrypts(t *testing.T) {
	t.Parallel()
	for _, content := range []string{
		`{"WALG_FILE_PREFIX": "/r", "WALG_LIBSODIUM_KEY": "0123456789abcdef0123456789abcdef"}`,
		`{"WALG_FILE_PREFIX": "/r", "walg_libsodium_key": "0123456789abcdef0123456789abcdef"}`,
		`{"WALG_FILE_PREFIX": "/r", "WALG_LIBSODIUM_KEY_PATH": "/etc/wal-g/key"}`,
	} {
		v, err := Resolve(nil, nil, writeFile(t, "w.json", content))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := Build(v)
		if err != nil {
			t.Fatal(err)
		}
		if !cfg.Encryption.Enabled() {
			t.Errorf("%s: encryption is off", content)
		}
	}
}

func TestPGKeywords(t *testing.T) {
	t.Parallel()
	v, err := Resolve(nil, []string{"PGSSLMODE=verify-full", "PGAPPNAME=x"}, writeFile(t, "w.json", `{"PGSSLROOTCERT": "/ca.pem", "PGSSLMODE": "disable"}`))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Build(v)
	if err != nil {
		t.Fatal(err)
	}
	kw := cfg.PG.Keywords()
	if len(kw) != 3 || kw["sslmode"] != "verify-full" || kw["sslrootcert"] != "/ca.pem" || kw["application_name"] != "x" {
		t.Fatalf("keywords = %v", kw)
	}
}

// TestRuntimeSettingInConfigFile: GOMAXPROCS in a config file (which wal-g
// applies) is noted, not refused: without it tusk loses nothing.
func TestRuntimeSettingInConfigFile(t *testing.T) {
	t.Parallel()
	v, err := Resolve(nil, nil, writeFile(t, "w.json", `{"WALG_FILE_PREFIX": "/r", "GOMAXPROCS": 2}`))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Join(v.Notes(), "\n"); !strings.Contains(n, "GOMAXPROCS (in config file") || !strings.Contains(n, "Go runtime reads it from the environment only") {
		t.Fatalf("notes %q", n)
	}
}

// TestRoleWithWebIdentity: AWS_ROLE_ARN beside a web identity token (EKS's
// IRSA) is the AWS SDK's to assume; without one it is refused.
func TestRoleWithWebIdentity(t *testing.T) {
	t.Parallel()
	if _, err := Resolve(nil, []string{"AWS_ROLE_ARN=arn:aws:iam::1:role/x", "AWS_WEB_IDENTITY_TOKEN_FILE=/var/run/token"}, ""); err != nil {
		t.Fatalf("with a web identity: %v", err)
	}
	if _, err := Resolve(nil, []string{"AWS_ROLE_ARN=arn:aws:iam::1:role/x"}, ""); err == nil || !strings.Contains(err.Error(), "does not assume the role") {
		t.Fatalf("without: %v", err)
	}
}
