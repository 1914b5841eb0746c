// Package s3 is the repository backend for AWS S3 and S3-compatible stores
// such as MinIO, on aws-sdk-go-v2.
//
// A Store keeps the object with key K at Prefix/K in Bucket. Put streams its
// reader through a small multipart uploader of our own (see upload.go) with
// bounded memory; Get resumes a broken download where it stopped; List pages
// through ListObjectsV2; Delete batches DeleteObjects. Requests are retried
// by the SDK's standard retryer (see newRetryer), and the failures a user can
// fix become one sentence wrapping ErrAccessDenied, ErrNoSuchBucket or
// ErrUnreachable. Every error of Get, Stat, List and a DeleteObjects request
// is storage.Final: the SDK has retried it within the caller's budget, and
// storage.Retry must not multiply that budget.
package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"

	"github.com/tusk-backup/tusk/storage"
)

// Store is a storage.Storage in an S3 bucket. It is safe for concurrent use.
type Store struct {
	cfg       Config // validated, defaults filled in
	region    string // the region requests are signed for
	client    *s3.Client
	keyPrefix string     // cfg.Prefix + "/", or "" for the bucket's root
	chunks    bufferList // of chunkSize bytes, for Puts
	maxParts  int        // maxParts; lower in tests
	log       *slog.Logger
}

var _ storage.Storage = (*Store)(nil)

// New validates cfg and builds a Store. It contacts no server (call Check for
// that), but it loads the SDK's default configuration, which reads the AWS_*
// environment and the shared config files: see Config.
func New(ctx context.Context, cfg Config) (*Store, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	var opts []func(*config.LoadOptions) error
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(cfg.Profile))
	}
	if cfg.AccessKeyID != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken)))
	}
	opts = append(opts, config.WithLogger(sdkLogger{cfg.Logger}))
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		var noProfile config.SharedConfigProfileNotExistError
		if errors.As(err, &noProfile) {
			return nil, fmt.Errorf("s3 config: AWS profile %q (from the profile setting or AWS_PROFILE) is not in the shared config files (~/.aws/config, ~/.aws/credentials, or AWS_CONFIG_FILE)", noProfile.Profile)
		}
		return nil, fmt.Errorf("s3 config: load AWS settings: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	// Keep the HTTP client the SDK built (it may carry AWS_CA_BUNDLE's CAs)
	// and add our deadlines (deadline.go); the SDK's own read timeout would
	// fire during a long upload, so it is off.
	hc, ok := awsCfg.HTTPClient.(*awshttp.BuildableClient)
	if !ok || hc == nil {
		hc = awshttp.NewBuildableClient()
	}
	awsCfg.HTTPClient = hc.WithReadTimeout(0).WithTransportOptions(func(tr *http.Transport) {
		withDeadlines(tr, cfg.StallTimeout)
	})
	if awsCfg.Credentials != nil {
		awsCfg.Credentials = taggingProvider{awsCfg.Credentials}
	}
	s := &Store{
		cfg:      cfg,
		region:   awsCfg.Region,
		log:      cfg.Logger,
		maxParts: maxParts,
	}
	if cfg.Prefix != "" {
		s.keyPrefix = cfg.Prefix + "/"
	}
	// Keep as many free chunks as one multipart Put can hold: unlike a
	// sync.Pool, which every GC cycle empties, a free list keeps its
	// buffers, so a busy store does not allocate (and page-fault in) each
	// object's memory anew.
	s.chunks = newBufferList(chunkSize, (cfg.UploadConcurrency+1)*int((cfg.PartSize+chunkSize-1)/chunkSize))
	s.client = s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.ForcePathStyle
		o.Retryer = newRetryer(cfg.MaxRetries, cfg.Logger)
		o.DisableLogOutputChecksumValidationSkipped = true
		o.APIOptions = append(o.APIOptions, addNotS3Check)
	})
	return s, nil
}

// sdkLogger sends the SDK's own log lines to slog at Debug: they are
// diagnostics (skipped checksum checks, deprecations), not events.
type sdkLogger struct{ log *slog.Logger }

func (l sdkLogger) Logf(_ logging.Classification, format string, v ...any) {
	l.log.Debug("aws sdk: " + fmt.Sprintf(format, v...))
}

// url returns the repository URL, s3://bucket/prefix.
func (s *Store) url() string {
	return "s3://" + s.cfg.Bucket + "/" + s.cfg.Prefix
}

// String returns the repository URL. It also keeps fmt from printing the
// Store's fields, credentials included.
func (s *Store) String() string { return s.url() }

// GoString keeps %#v from printing the Store's fields.
func (s *Store) GoString() string { return "s3.Store(" + s.url() + ")" }

// LogValue implements slog.LogValuer, for the same reasons as String.
func (s *Store) LogValue() slog.Value { return slog.StringValue(s.url()) }

func (s *Store) objectKey(key string) string { return s.keyPrefix + key }

