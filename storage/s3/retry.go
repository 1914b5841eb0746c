package s3

import (
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
)

// newRetryer is the SDK's standard retryer: exponential backoff with full
// jitter (up to 20 s between tries), a client-wide retry quota, and retries
// only for throttling codes (SlowDown, ...), 500/502/503/504, RequestTimeout
// and connection failures (refused, reset, timeouts, temporary DNS errors).
// 4xx answers such as AccessDenied, NoSuchBucket, InvalidAccessKeyId or
// SignatureDoesNotMatch fail at once. maxRetries 0 means a single try.
func newRetryer(maxRetries int, log *slog.Logger) aws.RetryerV2 {
	std := retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = maxRetries + 1
	})
	return loggingRetryer{std, log}
}

// loggingRetryer logs a Warn line for each retry: the SDK calls RetryDelay
// only once it has decided to try again.
type loggingRetryer struct {
	aws.RetryerV2
	log *slog.Logger
}

func (r loggingRetryer) RetryDelay(attempt int, err error) (time.Duration, error) {
	d, derr := r.RetryerV2.RetryDelay(attempt, err)
	if derr == nil {
		r.log.Warn("s3 request failed, retrying", "attempt", attempt, "retry_in", d, "error", err)
	}
	return d, derr
}
