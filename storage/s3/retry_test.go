package s3

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/aws/smithy-go"
)

// levelCounter counts records per level.
type levelCounter struct {
	slog.Handler
	warn, debug *atomic.Int64
}

func (h levelCounter) Enabled(context.Context, slog.Level) bool { return true }

func (h levelCounter) Handle(_ context.Context, r slog.Record) error {
	switch r.Level {
	case slog.LevelWarn:
		h.warn.Add(1)
	case slog.LevelDebug:
		h.debug.Add(1)
	}
	return nil
}

// TestRetryWarnsOncePerCause: eight retries of requests that fail the same
// way (from fresh source ports each time) say once that tusk is retrying and
// why; a new cause is said once too.
func TestRetryWarnsOncePerCause(t *testing.T) {
	t.Parallel()
	var warn, debug atomic.Int64
	r := newRetryer(8, slog.New(levelCounter{slog.DiscardHandler, &warn, &debug}))
	refused := func(port int) error {
		return &url.Error{Op: "Get", URL: "http://127.0.0.1:1/b", Err: &net.OpError{
			Op: "dial", Net: "tcp", Source: &net.TCPAddr{Port: port}, Err: errors.New("connect: connection refused")}}
	}
	for i := 1; i <= 8; i++ {
		if _, err := r.RetryDelay(i, refused(40000+i)); err != nil {
			t.Fatal(err)
		}
	}
	if w, d := warn.Load(), debug.Load(); w != 1 || d != 7 {
		t.Fatalf("%d Warn and %d Debug lines for 8 retries of one cause, want 1 and 7", w, d)
	}
	slow := fmt.Errorf("op: %w", &smithy.GenericAPIError{Code: "SlowDown"})
	r.RetryDelay(1, slow)
	r.RetryDelay(2, slow)
	if w := warn.Load(); w != 2 {
		t.Fatalf("%d Warn lines after a second cause, want 2", w)
	}
}
