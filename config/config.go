// Package config resolves tusk's settings (flags, then the environment with
// wal-g's, AWS's and libpq's names, then a config file, then defaults) into
// one typed Config, and judges the wal-g settings tusk does not honour. cmd
// calls it once per command and reports its errors as usage errors (exit 2);
// nothing below cmd reads flags or the environment, each package receives
// the parts of Config it needs.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tusk-backup/tusk/compress"
	"github.com/tusk-backup/tusk/storage/s3"
)

// Config is every setting, resolved once and typed.
type Config struct {
	Repo                Repo
	Compression         compress.Codec
	UploadConcurrency   int
	DownloadConcurrency int
	PreventWALOverwrite bool
	WALPushAhead        int
	PGReadyRename       bool
	WALPrefetch         int
	SpoolDir            string
	S3                  S3Settings
	BackupPartSize      int64
	BackupMode          string // "auto", "local" or "remote"
	PG                  PGSettings
	Delta               Delta
	Encryption          Encryption
	LogLevel            slog.Level
	LogFormat           string
	ConfigFile          string // the --config file used, if any (restore_command repeats it)
}

// Repo is where the repository lives.
type Repo struct {
	URL    string // as given, normalised
	Scheme string // "file" or "s3"
	Path   string // file: absolute folder
	Bucket string // s3
	Prefix string // s3, no leading or trailing slash
}

func (r Repo) String() string { return r.URL }

// S3Settings are the S3 knobs besides bucket and prefix, as the operator
// gave them. They are not an s3.Config on purpose: MaxRetries here is
// TUSK_S3_MAX_RETRIES (0 means no retries; s3.Config's 0 means its default),
// and the retry budget, upload concurrency, bucket, prefix and logger of the
// s3.Config are chosen per command when openStorage builds it. A
// half-filled s3.Config in Config would read as ready to use and is not.
type S3Settings struct {
	Endpoint        string
	ForcePathStyle  bool
	Region          string
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	Profile         string
	SSE             string
	SSEKMSKeyID     string
	StorageClass    string
	PartSize        int64
	MaxRetries      int
	StallTimeout    time.Duration
}

// LogValue keeps secrets out of logs.
func (s S3Settings) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("endpoint", s.Endpoint),
		slog.Bool("force_path_style", s.ForcePathStyle),
		slog.String("region", s.Region),
		slog.Bool("static_credentials", s.AccessKeyID != ""),
		slog.String("sse", s.SSE),
		slog.String("storage_class", s.StorageClass),
		slog.Int64("part_size", s.PartSize),
		slog.Int("max_retries", s.MaxRetries),
		slog.Duration("stall_timeout", s.StallTimeout),
	)
}

// Delta is how backup-push chooses between a full and an incremental backup.
type Delta struct {
	MaxSteps int    // incrementals in a chain before the next full backup; 0: full backups only
	Origin   string // "LATEST" or "LATEST_FULL"
	FromName string // take an incremental against this backup
}

// Encryption is where the encryption keys come from; cmd loads them
// (package crypt). Each From names the setting that gave the value, as the
// operator spelled it, for error sentences.
type Encryption struct {
	Key, KeyFrom      string
	KeyFile, FileFrom string
	Transform         string
	// Age mode (instead of the keys above): files of recipients and of
	// identities.
	AgeRecipients, AgeIdentities string
}

// Enabled reports whether a key was given.
func (e Encryption) Enabled() bool { return e.Symmetric() || e.Age() }

// Symmetric reports whether a symmetric key was given.
func (e Encryption) Symmetric() bool { return e.Key != "" || e.KeyFile != "" }

// Age reports whether age recipients or identities were given.
func (e Encryption) Age() bool { return e.AgeRecipients != "" || e.AgeIdentities != "" }

// LogValue keeps the key out of logs.
func (e Encryption) LogValue() slog.Value {
	return slog.GroupValue(slog.Bool("key", e.Key != ""), slog.String("key_file", e.KeyFile), slog.String("transform", e.Transform))
}

