package cmd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/tusk-backup/tusk/compress"
	"go.yaml.in/yaml/v3"
)

// A setting is one knob, known by its TUSK_* name in the environment and the
// config file, by the wal-g or AWS/libpq names people already use, and maybe
// by a command-line flag.
type setting struct {
	key     string   // TUSK_* name; also the config-file key
	aliases []string // other environment / config-file names, in priority order
	flag    string   // flag name, "" for none
	secret  bool     // never printed, never a flag
	def     string
	help    string
}

// settings is the whole table; README.md documents the same table.
var settings = []setting{
	{key: "TUSK_REPO", aliases: []string{"WALG_S3_PREFIX", "WALE_S3_PREFIX", "WALG_FILE_PREFIX"}, flag: "repo",
		help: "repository: file:///path/to/folder or s3://bucket/prefix"},
	{key: "TUSK_COMPRESSION", aliases: []string{"WALG_COMPRESSION_METHOD"}, flag: "compression", def: compress.Default.String(),
		help: "codec for new objects: " + strings.Join(compress.Names(), ", ") + " (zstd and gzip take :level)"},
	{key: "TUSK_UPLOAD_CONCURRENCY", aliases: []string{"WALG_UPLOAD_CONCURRENCY"}, flag: "upload-concurrency", def: "4",
		help: "objects (or S3 parts) uploaded at once; memory is about this × part size"},
	{key: "TUSK_DOWNLOAD_CONCURRENCY", aliases: []string{"WALG_DOWNLOAD_CONCURRENCY"}, flag: "download-concurrency", def: "4",
		help: "objects downloaded at once"},
	{key: "TUSK_PREVENT_WAL_OVERWRITE", aliases: []string{"WALG_PREVENT_WAL_OVERWRITE"}, def: "true",
		help: "refuse to overwrite an archived WAL segment with different content"},
	{key: "TUSK_WAL_PUSH_AHEAD", def: "16",
		help: "wal-push also uploads up to this many later .ready WAL files in parallel and marks them .done (0 turns it off)"},
	{key: "TUSK_PG_READY_RENAME", aliases: []string{"PG_READY_RENAME"}, flag: "pg-ready-rename", def: "true",
		help: "push-ahead marks the files it archived .done itself, so PostgreSQL skips their archive_command calls (false: it records them outside pg_wal, PostgreSQL calls for each, and each such call answers at once)"},
	{key: "TUSK_WAL_PREFETCH", def: "16",
		help: "wal-fetch also downloads up to this many following segments into the spool folder (0 turns it off)"},
	{key: "TUSK_SPOOL_DIR",
		help: "folder for prefetched WAL, best on pg_wal's file system (default: a tusk folder in the system temp folder)"},
	{key: "TUSK_BACKUP_PART_SIZE", def: "64MiB",
		help: "backup-push cuts the server's tar stream into parts of about this size (1MiB-1GiB), compressed and uploaded TUSK_UPLOAD_CONCURRENCY at a time"},
	{key: "TUSK_S3_ENDPOINT", aliases: []string{"AWS_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"},
		help: "S3 endpoint URL for S3-compatible stores (MinIO); empty for AWS"},
	{key: "TUSK_S3_FORCE_PATH_STYLE", aliases: []string{"AWS_S3_FORCE_PATH_STYLE"}, def: "false",
		help: "address buckets as ENDPOINT/bucket instead of bucket.ENDPOINT (MinIO needs true)"},
	{key: "TUSK_S3_REGION", aliases: []string{"AWS_REGION", "AWS_DEFAULT_REGION"},
		help: "S3 region (default: from the AWS configuration, else us-east-1)"},
	{key: "TUSK_S3_ACCESS_KEY_ID", aliases: []string{"AWS_ACCESS_KEY_ID"},
		help: "static access key id (default: the AWS credential chain: profiles, instance role)"},
	{key: "TUSK_S3_SECRET_ACCESS_KEY", aliases: []string{"AWS_SECRET_ACCESS_KEY"}, secret: true,
		help: "static secret access key"},
	{key: "TUSK_S3_SESSION_TOKEN", aliases: []string{"AWS_SESSION_TOKEN"}, secret: true,
		help: "session token for temporary credentials"},
	{key: "TUSK_S3_PROFILE", aliases: []string{"AWS_PROFILE"},
		help: "shared-config profile for the AWS credential chain"},
	{key: "TUSK_S3_SSE", aliases: []string{"S3_SSE"},
		help: "server-side encryption: AES256 or aws:kms"},
	{key: "TUSK_S3_SSE_KMS_ID", aliases: []string{"S3_SSE_KMS_ID"},
		help: "KMS key id for aws:kms encryption"},
	{key: "TUSK_S3_STORAGE_CLASS", aliases: []string{"WALG_S3_STORAGE_CLASS"},
		help: "S3 storage class for new objects (default STANDARD)"},
	{key: "TUSK_S3_PART_SIZE", def: "16MiB",
		help: "S3 multipart part size (5MiB-5GiB); backup-push uses at most 8MiB"},
	{key: "TUSK_S3_MAX_RETRIES", def: "8",
		help: "retries of a failed S3 request after its first try (8: up to 9 tries), on throttling, 5xx and connection errors, with backoff up to 20 s; also how often a broken download resumes; 0 turns retries off"},
	{key: "TUSK_S3_STALL_TIMEOUT", def: "60s",
		help: "an S3 connection on which no byte moves for this long fails (and is retried); raise it only for links slower than about 100 KiB/s"},
	{key: "TUSK_LOG_LEVEL", flag: "log-level", def: "info",
		help: "debug, info, warn or error"},
	{key: "TUSK_LOG_FORMAT", flag: "log-format", def: "text",
		help: "text or json"},
	{key: "TUSK_PGHOST", aliases: []string{"PGHOST"}, help: "PostgreSQL host or socket folder"},
	{key: "TUSK_PGPORT", aliases: []string{"PGPORT"}, help: "PostgreSQL port"},
	{key: "TUSK_PGUSER", aliases: []string{"PGUSER"}, help: "PostgreSQL user"},
	{key: "TUSK_PGDATABASE", aliases: []string{"PGDATABASE"}, help: "PostgreSQL database"},
	{key: "TUSK_PGPASSWORD", aliases: []string{"PGPASSWORD"}, secret: true, help: "PostgreSQL password"},
	{key: "TUSK_PGDATA", aliases: []string{"PGDATA"}, help: "PostgreSQL data directory"},
}

