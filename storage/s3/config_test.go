package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

func TestParseURL(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in             string
		bucket, prefix string
		errHas         string
	}{
		{in: "s3://bucket/some/prefix", bucket: "bucket", prefix: "some/prefix"},
		{in: "s3://bucket", bucket: "bucket"},
		{in: "s3://bucket/", bucket: "bucket"},
		{in: "s3://bucket/p/", bucket: "bucket", prefix: "p"},
		{in: "S3://my.bucket-1/p", bucket: "my.bucket-1", prefix: "p"},
		{in: "s3://Legacy_Bucket/p", bucket: "Legacy_Bucket", prefix: "p"},
		{in: "", errHas: "is not an S3 URL"},
		{in: "bucket/prefix", errHas: "is not an S3 URL"},
		{in: "https://bucket/prefix", errHas: "is not an S3 URL"},
		{in: "s3:/bucket", errHas: "is not an S3 URL"},
		{in: "s3://", errHas: "names no bucket"},
		{in: "s3:///prefix", errHas: "names no bucket"},
		{in: "s3://user:pw@bucket/p", errHas: "may hold only"},
		{in: "s3://bucket:9000/p", errHas: "may hold only"},
		{in: "s3://bucket/a//b", errHas: "empty"},
		{in: "s3://bucket/a/../b", errHas: `".."`},
		{in: "s3://bucket/p?versionId=1", errHas: "query"},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			t.Parallel()
			bucket, prefix, err := ParseURL(c.in)
			if c.errHas != "" {
				if err == nil {
					t.Fatalf("ParseURL(%q) = %q, %q, want an error", c.in, bucket, prefix)
				}
				msg := err.Error()
				if !strings.Contains(msg, c.errHas) || !strings.Contains(msg, fmt.Sprintf("%q", c.in)) ||
					!strings.Contains(msg, "s3://BUCKET/PREFIX") {
					t.Fatalf("ParseURL(%q) error %q should name the URL, say %q and show the expected form", c.in, msg, c.errHas)
				}
				return
			}
			if err != nil || bucket != c.bucket || prefix != c.prefix {
				t.Fatalf("ParseURL(%q) = %q, %q, %v; want %q, %q", c.in, bucket, prefix, err, c.bucket, c.prefix)
			}
		})
	}
}