// PGSettings are the libpq connection settings. Those besides Host, Port,
// User, Database and Password are given to libpq as keywords, so that a
// config file's PGSSLMODE (which wal-g copies into its environment) is seen
// as libpq would see the environment's.
type PGSettings struct {
	Host, Port, User, Database, Password, DataDir   string
	PassFile, SSLMode, SSLCert, SSLKey, SSLRootCert string
	AppName                                         string
}

// Keywords are the libpq keywords of the settings besides host, port, user,
// dbname and password, by keyword, for those that are set.
func (p PGSettings) Keywords() map[string]string {
	out := map[string]string{}
	for k, v := range map[string]string{
		"passfile": p.PassFile, "sslmode": p.SSLMode, "sslcert": p.SSLCert,
		"sslkey": p.SSLKey, "sslrootcert": p.SSLRootCert, "application_name": p.AppName,
	} {
		if v != "" {
			out[k] = v
		}
	}
	return out
}

// LogValue keeps the password out of logs.
func (p PGSettings) LogValue() slog.Value {
	return slog.GroupValue(slog.String("host", p.Host), slog.String("port", p.Port),
		slog.String("user", p.User), slog.String("database", p.Database), slog.String("pgdata", p.DataDir))
}

// Build types and validates resolved settings. Every error names the
// setting and where its value came from.
func Build(v Values) (Config, error) {
	var c Config
	var err error
	bad := func(key string, e error) error {
		return fmt.Errorf("%s (from %s): %v", key, v.From(key), e)
	}
	if v.Get("TUSK_REPO") != "" {
		if c.Repo, err = ParseRepo(v.Get("TUSK_REPO")); err != nil {
			return c, bad("TUSK_REPO", err)
		}
	}
	if c.Compression, err = compress.Parse(v.Get("TUSK_COMPRESSION")); err != nil {
		return c, bad("TUSK_COMPRESSION", err)
	}
	if c.UploadConcurrency, err = positiveInt(v.Get("TUSK_UPLOAD_CONCURRENCY"), 256); err != nil {
		return c, bad("TUSK_UPLOAD_CONCURRENCY", err)
	}
	if c.DownloadConcurrency, err = positiveInt(v.Get("TUSK_DOWNLOAD_CONCURRENCY"), 256); err != nil {
		return c, bad("TUSK_DOWNLOAD_CONCURRENCY", err)
	}
	if c.PreventWALOverwrite, err = parseBool(v.Get("TUSK_PREVENT_WAL_OVERWRITE")); err != nil {
		return c, bad("TUSK_PREVENT_WAL_OVERWRITE", err)
	}
	if c.WALPushAhead, err = nonNegativeInt(v.Get("TUSK_WAL_PUSH_AHEAD"), 1024); err != nil {
		return c, bad("TUSK_WAL_PUSH_AHEAD", err)
	}
	if c.PGReadyRename, err = parseBool(v.Get("TUSK_PG_READY_RENAME")); err != nil {
		return c, bad("TUSK_PG_READY_RENAME", err)
	}
	if c.WALPrefetch, err = nonNegativeInt(v.Get("TUSK_WAL_PREFETCH"), 1024); err != nil {
		return c, bad("TUSK_WAL_PREFETCH", err)
	}
	c.SpoolDir = v.Get("TUSK_SPOOL_DIR")
	if c.SpoolDir == "" {
		c.SpoolDir = filepath.Join(os.TempDir(), fmt.Sprintf("tusk-%d", os.Getuid()))
	} else if !filepath.IsAbs(c.SpoolDir) {
		return c, bad("TUSK_SPOOL_DIR", fmt.Errorf("%q is not an absolute path", c.SpoolDir))
	}
	c.S3 = S3Settings{
		Endpoint:        v.Get("TUSK_S3_ENDPOINT"),
		Region:          v.Get("TUSK_S3_REGION"),
		AccessKeyID:     v.Get("TUSK_S3_ACCESS_KEY_ID"),
		SecretAccessKey: v.Get("TUSK_S3_SECRET_ACCESS_KEY"),
		SessionToken:    v.Get("TUSK_S3_SESSION_TOKEN"),
		Profile:         v.Get("TUSK_S3_PROFILE"),
		SSE:             v.Get("TUSK_S3_SSE"),
		SSEKMSKeyID:     v.Get("TUSK_S3_SSE_KMS_ID"),
		StorageClass:    v.Get("TUSK_S3_STORAGE_CLASS"),
	}
	if c.S3.ForcePathStyle, err = parseBool(v.Get("TUSK_S3_FORCE_PATH_STYLE")); err != nil {
		return c, bad("TUSK_S3_FORCE_PATH_STYLE", err)
	}
	if c.S3.Endpoint != "" {
		if u, perr := url.Parse(c.S3.Endpoint); perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return c, bad("TUSK_S3_ENDPOINT", fmt.Errorf("%q is not an http:// or https:// URL", c.S3.Endpoint))
		}
	}
	if c.BackupPartSize, err = parseSize(v.Get("TUSK_BACKUP_PART_SIZE")); err != nil {
		return c, bad("TUSK_BACKUP_PART_SIZE", err)
	}
	if c.BackupPartSize < 1<<20 || c.BackupPartSize > 1<<30 {
		return c, bad("TUSK_BACKUP_PART_SIZE", fmt.Errorf("%s is outside 1MiB to 1GiB", v.Get("TUSK_BACKUP_PART_SIZE")))
	}
	switch c.BackupMode = strings.ToLower(v.Get("TUSK_BACKUP_MODE")); c.BackupMode {
	case "auto", "local", "remote":
	case "":
		c.BackupMode = "auto"
	default:
		return c, bad("TUSK_BACKUP_MODE", fmt.Errorf("%q is not one of local, remote, auto", v.Get("TUSK_BACKUP_MODE")))
	}
	if c.S3.PartSize, err = parseSize(v.Get("TUSK_S3_PART_SIZE")); err != nil {
		return c, bad("TUSK_S3_PART_SIZE", err)
	}
	if c.S3.PartSize < 5<<20 || c.S3.PartSize > 5<<30 {
		return c, bad("TUSK_S3_PART_SIZE", fmt.Errorf("%s is outside S3's part size limits of 5MiB to 5GiB", v.Get("TUSK_S3_PART_SIZE")))
	}
	if c.S3.MaxRetries, err = nonNegativeInt(v.Get("TUSK_S3_MAX_RETRIES"), 100); err != nil {
		return c, bad("TUSK_S3_MAX_RETRIES", err)
	}
	if c.S3.StallTimeout, err = time.ParseDuration(v.Get("TUSK_S3_STALL_TIMEOUT")); err != nil || c.S3.StallTimeout <= 0 {
		return c, bad("TUSK_S3_STALL_TIMEOUT", fmt.Errorf("%q is not a positive duration such as 60s or 2m", v.Get("TUSK_S3_STALL_TIMEOUT")))
	}
	switch strings.ToLower(v.Get("TUSK_LOG_LEVEL")) {
	case "debug", "devel": // devel, normal: wal-g's names
		c.LogLevel = slog.LevelDebug
	case "info", "normal", "":
		c.LogLevel = slog.LevelInfo
	case "warn", "warning":
		c.LogLevel = slog.LevelWarn
	case "error":
		c.LogLevel = slog.LevelError
	default:
		return c, bad("TUSK_LOG_LEVEL", fmt.Errorf("%q is not one of debug, info, warn, error", v.Get("TUSK_LOG_LEVEL")))
	}
	switch c.LogFormat = strings.ToLower(v.Get("TUSK_LOG_FORMAT")); c.LogFormat {
	case "text", "json":
	default:
		return c, bad("TUSK_LOG_FORMAT", fmt.Errorf("%q is not text or json", v.Get("TUSK_LOG_FORMAT")))
	}
	if c.Delta.MaxSteps, err = nonNegativeInt(v.Get("TUSK_DELTA_MAX_STEPS"), 1000); err != nil {
		return c, bad("TUSK_DELTA_MAX_STEPS", err)
	}
	switch c.Delta.Origin = strings.ToUpper(v.Get("TUSK_DELTA_ORIGIN")); c.Delta.Origin {
	case "LATEST", "LATEST_FULL":
	default:
		return c, bad("TUSK_DELTA_ORIGIN", fmt.Errorf("%q is not LATEST or LATEST_FULL", v.Get("TUSK_DELTA_ORIGIN")))
	}
	c.Delta.FromName = v.Get("TUSK_DELTA_FROM_NAME")
	c.Encryption = Encryption{
		Key: v.Get("TUSK_ENCRYPTION_KEY"), KeyFrom: settingName(v.From("TUSK_ENCRYPTION_KEY"), "TUSK_ENCRYPTION_KEY"),
		KeyFile: v.Get("TUSK_ENCRYPTION_KEY_FILE"), FileFrom: settingName(v.From("TUSK_ENCRYPTION_KEY_FILE"), "TUSK_ENCRYPTION_KEY_FILE"),
		Transform: strings.ToLower(v.Get("TUSK_ENCRYPTION_KEY_TRANSFORM")),
	}
	switch c.Encryption.Transform {
	case "none", "hex", "base64":
	default:
		return c, bad("TUSK_ENCRYPTION_KEY_TRANSFORM", fmt.Errorf("%q is not hex, base64 or none", v.Get("TUSK_ENCRYPTION_KEY_TRANSFORM")))
	}
	c.Encryption.AgeRecipients, c.Encryption.AgeIdentities = v.Get("TUSK_AGE_RECIPIENTS"), v.Get("TUSK_AGE_IDENTITY_FILE")
	for _, f := range []struct{ key, path string }{
		{"TUSK_ENCRYPTION_KEY_FILE", c.Encryption.KeyFile},
		{"TUSK_AGE_RECIPIENTS", c.Encryption.AgeRecipients},
		{"TUSK_AGE_IDENTITY_FILE", c.Encryption.AgeIdentities},
	} {
		if f.path == "" || filepath.IsAbs(f.path) {
			continue
		}
		if strings.HasPrefix(f.path, "age1") || strings.HasPrefix(f.path, "AGE-SECRET-KEY-") {
			return c, bad(f.key, errors.New("is a key, not a file: write it into a file (one per line) and name that file here"))
		}
		return c, bad(f.key, fmt.Errorf("%q is not an absolute path (wal-fetch runs in the data directory)", f.path))
	}
	if c.Encryption.Symmetric() && c.Encryption.Age() {
		given := c.Encryption.KeyFrom
		if c.Encryption.Key == "" {
			given = c.Encryption.FileFrom
		}
		return c, fmt.Errorf("both a symmetric key (%s) and age keys (TUSK_AGE_RECIPIENTS, TUSK_AGE_IDENTITY_FILE) are set: a repository is encrypted one way, so unset one of them", given)
	}
	c.PG = PGSettings{
		Host: v.Get("TUSK_PGHOST"), Port: v.Get("TUSK_PGPORT"), User: v.Get("TUSK_PGUSER"),
		Database: v.Get("TUSK_PGDATABASE"), Password: v.Get("TUSK_PGPASSWORD"), DataDir: v.Get("TUSK_PGDATA"),
		PassFile: v.Get("TUSK_PGPASSFILE"), SSLMode: v.Get("TUSK_PGSSLMODE"), SSLCert: v.Get("TUSK_PGSSLCERT"),
		SSLKey: v.Get("TUSK_PGSSLKEY"), SSLRootCert: v.Get("TUSK_PGSSLROOTCERT"), AppName: v.Get("TUSK_PGAPPNAME"),
	}
	return c, nil
}

