package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/tusk-backup/tusk/compress"
)

// A Setting is one knob, known by its TUSK_* name in the environment and the
// config file, by the wal-g or AWS/libpq names people already use, and maybe
// by a command-line flag.
type Setting struct {
	Key     string   // TUSK_* name; also the config-file key
	Aliases []string // other environment / config-file names, in priority order
	Flag    string   // flag name, "" for none
	Secret  bool     // never printed, never a flag
	Default string
	Help    string
}

// Settings is the whole table; README.md documents the same table, and cmd
// prints it as "tusk help settings".
var Settings = []Setting{
	{Key: "TUSK_REPO", Aliases: []string{"WALG_S3_PREFIX", "WALE_S3_PREFIX", "WALG_FILE_PREFIX", "WALE_FILE_PREFIX"}, Flag: "repo",
		Help: "repository: file:///path/to/folder or s3://bucket/prefix"},
	{Key: "TUSK_COMPRESSION", Aliases: []string{"WALG_COMPRESSION_METHOD"}, Flag: "compression", Default: compress.Default.String(),
		Help: "codec for new objects: " + strings.Join(compress.Names(), ", ") + " (zstd and gzip take :level)"},
	{Key: "TUSK_UPLOAD_CONCURRENCY", Aliases: []string{"WALG_UPLOAD_CONCURRENCY", "UPLOAD_CONCURRENCY", "WALE_UPLOAD_CONCURRENCY"}, Flag: "upload-concurrency", Default: "4",
		Help: "objects (or S3 parts) uploaded at once; memory is about this × part size"},
	{Key: "TUSK_DOWNLOAD_CONCURRENCY", Aliases: []string{"WALG_DOWNLOAD_CONCURRENCY"}, Flag: "download-concurrency", Default: "4",
		Help: "objects downloaded at once"},
	{Key: "TUSK_PREVENT_WAL_OVERWRITE", Aliases: []string{"WALG_PREVENT_WAL_OVERWRITE"}, Default: "true",
		Help: "refuse to overwrite an archived WAL segment with different content"},
	{Key: "TUSK_WAL_PUSH_AHEAD", Default: "16",
		Help: "wal-push also uploads up to this many later .ready WAL files in parallel and marks them .done (0 turns it off)"},
	{Key: "TUSK_PG_READY_RENAME", Aliases: []string{"PG_READY_RENAME"}, Flag: "pg-ready-rename", Default: "true",
		Help: "push-ahead marks the files it archived .done itself, so PostgreSQL skips their archive_command calls (false: it records them outside pg_wal, PostgreSQL calls for each, and each such call answers at once)"},
	{Key: "TUSK_WAL_PREFETCH", Default: "16",
		Help: "wal-fetch also downloads up to this many following segments into the spool folder (0 turns it off)"},
	{Key: "TUSK_SPOOL_DIR", Aliases: []string{"WALG_PREFETCH_DIR"},
		Help: "folder for prefetched WAL, best on pg_wal's file system (default: a tusk folder in the system temp folder)"},
	{Key: "TUSK_BACKUP_PART_SIZE", Default: "64MiB",
		Help: "backup-push cuts the server's tar stream into parts of about this size (1MiB-1GiB), compressed and uploaded TUSK_UPLOAD_CONCURRENCY at a time"},
	{Key: "TUSK_BACKUP_MODE", Flag: "mode", Default: "auto",
		Help: "how backup-push reads the data: local (it reads the data directory's files itself, between pg_backup_start and pg_backup_stop; needs PGDATA on the database host; incrementals by page LSN), remote (BASE_BACKUP over the replication protocol; incrementals from WAL summaries, PostgreSQL 17+), or auto: local when PGDATA is the server's data directory on this host, unless the backup is an incremental of PostgreSQL 17+, else remote"},
	{Key: "TUSK_DELTA_MAX_STEPS", Aliases: []string{"WALG_DELTA_MAX_STEPS"}, Default: "0",
		Help: "backup-push takes an incremental backup (remote mode: PostgreSQL 17+, summarize_wal = on; local mode: any version) on the newest backup of the cluster until its chain has this many incrementals, then a full one (0: full backups only)"},
	{Key: "TUSK_DELTA_ORIGIN", Aliases: []string{"WALG_DELTA_ORIGIN"}, Default: "LATEST",
		Help: "what an incremental backup is taken against: LATEST (the newest backup, so chains grow) or LATEST_FULL (the newest full backup)"},
	{Key: "TUSK_DELTA_FROM_NAME", Aliases: []string{"WALG_DELTA_FROM_NAME"}, Flag: "delta-from-name",
		Help: "backup-push takes an incremental backup against this backup, whatever TUSK_DELTA_MAX_STEPS says"},
	{Key: "TUSK_S3_ENDPOINT", Aliases: []string{"AWS_ENDPOINT", "WALG_AWS_ENDPOINT", "WALE_AWS_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"},
		Help: "S3 endpoint URL for S3-compatible stores (MinIO); empty for AWS"},
	{Key: "TUSK_S3_FORCE_PATH_STYLE", Aliases: []string{"AWS_S3_FORCE_PATH_STYLE", "WALG_AWS_S3_FORCE_PATH_STYLE", "WALE_AWS_S3_FORCE_PATH_STYLE"}, Default: "false",
		Help: "address buckets as ENDPOINT/bucket instead of bucket.ENDPOINT (MinIO needs true)"},
	{Key: "TUSK_S3_REGION", Aliases: []string{"AWS_REGION", "WALG_AWS_REGION", "WALE_AWS_REGION", "AWS_DEFAULT_REGION"},
		Help: "S3 region (default: from the AWS configuration, else us-east-1)"},
	{Key: "TUSK_S3_ACCESS_KEY_ID", Aliases: []string{"AWS_ACCESS_KEY_ID", "WALG_AWS_ACCESS_KEY_ID", "WALE_AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY", "WALG_AWS_ACCESS_KEY", "WALE_AWS_ACCESS_KEY"},
		Help: "static access key id (default: the AWS credential chain: profiles, instance role)"},
	{Key: "TUSK_S3_SECRET_ACCESS_KEY", Aliases: []string{"AWS_SECRET_ACCESS_KEY", "WALG_AWS_SECRET_ACCESS_KEY", "WALE_AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY", "WALG_AWS_SECRET_KEY", "WALE_AWS_SECRET_KEY"}, Secret: true,
		Help: "static secret access key"},
	{Key: "TUSK_S3_SESSION_TOKEN", Aliases: []string{"AWS_SESSION_TOKEN", "WALG_AWS_SESSION_TOKEN", "WALE_AWS_SESSION_TOKEN"}, Secret: true,
		Help: "session token for temporary credentials"},
	{Key: "TUSK_S3_PROFILE", Aliases: []string{"AWS_PROFILE"},
		Help: "shared-config profile for the AWS credential chain"},
	{Key: "TUSK_S3_SSE", Aliases: []string{"S3_SSE", "WALG_S3_SSE", "WALE_S3_SSE"},
		Help: "server-side encryption: AES256 or aws:kms"},
	{Key: "TUSK_S3_SSE_KMS_ID", Aliases: []string{"S3_SSE_KMS_ID", "WALG_S3_SSE_KMS_ID", "WALE_S3_SSE_KMS_ID"},
		Help: "KMS key id for aws:kms encryption"},
	{Key: "TUSK_ENCRYPTION_KEY", Aliases: []string{"WALG_LIBSODIUM_KEY"}, Secret: true,
		Help: "encrypt everything stored with this key (libsodium's secretstream, the format wal-g writes with WALG_LIBSODIUM_KEY; see TUSK_ENCRYPTION_KEY_TRANSFORM); it writes, and TUSK_ENCRYPTION_KEY_FILE's keys also read"},
	{Key: "TUSK_ENCRYPTION_KEY_FILE", Aliases: []string{"WALG_LIBSODIUM_KEY_PATH"},
		Help: "file of encryption keys, one per line: the first writes (unless TUSK_ENCRYPTION_KEY is set), every one reads, so old keys stay after a rotation"},
	{Key: "TUSK_ENCRYPTION_KEY_TRANSFORM", Aliases: []string{"WALG_LIBSODIUM_KEY_TRANSFORM"}, Default: "none",
		Help: "how a key is written: hex or base64 (32 bytes; openssl rand -hex 32), or none (the text's bytes, as wal-g's default: 25-32 of them, only the first 32 used)"},
	{Key: "TUSK_AGE_RECIPIENTS",
		Help: "file of age recipients (age1... lines, from age-keygen): encrypt everything stored to them, so that a host with only this file can write but not read; instead of TUSK_ENCRYPTION_KEY"},
	{Key: "TUSK_AGE_IDENTITY_FILE",
		Help: "file of age identities (AGE-SECRET-KEY-1... lines) that read an age-encrypted repository: on the hosts that restore"},
	{Key: "TUSK_S3_STORAGE_CLASS", Aliases: []string{"S3_STORAGE_CLASS", "WALG_S3_STORAGE_CLASS", "WALE_S3_STORAGE_CLASS"},
		Help: "S3 storage class for new objects (default STANDARD)"},
	{Key: "TUSK_S3_PART_SIZE", Aliases: []string{"S3_MAX_PART_SIZE", "WALG_S3_MAX_PART_SIZE", "WALE_S3_MAX_PART_SIZE"}, Default: "16MiB",
		Help: "S3 multipart part size (5MiB-5GiB); backup-push uses at most 8MiB"},
	{Key: "TUSK_S3_MAX_RETRIES", Aliases: []string{"S3_MAX_RETRIES", "WALG_S3_MAX_RETRIES", "WALE_S3_MAX_RETRIES"}, Default: "8",
		Help: "retries of a failed S3 request after its first try (8: up to 9 tries), on throttling, 5xx and connection errors, with backoff up to 20 s; also how often a broken download resumes; 0 turns retries off"},
	{Key: "TUSK_S3_STALL_TIMEOUT", Default: "60s",
		Help: "an S3 connection on which no byte moves for this long fails (and is retried); raise it only for links slower than about 100 KiB/s"},
	{Key: "TUSK_LOG_LEVEL", Aliases: []string{"WALG_LOG_LEVEL"}, Flag: "log-level", Default: "info",
		Help: "debug, info, warn or error (wal-g's DEVEL, NORMAL and ERROR too)"},
	{Key: "TUSK_LOG_FORMAT", Flag: "log-format", Default: "text",
		Help: "text or json"},
	{Key: "TUSK_PGHOST", Aliases: []string{"PGHOST"}, Help: "PostgreSQL host or socket folder"},
	{Key: "TUSK_PGPORT", Aliases: []string{"PGPORT"}, Help: "PostgreSQL port"},
	{Key: "TUSK_PGUSER", Aliases: []string{"PGUSER"}, Help: "PostgreSQL user"},
	{Key: "TUSK_PGDATABASE", Aliases: []string{"PGDATABASE"}, Help: "PostgreSQL database"},
	{Key: "TUSK_PGPASSWORD", Aliases: []string{"PGPASSWORD"}, Secret: true, Help: "PostgreSQL password"},
	{Key: "TUSK_PGDATA", Aliases: []string{"PGDATA"}, Help: "PostgreSQL data directory"},
	{Key: "TUSK_PGPASSFILE", Aliases: []string{"PGPASSFILE"}, Help: "libpq's password file"},
	{Key: "TUSK_PGSSLMODE", Aliases: []string{"PGSSLMODE"}, Help: "libpq's sslmode: disable, allow, prefer, require, verify-ca or verify-full"},
	{Key: "TUSK_PGSSLCERT", Aliases: []string{"PGSSLCERT"}, Help: "libpq's client certificate file"},
	{Key: "TUSK_PGSSLKEY", Aliases: []string{"PGSSLKEY"}, Help: "libpq's client key file"},
	{Key: "TUSK_PGSSLROOTCERT", Aliases: []string{"PGSSLROOTCERT"}, Help: "libpq's file of trusted CA certificates"},
	{Key: "TUSK_PGAPPNAME", Aliases: []string{"PGAPPNAME"}, Help: "libpq's application_name"},
}