// envExempt are TUSK_ prefixes that belong to the test and benchmark
// harnesses, not to tusk; they are never reported as unknown.
var envExempt = []string{"TUSK_TEST_", "TUSK_BENCH_"}

// configEnv names the environment variable holding the config file's path
// when --config is not given.
const configEnv = "TUSK_CONFIG"

func lookupSetting(key string) (setting, bool) {
	for _, s := range settings {
		if s.key == key || slices.Contains(s.aliases, key) {
			return s, true
		}
	}
	return setting{}, false
}

// values holds resolved settings by TUSK_* key, with where each came from.
type values struct {
	v      map[string]string
	source map[string]string // "flag --repo", "environment WALG_S3_PREFIX", "config file /x (TUSK_REPO)", "default"
	notes  []string          // wal-g settings given but ignored, one sentence each (walgCheck)
}

func (v values) get(key string) string { return v.v[key] }

func (v values) from(key string) string { return v.source[key] }

// resolve applies flags > environment > config file > defaults.
// env is os.Environ()-shaped; fs holds the parsed flags of the running command.
func resolve(fs *pflag.FlagSet, env []string, configPath string) (values, error) {
	envMap := map[string]string{}
	var unknown, foreign []string
	for _, kv := range env {
		k, val, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		envMap[k] = val
		if strings.HasPrefix(k, "TUSK_") && k != configEnv && !exempt(k) {
			if _, ok := lookupSetting(k); !ok {
				unknown = append(unknown, k)
			}
		} else if _, ok := lookupSetting(k); !ok && val != "" {
			foreign = append(foreign, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return values{}, &UsageError{fmt.Errorf("unknown setting %s in the environment%s; unset it or fix its name (tusk help settings lists them)",
			unknown[0], suggest(unknown[0]))}
	}
	sort.Strings(foreign)
	notes, err := walgCheck(foreign, "in the environment")
	if err != nil {
		return values{}, err
	}
	if configPath == "" {
		configPath = envMap[configEnv]
	}
	var file map[string]string
	if configPath != "" {
		var fileNotes []string
		if file, fileNotes, err = readConfigFile(configPath); err != nil {
			return values{}, err
		}
		notes = append(notes, fileNotes...)
	}
	out := values{v: map[string]string{}, source: map[string]string{}, notes: notes}
	for _, s := range settings {
		if s.flag != "" && fs != nil {
			if f := fs.Lookup(s.flag); f != nil && f.Changed {
				out.v[s.key], out.source[s.key] = f.Value.String(), "flag --"+s.flag
				continue
			}
		}
		if k, val, ok := firstSet(envMap, s); ok {
			out.v[s.key], out.source[s.key] = val, "environment "+k
			continue
		}
		if k, val, ok := firstSet(file, s); ok {
			out.v[s.key], out.source[s.key] = val, fmt.Sprintf("config file %s (%s)", configPath, k)
			continue
		}
		out.v[s.key], out.source[s.key] = s.def, "default"
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

func firstSet(m map[string]string, s setting) (string, string, bool) {
	for _, k := range append([]string{s.key}, s.aliases...) {
		if v, ok := m[k]; ok && v != "" {
			return k, v, true
		}
	}
	return "", "", false
}

// readConfigFile reads a flat YAML or JSON map whose keys are the same names
// as the environment's. wal-g settings tusk does not have are refused or
// noted as in the environment (walgCheck); other unknown keys are refused.
func readConfigFile(path string) (map[string]string, []string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, &UsageError{fmt.Errorf("config file %s cannot be read: %w", path, unwrapPathErr(err))}
	}
	raw := map[string]any{}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&raw); err != nil && !errors.Is(err, io.EOF) { // io.EOF: an empty file
		return nil, nil, &UsageError{fmt.Errorf("config file %s is not valid YAML or JSON: %v", path, err)}
	}
	out := map[string]string{}
	keys := make([]string, 0, len(raw))
	var foreign []string
	for k, v := range raw {
		if _, ok := lookupSetting(k); !ok {
			if _, ok := walgVerdict(k); ok {
				if v != nil && v != "" {
					foreign = append(foreign, k)
				}
				continue
			}
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	sort.Strings(foreign)
	notes, err := walgCheck(foreign, "in config file "+path)
	if err != nil {
		return nil, nil, err
	}
	for _, k := range keys {
		if _, ok := lookupSetting(k); !ok {
			return nil, nil, &UsageError{fmt.Errorf("config file %s has unknown setting %s%s; fix or remove it (tusk help settings lists them)", path, k, suggest(k))}
		}
		switch v := raw[k].(type) {
		case string:
			out[k] = v
		case bool, int, int64, uint64, float64:
			out[k] = fmt.Sprint(v)
		case nil:
		default:
			return nil, nil, &UsageError{fmt.Errorf("config file %s: %s must be a single value, not a list or map", path, k)}
		}
	}
	return out, notes, nil
}

// suggest proposes the closest known name for a misspelled one.
func suggest(name string) string {
	best, bestD := "", 4
	for _, s := range settings {
		for _, k := range append([]string{s.key}, s.aliases...) {
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
