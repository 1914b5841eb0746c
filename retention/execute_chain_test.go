package retention

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/storage/faulty"
	"github.com/tusk-backup/tusk/storage/local"
)

// fillWeek stores week's backups, two parts each, and WAL segments 1..32.
func fillWeek(t *testing.T, st storage.Storage) {
	t.Helper()
	ctx := t.Context()
	for _, m := range week() {
		m.Format = 1
		for p := 1; p <= 2; p++ {
			key := fmt.Sprintf("%sbase.%d.tar.s2", basebackup.DataPrefix(m.Name), p)
			if err := st.Put(ctx, key, strings.NewReader("part")); err != nil {
				t.Fatal(err)
			}
			m.Parts = append(m.Parts, basebackup.Part{Key: key, Archive: "base", Seq: p})
		}
		m.Manifest = basebackup.Part{Key: basebackup.DataPrefix(m.Name) + "backup_manifest.s2", Archive: "manifest"}
		if err := basebackup.WriteMeta(ctx, st, m); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 32; i++ {
		if err := st.Put(ctx, "wal/0000000100000000/"+seg(1, uint32(i)), strings.NewReader("wal")); err != nil {
			t.Fatal(err)
		}
	}
}

// checkChains fails unless every listed backup has all its parts and its
// whole chain listed; it returns the listed names.
func checkChains(t *testing.T, st storage.Storage, what string) []string {
	t.Helper()
	ms := checkListed(t, st)
	for _, m := range ms {
		if _, missing := basebackup.Chain(ms, m.Name); missing != "" {
			t.Fatalf("%s: listed backup %s misses %s of its chain", what, m.Name, missing)
		}
	}
	return names(ms)
}

func plansAndRuns(t *testing.T, st storage.Storage, plan func(Inventory) (Plan, error)) error {
	inv, err := Read(t.Context(), st)
	if err != nil {
		return err
	}
	p, err := plan(inv)
	if err != nil {
		return err
	}
	_, err = Execute(t.Context(), st, p, nil)
	return err
}

// TestExecuteChainsInterrupted fails every Delete and Put of a delete of
// whole chains in turn: after each failure every listed backup still has
// its whole chain (dependents go first), and a second run ends as planned.
func TestExecuteChainsInterrupted(t *testing.T) {
	boom := errors.New("injected")
	plans := []struct {
		name string
		plan func(Inventory) (Plan, error)
		left []string
	}{
		{"retain FULL 1", func(inv Inventory) (Plan, error) {
			return Retain(inv, RetainOptions{Keep: 1, Full: true, Now: time.Now()})
		}, []string{"F6", "I7"}},
		{"target FIND_FULL", func(inv Inventory) (Plan, error) {
			return Target(inv, TargetOptions{Name: "F3", FindFull: true})
		}, []string{"F0", "I1", "I2", "F6", "I7"}},
	}
	for _, pl := range plans {
		for _, op := range []faulty.Op{faulty.Delete, faulty.Put} {
			for skip := 0; ; skip++ {
				base, err := local.New(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				fillWeek(t, base)
				st := faulty.New(base)
				st.Inject(faulty.Fault{Op: op, Skip: skip, Times: 1, Err: boom})
				err = plansAndRuns(t, st, pl.plan)
				what := fmt.Sprintf("%s, %s fault %d", pl.name, op, skip)
				checkChains(t, st, what)
				st.Clear()
				if err2 := plansAndRuns(t, st, pl.plan); err2 != nil && !(pl.name == "target FIND_FULL" && errors.Is(err2, basebackup.ErrNoBackup)) {
					t.Fatalf("%s: second run: %v", what, err2)
				}
				if got := checkChains(t, st, what); !slices.Equal(got, pl.left) {
					t.Fatalf("%s: left %v, want %v", what, got, pl.left)
				}
				if err == nil {
					t.Logf("%s, %s: %d calls covered", pl.name, op, skip)
					break
				}
			}
		}
	}
}

// TestExecuteSparesChains: what a backup marked permanent since the plan
// (by a tusk that marked only it), or an incremental backup-push begun
// since, is built on stays.
func TestExecuteSparesChains(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*testing.T, storage.Storage)
		skipped []string
		needed  []string
		left    []string
	}{
		{"marked permanent meanwhile", func(t *testing.T, st storage.Storage) { markPermanent(t, st, "I2") },
			[]string{"I2"}, []string{"I1", "F0"}, []string{"F0", "I1", "I2", "F6", "I7"}},
		{"an incremental backup-push began meanwhile", func(t *testing.T, st storage.Storage) {
			key := basebackup.StartedKey(nameAt(9))
			if err := st.Put(t.Context(), key, strings.NewReader(`{"name":"`+nameAt(9)+`","run":"r","parent":"I4"}`)); err != nil {
				t.Fatal(err)
			}
		}, nil, []string{"I4", "F3"}, []string{"F3", "I4", "F6", "I7"}},
		{"a full backup-push began meanwhile", func(t *testing.T, st storage.Storage) {
			if err := st.Put(t.Context(), basebackup.StartedKey(nameAt(9)), strings.NewReader(`{"name":"x","run":"r"}`)); err != nil {
				t.Fatal(err)
			}
		}, nil, nil, []string{"F6", "I7"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := local.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			fillWeek(t, st)
			inv, err := Read(t.Context(), st)
			if err != nil {
				t.Fatal(err)
			}
			p, err := Retain(inv, RetainOptions{Keep: 1, Full: true, Now: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			tc.change(t, st)
			r, err := Execute(t.Context(), st, p, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(r.Skipped, tc.skipped) || !slices.Equal(r.KeptNeeded, tc.needed) {
				t.Errorf("skipped %v, kept as needed %v; want %v, %v", r.Skipped, r.KeptNeeded, tc.skipped, tc.needed)
			}
			if got := checkChains(t, st, tc.name); !slices.Equal(got, tc.left) {
				t.Errorf("left %v, want %v", got, tc.left)
			}
			// The WAL the kept chains need stays: from the oldest one's start.
			if left := walLeft(t, st); len(left) == 0 || left[0] > firstStart(t, st) {
				t.Errorf("WAL left %v, want from %s", left, firstStart(t, st))
			}
		})
	}
}

// firstStart is the start segment of the oldest listed backup.
func firstStart(t *testing.T, st storage.Storage) string {
	t.Helper()
	ms := checkListed(t, st)
	return ms[0].StartWAL
}

// TestReadRunningParent: Read takes the parent an unfinished backup's
// backup_started.json names, and says when it cannot read one.
func TestReadRunningParent(t *testing.T) {
	st, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fillWeek(t, st)
	for name, body := range map[string]string{nameAt(8): `{"name":"a","parent":"I7"}`, nameAt(9): `{"name":`, nameAt(10): `{"name":"c"}`} {
		if err := st.Put(t.Context(), basebackup.StartedKey(name), strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	inv, err := Read(t.Context(), st)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Leftover{}
	for _, l := range inv.Leftovers {
		got[l.Name] = l
	}
	if got[nameAt(8)].Parent != "I7" || got[nameAt(9)].StartedErr == "" || got[nameAt(10)].Parent != "" || got[nameAt(10)].StartedErr != "" {
		t.Errorf("leftovers %+v", inv.Leftovers)
	}
}
