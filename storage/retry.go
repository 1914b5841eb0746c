package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"time"
)

// RetryPolicy is the budget of Retry: a failed call is tried Attempts times
// in all, pausing Backoff before the second try and twice as long before
// each later one.
type RetryPolicy struct {
	Attempts int
	Backoff  time.Duration
}

// DefaultRetry is the one retry budget of tusk's storage calls: three tries,
// 1 s then 2 s apart (3 s in all). It is short because it only covers what
// the backends leave over (see Retry), and long enough for a folder on a
// network file system to come back from a hiccup.
var DefaultRetry = RetryPolicy{Attempts: 3, Backoff: time.Second}

// finalError marks an error that Retry passes through at once.
type finalError struct{ err error }

func (e finalError) Error() string { return e.err.Error() }
func (e finalError) Unwrap() error { return e.err }

// Final marks err as one that a retry of the same call does not cure: a
// definite answer (access denied, a bad key), or a failure the backend has
// already retried within its own budget (the S3 backend marks every error
// its SDK gave up on). errors.Is and errors.As see through the mark.
func Final(err error) error {
	if err == nil || IsFinal(err) {
		return err
	}
	return finalError{err}
}

// IsFinal reports whether err was marked by Final.
func IsFinal(err error) bool {
	var f finalError
	return errors.As(err, &f)
}

// Retryable is the retry policy: whether a failed Get, Stat, List or Delete
// is tried again. Never a missing object or repository (an answer, not a
// failure), a done ctx, a refused permission, or an error marked Final;
// every other error is taken for transient.
func Retryable(ctx context.Context, err error) bool {
	switch {
	case err == nil, ctx.Err() != nil,
		errors.Is(err, ErrNotFound), errors.Is(err, ErrNoRepository),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, fs.ErrPermission), IsFinal(err):
		return false
	}
	return true
}

// Retry is the one retry decorator around a Storage: it retries reads and
// deletes (Get, Stat, List, Delete) that fail with an error Retryable
// accepts, within its RetryPolicy, logging each retry at Warn. Put is never
// retried here, because the reader cannot be replayed: the S3 backend
// retries its own requests, where it still holds the body.
//
// Get retries opening the object, and a body whose first Read fails before
// it has handed out any byte. A body that fails later is the caller's to
// restart (or not): the bytes already handed out cannot be taken back.
// List resumes after the last key it passed to fn, so fn never sees a key
// twice; an error of fn is returned at once.
type Retry struct {
	inner  Storage
	policy RetryPolicy
	log    *slog.Logger
}

// NewRetry wraps st. log gets a Warn line per retry.
func NewRetry(st Storage, p RetryPolicy, log *slog.Logger) *Retry {
	return &Retry{inner: st, policy: p, log: log}
}

// Unwrap implements Unwrapper.
func (r *Retry) Unwrap() Storage { return r.inner }

// try is one call's budget.
type try struct {
	r       *Retry
	op, key string
	n       int // tries made
	backoff time.Duration
}

func (r *Retry) start(op, key string) *try {
	return &try{r: r, op: op, key: key, backoff: r.policy.Backoff}
}

// again reports whether to try again after err, having waited; it returns
// ctx's error if ctx ends during the wait.
func (t *try) again(ctx context.Context, err error) (bool, error) {
	t.n++
	if t.n >= t.r.policy.Attempts || !Retryable(ctx, err) {
		return false, nil
	}
	t.r.log.Warn("storage call failed, retrying", "op", t.op, "key", t.key, "attempt", t.n, "retry_in", t.backoff, "error", err)
	tm := time.NewTimer(t.backoff)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return false, fmt.Errorf("%s %s: %w (while retrying after: %v)", t.op, t.key, ctx.Err(), err)
	case <-tm.C:
	}
	t.backoff *= 2
	return true, nil
}

// Put implements Storage, without retries.
func (r *Retry) Put(ctx context.Context, key string, rd io.Reader) error {
	return r.inner.Put(ctx, key, rd)
}

// Get implements Storage.
func (r *Retry) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	t := r.start("get", key)
	rc, err := r.open(ctx, t)
	if err != nil {
		return nil, err
	}
	return &retryReader{ctx: ctx, t: t, rc: rc}, nil
}

func (r *Retry) open(ctx context.Context, t *try) (io.ReadCloser, error) {
	for {
		rc, err := r.inner.Get(ctx, t.key)
		if err == nil {
			return rc, nil
		}
		if ok, cerr := t.again(ctx, err); cerr != nil {
			return nil, cerr
		} else if !ok {
			return nil, err
		}
	}
}

// retryReader reopens the object when its first Read fails before any byte
// was handed out. It keeps the Get's ctx, as the body it wraps does: an
// io.Reader has no ctx parameter of its own.
type retryReader struct {
	ctx     context.Context
	t       *try
	rc      io.ReadCloser
	started bool // a byte was handed out, or the body ended
}

func (b *retryReader) Read(p []byte) (int, error) {
	for {
		n, err := b.rc.Read(p)
		if n > 0 || err == nil || err == io.EOF || b.started || len(p) == 0 {
			b.started = b.started || n > 0 || err != nil
			return n, err
		}
		ok, cerr := b.t.again(b.ctx, err)
		if cerr != nil {
			return 0, cerr
		}
		if !ok {
			b.started = true
			return 0, err
		}
		b.rc.Close()
		rc, oerr := b.t.r.open(b.ctx, b.t)
		if oerr != nil {
			b.rc, b.started = eofBody{}, true
			return 0, oerr
		}
		b.rc = rc
	}
}

func (b *retryReader) Close() error { return b.rc.Close() }

// eofBody stands in for a body that could not be reopened.
type eofBody struct{}

func (eofBody) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }
func (eofBody) Close() error             { return nil }

// Stat implements Storage.
func (r *Retry) Stat(ctx context.Context, key string) (Object, error) {
	t := r.start("stat", key)
	for {
		o, err := r.inner.Stat(ctx, key)
		if err == nil {
			return o, nil
		}
		if ok, cerr := t.again(ctx, err); cerr != nil {
			return o, cerr
		} else if !ok {
			return o, err
		}
	}
}

// List implements Storage. A retried listing skips the keys up to the last
// one fn saw: keys come in ascending order, so fn sees each key once.
func (r *Retry) List(ctx context.Context, prefix string, fn func(Object) error) error {
	t := r.start("list", prefix)
	var last string
	seen := false
	for {
		var fnErr error
		err := r.inner.List(ctx, prefix, func(o Object) error {
			if seen && o.Key <= last {
				return nil
			}
			if fnErr = fn(o); fnErr != nil {
				return fnErr
			}
			last, seen = o.Key, true
			return nil
		})
		if err == nil || (fnErr != nil && errors.Is(err, fnErr)) {
			return err
		}
		if ok, cerr := t.again(ctx, err); cerr != nil {
			return cerr
		} else if !ok {
			return err
		}
	}
}

// Delete implements Storage. Deleting is idempotent (a missing key is no
// error), so a failed call is repeated whole.
func (r *Retry) Delete(ctx context.Context, keys ...string) error {
	key := ""
	if len(keys) > 0 {
		key = keys[0]
	}
	t := r.start("delete", key)
	for {
		err := r.inner.Delete(ctx, keys...)
		if err == nil {
			return nil
		}
		if ok, cerr := t.again(ctx, err); cerr != nil {
			return cerr
		} else if !ok {
			return err
		}
	}
}
