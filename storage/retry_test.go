package storage_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/storage/faulty"
	"github.com/tusk-backup/tusk/storage/local"
)

var fast = storage.RetryPolicy{Attempts: 3, Backoff: time.Millisecond}

func newRetry(t *testing.T, p storage.RetryPolicy) (*storage.Retry, *faulty.Store) {
	t.Helper()
	st, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := faulty.New(st)
	for _, k := range []string{"a/1", "a/2", "a/3"} {
		if err := f.Put(t.Context(), k, strings.NewReader(k)); err != nil {
			t.Fatal(err)
		}
	}
	return storage.NewRetry(f, p, slog.New(slog.DiscardHandler)), f
}

// call runs op against st and returns its error.
func call(ctx context.Context, st storage.Storage, op faulty.Op) error {
	switch op {
	case faulty.Get:
		rc, err := st.Get(ctx, "a/1")
		if err != nil {
			return err
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err == nil && string(b) != "a/1" {
			err = fmt.Errorf("read %q", b)
		}
		return err
	case faulty.Stat:
		_, err := st.Stat(ctx, "a/1")
		return err
	case faulty.List:
		var keys []string
		err := st.List(ctx, "a/", func(o storage.Object) error { keys = append(keys, o.Key); return nil })
		if err == nil && strings.Join(keys, " ") != "a/1 a/2 a/3" {
			err = fmt.Errorf("listed %v", keys)
		}
		return err
	case faulty.Delete:
		return st.Delete(ctx, "a/1")
	}
	panic(op)
}

var transient = &fs.PathError{Op: "read", Path: "x", Err: syscall.EIO}

func TestRetryTransient(t *testing.T) {
	t.Parallel()
	for _, op := range []faulty.Op{faulty.Get, faulty.Stat, faulty.List, faulty.Delete} {
		t.Run(string(op), func(t *testing.T) {
			t.Parallel()
			// Two failures fit in three tries.
			r, f := newRetry(t, fast)
			f.Inject(faulty.Fault{Op: op, Times: 2, Err: transient})
			if err := call(t.Context(), r, op); err != nil {
				t.Fatalf("after two transient failures: %v", err)
			}
			if n := f.Calls(op); n != 3 {
				t.Errorf("%d calls, want 3", n)
			}
			// Three do not, and the last error is returned.
			r, f = newRetry(t, fast)
			f.Inject(faulty.Fault{Op: op, Err: transient})
			if err := call(t.Context(), r, op); !errors.Is(err, syscall.EIO) {
				t.Fatalf("persistent failure: err = %v, want EIO", err)
			}
			if n := f.Calls(op); n != 3 {
				t.Errorf("%d calls, want 3 (the budget)", n)
			}
		})
	}
}

func TestRetryNeverRetries(t *testing.T) {
	t.Parallel()
	for name, err := range map[string]error{
		"not found":     fmt.Errorf("get x: %w", storage.ErrNotFound),
		"no repository": fmt.Errorf("get x: %w", storage.ErrNoRepository),
		"final":         storage.Final(errors.New("s3 gave up")),
		"permission":    &fs.PathError{Op: "open", Path: "x", Err: syscall.EACCES},
		"canceled":      fmt.Errorf("get x: %w", context.Canceled),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, op := range []faulty.Op{faulty.Get, faulty.Stat, faulty.List, faulty.Delete} {
				r, f := newRetry(t, fast)
				f.Inject(faulty.Fault{Op: op, Err: err})
				if got := call(t.Context(), r, op); !errors.Is(got, err) {
					t.Errorf("%s: err = %v, want %v", op, got, err)
				}
				if n := f.Calls(op); n != 1 {
					t.Errorf("%s: %d calls, want 1", op, n)
				}
			}
		})
	}
	// A real miss, through the folder backend.
	r, f := newRetry(t, fast)
	if _, err := r.Get(t.Context(), "missing"); !errors.Is(err, storage.ErrNotFound) || f.Calls(faulty.Get) != 1 {
		t.Errorf("missing key: err = %v after %d calls, want ErrNotFound after 1", err, f.Calls(faulty.Get))
	}
	// A bad key is final.
	if err := r.Delete(t.Context(), "../x"); err == nil || f.Calls(faulty.Delete) != 1 {
		t.Errorf("bad key: err = %v after %d calls, want an error after 1", err, f.Calls(faulty.Delete))
	}
}

func TestRetryCancel(t *testing.T) {
	t.Parallel()
	r, f := newRetry(t, storage.RetryPolicy{Attempts: 3, Backoff: time.Hour})
	f.Inject(faulty.Fault{Op: faulty.Stat, Err: transient})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := r.Stat(ctx, "a/1")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the ctx's", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("a cancelled retry took %v", d)
	}
	if n := f.Calls(faulty.Stat); n != 1 {
		t.Errorf("%d calls, want 1", n)
	}
}

// flaky fails a List after it listed one object, and a Get body's first
// Read, once each.
type flaky struct {
	storage.Storage
	listFailed, readFailed bool
}

func (f *flaky) List(ctx context.Context, prefix string, fn func(storage.Object) error) error {
	n := 0
	return f.Storage.List(ctx, prefix, func(o storage.Object) error {
		if n++; n == 2 && !f.listFailed {
			f.listFailed = true
			return transient
		}
		return fn(o)
	})
}

func (f *flaky) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := f.Storage.Get(ctx, key)
	if err != nil || f.readFailed {
		return rc, err
	}
	f.readFailed = true
	rc.Close()
	return io.NopCloser(iotestErrReader{transient}), nil
}

type iotestErrReader struct{ err error }

func (r iotestErrReader) Read([]byte) (int, error) { return 0, r.err }

func TestRetryResumes(t *testing.T) {
	t.Parallel()
	inner, _ := newRetry(t, fast)
	r := storage.NewRetry(&flaky{Storage: inner.Unwrap()}, fast, slog.New(slog.DiscardHandler))
	for _, op := range []faulty.Op{faulty.List, faulty.Get} {
		if err := call(t.Context(), r, op); err != nil {
			t.Errorf("%s: %v", op, err)
		}
	}
	// An error of fn is fn's, returned at once.
	stop := errors.New("stop")
	n := 0
	err := r.List(t.Context(), "a/", func(storage.Object) error { n++; return stop })
	if err != stop || n != 1 {
		t.Errorf("List with a failing fn = %v after %d calls, want stop after 1", err, n)
	}
}

// A capability below Retry and faulty is found through them and the Guard.
func TestRetryKeepsCapabilities(t *testing.T) {
	t.Parallel()
	r, _ := newRetry(t, fast)
	g := storage.NewGuard(r)
	if _, ok := storage.As[storage.Sweeper](g); !ok {
		t.Error("As[Sweeper] does not see the folder store through Guard, Retry and faulty")
	}
	if _, ok := storage.As[storage.Checker](g); !ok {
		t.Error("As[Checker] does not see the folder store through Guard, Retry and faulty")
	}
}
