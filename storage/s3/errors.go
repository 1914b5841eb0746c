package s3

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
)

// Sentinels for the failures a command turns into an exit code. The errors
// that wrap them read as one sentence that names the setting to fix; test
// them with errors.Is. A missing key is storage.ErrNotFound.
var (
	// ErrAccessDenied: S3 refused the credentials (unknown access key, wrong
	// secret key, expired token, none found) or what they may do.
	ErrAccessDenied = errors.New("s3 access denied")
	// ErrNoSuchBucket: the repository's bucket does not exist.
	ErrNoSuchBucket = errors.New("s3 bucket does not exist")
	// ErrNotS3: the endpoint answers, but not as S3 does (a web server, a
	// login page): the endpoint setting is wrong.
	ErrNotS3 = errors.New("endpoint does not answer as S3")
	// ErrUnreachable: no answer from the endpoint (connection refused, DNS,
	// TLS, a transfer that stalled), after the retries.
	ErrUnreachable = errors.New("s3 endpoint unreachable")
)

// sentenceError reads as msg alone, while errors.Is and errors.As still see
// the sentinel and the SDK's error (for its request ID, say).
type sentenceError struct {
	sentinel error // may be nil
	msg      string
	err      error
}

func (e *sentenceError) Error() string { return e.msg }

func (e *sentenceError) Unwrap() []error {
	if e.sentinel == nil {
		return []error{e.err}
	}
	return []error{e.sentinel, e.err}
}

// credentialsError marks a failure to find or refresh credentials. The SDK
// reports those as untyped fmt errors, so New wraps the credential provider
// to tag them.
type credentialsError struct{ err error }

func (e *credentialsError) Error() string { return e.err.Error() }
func (e *credentialsError) Unwrap() error { return e.err }

type taggingProvider struct{ p aws.CredentialsProvider }

func (t taggingProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := t.p.Retrieve(ctx)
	if err != nil && ctx.Err() == nil {
		return c, &credentialsError{err}
	}
	return c, err
}

// classify turns an error of an SDK call into one clear sentence where it
// knows the cause, and returns it unchanged otherwise. A done ctx wins, so
// callers can test errors.Is(err, context.Canceled).
func (s *Store) classify(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var credErr *credentialsError
	if errors.As(err, &credErr) {
		return &sentenceError{ErrAccessDenied, fmt.Sprintf(
			"no usable S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile (AWS_PROFILE), or run with an instance role: %v",
			credErr.err), err}
	}
	var notS3 *notS3Error
	if errors.As(err, &notS3) {
		return &sentenceError{ErrNotS3, fmt.Sprintf(
			"the endpoint %s does not answer as S3 (it returned %s); check TUSK_S3_ENDPOINT / AWS_ENDPOINT",
			s.endpointFor(err), notS3.what), err}
	}
	if region := s.otherRegion(err); region != "" {
		return &sentenceError{nil, fmt.Sprintf(
			"S3 bucket %s is in region %s, not %s; set AWS_REGION=%s", s.cfg.Bucket, region, s.region, region), err}
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return s.classifyAPI(apiErr.ErrorCode(), err)
	}
	if d, ok := stalled(err, s.cfg.StallTimeout); ok {
		return &sentenceError{ErrUnreachable, fmt.Sprintf(
			"S3 endpoint %s stalled: no data moved for %v%s; check the endpoint and the network (TUSK_S3_STALL_TIMEOUT sets how long a transfer may stand still)",
			s.endpointFor(err), d, attempts(err)), err}
	}
	if cause := unreachable(err); cause != "" {
		return &sentenceError{ErrUnreachable, fmt.Sprintf("cannot reach S3 endpoint %s%s: %s", s.endpointFor(err), attempts(err), cause), err}
	}
	return err
}

func (s *Store) classifyAPI(code string, err error) error {
	bucket := s.cfg.Bucket
	switch code {
	case "NoSuchBucket":
		return &sentenceError{ErrNoSuchBucket, fmt.Sprintf("S3 bucket %s does not exist; create it or fix TUSK_REPO", bucket), err}
	case "InvalidAccessKeyId":
		return &sentenceError{ErrAccessDenied, fmt.Sprintf(
			"S3 does not know the access key ID; check %s", s.credentialSetting("AWS_ACCESS_KEY_ID")), err}
	case "SignatureDoesNotMatch":
		return &sentenceError{ErrAccessDenied, fmt.Sprintf(
			"S3 rejected the request signature: the secret key does not belong to the access key ID; check %s", s.credentialSetting("AWS_SECRET_ACCESS_KEY")), err}
	case "ExpiredToken", "InvalidToken", "TokenRefreshRequired":
		return &sentenceError{ErrAccessDenied, fmt.Sprintf(
			"S3 rejected the session token as expired or invalid; refresh %s", s.credentialSetting("AWS_SESSION_TOKEN")), err}
	case "AccessDenied", "Forbidden", "AllAccessDisabled":
		return &sentenceError{ErrAccessDenied, fmt.Sprintf(
			"S3 denied access to bucket %s; check that %s are right and may list, read, write and delete under %s",
			bucket, s.credentialSetting("AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"), s.url()), err}
	case "RequestTimeTooSkewed":
		return &sentenceError{nil, "S3 rejected the request because this machine's clock is off by more than 15 minutes; fix the system clock", err}
	}
	return err
}

// credentialSetting names what to check for a rejected credential: the
// setting itself when the keys were given, else where the chain found them.
func (s *Store) credentialSetting(setting string) string {
	switch {
	case s.cfg.AccessKeyID != "":
		return setting
	case s.cfg.Profile != "":
		return fmt.Sprintf("the credentials of AWS profile %q", s.cfg.Profile)
	default:
		return setting + " (or the credentials the AWS default chain found: AWS_PROFILE, ~/.aws, instance role)"
	}
}

// otherRegion returns the bucket's region when S3 answered that the bucket is
// in a region other than the one requests are signed for.
func (s *Store) otherRegion(err error) string {
	var re *awshttp.ResponseError
	if !errors.As(err, &re) || re.Response == nil {
		return ""
	}
	switch re.HTTPStatusCode() {
	case http.StatusMovedPermanently, http.StatusBadRequest:
	default:
		return ""
	}
	if r := re.Response.Header.Get("x-amz-bucket-region"); r != "" && r != s.region {
		return r
	}
	return ""
}

// unreachable describes a transport failure, or returns "" if err is not one.
func unreachable(err error) string {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return dnsErr.Error()
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return opErr.Error()
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		if urlErr.Timeout() {
			return "timeout: " + urlErr.Err.Error()
		}
		return urlErr.Err.Error()
	}
	var timeoutErr interface {
		error
		Timeout() bool
	}
	if errors.As(err, &timeoutErr) && timeoutErr.Timeout() {
		return "timeout: " + timeoutErr.Error()
	}
	return ""
}

// endpointFor names the endpoint a failed request went to.
func (s *Store) endpointFor(err error) string {
	if s.cfg.Endpoint != "" {
		return s.cfg.Endpoint
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		if u, perr := url.Parse(urlErr.URL); perr == nil && u.Host != "" {
			return u.Scheme + "://" + u.Host
		}
	}
	return "of AWS S3 in region " + s.region
}

func attempts(err error) string {
	var maxErr *retry.MaxAttemptsError
	if errors.As(err, &maxErr) && maxErr.Attempt > 1 {
		return fmt.Sprintf(" (%d attempts)", maxErr.Attempt)
	}
	return ""
}
