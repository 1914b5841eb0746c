package s3

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
)

// newRetryer is the SDK's standard retryer: exponential backoff with full
// jitter (up to 20 s between tries), a client-wide retry quota, and retries
// only for throttling codes (SlowDown, ...), 500/502/503/504, RequestTimeout
// and connection failures (refused, reset, stalls, temporary DNS errors).
// 4xx answers such as AccessDenied, NoSuchBucket, InvalidAccessKeyId or
// SignatureDoesNotMatch fail at once. maxRetries 0 means a single try: the
// budget is the caller's (cmd gives the archiver more than a person at a
// terminal), the policy is this one.
func newRetryer(maxRetries int, log *slog.Logger) aws.RetryerV2 {
	std := retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = maxRetries + 1
	})
	return loggingRetryer{RetryerV2: std, log: log, maxRetries: maxRetries, seen: new(sync.Map)}
}

// loggingRetryer says once per cause that requests are being retried, and
// why, at Warn; every later retry for the same cause (of this request or of
// any other: the retryer is the client's) is a Debug line. The SDK calls
// RetryDelay only once it has decided to try again.
type loggingRetryer struct {
	aws.RetryerV2
	log        *slog.Logger
	maxRetries int
	seen       *sync.Map // retryCause → struct{}
}

func (r loggingRetryer) RetryDelay(attempt int, err error) (time.Duration, error) {
	d, derr := r.RetryerV2.RetryDelay(attempt, err)
	if derr != nil {
		return d, derr
	}
	cause := retryCause(err)
	if _, again := r.seen.LoadOrStore(cause, struct{}{}); again {
		r.log.Debug("s3 request failed, retrying", "cause", cause, "attempt", attempt, "retry_in", d, "error", err)
	} else {
		r.log.Warn("s3 request failed, retrying (said once per cause)", "cause", cause, "max_retries", r.maxRetries, "error", err)
	}
	return d, nil
}

// retryCause names why a request failed, the same for every request that
// failed the same way: the S3 error code, or the kind of connection failure
// without its addresses and ports.
func retryCause(err error) string {
	if _, ok := stalled(err, 0); ok {
		return "stalled"
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Err != nil {
		return opErr.Op + ": " + opErr.Err.Error()
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return "dns: " + dnsErr.Err
	}
	return err.Error()
}