func validConfig() Config {
	return Config{
		Bucket:          "bucket",
		Prefix:          "p",
		Endpoint:        "http://127.0.0.1:1",
		ForcePathStyle:  true,
		Region:          "us-east-1",
		AccessKeyID:     "AKIAEXAMPLEKEY1234",
		SecretAccessKey: "secret-key-do-not-print",
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		mod    func(*Config)
		errHas string
	}{
		{"no bucket", func(c *Config) { c.Bucket = "" }, "no bucket"},
		{"bad bucket", func(c *Config) { c.Bucket = "a/b" }, "bucket name"},
		{"bad prefix", func(c *Config) { c.Prefix = "a/../b" }, "prefix"},
		{"bad SSE", func(c *Config) { c.SSE = "aes256" }, `server-side encryption "aes256" is not supported; use "", "AES256" or "aws:kms"`},
		{"KMS key without KMS", func(c *Config) { c.SSE = "AES256"; c.SSEKMSKeyID = "k" }, `needs server-side encryption "aws:kms"`},
		{"bad storage class", func(c *Config) { c.StorageClass = "CHEAP" }, `unknown storage class "CHEAP"`},
		{"part too small", func(c *Config) { c.PartSize = 1 << 20 }, "part size 1048576 is outside"},
		{"part too large", func(c *Config) { c.PartSize = 6 << 30 }, "part size"},
		{"negative concurrency", func(c *Config) { c.UploadConcurrency = -1 }, "negative"},
		{"secret without key ID", func(c *Config) { c.AccessKeyID = "" }, "set both"},
		{"key ID without secret", func(c *Config) { c.SecretAccessKey = "" }, "set both"},
		{"token without keys", func(c *Config) { c.AccessKeyID, c.SecretAccessKey, c.SessionToken = "", "", "tok" }, "session token"},
		{"endpoint without scheme", func(c *Config) { c.Endpoint = "127.0.0.1:9000" }, "http:// or https://"},
		{"endpoint with password", func(c *Config) { c.Endpoint = "http://u:hunter2@127.0.0.1:9000" }, "must not hold credentials"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfg := validConfig()
			c.mod(&cfg)
			_, err := New(t.Context(), cfg)
			if err == nil || !strings.Contains(err.Error(), c.errHas) {
				t.Fatalf("New: error %v, want one containing %q", err, c.errHas)
			}
			if strings.Contains(err.Error(), cfg.SecretAccessKey) && cfg.SecretAccessKey != "" ||
				strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("New's error shows a secret: %v", err)
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	t.Parallel()
	cfg := validConfig()
	cfg.Prefix = "/a/b/"
	cfg.SSE, cfg.SSEKMSKeyID = "aws:kms", "alias/tusk"
	cfg.StorageClass = "STANDARD_IA"
	// New contacts no server: the endpoint's port 1 refuses connections.
	s, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.PartSize != DefaultPartSize || s.cfg.UploadConcurrency != DefaultUploadConcurrency || s.cfg.MaxRetries != DefaultMaxRetries {
		t.Errorf("defaults: part size %d, concurrency %d, retries %d", s.cfg.PartSize, s.cfg.UploadConcurrency, s.cfg.MaxRetries)
	}
	if s.keyPrefix != "a/b/" || s.objectKey("k") != "a/b/k" {
		t.Errorf("prefix %q maps k to %q, want a/b/k", cfg.Prefix, s.objectKey("k"))
	}
	cfg.Prefix = ""
	cfg.MaxRetries = -1
	if s, err = New(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	if s.objectKey("k") != "k" || s.cfg.MaxRetries != 0 {
		t.Errorf("empty prefix maps k to %q; MaxRetries -1 became %d", s.objectKey("k"), s.cfg.MaxRetries)
	}
}

// TestNewUnknownProfile changes the environment, so it is not parallel.
func TestNewUnknownProfile(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "config")
	if err := os.WriteFile(conf, []byte("[profile other]\nregion = eu-west-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CONFIG_FILE", conf)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	cfg := validConfig()
	cfg.Profile = "nosuch"
	_, err := New(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), `AWS profile "nosuch" (from the profile setting or AWS_PROFILE) is not in the shared config files`) {
		t.Fatalf("New with an unknown profile: %v", err)
	}
	// Region from the profile, through the default chain.
	cfg.Profile, cfg.Region = "other", ""
	s, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.region != "eu-west-1" {
		t.Errorf("region from profile = %q, want eu-west-1", s.region)
	}
}

func TestConfigRedactsSecrets(t *testing.T) {
	t.Parallel()
	cfg := validConfig()
	cfg.SessionToken = "session-token-do-not-print"
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "s3", cfg)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("config", "s3", &cfg)
	out := buf.String() + fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, &cfg)
	for _, secret := range []string{cfg.SecretAccessKey, cfg.SessionToken, cfg.AccessKeyID} {
		if strings.Contains(out, secret) {
			t.Fatalf("output shows %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{`"secret_access_key":"[REDACTED]"`, `"access_key_id":"**************1234"`, `"bucket":"bucket"`, "part_size"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
	s, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	slog.New(slog.NewTextHandler(&buf, nil)).Info("store", "store", s)
	out = buf.String() + fmt.Sprintf("%v %+v %#v", s, s, s)
	if strings.Contains(out, cfg.SecretAccessKey) || !strings.Contains(out, "s3://bucket/p") {
		t.Fatalf("a Store prints as:\n%s", out)
	}
	if v := (Config{}).LogValue().String(); strings.Contains(v, "REDACTED") {
		t.Errorf("empty secrets should show empty, got %s", v)
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	s, err := New(t.Context(), validConfig())
	if err != nil {
		t.Fatal(err)
	}
	api := func(code string) error {
		return fmt.Errorf("operation error S3: PutObject: %w", &smithy.GenericAPIError{Code: code, Message: "m"})
	}
	refused := &url.Error{Op: "Put", URL: "http://127.0.0.1:1/bucket/k", Err: &net.OpError{
		Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}}
	cases := []struct {
		err      error
		sentinel error
		msgHas   string
	}{
		{api("NoSuchBucket"), ErrNoSuchBucket, "S3 bucket bucket does not exist; create it or fix TUSK_REPO"},
		{api("InvalidAccessKeyId"), ErrAccessDenied, "check AWS_ACCESS_KEY_ID"},
		{api("SignatureDoesNotMatch"), ErrAccessDenied, "check AWS_SECRET_ACCESS_KEY"},
		{api("AccessDenied"), ErrAccessDenied, "S3 denied access to bucket bucket"},
		{api("ExpiredToken"), ErrAccessDenied, "AWS_SESSION_TOKEN"},
		{&credentialsError{errors.New("no EC2 IMDS role found")}, ErrAccessDenied, "no usable S3 credentials"},
		{&retry.MaxAttemptsError{Attempt: 9, Err: refused}, ErrUnreachable,
			"cannot reach S3 endpoint http://127.0.0.1:1 (9 attempts): dial tcp: connect: connection refused"},
		{&url.Error{Op: "Get", URL: "https://b.s3.amazonaws.com/k", Err: &net.DNSError{Err: "no such host", Name: "b.s3.amazonaws.com", IsNotFound: true}},
			ErrUnreachable, "no such host"},
	}
	for _, c := range cases {
		got := s.classify(t.Context(), c.err)
		if !errors.Is(got, c.sentinel) || !strings.Contains(got.Error(), c.msgHas) {
			t.Errorf("classify(%v) = %q; want errors.Is %v and a message containing %q", c.err, got, c.sentinel, c.msgHas)
		}
		if !errors.Is(got, c.err) {
			t.Errorf("classify(%v) lost the SDK's error", c.err)
		}
	}
	// A bucket in another region: S3 says which in a header.
	moved := &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{
			StatusCode: http.StatusMovedPermanently,
			Header:     http.Header{"X-Amz-Bucket-Region": {"eu-west-1"}},
		}},
		Err: &smithy.GenericAPIError{Code: "MovedPermanently"},
	}}
	if got := s.classify(t.Context(), moved); got.Error() != "S3 bucket bucket is in region eu-west-1, not us-east-1; set AWS_REGION=eu-west-1" {
		t.Errorf("classify(301 from eu-west-1) = %q", got)
	}

	// Other errors pass unchanged, and a done context wins.
	other := api("InternalError")
	if got := s.classify(t.Context(), other); got != other {
		t.Errorf("classify(InternalError) = %v, want it unchanged", got)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if got := s.classify(ctx, refused); !errors.Is(got, context.Canceled) {
		t.Errorf("classify after cancel = %v, want context.Canceled", got)
	}
}

// TestNoCredentials changes the environment, so it is not parallel. The
// default chain finds nothing, and must not ask the EC2 metadata service.
func TestNoCredentials(t *testing.T) {
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_CONFIG_FILE":                        filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE":            filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED":              "true",
		"AWS_EC2_METADATA_SERVICE_ENDPOINT":      "http://127.0.0.1:1",
		"AWS_ACCESS_KEY_ID":                      "",
		"AWS_SECRET_ACCESS_KEY":                  "",
		"AWS_SESSION_TOKEN":                      "",
		"AWS_PROFILE":                            "",
		"AWS_WEB_IDENTITY_TOKEN_FILE":            "",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI":     "",
	} {
		t.Setenv(k, v)
	}
	cfg := validConfig()
	cfg.AccessKeyID, cfg.SecretAccessKey = "", ""
	cfg.MaxRetries = -1
	s, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Check(t.Context())
	if !errors.Is(err, ErrAccessDenied) || !strings.HasPrefix(err.Error(), "no usable S3 credentials: set AWS_ACCESS_KEY_ID") {
		t.Fatalf("Check without credentials = %v, want the no-credentials sentence", err)
	}
	t.Log(err)
}