// envExempt are TUSK_ prefixes that belong to the test and benchmark
// harnesses, not to tusk; they are never reported as unknown.
var envExempt = []string{"TUSK_TEST_", "TUSK_BENCH_"}

// FileEnv names the environment variable holding the config file's path
// when --config is not given.
const FileEnv = "TUSK_CONFIG"

// WalgFileEnv is wal-g's name for it.
const WalgFileEnv = "WALG_CONFIG_PATH"

// Lookup finds a setting by its TUSK_* name or one of its aliases.
func Lookup(key string) (Setting, bool) {
	for _, s := range Settings {
		if s.Key == key || slices.Contains(s.Aliases, key) {
			return s, true
		}
	}
	return Setting{}, false
}

// Values holds resolved settings by TUSK_* key, with where each came from.
type Values struct {
	v      map[string]string
	source map[string]string // "flag --repo", "environment WALG_S3_PREFIX", "config file /x (TUSK_REPO)", "default"
	notes  []string          // wal-g settings given but ignored, one sentence each (walgCheck)
}

// Get is the resolved value of the setting key (a TUSK_* name).
func (v Values) Get(key string) string { return v.v[key] }

// From says where the value of key came from, for error messages.
func (v Values) From(key string) string { return v.source[key] }

// Notes are the wal-g settings given but ignored, one sentence each, for
// the caller to log.
func (v Values) Notes() []string { return v.notes }

