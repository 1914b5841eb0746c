package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"github.com/tusk-backup/tusk/internal/testenv"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/storage/storagetest"
)

var prefixSeq atomic.Int64

// minioConfig points a Config at m under a fresh prefix.
func minioConfig(t *testing.T, m *testenv.MinIO) Config {
	return Config{
		Bucket:          m.Bucket,
		Prefix:          fmt.Sprintf("t%d/%s", prefixSeq.Add(1), strings.ReplaceAll(t.Name(), "/", "_")),
		Endpoint:        m.Endpoint,
		ForcePathStyle:  true,
		Region:          m.Region,
		AccessKeyID:     m.AccessKey,
		SecretAccessKey: m.SecretKey,
		Logger:          slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

func newStore(t *testing.T, cfg Config) *Store {
	t.Helper()
	s, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func TestIntegrationConformance(t *testing.T) {
	t.Parallel()
	m := testenv.StartMinIO(t)
	storagetest.Run(t, func(t *testing.T) storage.Storage {
		return newStore(t, minioConfig(t, m))
	}, storagetest.Options{Short: testing.Short()})
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func getAll(t *testing.T, s *Store, key string) []byte {
	t.Helper()
	rc, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b
}

// headETag returns the object's ETag: a multipart upload's ends in "-<parts>".
func headETag(t *testing.T, m *testenv.MinIO, s *Store, key string) string {
	t.Helper()
	out, err := m.Client().HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(m.Bucket), Key: aws.String(s.objectKey(key))})
	if err != nil {
		t.Fatalf("HeadObject %s: %v", key, err)
	}
	return strings.Trim(aws.ToString(out.ETag), `"`)
}

// noUploads fails t if a multipart upload is in progress under s's prefix.
func noUploads(t *testing.T, m *testenv.MinIO, s *Store) {
	t.Helper()
	out, err := m.Client().ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{
		Bucket: aws.String(m.Bucket), Prefix: aws.String(s.keyPrefix)})
	if err != nil {
		t.Fatalf("ListMultipartUploads: %v", err)
	}
	if len(out.Uploads) != 0 {
		t.Fatalf("%d multipart uploads linger, the first for %s", len(out.Uploads), aws.ToString(out.Uploads[0].Key))
	}
}

func TestIntegrationMultipart(t *testing.T) {
	t.Parallel()
	m := testenv.StartMinIO(t)
	cfg := minioConfig(t, m)
	cfg.PartSize = MinPartSize
	cfg.UploadConcurrency = 2
	s := newStore(t, cfg)
	cases := []struct {
		size  int
		parts int // 0: a single PutObject
	}{
		{MinPartSize - 1, 0},
		{MinPartSize, 0}, // ends at the part boundary: still one PutObject
		{MinPartSize + 1, 2},
		{2 * MinPartSize, 2},
		{12<<20 + 1, 3},
	}
	for _, c := range cases {
		key := fmt.Sprintf("obj/%d", c.size)
		want := randomBytes(t, c.size)
		if err := s.Put(t.Context(), key, shortReader{bytes.NewReader(want)}); err != nil {
			t.Fatalf("Put %d bytes: %v", c.size, err)
		}
		if got := getAll(t, s, key); !bytes.Equal(got, want) {
			t.Fatalf("%d bytes: Get returned %d different bytes", c.size, len(got))
		}
		etag := headETag(t, m, s, key)
		_, parts, multi := strings.Cut(etag, "-")
		switch {
		case c.parts == 0 && multi:
			t.Errorf("%d bytes: stored by a multipart upload (ETag %s), want one PutObject", c.size, etag)
		case c.parts > 0 && parts != fmt.Sprint(c.parts):
			t.Errorf("%d bytes: ETag %s, want a multipart upload of %d parts", c.size, etag, c.parts)
		}
		o, err := s.Stat(t.Context(), key)
		if err != nil || o.Size != int64(c.size) || o.Key != key || time.Since(o.ModTime) > time.Hour {
			t.Errorf("Stat = %+v, %v", o, err)
		}
	}
	noUploads(t, m, s)
}

// shortReader returns at most 100,000 bytes a Read, as pipes and network
// streams do, so that parts are filled by many Reads.
type shortReader struct{ r io.Reader }

func (s shortReader) Read(p []byte) (int, error) { return s.r.Read(p[:min(len(p), 100_000)]) }

// failAfter yields n random bytes, then fails with err (or, with cancel set,
// cancels the context and goes on).
type failAfter struct {
	n      int
	err    error
	cancel context.CancelFunc
}

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		if f.cancel != nil {
			f.cancel()
			return len(p), nil
		}
		return 0, f.err
	}
	n := min(len(p), f.n)
	rand.Read(p[:n])
	f.n -= n
	return n, nil
}