// ParseRepo accepts file:///abs/path, s3://bucket[/prefix], and a bare
// absolute path (what WALG_FILE_PREFIX holds).
func ParseRepo(s string) (Repo, error) {
	if strings.HasPrefix(s, "/") {
		s = "file://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return Repo{}, fmt.Errorf("%q is not a repository URL; use file:///path/to/folder or s3://bucket/prefix", s)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return Repo{}, fmt.Errorf("%q names host %q; a folder repository is file:///absolute/path (three slashes)", s, u.Host)
		}
		if u.Path == "" || !filepath.IsAbs(u.Path) {
			return Repo{}, fmt.Errorf("%q has no absolute folder path; use file:///absolute/path", s)
		}
		p := filepath.Clean(u.Path)
		return Repo{URL: "file://" + p, Scheme: "file", Path: p}, nil
	case "s3":
		if u.Host == "" {
			return Repo{}, fmt.Errorf("%q has no bucket; use s3://bucket/prefix", s)
		}
		prefix := strings.Trim(u.Path, "/")
		if strings.Contains(prefix, "//") {
			return Repo{}, fmt.Errorf("%q has an empty path segment", s)
		}
		if u.User != nil {
			// Not echoed: the URL holds a secret.
			return Repo{}, errors.New("the repository URL must not hold credentials (s3://KEY:SECRET@bucket); use the access key settings (TUSK_S3_ACCESS_KEY_ID, TUSK_S3_SECRET_ACCESS_KEY)")
		}
		// The S3 backend's own, stricter rules: a bucket name without
		// credentials or a port, no query or fragment, no "." or ".."
		// segments. Bucket and prefix stay url.Parse's (a percent-escaped
		// prefix is decoded, as wal-g decodes it).
		if _, _, err := s3.ParseURL(s); err != nil {
			return Repo{}, err
		}
		url := "s3://" + u.Host
		if prefix != "" {
			url += "/" + prefix
		}
		return Repo{URL: url, Scheme: "s3", Bucket: u.Host, Prefix: prefix}, nil
	case "":
		return Repo{}, fmt.Errorf("%q has no scheme; use file:///path/to/folder or s3://bucket/prefix", s)
	default:
		return Repo{}, fmt.Errorf("scheme %q in %q is not supported; use file:// or s3://", u.Scheme, s)
	}
}

