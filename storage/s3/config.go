package s3

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/tusk-backup/tusk/storage"
)

// Defaults and limits of Config.
const (
	DefaultPartSize          = 16 << 20
	MinPartSize              = 5 << 20 // S3's minimum for every part but the last
	MaxPartSize              = 5 << 30 // S3's maximum part size
	DefaultUploadConcurrency = 4
	DefaultMaxRetries        = 8

	// maxParts is S3's limit on the parts of one multipart upload, so the
	// largest object a Put can store is maxParts × PartSize (156.25 GiB at
	// the default part size).
	maxParts = 10000
)

// Config says where a repository lives in S3 and how to talk to it. The
// zero value of every field but Bucket selects a default.
//
// Credentials: with AccessKeyID and SecretAccessKey empty, the AWS SDK's
// default chain finds them (AWS_* environment variables, the shared config
// and credentials files with Profile or AWS_PROFILE, SSO, web identity, the
// EC2/ECS instance role), lazily, at the first request.
//
// New loads the SDK's default configuration, which reads the AWS_*
// environment and ~/.aws files: the one place below cmd where the
// environment is read, because the SDK owns that lookup. Besides credentials
// and region it honours, for example, AWS_CA_BUNDLE and AWS_ENDPOINT_URL_S3
// (used when Endpoint is empty); and an AWS_PROFILE that names no profile
// makes New fail even with static keys.
type Config struct {
	// Bucket and Prefix locate the repository: s3://Bucket/Prefix (see
	// ParseURL). Prefix may be empty; it has no leading or trailing slash.
	Bucket, Prefix string

	// Endpoint is the URL of an S3-compatible server such as MinIO
	// ("http://127.0.0.1:9000"); "" means AWS S3.
	Endpoint string
	// ForcePathStyle addresses the bucket in the URL path
	// (endpoint/bucket/key) instead of the host name (bucket.endpoint/key).
	// MinIO and most S3-compatible servers need it.
	ForcePathStyle bool
	// Region signs the requests. "" takes it from the default chain
	// (AWS_REGION, the shared config), and us-east-1 if that has none.
	Region string

	// AccessKeyID, SecretAccessKey and SessionToken are static credentials.
	// Empty means the default credential chain (see above).
	AccessKeyID, SecretAccessKey, SessionToken string
	// Profile selects a profile of the shared config files.
	Profile string

	// SSE is the server-side encryption of new objects: "", "AES256" (S3
	// managed keys) or "aws:kms" (with SSEKMSKeyID, or the account's default
	// KMS key when that is empty).
	SSE         string
	SSEKMSKeyID string
	// StorageClass of new objects; "" means STANDARD. Objects in GLACIER or
	// DEEP_ARCHIVE must be restored outside tusk before a Get can read them.
	StorageClass string

	// PartSize is the size of one multipart part: default 16 MiB, at least
	// 5 MiB. An object can have at most 10,000 parts, so PartSize also caps
	// the object size (10,000 × 16 MiB = 156.25 GiB by default).
	PartSize int64
	// UploadConcurrency is the number of parts one Put sends at a time,
	// default 4. A Put holds at most UploadConcurrency+1 part buffers, so its
	// memory is bounded by (UploadConcurrency+1) × PartSize: 80 MiB with the
	// defaults. Buffers are pooled per Store and reused by later Puts.
	UploadConcurrency int
	// MaxRetries is how many times a failed request is retried (so it is
	// tried MaxRetries+1 times): 0 means the default 8, a negative value means
	// no retries. Only throttling, 5xx answers and connection failures are
	// retried, with exponential backoff and jitter up to 20 s between tries.
	MaxRetries int

	// Logger gets a Warn line for each retried request and Debug lines from
	// the SDK. nil discards them.
	Logger *slog.Logger

	// StallTimeout is how long a connection may move no byte, in either
	// direction, before it counts as failed (and the request is retried, or
	// a download resumed); 0 means DefaultStallTimeout. It is no deadline on
	// a transfer: a slow but moving one never trips it. See deadline.go.
	StallTimeout time.Duration
}

// LogValue implements slog.LogValuer: the secret key and session token are
// replaced by "[REDACTED]" and the access key ID is masked to its last four
// characters, as the AWS CLI shows it.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("bucket", c.Bucket),
		slog.String("prefix", c.Prefix),
		slog.String("endpoint", c.Endpoint),
		slog.Bool("force_path_style", c.ForcePathStyle),
		slog.String("region", c.Region),
		slog.String("access_key_id", maskKeyID(c.AccessKeyID)),
		slog.String("secret_access_key", redact(c.SecretAccessKey)),
		slog.String("session_token", redact(c.SessionToken)),
		slog.String("profile", c.Profile),
		slog.String("sse", c.SSE),
		slog.String("sse_kms_key_id", c.SSEKMSKeyID),
		slog.String("storage_class", c.StorageClass),
		slog.Int64("part_size", c.PartSize),
		slog.Int("upload_concurrency", c.UploadConcurrency),
		slog.Int("max_retries", c.MaxRetries),
		slog.Duration("stall_timeout", c.StallTimeout),
	)
}

// String keeps secrets out of fmt's %v and %s, like LogValue does for slog.
func (c Config) String() string {
	return fmt.Sprintf("s3.Config{%s}", c.LogValue())
}