func TestIntegrationFailedPutLeavesNothing(t *testing.T) {
	t.Parallel()
	m := testenv.StartMinIO(t)
	cfg := minioConfig(t, m)
	cfg.PartSize = MinPartSize
	s := newStore(t, cfg)
	old := randomBytes(t, 1000)
	if err := s.Put(t.Context(), "k", bytes.NewReader(old)); err != nil {
		t.Fatal(err)
	}

	boom := errors.New("source broke")
	// Two whole parts, then part of a third, then the failure.
	err := s.Put(t.Context(), "k", &failAfter{n: 2*MinPartSize + 1000, err: boom})
	if !errors.Is(err, boom) {
		t.Fatalf("Put with a failing reader = %v, want the reader's error", err)
	}
	if got := getAll(t, s, "k"); !bytes.Equal(got, old) {
		t.Fatal("the failed Put changed the old object")
	}
	err = s.Put(t.Context(), "new", &failAfter{n: 3 * MinPartSize, err: boom})
	if !errors.Is(err, boom) {
		t.Fatalf("Put with a failing reader = %v, want the reader's error", err)
	}
	if _, err := s.Stat(t.Context(), "new"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat after the failed Put = %v, want ErrNotFound", err)
	}
	noUploads(t, m, s)

	// More parts than S3 allows (lowered to 3 here).
	s.maxParts = 3
	err = s.Put(t.Context(), "huge", &failAfter{n: 3*MinPartSize + 1, err: io.EOF})
	if err == nil || !strings.Contains(err.Error(), "object is larger than 3 parts of 5 MiB") {
		t.Fatalf("Put of too many parts = %v", err)
	}
	s.maxParts = maxParts
	if _, err := s.Stat(t.Context(), "huge"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat after the failed Put = %v, want ErrNotFound", err)
	}
	noUploads(t, m, s)

	// Cancellation midway through the third part.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	start := time.Now()
	err = s.Put(ctx, "cancelled", &failAfter{n: 2*MinPartSize + 1000, cancel: cancel})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Put = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("cancelled Put took %v", d)
	}
	if _, err := s.Stat(t.Context(), "cancelled"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat after the cancelled Put = %v, want ErrNotFound", err)
	}
	noUploads(t, m, s)
}

func TestIntegrationPrefixIsolation(t *testing.T) {
	t.Parallel()
	m := testenv.StartMinIO(t)
	base := minioConfig(t, m)
	stores := map[string]*Store{}
	for _, p := range []string{"", "a", "ab", "a/b"} {
		cfg := base
		cfg.Prefix = p
		stores[p] = newStore(t, cfg)
	}
	for p, s := range stores {
		if err := s.Put(t.Context(), "x/obj", strings.NewReader(p)); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string][]string{
		"":    {"a/b/x/obj", "a/x/obj", "ab/x/obj", "x/obj"},
		"a":   {"b/x/obj", "x/obj"},
		"ab":  {"x/obj"},
		"a/b": {"x/obj"},
	}
	for p, s := range stores {
		var got []string
		err := s.List(t.Context(), "", func(o storage.Object) error {
			got = append(got, o.Key)
			return nil
		})
		if err != nil || !slices.Equal(got, want[p]) {
			t.Errorf("store %q lists %q, %v; want %q", p, got, err, want[p])
		}
		if b := getAll(t, s, "x/obj"); string(b) != p {
			t.Errorf("store %q reads %q", p, b)
		}
	}
	if err := stores["a"].Delete(t.Context(), "x/obj"); err != nil {
		t.Fatal(err)
	}
	if _, err := stores["ab"].Stat(t.Context(), "x/obj"); err != nil {
		t.Errorf("deleting a/x/obj touched ab/x/obj: %v", err)
	}
}

