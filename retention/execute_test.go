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

// fill stores n backups with three parts each and WAL segments 1..4n.
func fill(t *testing.T, st storage.Storage, n int) {
	t.Helper()
	ctx := t.Context()
	for i := range n {
		m := backup(fmt.Sprintf("base_%02d", i), "A", i, uint32(4*i+1), uint32(4*i+2), false)
		m.Format = 1
		for p := 1; p <= 3; p++ {
			key := fmt.Sprintf("%sbase.%d.tar.s2", basebackup.DataPrefix(m.Name), p)
			if err := st.Put(ctx, key, strings.NewReader("part")); err != nil {
				t.Fatal(err)
			}
			m.Parts = append(m.Parts, basebackup.Part{Key: key, Archive: "base", Seq: p})
		}
		// Listed (metadata needs one) but not stored: deletes go by prefix.
		m.Manifest = basebackup.Part{Key: basebackup.DataPrefix(m.Name) + "backup_manifest.s2", Archive: "manifest"}
		if err := basebackup.WriteMeta(ctx, st, m); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 4*n; i++ {
		if err := st.Put(ctx, fmt.Sprintf("wal/0000000100000000/%s", seg(1, uint32(i))), strings.NewReader("wal")); err != nil {
			t.Fatal(err)
		}
	}
}

// checkListed fails unless every listed backup has all its parts.
func checkListed(t *testing.T, st storage.Storage) []basebackup.Meta {
	t.Helper()
	ms, err := basebackup.List(t.Context(), st, func(key string, err error) { t.Errorf("%s: %v", key, err) })
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		for _, p := range m.Parts {
			if _, err := st.Stat(t.Context(), p.Key); err != nil {
				t.Fatalf("listed backup %s misses part %s: %v", m.Name, p.Key, err)
			}
		}
	}
	return ms
}

func retainAndCollect(t *testing.T, st storage.Storage) error {
	inv, err := Read(t.Context(), st)
	if err != nil {
		return err
	}
	p, err := Retain(inv, RetainOptions{Keep: 2, Now: time.Now()})
	if err != nil {
		return err
	}
	if _, err := Execute(t.Context(), st, p, nil); err != nil {
		return err
	}
	inv, err = Read(t.Context(), st)
	if err != nil {
		return err
	}
	if p, err = Garbage(inv, GarbageOptions{LeftoverAge: 0, Now: time.Now(), WAL: true, Leftovers: true}); err != nil {
		return err
	}
	_, err = Execute(t.Context(), st, p, nil)
	return err
}

// TestExecuteInterrupted fails every Delete and Put in turn: after each
// failure no listed backup misses a part, and a second run ends with exactly
// the two newest backups, their WAL onward, and nothing else.
func TestExecuteInterrupted(t *testing.T) {
	boom := errors.New("injected")
	for _, op := range []faulty.Op{faulty.Delete, faulty.Put} {
		for skip := 0; ; skip++ {
			dir := t.TempDir()
			base, err := local.New(dir)
			if err != nil {
				t.Fatal(err)
			}
			fill(t, base, 5)
			st := faulty.New(base)
			st.Inject(faulty.Fault{Op: op, Skip: skip, Times: 1, Err: boom})
			err = retainAndCollect(t, st)
			checkListed(t, st)
			st.Clear()
			if err := retainAndCollect(t, st); err != nil {
				t.Fatalf("%s fault %d: second run: %v", op, skip, err)
			}
			ms := checkListed(t, st)
			if len(ms) != 2 || ms[0].Name != "base_03" || ms[1].Name != "base_04" {
				t.Fatalf("%s fault %d: left %v", op, skip, ms)
			}
			var keys []string
			base.List(t.Context(), "", func(o storage.Object) error { keys = append(keys, o.Key); return nil })
			// 2 metadata + 6 parts + WAL 13..20.
			if len(keys) != 16 || keys[0] != "backups/base_03.json" || keys[8] != "wal/0000000100000000/"+seg(1, 13) {
				t.Fatalf("%s fault %d: repository holds %v", op, skip, keys)
			}
			if err == nil {
				t.Logf("%s: %d calls covered", op, skip)
				break // the fault came after the last call: every call was covered
			}
		}
	}
}

