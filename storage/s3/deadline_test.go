package s3

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/internal/testenv"
	"github.com/tusk-backup/tusk/storage"
)

func stallConfig(endpoint string, stall time.Duration) Config {
	cfg := validConfig()
	cfg.Endpoint = endpoint
	cfg.StallTimeout = stall
	cfg.MaxRetries = 1
	return cfg
}

// TestStalledTransfersFail: an upload whose body the server stops taking and
// a request whose answer never comes each fail after the stall timeout (per
// attempt), with one sentence naming the endpoint and the stall. Before the
// stall timeout covered writes, the upload hung until ctx ended.
func TestStalledTransfersFail(t *testing.T) {
	t.Parallel()
	const stall = 300 * time.Millisecond
	endpoint := testenv.SilentEndpoint(t)
	s, err := New(t.Context(), stallConfig(endpoint, stall))
	if err != nil {
		t.Fatal(err)
	}
	// Two attempts of the stall each, the backoff between them (at most 2 s)
	// and, for a body over 2 MiB, the 1 s wait for "100 Continue".
	const bound = 2*stall + 2*time.Second + time.Second + 2*time.Second // + slack
	cases := []struct {
		name string
		do   func(ctx context.Context) error
	}{
		// 15 MiB is one PutObject: more than the socket buffers hold.
		{"upload", func(ctx context.Context) error {
			return s.Put(ctx, "k", bytes.NewReader(make([]byte, 15<<20)))
		}},
		{"response", func(ctx context.Context) error {
			_, err := s.Get(ctx, "k")
			return err
		}},
		{"list", func(ctx context.Context) error {
			return s.List(ctx, "", func(storage.Object) error { return nil })
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			start := time.Now()
			err := c.do(ctx)
			d := time.Since(start)
			if ctx.Err() != nil {
				t.Fatalf("still hanging after %v: %v", d, err)
			}
			if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "S3 endpoint "+endpoint+" stalled: no data moved for 300ms (2 attempts)") {
				t.Fatalf("err = %v; want ErrUnreachable saying that %s stalled", err, endpoint)
			}
			if d > bound {
				t.Errorf("failed after %v, want within %v", d, bound)
			}
			t.Logf("after %v: %v", d.Round(time.Millisecond), err)
		})
	}
}

// TestSlowDownloadSurvives: the stall timeout is no deadline on a transfer;
// a body that keeps arriving, slowly, for many times the timeout is read
// whole. The server pauses a tenth of the timeout between chunks, so a
// loaded machine that wakes it late does not trip the timeout; the server
// ignores Range, so a resume (the timeout tripped) fails the test too.
func TestSlowDownloadSurvives(t *testing.T) {
	t.Parallel()
	const stall = time.Second
	body := bytes.Repeat([]byte("x"), 48<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Header().Set("ETag", `"e"`)
		w.Header().Set("x-amz-request-id", "test")
		for i := 0; i < len(body); i += 1 << 10 {
			w.Write(body[i : i+1<<10])
			w.(http.Flusher).Flush()
			time.Sleep(stall / 10)
		}
	}))
	t.Cleanup(srv.Close)
	s, err := New(t.Context(), stallConfig(srv.URL, stall))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	rc, err := s.Get(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("read %d bytes, %v; want %d bytes", len(got), err, len(body))
	}
	if d := time.Since(start); d < 4*stall {
		t.Fatalf("the download took %v, not the several stall timeouts the test needs", d)
	}
}

// TestResumeIgnoredRange: a server that answers a resumed download with the
// whole object (it ignored Range) fails the Get in one sentence; before,
// the object's start was appended to what had been read, and the caller
// got more bytes than the object holds.
func TestResumeIgnoredRange(t *testing.T) {
	t.Parallel()
	body := bytes.Repeat([]byte("0123456789abcdef"), 4<<10)
	var gets atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Header().Set("ETag", `"e"`)
		w.Header().Set("x-amz-request-id", "test")
		if gets.Add(1) == 1 {
			w.Write(body[:len(body)/2])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	s, err := New(t.Context(), stallConfig(srv.URL, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := s.Get(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err == nil || !strings.Contains(err.Error(), "does not honour Range requests") {
		t.Fatalf("read %d bytes of %d, err = %v; want an error saying the server ignored Range", len(got), len(body), err)
	}
	if !bytes.Equal(got, body[:len(got)]) {
		t.Errorf("the %d bytes read are not the object's start", len(got))
	}
	if n := gets.Load(); n != 2 {
		t.Errorf("%d GET requests, want 2 (one resume)", n)
	}
}