// Check asks S3 for the bucket (HeadBucket), so that a command can turn a
// wrong endpoint, credentials, region or bucket into one sentence before it
// starts working. HeadBucket answers have no body, so a refusal is only
// "403 Forbidden"; Check then lists one key, whose XML error says whether the
// access key, the secret key or a policy is at fault.
func (s *Store) Check(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.cfg.Bucket)})
	if err == nil {
		return nil
	}
	var notFound *types.NotFound
	if errors.As(err, &notFound) && ctx.Err() == nil {
		return s.classifyAPI("NoSuchBucket", err)
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() == "Forbidden" {
		_, lerr := s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
			Bucket:  aws.String(s.cfg.Bucket),
			Prefix:  aws.String(s.keyPrefix),
			MaxKeys: aws.Int32(1),
		})
		if errors.As(lerr, &apiErr) {
			err = lerr
		}
	}
	return s.classify(ctx, err)
}

// Get implements storage.Storage. The reader is tied to ctx. When the
// connection breaks mid-object, the reader asks again for the rest of the
// same object version (Range and If-Match) up to MaxRetries times.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := storage.CheckKey(key); err != nil {
		return nil, err
	}
	r := &objectReader{ctx: ctx, s: s, key: key}
	if err := r.open(); err != nil {
		return nil, fmt.Errorf("get %s: %w", key, storage.Final(err))
	}
	return r, nil
}

// Stat implements storage.Storage.
func (s *Store) Stat(ctx context.Context, key string) (storage.Object, error) {
	if err := storage.CheckKey(key); err != nil {
		return storage.Object{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: aws.String(s.cfg.Bucket),
		Key:    aws.String(s.objectKey(key)),
	})
	if err != nil {
		var notFound *types.NotFound
		if errors.As(err, &notFound) && ctx.Err() == nil {
			return storage.Object{}, fmt.Errorf("stat %s: %w", key, storage.ErrNotFound)
		}
		return storage.Object{}, fmt.Errorf("stat %s: %w", key, storage.Final(s.classify(ctx, err)))
	}
	return storage.Object{
		Key:     key,
		Size:    aws.ToInt64(out.ContentLength),
		ModTime: aws.ToTime(out.LastModified),
	}, nil
}

// List implements storage.Storage. S3 lists keys in ascending UTF-8 binary
// order, which is byte order, and every key shares the store prefix, so the
// stripped keys keep that order. Keys that are not valid storage keys (a
// console's "folder/" markers, "a//b") are skipped.
func (s *Store) List(ctx context.Context, prefix string, fn func(storage.Object) error) error {
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.cfg.Bucket),
		Prefix: aws.String(s.keyPrefix + prefix),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list %q: %w", prefix, storage.Final(s.classify(ctx, err)))
		}
		for _, o := range page.Contents {
			if err := ctx.Err(); err != nil {
				return err
			}
			key, ok := strings.CutPrefix(aws.ToString(o.Key), s.keyPrefix)
			if !ok || storage.CheckKey(key) != nil {
				s.log.Debug("s3 list skips key", "key", aws.ToString(o.Key))
				continue
			}
			err := fn(storage.Object{Key: key, Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// deleteBatch is S3's limit of keys per DeleteObjects request.
const deleteBatch = 1000

// maxDeleteErrors caps the per-key failures an error message lists.
const maxDeleteErrors = 10

// Delete implements storage.Storage with DeleteObjects, 1000 keys a request,
// in quiet mode: S3 answers only with the keys it failed to delete. S3 does
// not count a missing key as a failure.
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	for _, k := range keys {
		if err := storage.CheckKey(k); err != nil {
			return err
		}
	}
	var errs []error
	failed := 0
	for len(keys) > 0 {
		batch := keys[:min(len(keys), deleteBatch)]
		keys = keys[len(batch):]
		ids := make([]types.ObjectIdentifier, len(batch))
		for i, k := range batch {
			ids[i] = types.ObjectIdentifier{Key: aws.String(s.objectKey(k))}
		}
		out, err := s.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(s.cfg.Bucket),
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		if err != nil {
			what := batch[0]
			if len(batch) > 1 {
				what = fmt.Sprintf("%d keys (%s, ...)", len(batch), batch[0])
			}
			return fmt.Errorf("delete %s: %w", what, storage.Final(s.classify(ctx, err)))
		}
		for _, e := range out.Errors {
			code := aws.ToString(e.Code)
			if code == "NoSuchKey" {
				continue
			}
			failed++
			if len(errs) < maxDeleteErrors {
				key := strings.TrimPrefix(aws.ToString(e.Key), s.keyPrefix)
				apiErr := &smithy.GenericAPIError{Code: code, Message: aws.ToString(e.Message)}
				// A per-key failure (InternalError, SlowDown) is no failed
				// request, so the SDK did not retry it: storage.Retry may.
				// One classifyAPI knows (access denied) is final.
				kerr := s.classifyAPI(code, apiErr)
				var sentence *sentenceError
				if errors.As(kerr, &sentence) {
					kerr = storage.Final(kerr)
				}
				errs = append(errs, fmt.Errorf("delete %s: %w", key, kerr))
			}
		}
	}
	switch {
	case failed == 0:
		return nil
	case failed > len(errs):
		errs = append(errs, fmt.Errorf("and %d more keys failed", failed-len(errs)))
	}
	return errors.Join(errs...)
}
