package s3

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/storage"
)

// TestRetryDecoratorAddsNoS3Retries: what the SDK has retried comes out
// Final, so storage.Retry around the store sends no further request: the
// budgets do not multiply.
func TestRetryDecoratorAddsNoS3Retries(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code><Message>down</Message></Error>`)
	}))
	t.Cleanup(srv.Close)
	s, err := New(t.Context(), stallConfig(srv.URL, 0)) // MaxRetries 1: two requests per call
	if err != nil {
		t.Fatal(err)
	}
	r := storage.NewRetry(s, storage.RetryPolicy{Attempts: 3, Backoff: time.Millisecond}, slog.New(slog.DiscardHandler))
	calls := map[string]func() error{
		"get":    func() error { _, err := r.Get(t.Context(), "k"); return err },
		"stat":   func() error { _, err := r.Stat(t.Context(), "k"); return err },
		"list":   func() error { return r.List(t.Context(), "", func(storage.Object) error { return nil }) },
		"delete": func() error { return r.Delete(t.Context(), "k") },
	}
	for what, call := range calls {
		n.Store(0)
		err := call()
		if err == nil || !storage.IsFinal(err) {
			t.Errorf("%s: err = %v, want a Final error", what, err)
		}
		if got := n.Load(); got != 2 {
			t.Errorf("%s: %d requests, want 2 (the SDK's try and one retry, none of Retry's)", what, got)
		}
	}
}
