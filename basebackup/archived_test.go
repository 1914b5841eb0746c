package basebackup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/archive"
	"github.com/tusk-backup/tusk/storage"
)

var quickWait = archiveWait{first: time.Millisecond, max: 5 * time.Millisecond,
	serverEvery: 5 * time.Millisecond, mismatch: 100 * time.Millisecond, warnEvery: 20 * time.Millisecond}

func putSegment(t *testing.T, st storage.Storage, seg string) {
	t.Helper()
	n, err := archive.ParseName(seg)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(context.Background(), n.Key(), bytes.NewReader([]byte("wal"))); err != nil {
		t.Fatal(err)
	}
}

// logRecorder collects waitArchived's warnings.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (l *logRecorder) log(msg string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprint(append([]any{msg}, args...)...))
}

func (l *logRecorder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func TestWaitArchived(t *testing.T) {
	m := Meta{StartWAL: "000000010000000000000007", EndWAL: "000000010000000000000009", StartTLI: 1, EndTLI: 1}
	idle := func(context.Context) (Archiver, error) { return Archiver{Mode: "on"}, nil }

	t.Run("segments arrive one after another", func(t *testing.T) {
		st := newStore(t)
		putSegment(t, st, "000000010000000000000007")
		var waited []string
		go func() {
			time.Sleep(20 * time.Millisecond)
			putSegment(t, st, "000000010000000000000008")
			time.Sleep(20 * time.Millisecond)
			putSegment(t, st, "000000010000000000000009")
		}()
		var log logRecorder
		w := quickWait
		w.warnEvery = time.Minute
		err := waitArchived(t.Context(), idle, st, m, w, log.log, func(seg string) {
			if len(waited) == 0 || waited[len(waited)-1] != seg {
				waited = append(waited, seg)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := "000000010000000000000008 000000010000000000000009"; strings.Join(waited, " ") != want {
			t.Fatalf("waited for %v, want %s", waited, want)
		}
		if log.String() != "" {
			t.Fatalf("warned on a short wait: %s", log.String())
		}
	})

	t.Run("failing archiver: waits and says why", func(t *testing.T) {
		st := newStore(t)
		failing := func(context.Context) (Archiver, error) {
			return Archiver{Mode: "on", Failing: true, LastFailed: "000000010000000000000007", LastFailedTime: "now"}, nil
		}
		go func() {
			time.Sleep(80 * time.Millisecond)
			for _, s := range []string{"07", "08", "09"} {
				putSegment(t, st, "0000000100000000000000"+s)
			}
		}()
		var log logRecorder
		if err := waitArchived(t.Context(), failing, st, m, quickWait, log.log, func(string) {}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(log.String(), "archiving is failing") {
			t.Fatalf("no warning that archiving fails: %q", log.String())
		}
	})

	t.Run("server archived it elsewhere", func(t *testing.T) {
		st := newStore(t)
		putSegment(t, st, "000000010000000000000007")
		elsewhere := func(context.Context) (Archiver, error) {
			return Archiver{Mode: "on", LastArchived: "00000001000000000000000A"}, nil
		}
		var log logRecorder
		err := waitArchived(t.Context(), elsewhere, st, m, quickWait, log.log, func(string) {})
		if err == nil || !strings.Contains(err.Error(), "000000010000000000000008") || !strings.Contains(err.Error(), "somewhere else") {
			t.Fatalf("got %v, want the wrong-repository error naming segment 8", err)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
		defer cancel()
		err := waitArchived(ctx, idle, newStore(t), m, quickWait, func(string, ...any) {}, func(string) {})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want the context's error", err)
		}
	})

	t.Run("server unreachable", func(t *testing.T) {
		broken := func(context.Context) (Archiver, error) { return Archiver{}, errors.New("connection reset") }
		err := waitArchived(t.Context(), broken, newStore(t), m, quickWait, func(string, ...any) {}, func(string) {})
		if err == nil || !strings.Contains(err.Error(), "connection reset") {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("timeline switch during the backup", func(t *testing.T) {
		st := newStore(t)
		putSegment(t, st, "000000010000000000000007")
		putSegment(t, st, "000000020000000000000009")
		m := Meta{StartWAL: "000000010000000000000007", EndWAL: "000000020000000000000009", StartTLI: 1, EndTLI: 2}
		if err := waitArchived(t.Context(), idle, st, m, quickWait, func(string, ...any) {}, func(string) {}); err != nil {
			t.Fatal(err)
		}
	})
}