func TestIntegrationDeleteBatches(t *testing.T) {
	t.Parallel()
	m := testenv.StartMinIO(t)
	s := newStore(t, minioConfig(t, m))
	var keys []string
	for i := range deleteBatch + 5 {
		keys = append(keys, fmt.Sprintf("d/%05d", i))
	}
	g, gctx := errgroup.WithContext(t.Context())
	g.SetLimit(16)
	for _, k := range keys {
		g.Go(func() error { return s.Put(gctx, k, strings.NewReader(k)) })
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	// All but the last key, plus missing ones, across two batches.
	del := append(slices.Clone(keys[:len(keys)-1]), "d/missing", "other/missing")
	if err := s.Delete(t.Context(), del...); err != nil {
		t.Fatal(err)
	}
	var left []string
	if err := s.List(t.Context(), "", func(o storage.Object) error { left = append(left, o.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(left, keys[len(keys)-1:]) {
		t.Fatalf("after Delete the store lists %d keys: %.3q", len(left), left)
	}
	if err := s.Delete(t.Context()); err != nil {
		t.Fatalf("Delete of no keys: %v", err)
	}
}

// proxy stands between a Store and MinIO, counting requests and letting a
// test change answers. It keeps the Host header, so signatures stay valid.
type proxy struct {
	srv      *httptest.Server
	requests atomic.Int64
	mu       sync.Mutex
	// fault, if set, may answer a request itself; it returns true if so.
	fault func(w http.ResponseWriter, r *http.Request) bool
	seen  []*http.Request
}

func newProxy(t *testing.T, target string) *proxy {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{}
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(u)
		r.Out.Host = r.In.Host
	}}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.requests.Add(1)
		p.mu.Lock()
		fault := p.fault
		p.seen = append(p.seen, r.Clone(context.Background()))
		p.mu.Unlock()
		if fault != nil && fault(w, r) {
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *proxy) setFault(f func(w http.ResponseWriter, r *http.Request) bool) {
	p.mu.Lock()
	p.fault = f
	p.seen = nil
	p.mu.Unlock()
	p.requests.Store(0)
}

func (p *proxy) seenRequests() []*http.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.seen)
}

// warnCounter counts Warn records.
type warnCounter struct {
	slog.Handler
	n *atomic.Int64
}

func (h warnCounter) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn {
		h.n.Add(1)
	}
	return h.Handler.Handle(ctx, r)
}