// GoString keeps secrets out of fmt's %#v.
func (c Config) GoString() string { return c.String() }

func redact(s string) string {
	if s == "" {
		return ""
	}
	return "[REDACTED]"
}

func maskKeyID(id string) string {
	if len(id) <= 4 {
		return redact(id)
	}
	return strings.Repeat("*", len(id)-4) + id[len(id)-4:]
}

// ParseURL splits a repository URL "s3://bucket/some/prefix" into its bucket
// ("bucket") and prefix ("some/prefix"). The prefix may be empty
// ("s3://bucket"); slashes around it are dropped.
func ParseURL(u string) (bucket, prefix string, err error) {
	const form = "s3://BUCKET or s3://BUCKET/PREFIX"
	rest, ok := cutPrefixFold(u, "s3://")
	if !ok {
		return "", "", fmt.Errorf("repository URL %q is not an S3 URL; expected %s", u, form)
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", fmt.Errorf("repository URL %q names no bucket; expected %s", u, form)
	}
	if err := checkBucket(bucket); err != nil {
		return "", "", fmt.Errorf("repository URL %q: %w; expected %s", u, err, form)
	}
	if strings.ContainsAny(prefix, "?#") {
		return "", "", fmt.Errorf("repository URL %q has a query or fragment (? or #); expected %s", u, form)
	}
	prefix = strings.Trim(prefix, "/")
	if err := checkPrefix(prefix); err != nil {
		return "", "", fmt.Errorf("repository URL %q: %w; expected %s", u, err, form)
	}
	return bucket, prefix, nil
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}

// checkBucket accepts S3 bucket names, including the legacy us-east-1 ones
// with upper case letters and underscores; S3 itself judges the rest.
func checkBucket(b string) error {
	if len(b) > 255 {
		return fmt.Errorf("bucket name %.20q... is too long", b)
	}
	for _, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-', c == '_':
		default:
			return fmt.Errorf("bucket name %q may hold only letters, digits, '.', '-' and '_'", b)
		}
	}
	return nil
}

func checkPrefix(p string) error {
	if p == "" {
		return nil
	}
	if err := storage.CheckKey(p); err != nil {
		return fmt.Errorf("bad prefix: %w", err)
	}
	return nil
}

// validate checks c and returns it with defaults filled in.
func (c Config) validate() (Config, error) {
	if c.Bucket == "" {
		return c, errors.New("s3 config: no bucket")
	}
	if err := checkBucket(c.Bucket); err != nil {
		return c, fmt.Errorf("s3 config: %w", err)
	}
	c.Prefix = strings.Trim(c.Prefix, "/")
	if err := checkPrefix(c.Prefix); err != nil {
		return c, fmt.Errorf("s3 config: %w", err)
	}
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			// The URL is not echoed: it could carry user:password.
			return c, errors.New("s3 config: the endpoint must be an http:// or https:// URL such as http://127.0.0.1:9000")
		}
		if u.User != nil {
			return c, errors.New("s3 config: the endpoint URL must not hold credentials; use the access key settings")
		}
	}
	if (c.AccessKeyID == "") != (c.SecretAccessKey == "") {
		return c, errors.New("s3 config: set both the access key ID (AWS_ACCESS_KEY_ID) and the secret key (AWS_SECRET_ACCESS_KEY), or neither to use the default credential chain")
	}
	if c.SessionToken != "" && c.AccessKeyID == "" {
		return c, errors.New("s3 config: a session token (AWS_SESSION_TOKEN) needs an access key ID and a secret key")
	}
	switch types.ServerSideEncryption(c.SSE) {
	case "", types.ServerSideEncryptionAes256:
		if c.SSEKMSKeyID != "" {
			return c, errors.New(`s3 config: a KMS key ID needs server-side encryption "aws:kms"`)
		}
	case types.ServerSideEncryptionAwsKms:
	default:
		return c, fmt.Errorf(`s3 config: server-side encryption %q is not supported; use "", "AES256" or "aws:kms"`, c.SSE)
	}
	if c.StorageClass != "" && !slices.Contains(types.StorageClass("").Values(), types.StorageClass(c.StorageClass)) {
		return c, fmt.Errorf("s3 config: unknown storage class %q; use one of %v", c.StorageClass, types.StorageClass("").Values())
	}
	switch {
	case c.PartSize == 0:
		c.PartSize = DefaultPartSize
	case c.PartSize < MinPartSize || c.PartSize > MaxPartSize:
		return c, fmt.Errorf("s3 config: part size %d is outside S3's limits of 5 MiB to 5 GiB", c.PartSize)
	}
	switch {
	case c.UploadConcurrency == 0:
		c.UploadConcurrency = DefaultUploadConcurrency
	case c.UploadConcurrency < 0:
		return c, fmt.Errorf("s3 config: upload concurrency %d is negative", c.UploadConcurrency)
	}
	switch {
	case c.MaxRetries == 0:
		c.MaxRetries = DefaultMaxRetries
	case c.MaxRetries < 0:
		c.MaxRetries = 0
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.StallTimeout == 0:
		c.StallTimeout = DefaultStallTimeout
	case c.StallTimeout < 0:
		return c, fmt.Errorf("s3 config: stall timeout %v is negative", c.StallTimeout)
	}
	return c, nil
}
