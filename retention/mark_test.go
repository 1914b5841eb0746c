package retention

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/storage/faulty"
	"github.com/tusk-backup/tusk/storage/local"
)

// gate holds the calls of a faulty.Fault whose Hook it is until the test
// opens it.
type gate struct {
	reached chan string
	open    chan struct{}
}

func newGate() *gate { return &gate{reached: make(chan string, 1), open: make(chan struct{})} }

func (g *gate) hook(ctx context.Context, key string) error {
	g.reached <- key
	select {
	case <-g.open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// within receives from c, failing the test if nothing comes in time.
func within[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// markRepo is a repository with backups base_00 and base_01 (three parts
// each) behind a faulty store, and a plan that deletes base_00.
func markRepo(t *testing.T) (inner storage.Storage, st *faulty.Store, p Plan) {
	t.Helper()
	inner, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fill(t, inner, 2)
	inv, err := Read(t.Context(), inner)
	if err != nil {
		t.Fatal(err)
	}
	if p, err = Target(inv, TargetOptions{Name: "base_00"}); err != nil {
		t.Fatal(err)
	}
	return inner, faulty.New(inner), p
}

type markOutcome struct {
	res MarkResult
	err error
}

type executeOutcome struct {
	r   Report
	err error
}

var fastMark = MarkOptions{Wait: 10 * time.Second, Poll: time.Millisecond}

// TestMarkRacesDelete runs backup-mark's half of the protocol (Mark) against
// Execute's, holding each at the calls where they can interleave: mark just
// before it writes the metadata, the delete at one of its steps. Whatever
// the order, a backup is either spared and marked (mark succeeds) or deleted
// whole (mark says so), and never left as metadata without parts.
func TestMarkRacesDelete(t *testing.T) {
	const name = "base_00"
	meta, tomb := basebackup.MetaKey(name), basebackup.TombstoneKey(name)
	tests := []struct {
		name string
		// hold is the delete's call held while mark writes; nil: the whole
		// delete runs before mark writes.
		hold   *faulty.Fault
		spared bool
	}{
		// The tombstone is written between mark's check and its write; the
		// re-read (the second Get of the metadata, after mark's own) sees
		// the mark.
		{"tombstone before the write, re-read after it", &faulty.Fault{Op: faulty.Get, Prefix: meta, Skip: 1, Times: 1}, true},
		// The delete has read the metadata and deletes the mark's write.
		{"re-read before the write, metadata deleted after it", &faulty.Fault{Op: faulty.Delete, Prefix: meta, Times: 1}, false},
		// The write brings the metadata back after the delete removed it
		// and its parts; mark removes it again.
		{"metadata and parts deleted before the write", &faulty.Fault{Op: faulty.Delete, Prefix: tomb, Times: 1}, false},
		{"the whole delete before the write", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			inner, st, plan := markRepo(t)
			write := newGate()
			st.Inject(faulty.Fault{Op: faulty.Put, Prefix: meta, Times: 1, Hook: write.hook})
			// Mark's first look for the tombstone after its own check: its
			// write has landed.
			written := make(chan struct{}, 1)
			st.Inject(faulty.Fault{Op: faulty.Stat, Prefix: tomb, Skip: 1, Times: 1, Hook: func(context.Context, string) error {
				written <- struct{}{}
				return nil
			}})
			del := newGate()
			if tc.hold != nil {
				f := *tc.hold
				f.Hook = del.hook
				st.Inject(f)
			}

			marked := make(chan markOutcome, 1)
			go func() {
				res, err := Mark(ctx, st, name, true, fastMark)
				marked <- markOutcome{res, err}
			}()
			within(t, write.reached, "mark's write")
			executed := make(chan executeOutcome, 1)
			go func() {
				r, err := Execute(ctx, st, plan, nil)
				executed <- executeOutcome{r, err}
			}()
			var ex executeOutcome
			if tc.hold != nil {
				within(t, del.reached, "the delete's step")
			} else {
				ex = within(t, executed, "the delete")
			}
			close(write.open)
			if tc.hold != nil {
				// Mark now waits for the tombstone; let the delete go on
				// once the write has landed.
				within(t, written, "mark's write to land")
				close(del.open)
				ex = within(t, executed, "the delete")
			}
			mk := within(t, marked, "mark")

			if ex.err != nil {
				t.Fatalf("delete: %v", ex.err)
			}
			if _, err := inner.Stat(ctx, tomb); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("tombstone left behind: %v", err)
			}
			listed := checkListed(t, inner) // every listed backup has its parts
			data, err := hasData(ctx, inner, name)
			if err != nil {
				t.Fatal(err)
			}
			if tc.spared {
				if mk.err != nil || !mk.res.Changed || !mk.res.Meta.Permanent {
					t.Fatalf("mark = %+v, %v; want it marked", mk.res, mk.err)
				}
				if !slices.Equal(ex.r.Skipped, []string{name}) || len(ex.r.Backups) != 0 {
					t.Fatalf("delete skipped %v and deleted %v; want %s spared", ex.r.Skipped, ex.r.Backups, name)
				}
				if m, err := basebackup.ReadMeta(ctx, inner, name); err != nil || !m.Permanent || !data {
					t.Fatalf("after the spare: permanent %v, parts %v, %v", m.Permanent, data, err)
				}
				return
			}
			if !errors.Is(mk.err, ErrDeletedWhileMarking) || strings.Contains(mk.err.Error(), "\n") {
				t.Fatalf("mark = %+v, %v; want one sentence that it was deleted", mk.res, mk.err)
			}
			if !slices.Equal(ex.r.Backups, []string{name}) {
				t.Fatalf("delete deleted %v, want [%s]", ex.r.Backups, name)
			}
			if _, err := inner.Stat(ctx, meta); !errors.Is(err, storage.ErrNotFound) || data {
				t.Fatalf("after the delete: metadata %v, parts %v; want neither", err, data)
			}
			if len(listed) != 1 || listed[0].Name != "base_01" {
				t.Fatalf("listed %v, want base_01 alone", listed)
			}
		})
	}
}

// A delete killed after its tombstone leaves it; mark refuses in one
// sentence and writes nothing, and the next delete finishes the backup.
func TestMarkRefusesTombstone(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	inner, st, plan := markRepo(t)
	boom := errors.New("killed")
	st.Inject(faulty.Fault{Op: faulty.Delete, Prefix: basebackup.MetaKey("base_00"), Err: boom})
	if _, err := Execute(ctx, st, plan, nil); !errors.Is(err, boom) {
		t.Fatalf("delete: %v", err)
	}
	st.Clear()
	_, err := Mark(ctx, st, "base_00", true, fastMark)
	if !errors.Is(err, ErrBeingDeleted) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "run the delete again") {
		t.Fatalf("mark = %v; want one sentence that the backup is being deleted", err)
	}
	if m, err := basebackup.ReadMeta(ctx, inner, "base_00"); err != nil || m.Permanent {
		t.Fatalf("mark wrote: permanent %v, %v", m.Permanent, err)
	}
	if st.Calls(faulty.Put) != 1 { // the delete's tombstone
		t.Fatalf("%d Puts, want only the tombstone's", st.Calls(faulty.Put))
	}
}

