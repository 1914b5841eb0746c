package s3

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tusk-backup/tusk/storage"
)

// TestNotS3Endpoint: an endpoint that is a plain web server is said to be
// one, whatever it answers, instead of "the bucket does not exist"; its
// 5xx pages are still retried.
func TestNotS3Endpoint(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, ct string
		status   int
		want     string
	}{
		{"404 page", "text/html; charset=utf-8", 404, "it returned 404 Not Found with text/html; charset=utf-8 from server test-web"},
		{"200 page for every path", "text/html", 200, "it returned 200 OK with text/html from server test-web"},
		{"JSON API", "application/json", 403, "it returned 403 Forbidden with application/json from server test-web"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Server", "test-web")
				w.Header().Set("Content-Type", c.ct)
				w.WriteHeader(c.status)
				w.Write([]byte("<html><body>Welcome to nginx!</body></html>"))
			}))
			t.Cleanup(srv.Close)
			s, err := New(t.Context(), stallConfig(srv.URL, 0))
			if err != nil {
				t.Fatal(err)
			}
			calls := map[string]func() error{
				"check": func() error { return s.Check(t.Context()) },
				"list":  func() error { return s.List(t.Context(), "", func(storage.Object) error { return nil }) },
				"put":   func() error { return s.Put(t.Context(), "k", bytes.NewReader([]byte("x"))) },
			}
			if c.status != 200 {
				calls["get"] = func() error { _, err := s.Get(t.Context(), "k"); return err }
			}
			for what, call := range calls {
				err := call()
				sentence := "the endpoint " + srv.URL + " does not answer as S3 (" + c.want + "); check TUSK_S3_ENDPOINT / AWS_ENDPOINT"
				if !errors.Is(err, ErrNotS3) || !strings.Contains(err.Error(), sentence) {
					t.Errorf("%s: %v; want ErrNotS3 saying %q", what, err, sentence)
				}
				if errors.Is(err, ErrNoSuchBucket) || errors.Is(err, storage.ErrNotFound) {
					t.Errorf("%s: %v; taken for a missing bucket or key", what, err)
				}
			}
		})
	}
	t.Run("a proxy's 502 page is retried", func(t *testing.T) {
		t.Parallel()
		var n atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			w.Write([]byte("<html>502 Bad Gateway</html>"))
		}))
		t.Cleanup(srv.Close)
		s, err := New(t.Context(), stallConfig(srv.URL, 0))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Check(t.Context()); errors.Is(err, ErrNotS3) || n.Load() != 2 {
			t.Errorf("Check against a 502 page: %v after %d requests; want 2 requests (one retry) and no ErrNotS3", err, n.Load())
		}
	})
}

func TestNotS3Rule(t *testing.T) {
	t.Parallel()
	cases := []struct {
		op     string
		status int
		ct     string
		notS3  bool
	}{
		{"HeadBucket", 404, "", false},                // S3's HEAD errors have no body
		{"HeadBucket", 404, "application/xml", false}, // MinIO, AWS
		{"ListObjectsV2", 200, "application/xml", false},
		{"GetObject", 200, "text/html", false}, // an object's own type
		{"HeadObject", 200, "text/html", false},
		{"GetObject", 404, "text/html", true},
		{"HeadBucket", 200, "text/html", true},
		{"ListObjectsV2", 200, "application/json", true},
		{"PutObject", 200, "text/plain", false},
		{"PutObject", 400, "text/plain", true},
		{"PutObject", 503, "text/html", false}, // retried as a 5xx
	}
	for _, c := range cases {
		resp := &http.Response{StatusCode: c.status, Header: http.Header{}}
		if c.ct != "" {
			resp.Header.Set("Content-Type", c.ct)
		}
		if got := notS3(c.op, resp) != ""; got != c.notS3 {
			t.Errorf("notS3(%s, %d %q) = %v, want %v", c.op, c.status, c.ct, got, c.notS3)
		}
	}
}
