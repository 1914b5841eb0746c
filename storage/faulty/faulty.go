// Package faulty wraps a storage.Storage and injects faults into chosen calls:
// errors, delays, truncated or corrupted reads. It exists for the tests of the
// layers above storage.
package faulty

import (
	"context"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/tusk-backup/tusk/storage"
)

// Op names a storage call.
type Op string

// The storage calls a Fault can target.
const (
	Put    Op = "put"
	Get    Op = "get"
	Stat   Op = "stat"
	List   Op = "list"
	Delete Op = "delete"
)

// Fault describes what goes wrong on matching calls.
type Fault struct {
	Op     Op
	Prefix string // only keys (or list prefixes) starting with Prefix; "" matches all
	Skip   int    // let this many matching calls through first
	Times  int    // fire this many times, then stop; 0 means forever

	Delay time.Duration // sleep (respecting ctx) before the call
	Err   error         // fail the call with Err (after Delay and Hook)

	// Hook, if set, runs before the call (after Delay), in the caller's
	// goroutine, with the call's ctx and key (a list's prefix, a delete's
	// first key); an error it returns fails the call. A test uses it to
	// pause a call until it lets it go on (block on a channel and on
	// ctx.Done()), or to act at an exact point between two calls.
	Hook func(ctx context.Context, key string) error

	// For Get: the body ends after TruncateAt bytes (>0); with ReadErr set the
	// truncated body ends with ReadErr instead of a clean EOF.
	TruncateAt int64
	ReadErr    error
	// For Get: flip the byte at FlipAt (>0 means offset FlipAt-1).
	FlipAt int64
	// For Put: the call stores only the first TruncateAt bytes and reports success
	// (a lying store), when TruncateAt > 0.
}

// Store is a fault-injecting storage.Storage.
type Store struct {
	inner storage.Storage

	mu     sync.Mutex
	faults []*state
	calls  map[Op]int
}

type state struct {
	Fault
	seen, fired int
}

// New wraps inner.
func New(inner storage.Storage) *Store {
	return &Store{inner: inner, calls: map[Op]int{}}
}

// Unwrap implements storage.Unwrapper, so that storage.As finds the inner
// store's optional capabilities (Check, Sweep) through the wrapper.
func (s *Store) Unwrap() storage.Storage { return s.inner }

// Inject adds a fault; faults are tried in the order they were added and the
// first matching one applies.
func (s *Store) Inject(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &state{Fault: f})
}

// Clear removes all faults.
func (s *Store) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// Calls reports how many calls of op reached the wrapper.
func (s *Store) Calls(op Op) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

func (s *Store) match(op Op, key string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[op]++
	for _, f := range s.faults {
		if f.Op != op || !strings.HasPrefix(key, f.Prefix) {
			continue
		}
		f.seen++
		if f.seen <= f.Skip || (f.Times > 0 && f.fired >= f.Times) {
			continue
		}
		f.fired++
		c := f.Fault
		return &c
	}
	return nil
}

func (s *Store) before(ctx context.Context, f *Fault, key string) error {
	if f == nil {
		return nil
	}
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	if f.Hook != nil {
		if err := f.Hook(ctx, key); err != nil {
			return err
		}
	}
	return f.Err
}

// Put implements storage.Storage.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) error {
	f := s.match(Put, key)
	if err := s.before(ctx, f, key); err != nil {
		return err
	}
	if f != nil && f.TruncateAt > 0 {
		if err := s.inner.Put(ctx, key, io.LimitReader(r, f.TruncateAt)); err != nil {
			return err
		}
		_, err := io.Copy(io.Discard, r)
		return err
	}
	return s.inner.Put(ctx, key, r)
}

// Get implements storage.Storage.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	f := s.match(Get, key)
	if err := s.before(ctx, f, key); err != nil {
		return nil, err
	}
	rc, err := s.inner.Get(ctx, key)
	if err != nil || f == nil || (f.TruncateAt <= 0 && f.FlipAt <= 0) {
		return rc, err
	}
	return &badReader{rc: rc, f: *f}, nil
}

// Stat implements storage.Storage.
func (s *Store) Stat(ctx context.Context, key string) (storage.Object, error) {
	if err := s.before(ctx, s.match(Stat, key), key); err != nil {
		return storage.Object{}, err
	}
	return s.inner.Stat(ctx, key)
}

// List implements storage.Storage.
func (s *Store) List(ctx context.Context, prefix string, fn func(storage.Object) error) error {
	if err := s.before(ctx, s.match(List, prefix), prefix); err != nil {
		return err
	}
	return s.inner.List(ctx, prefix, fn)
}

// Delete implements storage.Storage. A fault matches on the first key.
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	first := ""
	if len(keys) > 0 {
		first = keys[0]
	}
	if err := s.before(ctx, s.match(Delete, first), first); err != nil {
		return err
	}
	return s.inner.Delete(ctx, keys...)
}

type badReader struct {
	rc  io.ReadCloser
	f   Fault
	off int64
}

func (b *badReader) Read(p []byte) (int, error) {
	if b.f.TruncateAt > 0 {
		left := b.f.TruncateAt - b.off
		if left <= 0 {
			if b.f.ReadErr != nil {
				return 0, b.f.ReadErr
			}
			return 0, io.EOF
		}
		if int64(len(p)) > left {
			p = p[:left]
		}
	}
	n, err := b.rc.Read(p)
	if at := b.f.FlipAt - 1; b.f.FlipAt > 0 && at >= b.off && at < b.off+int64(n) {
		p[at-b.off] ^= 0xff
	}
	b.off += int64(n)
	return n, err
}

func (b *badReader) Close() error { return b.rc.Close() }
