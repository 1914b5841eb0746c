package s3

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/internal/testenv"
)

// freezingProxy forwards TCP between its clients and target until it has
// forwarded freezeAfter bytes in one direction (upstream or downstream, per
// the test), and from then on forwards nothing, on open connections and new
// ones alike, while keeping them open: a proxy that stalls, or a server that
// was SIGSTOPped mid-transfer.
type freezingProxy struct {
	addr               string
	up, down           atomic.Int64 // bytes forwarded each way
	freezeUp, freezeDn atomic.Int64 // freeze once up or down passes this (0: never)
	frozen             atomic.Bool
	done               chan struct{}
}

func newFreezingProxy(t *testing.T, target string) *freezingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezingProxy{addr: "http://" + ln.Addr().String(), done: make(chan struct{})}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, u)
			mu.Unlock()
			wg.Go(func() { p.pipe(u, c, &p.up, &p.freezeUp) })
			wg.Go(func() { p.pipe(c, u, &p.down, &p.freezeDn) })
		}
	})
	t.Cleanup(func() {
		close(p.done)
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return p
}

func (p *freezingProxy) pipe(dst, src net.Conn, n, limit *atomic.Int64) {
	buf := make([]byte, 32<<10)
	for {
		m, err := src.Read(buf)
		if l := limit.Load(); l > 0 && n.Load()+int64(m) > l {
			p.frozen.Store(true)
		}
		if p.frozen.Load() {
			<-p.done // hold the connection open, forwarding nothing
			return
		}
		if m > 0 {
			if _, werr := dst.Write(buf[:m]); werr != nil {
				return
			}
			n.Add(int64(m))
		}
		if err != nil {
			return
		}
	}
}

// TestIntegrationStalledTransfer: an upload or a download through a proxy
// that stops forwarding midway fails after the stall timeout (per try, with
// the retries) with one sentence saying the endpoint stalled, instead of
// hanging: the attack run's backup-push against a frozen MinIO hung past
// 300 s, its stalled wal-fetch took 5 min 20 s.
func TestIntegrationStalledTransfer(t *testing.T) {
	t.Parallel()
	m := testenv.StartMinIO(t)
	const stall = 500 * time.Millisecond
	// Tries of the stall each and their backoff (at most 2 s per retry), for
	// the parts and then for the abort of the multipart upload; and slack.
	const bound = 15 * time.Second
	direct := minioConfig(t, m)
	data := randomBytes(t, 24<<20)

	t.Run("upload", func(t *testing.T) {
		t.Parallel()
		px := newFreezingProxy(t, strings.TrimPrefix(m.Endpoint, "http://"))
		px.freezeUp.Store(8 << 20) // mid-part
		cfg := direct
		cfg.Prefix += "/up"
		cfg.Endpoint, cfg.StallTimeout, cfg.MaxRetries, cfg.PartSize = px.addr, stall, 1, MinPartSize
		s := newStore(t, cfg)
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		start := time.Now()
		err := s.Put(ctx, "big", bytes.NewReader(data))
		d := time.Since(start)
		if ctx.Err() != nil || !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "S3 endpoint "+px.addr+" stalled") {
			t.Fatalf("Put through a proxy that froze after %d bytes: %v after %v; want a sentence saying it stalled", px.up.Load(), err, d)
		}
		if d > bound {
			t.Errorf("failed after %v, want within %v", d, bound)
		}
		t.Logf("after %v: %v", d.Round(time.Millisecond), err)
		if _, err := newStore(t, func() Config { c := direct; c.Prefix += "/up"; return c }()).Stat(t.Context(), "big"); err == nil {
			t.Error("the stalled upload left an object")
		}
	})

	t.Run("download", func(t *testing.T) {
		t.Parallel()
		cfg := direct
		cfg.Prefix += "/down"
		if err := newStore(t, cfg).Put(t.Context(), "big", bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		px := newFreezingProxy(t, strings.TrimPrefix(m.Endpoint, "http://"))
		px.freezeDn.Store(4 << 20)
		cfg.Endpoint, cfg.StallTimeout, cfg.MaxRetries = px.addr, stall, 1
		s := newStore(t, cfg)
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		start := time.Now()
		rc, err := s.Get(ctx, "big")
		if err == nil {
			_, err = io.Copy(io.Discard, rc)
			rc.Close()
		}
		d := time.Since(start)
		if ctx.Err() != nil || !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "S3 endpoint "+px.addr+" stalled") {
			t.Fatalf("Get through a proxy that froze after %d bytes: %v after %v; want a sentence saying it stalled", px.down.Load(), err, d)
		}
		if d > bound {
			t.Errorf("failed after %v, want within %v", d, bound)
		}
		t.Logf("after %v: %v", d.Round(time.Millisecond), err)
	})
}
