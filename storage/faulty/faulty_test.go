package faulty

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/storage/local"
	"github.com/tusk-backup/tusk/storage/storagetest"
)

func newLocal(t *testing.T) storage.Storage {
	st, err := local.New(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// Without faults the wrapper keeps the contract.
func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Storage { return New(newLocal(t)) }, storagetest.Options{Short: true})
}

func TestFaults(t *testing.T) {
	ctx := t.Context()
	st := New(newLocal(t))
	if err := st.Put(ctx, "wal/1", strings.NewReader("0123456789")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	st.Inject(Fault{Op: Get, Prefix: "wal/", Skip: 1, Times: 2, Err: boom})

	read := func() (string, error) {
		rc, err := st.Get(ctx, "wal/1")
		if err != nil {
			return "", err
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		return string(b), err
	}
	want := []error{nil, boom, boom, nil}
	for i, w := range want {
		if _, err := read(); !errors.Is(err, w) {
			t.Fatalf("call %d: err = %v, want %v", i, err, w)
		}
	}
	if st.Calls(Get) != 4 {
		t.Fatalf("Calls(Get) = %d, want 4", st.Calls(Get))
	}

	st.Clear()
	st.Inject(Fault{Op: Get, TruncateAt: 4, ReadErr: io.ErrUnexpectedEOF})
	if got, err := read(); got != "0123" || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated read = %q, %v", got, err)
	}
	st.Clear()
	st.Inject(Fault{Op: Get, FlipAt: 1})
	if got, _ := read(); got == "0123456789" || got[1:] != "123456789" {
		t.Fatalf("flipped read = %q", got)
	}
	st.Clear()
	st.Inject(Fault{Op: Put, TruncateAt: 3})
	if err := st.Put(ctx, "wal/2", strings.NewReader("abcdef")); err != nil {
		t.Fatal(err)
	}
	if o, _ := st.Stat(ctx, "wal/2"); o.Size != 3 {
		t.Fatalf("lying Put stored %d bytes, want 3", o.Size)
	}
}

// The wrapper hides none of the inner store's capabilities, alone or below
// a Guard.
func TestCapabilitiesThroughWrapper(t *testing.T) {
	inner := newLocal(t)
	for name, st := range map[string]storage.Storage{
		"faulty":       New(inner),
		"guard/faulty": storage.NewGuard(New(inner)),
		"faulty/guard": New(storage.NewGuard(inner)),
	} {
		t.Run(name, func(t *testing.T) {
			sw, ok := storage.As[storage.Sweeper](st)
			if !ok || sw != inner.(storage.Sweeper) {
				t.Errorf("As[Sweeper] = %v, %v; want the folder store", sw, ok)
			}
			if _, ok := storage.As[storage.Checker](st); !ok {
				t.Error("As[Checker] does not find the folder store's Check")
			}
			if _, ok := storage.As[io.WriterTo](st); ok {
				t.Error("As found a capability nobody has")
			}
		})
	}
}

// A Hook runs with the call's key before the call and can hold it until the
// test lets it go, or fail it.
func TestHook(t *testing.T) {
	ctx := t.Context()
	st := New(newLocal(t))
	reached, release := make(chan string), make(chan struct{})
	st.Inject(Fault{Op: Put, Prefix: "a/", Times: 1, Hook: func(ctx context.Context, key string) error {
		reached <- key
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}})
	done := make(chan error, 1)
	go func() { done <- st.Put(ctx, "a/1", strings.NewReader("x")) }()
	if k := <-reached; k != "a/1" {
		t.Fatalf("hook saw key %q", k)
	}
	if _, err := st.Stat(ctx, "a/1"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("object stored while its Put was held: %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := st.Stat(ctx, "a/1"); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	st.Inject(Fault{Op: Stat, Hook: func(context.Context, string) error { return boom }})
	if _, err := st.Stat(ctx, "a/1"); !errors.Is(err, boom) {
		t.Fatalf("Stat with a failing hook: %v", err)
	}
}
