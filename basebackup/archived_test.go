package basebackup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/archive"
	"github.com/tusk-backup/tusk/compress"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/wal"
)

var quickWait = archiveWait{first: time.Millisecond, max: 5 * time.Millisecond,
	serverEvery: 5 * time.Millisecond, mismatch: 100 * time.Millisecond, warnEvery: 20 * time.Millisecond}

func putSegment(t *testing.T, st storage.Storage, seg string) {
	t.Helper()
	n, err := wal.ParseName(seg)
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
		// Timeline 1 ended in segment 8 (0/8000100): the backup needs
		// timeline 2's history file, 7 from timeline 1, and 8 and 9 from
		// timeline 2, as verify and a restore do. Timeline 1's 8 is no
		// substitute for timeline 2's, and the first and last segment
		// alone are not enough.
		st := newStore(t)
		for _, seg := range []string{"000000010000000000000007", "000000010000000000000008", "000000020000000000000009"} {
			putSegment(t, st, seg)
		}
		m := Meta{StartWAL: "000000010000000000000007", EndWAL: "000000020000000000000009", StartTLI: 1, EndTLI: 2}
		var waited []string
		// Each file is archived once waitArchived has said it waits for it.
		arrive := func(file string) {
			waited = append(waited, file)
			switch file {
			case "00000002.history":
				putHistory(t, st, file, "1\t0/8000100\tno recovery target specified\n")
			case "000000020000000000000008":
				putSegment(t, st, file)
			default:
				t.Errorf("waited for %s, which the backup does not need or which is archived", file)
			}
		}
		if err := waitArchived(t.Context(), idle, st, m, quickWait, func(string, ...any) {}, arrive); err != nil {
			t.Fatal(err)
		}
		if want := []string{"00000002.history", "000000020000000000000008"}; !slices.Equal(waited, want) {
			t.Fatalf("waited for %v, want %v", waited, want)
		}
	})
}

// putHistory archives a timeline history file as wal-push does.
func putHistory(t *testing.T, st storage.Storage, file, content string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), file)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &archive.Archive{Store: st, Codec: compress.Default, Log: slog.New(slog.DiscardHandler)}
	if _, err := a.Push(t.Context(), path, archive.PushOptions{}); err != nil {
		t.Fatal(err)
	}
}