func TestIntegrationRetriesAndChecksums(t *testing.T) {
	t.Parallel()
	m := testenv.StartMinIO(t)
	px := newProxy(t, m.Endpoint)
	cfg := minioConfig(t, m)
	cfg.Endpoint = px.srv.URL
	cfg.PartSize = MinPartSize
	var warns atomic.Int64
	cfg.Logger = slog.New(warnCounter{cfg.Logger.Handler(), &warns})
	s := newStore(t, cfg)

	t.Run("checksum on every part", func(t *testing.T) {
		px.setFault(nil)
		data := randomBytes(t, 2*MinPartSize+10)
		if err := s.Put(t.Context(), "sum/multi", bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		if err := s.Put(t.Context(), "sum/single", bytes.NewReader(data[:100])); err != nil {
			t.Fatal(err)
		}
		var sums []string
		for _, r := range px.seenRequests() {
			if r.Method == http.MethodPut {
				sums = append(sums, r.Header.Get("X-Amz-Checksum-Crc32c"))
			}
		}
		// Three parts, then one PutObject.
		want := []string{
			crc32cHeader(data[:MinPartSize]),
			crc32cHeader(data[MinPartSize : 2*MinPartSize]),
			crc32cHeader(data[2*MinPartSize:]),
			crc32cHeader(data[:100]),
		}
		if len(sums) == 4 { // parts go in parallel
			slices.Sort(sums[:3])
		}
		slices.Sort(want[:3])
		if !slices.Equal(sums, want) {
			t.Errorf("PUT requests carried CRC32C headers %q, want %q", sums, want)
		}
		// MinIO kept the checksums: the whole object's, and the composite
		// of the parts'.
		for key, want := range map[string]string{"sum/single": crc32cHeader(data[:100]), "sum/multi": "-3"} {
			out, err := m.Client().HeadObject(t.Context(), &s3.HeadObjectInput{
				Bucket: aws.String(m.Bucket), Key: aws.String(s.objectKey(key)), ChecksumMode: types.ChecksumModeEnabled})
			if err != nil {
				t.Fatal(err)
			}
			if got := aws.ToString(out.ChecksumCRC32C); !strings.HasSuffix(got, want) {
				t.Errorf("%s has CRC32C %q, want %q", key, got, want)
			}
		}
		if got := getAll(t, s, "sum/multi"); !bytes.Equal(got, data) {
			t.Fatal("multipart object read back differs")
		}
		if got := getAll(t, s, "sum/single"); !bytes.Equal(got, data[:100]) {
			t.Fatal("object read back differs")
		}
		// And it verifies them: a wrong checksum is refused.
		_, err := m.Client().PutObject(t.Context(), &s3.PutObjectInput{
			Bucket: aws.String(m.Bucket), Key: aws.String(s.objectKey("sum/wrong")),
			Body: bytes.NewReader(data[:100]), ChecksumCRC32C: aws.String(crc32cHeader(data[:99]))})
		if err == nil {
			t.Error("MinIO accepted an object with a wrong CRC32C")
		}
	})

	t.Run("5xx and throttling are retried", func(t *testing.T) {
		var failures atomic.Int64
		px.setFault(func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method != http.MethodPut || failures.Add(1) > 2 {
				return false
			}
			io.Copy(io.Discard, r.Body)
			code, status := "SlowDown", http.StatusServiceUnavailable
			if failures.Load() == 2 {
				code, status = "InternalError", http.StatusInternalServerError
			}
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(status)
			fmt.Fprintf(w, "<Error><Code>%s</Code><Message>try later</Message></Error>", code)
			return true
		})
		before := warns.Load()
		if err := s.Put(t.Context(), "retried", strings.NewReader("hello")); err != nil {
			t.Fatalf("Put through two failures: %v", err)
		}
		if n := px.requests.Load(); n != 3 {
			t.Errorf("%d requests, want 3", n)
		}
		if n := warns.Load() - before; n != 2 {
			t.Errorf("%d Warn lines, want one per cause (SlowDown, InternalError)", n)
		}
	})

	t.Run("4xx is not retried", func(t *testing.T) {
		px.setFault(func(w http.ResponseWriter, r *http.Request) bool {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, "<Error><Code>AccessDenied</Code><Message>Access Denied.</Message></Error>")
			return true
		})
		err := s.Put(t.Context(), "denied", strings.NewReader("x"))
		if !errors.Is(err, ErrAccessDenied) {
			t.Fatalf("Put = %v, want ErrAccessDenied", err)
		}
		if n := px.requests.Load(); n != 1 {
			t.Errorf("%d requests for an AccessDenied answer, want 1", n)
		}
	})

	t.Run("a corrupted part is refused", func(t *testing.T) {
		var once sync.Once
		px.setFault(func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method == http.MethodPut && r.URL.Query().Get("partNumber") == "2" {
				once.Do(func() {
					body, _ := io.ReadAll(r.Body)
					body[len(body)/2] ^= 1
					r.Body = io.NopCloser(bytes.NewReader(body))
				})
			}
			return false
		})
		err := s.Put(t.Context(), "corrupt", bytes.NewReader(randomBytes(t, 2*MinPartSize+1)))
		if err == nil {
			t.Fatal("Put with a corrupted part succeeded")
		}
		t.Logf("Put with a corrupted part: %v", err)
		if _, err := s.Stat(t.Context(), "corrupt"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Stat = %v, want ErrNotFound", err)
		}
		px.setFault(nil)
		noUploads(t, m, s)
	})

	t.Run("a corrupted download is detected", func(t *testing.T) {
		px.setFault(nil)
		data := randomBytes(t, 1<<20)
		if err := s.Put(t.Context(), "flip", bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		px.setFault(func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/flip") {
				return false
			}
			resp := forward(t, m, r)
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			body[len(body)/2] ^= 1
			for k, v := range resp.Header {
				w.Header()[k] = v
			}
			w.WriteHeader(resp.StatusCode)
			w.Write(body)
			return true
		})
		rc, err := s.Get(t.Context(), "flip")
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if _, err := io.Copy(io.Discard, rc); err == nil {
			t.Fatal("a download with a flipped bit read without error")
		} else {
			t.Logf("corrupted download: %v", err)
		}
	})

	// stalling returns a fault that answers the first n matching requests
	// with headers and head bytes of the real answer and then nothing.
	testCtx := t.Context()
	stalling := func(match func(*http.Request) bool, n int64, head int64) func(http.ResponseWriter, *http.Request) bool {
		var count atomic.Int64
		return func(w http.ResponseWriter, r *http.Request) bool {
			if !match(r) || count.Add(1) > n {
				return false
			}
			if head >= 0 {
				resp := forward(t, m, r)
				defer resp.Body.Close()
				for k, v := range resp.Header {
					w.Header()[k] = v
				}
				w.WriteHeader(resp.StatusCode)
				io.CopyN(w, resp.Body, head)
				w.(http.Flusher).Flush()
			}
			select {
			case <-r.Context().Done():
			case <-testCtx.Done():
			}
			return true
		}
	}
	impatient := cfg
	impatient.StallTimeout = 500 * time.Millisecond
	impatient.MaxRetries = 1
	si := newStore(t, impatient)

	t.Run("a silent server times out", func(t *testing.T) {
		px.setFault(stalling(func(*http.Request) bool { return true }, 100, -1))
		start := time.Now()
		err := si.Check(t.Context())
		if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "stalled") {
			t.Fatalf("Check against a silent server = %v, want ErrUnreachable saying it stalled", err)
		}
		t.Logf("Check against a silent server: %v", err)
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("Check took %v", d)
		}
		if n := px.requests.Load(); n != 2 {
			t.Errorf("%d requests, want 2 (one retry)", n)
		}
	})

	t.Run("a stalled download resumes", func(t *testing.T) {
		px.setFault(nil)
		data := randomBytes(t, 3<<20)
		if err := si.Put(t.Context(), "stall", bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		px.setFault(stalling(func(r *http.Request) bool {
			return r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/stall")
		}, 1, 1<<20))
		if got := getAll(t, si, "stall"); !bytes.Equal(got, data) {
			t.Fatalf("resumed download differs (%d bytes of %d)", len(got), len(data))
		}
		if n := px.requests.Load(); n < 2 {
			t.Errorf("%d GET requests, want a second one that resumed", n)
		}
	})

	t.Run("a broken download resumes", func(t *testing.T) {
		px.setFault(nil)
		data := randomBytes(t, 3<<20)
		if err := s.Put(t.Context(), "resume", bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		var cuts atomic.Int64
		px.setFault(func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/resume") || cuts.Add(1) > 2 {
				return false
			}
			// Forward, then cut the body after 1 MiB.
			resp := forward(t, m, r)
			defer resp.Body.Close()
			for k, v := range resp.Header {
				w.Header()[k] = v
			}
			w.WriteHeader(resp.StatusCode)
			io.CopyN(w, resp.Body, 1<<20)
			panic(http.ErrAbortHandler)
		})
		if got := getAll(t, s, "resume"); !bytes.Equal(got, data) {
			t.Fatalf("resumed download differs (%d bytes of %d)", len(got), len(data))
		}
		var ranges []string
		for _, r := range px.seenRequests() {
			ranges = append(ranges, r.Header.Get("Range")+" "+r.Header.Get("If-Match"))
		}
		if len(ranges) != 3 || !strings.HasPrefix(ranges[1], "bytes=1048576- ") || !strings.HasPrefix(ranges[2], "bytes=2097152- ") {
			t.Errorf("GET requests had Range and If-Match %q, want none, then from 1 MiB, then from 2 MiB", ranges)
		}
	})
}