// Resolve applies flags > environment > config file > defaults. flags maps
// the flag names (Setting.Flag) the operator gave on the command line to
// their values; env is os.Environ()-shaped. Every error Resolve and Build
// return is the operator's input, in one sentence naming the setting.
func Resolve(flags map[string]string, env []string, configPath string) (Values, error) {
	envMap := map[string]string{}
	var unknown, foreign []string
	for _, kv := range env {
		k, val, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		envMap[k] = val
		if strings.HasPrefix(k, "TUSK_") && k != FileEnv && !exempt(k) {
			if _, ok := Lookup(k); !ok {
				unknown = append(unknown, k)
			}
		} else if _, ok := Lookup(k); !ok && val != "" && k != WalgFileEnv {
			foreign = append(foreign, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return Values{}, fmt.Errorf("unknown setting %s in the environment%s; unset it or fix its name (tusk help settings lists them)",
			unknown[0], suggest(unknown[0]))
	}
	sort.Strings(foreign)
	if envMap["AWS_WEB_IDENTITY_TOKEN_FILE"] != "" {
		// A web identity (EKS's IRSA): the AWS SDK assumes AWS_ROLE_ARN
		// itself, as wal-g would.
		foreign = slices.DeleteFunc(foreign, func(k string) bool { return k == "AWS_ROLE_ARN" || k == "AWS_ROLE_SESSION_NAME" })
	}
	notes, err := walgCheck(foreign, "in the environment", false)
	if err != nil {
		return Values{}, err
	}
	if configPath == "" {
		configPath = envMap[FileEnv]
	}
	if configPath == "" {
		configPath = envMap[WalgFileEnv]
	}
	var file map[string]string
	if configPath != "" {
		var fileNotes []string
		if file, fileNotes, err = readConfigFile(configPath); err != nil {
			return Values{}, err
		}
		notes = append(notes, fileNotes...)
	}
	out := Values{v: map[string]string{}, source: map[string]string{}, notes: notes}
	for _, s := range Settings {
		if val, ok := flags[s.Flag]; ok && s.Flag != "" {
			out.v[s.Key], out.source[s.Key] = val, "flag --"+s.Flag
			continue
		}
		if k, val, ok := firstSet(envMap, s); ok {
			out.v[s.Key], out.source[s.Key] = val, "environment "+k
			continue
		}
		if k, val, ok := firstSet(file, s); ok {
			out.v[s.Key], out.source[s.Key] = val, fmt.Sprintf("config file %s (%s)", configPath, k)
			continue
		}
		out.v[s.Key], out.source[s.Key] = s.Default, "default"
	}
	return out, nil
}

func exempt(k string) bool {
	for _, p := range envExempt {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

func firstSet(m map[string]string, s Setting) (string, string, bool) {
	for _, k := range append([]string{s.Key}, s.Aliases...) {
		if v, ok := m[k]; ok && v != "" {
			return k, v, true
		}
	}
	return "", "", false
}

// suggest proposes the closest known name for a misspelled one.
func suggest(name string) string {
	best, bestD := "", 4
	for _, s := range Settings {
		for _, k := range append([]string{s.Key}, s.Aliases...) {
			if d := editDistance(name, k); d < bestD {
				best, bestD = k, d
			}
		}
	}
	if best == "" {
		return ""
	}
	return " (did you mean " + best + "?)"
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// unwrapPathErr drops *PathError's operation and path when the caller's
// sentence already names the file.
func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		if errors.Is(pe.Err, fs.ErrNotExist) {
			return os.ErrNotExist
		}
		return pe.Err
	}
	return err
}
