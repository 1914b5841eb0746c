package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/tusk-backup/tusk/storage"
)

// objectReader is the body of a Get. The SDK retries a GetObject request
// until the response headers arrive, but not a body that breaks later; for
// multi-gigabyte base backups objectReader resumes at the offset it reached,
// pinned to the same object version with If-Match on the ETag.
//
// A resumed download is not checked against the object's checksum: the SDK
// checks whole bodies only.
//
// It keeps the Get's ctx: an io.Reader has no ctx parameter of its own.
type objectReader struct {
	ctx     context.Context
	s       *Store
	key     string
	body    io.ReadCloser
	etag    string
	off     int64 // bytes returned so far
	size    int64 // object size, -1 if unknown
	resumes int
	closed  bool
}

// open issues the GetObject, from off onwards after the first time.
func (r *objectReader) open() error {
	in := &s3.GetObjectInput{
		Bucket: aws.String(r.s.cfg.Bucket),
		Key:    aws.String(r.s.objectKey(r.key)),
	}
	if r.off > 0 {
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", r.off))
		in.IfMatch = aws.String(r.etag)
	} else {
		// The SDK checks the object's CRC32C at the end of the body, if the
		// object has a whole-object checksum (a PutObject's; a multipart
		// upload's is a checksum of part checksums, which it skips). Asked
		// for explicitly, so AWS_RESPONSE_CHECKSUM_VALIDATION cannot turn
		// it off.
		in.ChecksumMode = types.ChecksumModeEnabled
	}
	out, err := r.s.client.GetObject(r.ctx, in)
	if err != nil {
		var noKey *types.NoSuchKey
		if errors.As(err, &noKey) && r.ctx.Err() == nil {
			return storage.ErrNotFound
		}
		var apiErr smithy.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode() == "PreconditionFailed" {
			return fmt.Errorf("the object was replaced while it was being read: %w", err)
		}
		return r.s.classify(r.ctx, err)
	}
	if r.off > 0 {
		// A server or proxy that ignores Range sends the object from its
		// start: appending that would corrupt the stream silently.
		if err := checkResumed(out, r.off, r.size); err != nil {
			out.Body.Close()
			return err
		}
	}
	r.body = out.Body
	if r.off == 0 {
		r.etag = aws.ToString(out.ETag)
		r.size = -1
		if out.ContentLength != nil {
			r.size = *out.ContentLength
		}
	}
	return nil
}

func (r *objectReader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, errors.New("read of a closed s3 object reader")
	}
	// A body that delivers nothing for the stall timeout is closed, which
	// fails the Read, and resumed like a broken one.
	var stalled atomic.Bool
	body := r.body
	timer := time.AfterFunc(r.s.cfg.StallTimeout, func() {
		stalled.Store(true)
		body.Close()
	})
	n, err := body.Read(p)
	timer.Stop()
	r.off += int64(n)
	if err == nil || err == io.EOF {
		return n, err
	}
	if r.ctx.Err() != nil {
		return n, r.ctx.Err()
	}
	if stalled.Load() {
		err = &stallError{r.s.cfg.StallTimeout}
	}
	// Resume only transport failures before the end; a failure at the end
	// is the SDK's checksum check, which must reach the caller.
	if r.size < 0 || r.off >= r.size || r.resumes >= r.s.cfg.MaxRetries || !resumable(err) {
		return n, fmt.Errorf("get %s: read at offset %d: %w", r.key, r.off, storage.Final(r.s.classify(r.ctx, err)))
	}
	r.resumes++
	r.s.log.Warn("s3 download broke, resuming", "key", r.key, "offset", r.off, "attempt", r.resumes, "error", err)
	r.body.Close()
	if oerr := r.open(); oerr != nil {
		r.body = eofBody{}
		return n, fmt.Errorf("get %s: resume at offset %d: %w", r.key, r.off, storage.Final(oerr))
	}
	return n, nil
}

// checkResumed reports whether a resumed GetObject answered with the bytes
// from off to the end of an object of size bytes, as Content-Range says.
func checkResumed(out *s3.GetObjectOutput, off, size int64) error {
	want := fmt.Sprintf("bytes %d-%d/%d", off, size-1, size)
	got := aws.ToString(out.ContentRange)
	if got != want || aws.ToInt64(out.ContentLength) != size-off {
		return fmt.Errorf("the server answered the resumed download with Content-Range %q and %d bytes, not %q: it does not honour Range requests", got, aws.ToInt64(out.ContentLength), want)
	}
	return nil
}

func resumable(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF) ||
		retry.RetryableConnectionError{}.IsErrorRetryable(err) == aws.TrueTernary
}

func (r *objectReader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	return r.body.Close()
}

// eofBody stands in for a body that could not be reopened.
type eofBody struct{}

func (eofBody) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }
func (eofBody) Close() error             { return nil }