// A tombstone that appears after mark's check and outlives the wait (a
// delete killed just after writing it) fails the mark in one sentence; what
// mark wrote stays, since only the next delete can decide.
func TestMarkWaitsForTombstone(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	inner, st, _ := markRepo(t)
	write := newGate()
	st.Inject(faulty.Fault{Op: faulty.Put, Prefix: basebackup.MetaKey("base_00"), Times: 1, Hook: write.hook})
	marked := make(chan error, 1)
	go func() {
		_, err := Mark(ctx, st, "base_00", true, MarkOptions{Wait: 50 * time.Millisecond, Poll: time.Millisecond})
		marked <- err
	}()
	within(t, write.reached, "mark's write")
	if err := inner.Put(ctx, basebackup.TombstoneKey("base_00"), strings.NewReader("{}")); err != nil {
		t.Fatal(err)
	}
	close(write.open)
	err := within(t, marked, "mark")
	if !errors.Is(err, ErrBeingDeleted) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "has not finished") {
		t.Fatalf("mark = %v; want one sentence that a delete has not finished", err)
	}
	if m, err := basebackup.ReadMeta(ctx, inner, "base_00"); err != nil || !m.Permanent {
		t.Fatalf("after the wait: permanent %v, %v", m.Permanent, err)
	}
}

// Marking and unmarking without a delete: the second of two marks finds
// nothing to do.
func TestMark(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, st, _ := markRepo(t)
	for i, c := range []struct{ permanent, changed bool }{{true, true}, {true, false}, {false, true}, {false, false}} {
		res, err := Mark(ctx, st, "base_01", c.permanent, fastMark)
		if err != nil || res.Changed != c.changed || res.Meta.Permanent != c.permanent {
			t.Fatalf("mark %d (permanent %v) = %+v, %v", i, c.permanent, res, err)
		}
	}
	if _, err := Mark(ctx, st, "base_09", true, fastMark); !errors.Is(err, basebackup.ErrNoBackup) {
		t.Fatalf("mark of a missing backup: %v", err)
	}
}