func positiveInt(s string, max int) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 || n > max {
		return 0, fmt.Errorf("%q is not a whole number from 1 to %d", s, max)
	}
	return n, nil
}

func nonNegativeInt(s string, max int) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 || n > max {
		return 0, fmt.Errorf("%q is not a whole number from 0 to %d", s, max)
	}
	return n, nil
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "t", "true", "yes", "on":
		return true, nil
	case "0", "f", "false", "no", "off", "":
		return false, nil
	}
	return false, fmt.Errorf("%q is not true or false", s)
}

// parseSize reads "16MiB", "16MB" (treated as MiB, as operators mean it), "1GiB", or plain bytes.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	lower := strings.ToLower(t)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"kb", 1 << 10}, {"mb", 1 << 20}, {"gb", 1 << 30}, {"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"b", 1}} {
		if strings.HasSuffix(lower, u.suffix) {
			t, mult = strings.TrimSpace(t[:len(t)-len(u.suffix)]), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size like 16MiB", s)
	}
	return n * mult, nil
}

// settingName is the name a value was given under, from Values.From's
// "environment WALG_LIBSODIUM_KEY" or "config file /x (KEY)"; key when it
// was not given.
func settingName(from, key string) string {
	if name, ok := strings.CutPrefix(from, "environment "); ok {
		return name
	}
	if i := strings.LastIndex(from, " ("); i >= 0 && strings.HasSuffix(from, ")") {
		return from[i+2:len(from)-1] + " in " + strings.TrimPrefix(from[:i], "config file ")
	}
	return key
}
