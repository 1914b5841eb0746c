package cmd_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/internal/testenv"
)

// deadEndpoint is an address on 127.0.0.1 where nothing listens.
func deadEndpoint(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// TestIntegrationEndpointFaults: an interactive command against an endpoint
// that is dead, frozen or not S3 gives up in seconds with one sentence that
// names the repository and what is wrong, having said once that it retries;
// wal-fetch in archive recovery gives up on a frozen endpoint after its
// bounded stalls and exits 200, which stops recovery instead of promoting.
func TestIntegrationEndpointFaults(t *testing.T) {
	bin := testenv.BuildTusk(t)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte("<html><body>404 Not Found</body></html>"))
	}))
	t.Cleanup(web.Close)
	env := func(endpoint string, extra ...string) []string {
		return append([]string{
			"TUSK_REPO=s3://bucket/pg", "AWS_ENDPOINT=" + endpoint, "AWS_S3_FORCE_PATH_STYLE=true",
			"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY=secret",
			"HOME=" + t.TempDir(),
		}, extra...)
	}
	dead, silent := deadEndpoint(t), testenv.SilentEndpoint(t)
	cases := []struct {
		name     string
		env      []string
		want     string
		retrying int           // Warn lines saying it retries
		within   time.Duration // 3 tries, at most 6 s of backoff, slack
	}{
		{"nothing listens", env(dead), "repository s3://bucket/pg: cannot reach S3 endpoint " + dead + " (3 attempts): dial tcp", 1, 15 * time.Second},
		{"frozen endpoint", env(silent, "TUSK_S3_STALL_TIMEOUT=500ms"),
			"repository s3://bucket/pg: S3 endpoint " + silent + " stalled: no data moved for 500ms (3 attempts)", 1, 15 * time.Second},
		{"plain web server", env(web.URL),
			"repository s3://bucket/pg: the endpoint " + web.URL + " does not answer as S3 (it returned 404 Not Found with text/html); check TUSK_S3_ENDPOINT / AWS_ENDPOINT", 0, 10 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			r := run(t, bin, c.env, "backup-list")
			d := time.Since(start)
			line := errorLine(t, r.stderr)
			if r.code != 1 || !strings.Contains(line, c.want) {
				t.Fatalf("exit %d, %q; want exit 1 and a sentence containing %q", r.code, line, c.want)
			}
			if n := strings.Count(r.stderr, "retrying"); n != c.retrying {
				t.Errorf("%d lines say it retries, want %d:\n%s", n, c.retrying, r.stderr)
			}
			if d > c.within {
				t.Errorf("took %v to fail, want under %v", d, c.within)
			}
			t.Logf("after %v, exit %d:\n%s", d.Round(time.Millisecond), r.code, r.stderr)
		})
	}
	t.Run("wal-fetch in archive recovery, frozen endpoint", func(t *testing.T) {
		t.Parallel()
		pgdata := t.TempDir()
		if err := os.WriteFile(filepath.Join(pgdata, "recovery.signal"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		r := run(t, bin, env(silent, "TUSK_S3_STALL_TIMEOUT=300ms", "TUSK_S3_MAX_RETRIES=1",
			"PGDATA="+pgdata, "TUSK_WAL_PREFETCH=0"),
			"wal-fetch", "000000010000000000000001", filepath.Join(t.TempDir(), "x"))
		d := time.Since(start)
		line := errorLine(t, r.stderr)
		if r.code != 200 || !strings.Contains(line, "S3 endpoint "+silent+" stalled") {
			t.Fatalf("exit %d, %q; want exit 200 saying the endpoint stalled", r.code, line)
		}
		// wal-fetch's own three attempts, each of two tries of 300 ms and
		// at most 2 s of backoff, with 1 s and 2 s between them.
		if d > 20*time.Second {
			t.Errorf("took %v to fail", d)
		}
		t.Logf("after %v: %s", d.Round(time.Millisecond), line)
	})
}
