package s3

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// Deadlines of a connection to S3. None of them bounds a whole transfer: a
// 1 GiB part on a slow link may take as long as it takes, so long as bytes
// keep moving.
//
//   - Dial (TCP connect) and TLS handshake: dialTimeout and tlsTimeout each.
//     A healthy handshake takes milliseconds; one that has not completed in
//     10 s has lost three SYNs or more.
//   - Stall (Config.StallTimeout, default DefaultStallTimeout): a connection
//     on which no byte moves in either direction for that long fails, with
//     a timeout error the retryer treats as a connection failure (retried,
//     then reported as "stalled"). It covers a request body that the server
//     stops reading (a frozen server, a stalled proxy), a response that does
//     not come (it is also the response-header timeout), and a body that
//     stops arriving.
//
// Written bytes count as progress when the kernel takes them, so after the
// last write a request's final send buffer (a few MiB) must drain within the
// stall timeout: on a link slower than about 100 KiB/s the default is too
// short, which is the case for raising TUSK_S3_STALL_TIMEOUT.
const (
	dialTimeout = 10 * time.Second
	tlsTimeout  = 10 * time.Second

	// DefaultStallTimeout is 60 s: three times the 20 s after which S3
	// itself gives up on a request body that stops arriving (its
	// RequestTimeout error), so no healthy transfer trips it, while a
	// frozen endpoint is given up within a minute per attempt instead of
	// never.
	DefaultStallTimeout = 60 * time.Second

	// stallChunk is the most a Write hands the kernel under one deadline,
	// so that a large write on a slow link is many moving steps, not one
	// step that must finish within the stall timeout.
	stallChunk = 64 << 10
)

// stallError marks a connection on which nothing moved for the stall
// timeout. It wraps os.ErrDeadlineExceeded and reports Timeout, so the SDK
// retries it as a connection failure.
type stallError struct{ d time.Duration }

func (e *stallError) Error() string   { return fmt.Sprintf("no data moved for %v", e.d) }
func (e *stallError) Timeout() bool   { return true }
func (e *stallError) Temporary() bool { return true }
func (e *stallError) Unwrap() error   { return os.ErrDeadlineExceeded }

// stallConn fails a connection once no byte has moved in either direction
// for timeout: every Read and every chunk of a Write first moves both
// deadlines to now+timeout. Both directions share one window because HTTP/1
// reads the response while the request body is still being written: a read
// deadline of its own would fire during a long upload.
type stallConn struct {
	net.Conn
	timeout time.Duration
	// stall is set once a deadline passed: the transport then closes the
	// connection, and the other direction's "use of closed network
	// connection" is the same stall.
	stall atomic.Bool
}

func (c *stallConn) extend() error {
	return c.Conn.SetDeadline(time.Now().Add(c.timeout))
}

func (c *stallConn) Read(p []byte) (int, error) {
	if err := c.extend(); err != nil {
		return 0, c.stalled(err)
	}
	n, err := c.Conn.Read(p)
	return n, c.stalled(err)
}

func (c *stallConn) Write(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		if err := c.extend(); err != nil {
			return written, c.stalled(err)
		}
		n, err := c.Conn.Write(p[written:min(len(p), written+stallChunk)])
		written += n
		if err != nil {
			return written, c.stalled(err)
		}
	}
	return written, nil
}

func (c *stallConn) stalled(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.stall.Store(true)
	}
	if err != nil && c.stall.Load() {
		return &stallError{c.timeout}
	}
	return err
}

// stalled returns how long nothing moved if err is a stall: of a connection,
// or of a response that did not begin (the transport's response-header
// timeout, which fires with the connection's deadline).
func stalled(err error, stall time.Duration) (time.Duration, bool) {
	var se *stallError
	if errors.As(err, &se) {
		return se.d, true
	}
	if err != nil && strings.Contains(err.Error(), "timeout awaiting response headers") {
		return stall, true
	}
	return 0, false
}

// withDeadlines sets the deadlines above on tr, whose DialContext must be
// set (the SDK's transport has one).
func withDeadlines(tr *http.Transport, stall time.Duration) {
	dial := tr.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(ctx, dialTimeout)
		defer cancel()
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &stallConn{Conn: conn, timeout: stall}, nil
	}
	tr.TLSHandshakeTimeout = tlsTimeout
	tr.ResponseHeaderTimeout = stall
	// An idle pooled connection has no traffic, so its deadline would close
	// it while it waits; let the pool close it first, cleanly.
	tr.IdleConnTimeout = min(tr.IdleConnTimeout, stall/2)
	if tr.IdleConnTimeout <= 0 {
		tr.IdleConnTimeout = stall / 2
	}
}