func TestIntegrationErrorSentences(t *testing.T) {
	t.Parallel()
	m := testenv.StartMinIO(t)
	ctx := t.Context()
	good := minioConfig(t, m)
	good.MaxRetries = 1
	if err := newStore(t, good).Check(ctx); err != nil {
		t.Fatalf("Check with good settings: %v", err)
	}

	cases := []struct {
		name     string
		mod      func(*Config)
		sentinel error
		msgHas   string
	}{
		{"wrong secret key", func(c *Config) { c.SecretAccessKey += "x" }, ErrAccessDenied,
			"S3 rejected the request signature: the secret key does not belong to the access key ID; check AWS_SECRET_ACCESS_KEY"},
		{"unknown access key", func(c *Config) { c.AccessKeyID = "nosuchkey" }, ErrAccessDenied,
			"S3 does not know the access key ID; check AWS_ACCESS_KEY_ID"},
		{"missing bucket", func(c *Config) { c.Bucket = "no-such-bucket" }, ErrNoSuchBucket,
			"S3 bucket no-such-bucket does not exist; create it or fix TUSK_REPO"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := good
			c.mod(&cfg)
			s := newStore(t, cfg)
			errs := map[string]error{"Check": s.Check(ctx)}
			errs["Put"] = s.Put(ctx, "k", strings.NewReader("x"))
			_, errs["Get"] = s.Get(ctx, "k")
			errs["List"] = s.List(ctx, "", func(storage.Object) error { return nil })
			errs["Delete"] = s.Delete(ctx, "k")
			for op, err := range errs {
				t.Logf("%s: %v", op, err)
				if !errors.Is(err, c.sentinel) {
					t.Errorf("%s = %v, want errors.Is %v", op, err, c.sentinel)
				}
				if err != nil && strings.Contains(err.Error(), m.SecretKey) {
					t.Errorf("%s error shows the secret key: %v", op, err)
				}
			}
			// Check names the cause precisely; the others at least as well
			// as a bodyless HEAD answer allows.
			if err := errs["Check"]; err == nil || err.Error() != c.msgHas {
				t.Errorf("Check = %q, want %q", err, c.msgHas)
			}
			if err := errs["Put"]; err == nil || !strings.Contains(err.Error(), c.msgHas) {
				t.Errorf("Put = %q, want it to contain %q", err, c.msgHas)
			}
		})
	}

	t.Run("stopped server", func(t *testing.T) {
		s := newStore(t, good)
		if err := s.Put(ctx, "k", strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
		m.Stop(t)
		defer m.Start(t)
		start := time.Now()
		errs := map[string]error{"Check": s.Check(ctx)}
		errs["Put"] = s.Put(ctx, "k", strings.NewReader("x"))
		_, errs["Get"] = s.Get(ctx, "k")
		_, errs["Stat"] = s.Stat(ctx, "k")
		errs["List"] = s.List(ctx, "", func(storage.Object) error { return nil })
		errs["Delete"] = s.Delete(ctx, "k")
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("six calls to a stopped server took %v with MaxRetries 1", d)
		}
		for op, err := range errs {
			t.Logf("%s: %v", op, err)
		}
		want := "cannot reach S3 endpoint " + m.Endpoint + " (2 attempts): dial tcp " + strings.TrimPrefix(m.Endpoint, "http://")
		for op, err := range errs {
			if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), want) {
				t.Errorf("%s = %v, want ErrUnreachable saying %q", op, err, want)
			}
		}
		if err := errs["Check"]; err != nil && !strings.HasPrefix(err.Error(), want) {
			t.Errorf("Check = %q, want it to start with %q", err, want)
		}
	})
}

// forward sends r on to m and returns the answer.
func forward(t *testing.T, m *testenv.MinIO, r *http.Request) *http.Response {
	out := r.Clone(r.Context())
	out.URL.Scheme, out.URL.Host, out.RequestURI = "http", strings.TrimPrefix(m.Endpoint, "http://"), ""
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		t.Errorf("forward: %v", err)
		panic(http.ErrAbortHandler)
	}
	return resp
}

// crc32cHeader is the x-amz-checksum-crc32c header of b: the base64 of its
// big-endian CRC32C.
func crc32cHeader(b []byte) string {
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
	return base64.StdEncoding.EncodeToString(sum[:])
}