// TestExecuteSparesBackupMarkedMeanwhile: a backup marked permanent after the
// plan was made is not deleted.
func TestExecuteSparesBackupMarkedMeanwhile(t *testing.T) {
	st, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fill(t, st, 3)
	inv, err := Read(t.Context(), st)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Retain(inv, RetainOptions{Keep: 1, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	m, err := basebackup.ReadMeta(t.Context(), st, "base_00")
	if err != nil {
		t.Fatal(err)
	}
	m.Permanent = true
	if err := basebackup.WriteMeta(t.Context(), st, m); err != nil {
		t.Fatal(err)
	}
	r, err := Execute(t.Context(), st, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	ms := checkListed(t, st)
	if len(ms) != 2 || ms[0].Name != "base_00" || len(r.Skipped) != 1 || len(r.Backups) != 1 {
		t.Fatalf("left %v, report %+v", ms, r)
	}
	// The plan deleted WAL 1..8 (keeping 9 on for base_02); base_00's own
	// range 1..2 now stays, and the rest goes.
	if got := walLeft(t, st); r.WALDeleted != 6 || r.WALSpared != 2 || got[0] != seg(1, 1) || got[2] != seg(1, 9) {
		t.Fatalf("deleted %d WAL objects, spared %d, left %v", r.WALDeleted, r.WALSpared, got)
	}
}

// walLeft lists the WAL segments st holds.
func walLeft(t *testing.T, st storage.Storage) []string {
	t.Helper()
	var out []string
	if err := st.List(t.Context(), "wal/", func(o storage.Object) error {
		out = append(out, o.Key[strings.LastIndexByte(o.Key, '/')+1:])
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// markPermanent rewrites backup name's metadata as permanent.
func markPermanent(t *testing.T, st storage.Storage, name string) {
	t.Helper()
	m, err := basebackup.ReadMeta(t.Context(), st, name)
	if err != nil {
		t.Fatal(err)
	}
	m.Permanent = true
	if err := basebackup.WriteMeta(t.Context(), st, m); err != nil {
		t.Fatal(err)
	}
}

// TestExecuteEverythingForce: everything FORCE deletes the backups that were
// permanent when it planned, and all WAL; a backup that became permanent
// after the plan is spared with the WAL it needs (from its start on, as
// NeededWAL keeps for a repository of permanent backups), the rest goes.
func TestExecuteEverythingForce(t *testing.T) {
	tests := []struct {
		name       string
		markLater  string // marked permanent after the plan
		wantLeft   []string
		wantWAL    int // segments left of 1..12
		wantSpared int
	}{
		{"permanent when planned", "", nil, 0, 0},
		{"marked permanent meanwhile", "base_01", []string{"base_01"}, 8, 8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := local.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			fill(t, st, 3)
			markPermanent(t, st, "base_00")
			inv, err := Read(t.Context(), st)
			if err != nil {
				t.Fatal(err)
			}
			p, err := Everything(inv, EverythingOptions{Force: true, Now: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			if tc.markLater != "" {
				markPermanent(t, st, tc.markLater)
			}
			r, err := Execute(t.Context(), st, p, nil)
			if err != nil {
				t.Fatal(err)
			}
			var left []string
			for _, m := range checkListed(t, st) {
				left = append(left, m.Name)
			}
			if !slices.Equal(left, tc.wantLeft) || !slices.Equal(r.Skipped, tc.wantLeft) {
				t.Fatalf("left %v, skipped %v, want %v", left, r.Skipped, tc.wantLeft)
			}
			wal := walLeft(t, st)
			if len(wal) != tc.wantWAL || r.WALSpared != tc.wantSpared || r.WALDeleted != 12-tc.wantWAL {
				t.Fatalf("WAL left %v, spared %d, deleted %d", wal, r.WALSpared, r.WALDeleted)
			}
			if tc.wantWAL > 0 && wal[0] != seg(1, 5) {
				t.Fatalf("WAL left from %s, want from base_01's start %s", wal[0], seg(1, 5))
			}
		})
	}
}

// TestExecuteWALAfterPlan: Execute deletes the WAL its plan counted, in a
// second listing, and nothing that changed since the plan could need: WAL
// archived after the plan was counted, and the WAL from the start of any
// backup or unfinished backup that appeared since (of another cluster on the
// same prefix, the only one whose WAL can lie before the plan's KeepFrom).
func TestExecuteWALAfterPlan(t *testing.T) {
	perm := backup("base_"+seg(1, 4)+"_20261101T030000Z", "A", 0, 4, 5, true)
	x := backup("base_"+seg(1, 0x10)+"_20261102T030000Z", "A", 1, 0x10, 0x11, false)
	var files []string
	for i := uint32(1); i <= 0x12; i++ {
		if i != 3 {
			files = append(files, seg(1, i))
		}
	}
	rangeOf := func(a, b uint32) []string {
		var out []string
		for i := a; i <= b; i++ {
			out = append(out, seg(1, i))
		}
		return out
	}
	put := func(key string) func(*testing.T, *synthStore) {
		return func(t *testing.T, st *synthStore) {
			if err := st.Put(t.Context(), key, strings.NewReader("0123456789")); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name    string
		perm    bool                          // perm is a kept permanent backup (its metadata is in the store)
		change  func(*testing.T, *synthStore) // after the plan, an hour later
		left    []string                      // WAL left of 1..0x12
		deleted int
		kept    int // Report.WALKeptForNew
	}{
		{"as planned", false, nil, rangeOf(0x10, 0x12), 14, 0},
		{"WAL archived after the plan is kept", false, put("wal/0000000100000000/" + seg(1, 3)), rangeOf(3, 3), 14, 0},
		{"WAL after the last counted one is kept", false, func(t *testing.T, st *synthStore) {
			st.objs["wal/0000000200000000/"+seg(2, 3)] = synthObj{[]byte("0123456789"), t0} // even with an old time
		}, nil, 14, 0},
		{"a backup started since keeps the WAL from its start", false,
			put("backups/base_" + seg(1, 7) + "_20261201T030000Z/backup_started.json"), rangeOf(7, 0xF), 5, 9},
		{"a backup finished since keeps the WAL from its start", false,
			put("backups/base_" + seg(1, 0xA) + "_20261201T030000Z.json"), rangeOf(0xA, 0xF), 8, 6},
		{"an unfinished backup since whose name does not tell keeps all", false,
			put("backups/nightly/backup_started.json"), files, 0, 14},
		{"a tombstone since is no backup", false, put("backups/base_" + seg(1, 7) + "_20261201T030000Z.deleting"), nil, 14, 0},
		{"a kept permanent backup is no newcomer", true, nil, rangeOf(4, 5), 12, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := walStore(t, files...)
			inv := Inventory{Backups: []basebackup.Meta{x}}
			if tc.perm {
				inv.Backups = []basebackup.Meta{perm, x}
				m := perm
				m.Format = 1
				if err := basebackup.WriteMeta(t.Context(), st, m); err != nil {
					t.Fatal(err)
				}
			}
			p, err := Garbage(inv, GarbageOptions{Now: t0.Add(30 * 24 * time.Hour), WAL: true})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.CountWAL(t.Context(), st); err != nil {
				t.Fatal(err)
			}
			if tc.change != nil {
				st.now = t0.Add(time.Hour)
				tc.change(t, st)
			}
			r, err := Execute(t.Context(), st, p, nil)
			if err != nil {
				t.Fatal(err)
			}
			var left []string
			for k := range st.objs {
				if rest, ok := strings.CutPrefix(k, "wal/0000000100000000/"); ok {
					left = append(left, rest)
				}
			}
			slices.Sort(left)
			want := append(slices.Clone(tc.left), rangeOf(0x10, 0x12)...)
			slices.Sort(want)
			want = slices.Compact(want)
			if !slices.Equal(left, want) || r.WALDeleted != tc.deleted || r.WALKeptForNew != tc.kept || r.WALSpared != 0 {
				t.Errorf("left %v\nwant %v\ndeleted %d (want %d), kept for new backups %d (want %d)", left, want, r.WALDeleted, tc.deleted, r.WALKeptForNew, tc.kept)
			}
		})
	}
}
