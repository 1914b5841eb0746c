package retention

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/wal"
)

var t0 = time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC)

// backup makes metadata for a backup of cluster sys that finished day days
// after t0 and spans segments first..last on timeline 1.
func backup(name, sys string, day int, first, last uint32, permanent bool) basebackup.Meta {
	return basebackup.Meta{
		Name: name, SystemID: sys, Permanent: permanent,
		FinishTime: t0.Add(time.Duration(day) * 24 * time.Hour),
		StartWAL:   fmt.Sprintf("00000001%08X%08X", 0, first),
		EndWAL:     fmt.Sprintf("00000001%08X%08X", 0, last),
		StoredSize: 100,
	}
}

func deleted(p Plan) []string {
	var out []string
	for _, m := range p.Deleting() {
		out = append(out, m.Name)
	}
	return out
}

// tenDays is ten daily backups of cluster "A" whose names sort in the
// opposite order of their finish times, so a plan that ordered by name would
// delete the newest.
func tenDays() []basebackup.Meta {
	var bs []basebackup.Meta
	for d := range 10 {
		bs = append(bs, backup(fmt.Sprintf("b%02d", 9-d), "A", d, uint32(d*4+2), uint32(d*4+3), false))
	}
	basebackup.SortBackups(bs)
	return bs
}

// permAt is tenDays with the backup of day d permanent.
func permAt(d int) []basebackup.Meta {
	bs := tenDays()
	bs[d].Permanent = true
	return bs
}

func TestRetain(t *testing.T) {
	now := t0.Add(10 * 24 * time.Hour)
	withPerm := tenDays()
	withPerm[1].Permanent = true
	twoClusters := append(tenDays(), backup("c0", "B", 0, 1, 1, false), backup("c1", "B", 1, 1, 1, false), backup("c2", "B", 2, 1, 1, false))
	basebackup.SortBackups(twoClusters)
	tests := []struct {
		name string
		bs   []basebackup.Meta
		opts RetainOptions
		want []string
	}{
		{"newest 7 by finish time, not by name", tenDays(), RetainOptions{Keep: 7}, []string{"b09", "b08", "b07"}},
		{"more than there are", tenDays(), RetainOptions{Keep: 20}, nil},
		{"permanent stays", withPerm, RetainOptions{Keep: 7}, []string{"b09", "b07"}},
		{"counted per cluster", twoClusters, RetainOptions{Keep: 2}, []string{"b09", "c0", "b08", "b07", "b06", "b05", "b04", "b03", "b02"}},
		{"after a time", tenDays(), RetainOptions{Keep: 2, After: &Bound{Time: t0.Add(5 * 24 * time.Hour)}}, []string{"b09", "b08", "b07", "b06", "b05"}},
		{"after a name", tenDays(), RetainOptions{Keep: 2, After: &Bound{Name: "b04"}}, []string{"b09", "b08", "b07", "b06", "b05"}},
		// Window of 3.5 days from day 10: backups of days 7, 8, 9 are inside,
		// day 6 is needed to restore to day 6.5.
		{"retain window", tenDays(), RetainOptions{Keep: 1, Window: 84 * time.Hour}, []string{"b09", "b08", "b07", "b06", "b05", "b04"}},
		// A permanent backup keeps only its own WAL, so it cannot be the
		// base for the window's start: day 5 is.
		{"retain window with a permanent base", permAt(6), RetainOptions{Keep: 1, Window: 84 * time.Hour}, []string{"b09", "b08", "b07", "b06", "b05"}},
		{"permanent not counted", permAt(9), RetainOptions{Keep: 2}, []string{"b09", "b08", "b07", "b06", "b05", "b04", "b03"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Now = now
			p, err := Retain(Inventory{Backups: tc.bs}, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := deleted(p); !slices.Equal(got, tc.want) {
				t.Errorf("deleted %v, want %v", got, tc.want)
			}
			if len(tc.want) == 0 && len(p.Notes) == 0 {
				t.Error("no note says there is nothing to delete")
			}
		})
	}
	for _, n := range []int{0, -1} {
		if _, err := Retain(Inventory{Backups: tenDays()}, RetainOptions{Keep: n}); err == nil {
			t.Errorf("retain %d: no error", n)
		}
	}
	if _, err := Retain(Inventory{Backups: tenDays()}, RetainOptions{Keep: 1, After: &Bound{Name: "nope"}}); !errors.Is(err, basebackup.ErrNoBackup) {
		t.Errorf("--after an unknown backup: %v", err)
	}
}

func TestBefore(t *testing.T) {
	twoClusters := append(tenDays(), backup("c0", "B", 0, 1, 1, false), backup("c1", "B", 4, 1, 1, false))
	basebackup.SortBackups(twoClusters)
	withPerm := tenDays()
	withPerm[0].Permanent = true
	tests := []struct {
		name  string
		bs    []basebackup.Meta
		bound Bound
		want  []string
		err   error
	}{
		{"name: only its cluster", twoClusters, Bound{Name: "b06"}, []string{"b09", "b08", "b07"}, nil},
		{"time: every cluster", twoClusters, Bound{Time: t0.Add(36 * time.Hour)}, []string{"b09", "c0", "b08"}, nil},
		{"permanent stays", withPerm, Bound{Name: "b06"}, []string{"b08", "b07"}, nil},
		{"nothing before", tenDays(), Bound{Time: t0.Add(-time.Hour)}, nil, nil},
		{"not everything", tenDays(), Bound{Time: t0.Add(100 * 24 * time.Hour)}, nil, ErrRefused},
		{"unknown name", tenDays(), Bound{Name: "zz"}, nil, basebackup.ErrNoBackup},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Before(Inventory{Backups: tc.bs}, BeforeOptions{Bound: tc.bound})
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if got := deleted(p); !slices.Equal(got, tc.want) {
				t.Errorf("deleted %v, want %v", got, tc.want)
			}
		})
	}
}

func TestTargetAndEverything(t *testing.T) {
	bs := tenDays()
	bs[3].Permanent = true
	inv := Inventory{Backups: bs, Unreadable: []Unreadable{{Name: "broken", Err: "bad json"}}}
	// "broken" may be an incremental built on b05 (its name does not tell
	// when it started): target refuses; one that started before b05
	// finished cannot be.
	if _, err := Target(inv, TargetOptions{Name: "b05"}); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "broken") {
		t.Errorf("target b05 with unreadable metadata of unknown start: %v", err)
	}
	older := Inventory{Backups: bs, Unreadable: []Unreadable{{Name: "base_" + seg(1, 1) + "_20261031T000000Z", Err: "bad json"}}}
	if p, err := Target(older, TargetOptions{Name: "b05"}); err != nil || !slices.Equal(deleted(p), []string{"b05"}) {
		t.Errorf("target b05: %v %v", deleted(p), err)
	}
	if _, err := Target(inv, TargetOptions{Name: bs[3].Name}); !errors.Is(err, ErrRefused) {
		t.Errorf("target of a permanent backup: %v", err)
	}
	if _, err := Target(inv, TargetOptions{Name: "nope"}); !errors.Is(err, basebackup.ErrNoBackup) {
		t.Errorf("target of an unknown backup: %v", err)
	}
	if p, err := Target(inv, TargetOptions{Name: "broken"}); err != nil || !slices.Equal(p.DeleteUnreadable, []string{"broken"}) {
		t.Errorf("target of unreadable metadata: %v %v", p.DeleteUnreadable, err)
	}
	if _, err := Everything(inv, EverythingOptions{Now: time.Now()}); !errors.Is(err, ErrRefused) {
		t.Errorf("everything with a permanent backup: %v", err)
	}
	p, err := Everything(inv, EverythingOptions{Force: true, Now: time.Now()})
	if err != nil || len(deleted(p)) != 10 || len(p.DeleteUnreadable) != 1 {
		t.Errorf("everything FORCE: %v %v", deleted(p), err)
	}
}

// walStore is a repository holding the WAL files names, 10 bytes each.
func walStore(t *testing.T, names ...string) *synthStore {
	t.Helper()
	st := newSynthStore(0, false)
	for _, s := range names {
		n, err := wal.ParseName(s)
		if err != nil {
			t.Fatal(err)
		}
		st.objs[n.Key()] = synthObj{[]byte("0123456789"), t0}
	}
	return st
}

// deletedWAL counts p's WAL on a repository holding the WAL files names,
// carries p out there, and returns the files that went, sorted. It fails
// unless the plan's counts match what went and what stayed.
func deletedWAL(t *testing.T, p Plan, names []string) []string {
	t.Helper()
	st := walStore(t, names...)
	if err := p.CountWAL(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	r, err := Execute(t.Context(), st, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range names {
		n, _ := wal.ParseName(s)
		if _, ok := st.objs[n.Key()]; !ok {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	if w := p.WAL; w != nil && (w.Delete != len(out) || r.WALDeleted != len(out) || w.DeleteBytes != 10*int64(len(out)) ||
		w.Keep+w.Delete != len(names) || w.KeepBytes != 10*int64(w.Keep)) {
		t.Errorf("planned to delete %d (%d bytes) and keep %d (%d bytes), deleted %d of %d", w.Delete, w.DeleteBytes, w.Keep, w.KeepBytes, len(out), len(names))
	}
	return out
}

func seg(tli, n uint32) string { return fmt.Sprintf("%08X%08X%08X", tli, 0, n) }

func TestGarbage(t *testing.T) {
	var all []string
	for i := uint32(1); i <= 0x20; i++ {
		all = append(all, seg(1, i))
	}
	// Timeline 2 branched at segment 0x18; its .partial and history.
	all = append(all, seg(1, 0x18)+".partial", "00000002.history", seg(2, 0x18), seg(2, 0x19),
		seg(1, 0x10)+".00000028.backup", seg(1, 0x5)+".00000028.backup")
	now := t0.Add(30 * 24 * time.Hour)
	rangeOf := func(a, b uint32, extra ...string) []string {
		var out []string
		for i := a; i <= b; i++ {
			out = append(out, seg(1, i))
		}
		out = append(out, extra...)
		slices.Sort(out)
		return out
	}

	tests := []struct {
		name string
		bs   []basebackup.Meta
		want []string
	}{
		{"before the oldest backup, any timeline", []basebackup.Meta{backup("x", "A", 1, 0x10, 0x11, false), backup("y", "A", 2, 0x19, 0x19, false)},
			rangeOf(1, 0xF, seg(1, 5)+".00000028.backup")},
		{"a permanent backup keeps its own range only", []basebackup.Meta{backup("p", "A", 1, 0x3, 0x5, true), backup("x", "A", 2, 0x10, 0x11, false)},
			rangeOf(6, 0xF, seg(1, 1), seg(1, 2))},
		{"only permanent backups: window from the newest", []basebackup.Meta{backup("p", "A", 1, 0x3, 0x4, true), backup("q", "A", 2, 0x8, 0x9, true)},
			rangeOf(5, 7, seg(1, 1), seg(1, 2), seg(1, 5)+".00000028.backup")},
		{"no backups: nothing", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Garbage(Inventory{Backups: tc.bs}, GarbageOptions{LeftoverAge: time.Hour, Now: now, WAL: true, Leftovers: true})
			if err != nil {
				t.Fatal(err)
			}
			if got := deletedWAL(t, p, all); !slices.Equal(got, tc.want) {
				t.Errorf("deleted\n%v\nwant\n%v", got, tc.want)
			}
			if p.WAL.Keep+p.WAL.Delete != len(all) {
				t.Errorf("kept %d + deleted %d != %d objects", p.WAL.Keep, p.WAL.Delete, len(all))
			}
		})
	}

	inv := Inventory{Backups: tenDays(), Leftovers: []Leftover{{Name: "old", Newest: now.Add(-2 * time.Hour)}, {Name: "running", Newest: now.Add(-time.Minute)}}}
	p, err := Garbage(inv, GarbageOptions{LeftoverAge: time.Hour, Now: now, WAL: true, Leftovers: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Leftovers) != 2 || !p.Leftovers[0].Delete || p.Leftovers[1].Delete {
		t.Errorf("leftovers: %+v", p.Leftovers)
	}
	if len(deleted(p)) != 0 {
		t.Errorf("garbage deleted backups %v", deleted(p))
	}
	inv.Unreadable = []Unreadable{{Name: "broken", Err: "bad json"}}
	if _, err := Garbage(inv, GarbageOptions{Now: now, WAL: true, Leftovers: true}); !errors.Is(err, ErrRefused) {
		t.Errorf("garbage with unreadable metadata: %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	good := map[string]time.Duration{"14d": 14 * 24 * time.Hour, "36h": 36 * time.Hour, "1d12h": 36 * time.Hour, "0d": 0, "90m": 90 * time.Minute}
	for s, want := range good {
		if got, err := ParseDuration(s); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "d", "-1d", "14", "x", "1.5d", "14dd"} {
		if _, err := ParseDuration(s); err == nil {
			t.Errorf("ParseDuration(%q): no error", s)
		}
	}
}

func TestWALOfRunningAndRetainedBackups(t *testing.T) {
	var all []string
	for i := uint32(1); i <= 0x30; i++ {
		all = append(all, seg(1, i))
	}
	now := t0.Add(30 * 24 * time.Hour)
	bs := tenDays() // starts at 2, 6, ..., 0x26
	first := func(p Plan) string {
		if p.WAL == nil {
			return "all kept"
		}
		gone := deletedWAL(t, p, all)
		for _, w := range all {
			if !slices.Contains(gone, w) {
				return w
			}
		}
		return "none kept"
	}
	young := func(name string) []Leftover { return []Leftover{{Name: name, Newest: now.Add(-time.Minute)}} }
	opts := GarbageOptions{LeftoverAge: time.Hour, Now: now, WAL: true, Leftovers: true}
	cases := []struct {
		name string
		plan func() (Plan, error)
		want string
	}{
		{"garbage: from the oldest backup", func() (Plan, error) { return Garbage(Inventory{Backups: bs}, opts) }, seg(1, 2)},
		{"retain 7 deletes the WAL of the backups it deletes", func() (Plan, error) {
			return Retain(Inventory{Backups: bs}, RetainOptions{Keep: 7, Now: now})
		}, seg(1, 0xE)},
		{"a running backup-push keeps its WAL", func() (Plan, error) {
			return Retain(Inventory{Backups: bs, Leftovers: young("base_" + seg(1, 5) + "_20261101T030000Z")}, RetainOptions{Keep: 7, Now: now})
		}, seg(1, 5)},
		{"an unfinished backup with a foreign name keeps all WAL", func() (Plan, error) {
			return Garbage(Inventory{Backups: bs, Leftovers: young("nightly")}, opts)
		}, "all kept"},
		{"an old leftover does not keep WAL", func() (Plan, error) {
			return Garbage(Inventory{Backups: bs, Leftovers: []Leftover{{Name: "base_" + seg(1, 1) + "_20261101T030000Z", Newest: now.Add(-2 * time.Hour)}}}, opts)
		}, seg(1, 2)},
		{"unreadable metadata keeps all WAL on retain", func() (Plan, error) {
			return Retain(Inventory{Backups: bs, Unreadable: []Unreadable{{Name: "x"}}}, RetainOptions{Keep: 7, Now: now})
		}, "all kept"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := tc.plan()
			if err != nil {
				t.Fatal(err)
			}
			if got := first(p); got != tc.want {
				t.Errorf("first WAL kept %s, want %s (notes %q)", got, tc.want, p.Notes)
			}
		})
	}
}

// TestCountWAL: one streaming pass counts what each plan's WAL rule deletes
// and keeps, names the first and last deleted in key order, counts strays,
// and adds the note for a plan that deletes nothing only once it knows.
func TestCountWAL(t *testing.T) {
	files := []string{seg(1, 1), seg(1, 2), seg(1, 3), seg(1, 3) + ".00000028.backup", seg(1, 4), seg(1, 5), seg(1, 5) + ".partial",
		seg(1, 6), seg(1, 7), seg(1, 8), seg(2, 6), seg(2, 7), "00000002.history"}
	now := t0.Add(30 * 24 * time.Hour)
	garbage := func(bs ...basebackup.Meta) func(Inventory) (Plan, error) {
		return func(inv Inventory) (Plan, error) {
			inv.Backups = bs
			return Garbage(inv, GarbageOptions{LeftoverAge: time.Hour, Now: now, WAL: true, Leftovers: true})
		}
	}
	tests := []struct {
		name           string
		plan           func(Inventory) (Plan, error)
		del, keep      int
		first, last    string
		keepFrom, note string
	}{
		{"before the oldest backup", garbage(backup("x", "A", 1, 5, 5, false), backup("y", "A", 2, 7, 7, false)),
			5, 8, seg(1, 1), seg(1, 4), seg(1, 5), ""},
		{"around a permanent backup", garbage(backup("p", "A", 1, 2, 3, true), backup("x", "A", 2, 6, 6, false)),
			4, 9, seg(1, 1), seg(1, 5) + ".partial", seg(1, 6), ""},
		{"everything, history files too", func(inv Inventory) (Plan, error) { return Everything(inv, EverythingOptions{Now: time.Now()}) },
			13, 0, seg(1, 1), "00000002.history", "", ""},
		{"no backups: all kept", garbage(), 0, 13, "", "", "", "nothing to delete: no garbage"},
		{"nothing before the oldest backup", garbage(backup("x", "A", 1, 1, 1, false)), 0, 13, "", "", seg(1, 1), "nothing to delete: no garbage"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := walStore(t, files...)
			// Not WAL file names, or not where tusk puts them: never counted
			// as WAL, never deleted.
			st.objs["wal/README"] = synthObj{[]byte("x"), t0}
			st.objs["wal/0000000100000001/"+seg(1, 9)] = synthObj{[]byte("x"), t0}
			p, err := tc.plan(Inventory{Strays: 1})
			if err != nil {
				t.Fatal(err)
			}
			if tc.note != "" && slices.Contains(p.Notes, tc.note) {
				t.Errorf("note %q before the WAL was counted", tc.note)
			}
			if err := p.CountWAL(t.Context(), st); err != nil {
				t.Fatal(err)
			}
			w := p.WAL
			if w.Delete != tc.del || w.DeleteBytes != 10*int64(tc.del) || w.Keep != tc.keep || w.KeepBytes != 10*int64(tc.keep) ||
				w.First != tc.first || w.Last != tc.last || w.Strays != 3 || w.KeepFrom != tc.keepFrom {
				t.Errorf("got delete %d (%d B) %s..%s, keep %d (%d B) from %q, strays %d", w.Delete, w.DeleteBytes, w.First, w.Last,
					w.Keep, w.KeepBytes, w.KeepFrom, w.Strays)
			}
			if tc.note != "" && (len(p.Notes) == 0 || p.Notes[len(p.Notes)-1] != tc.note) {
				t.Errorf("notes %q, want the last one %q", p.Notes, tc.note)
			}
			if tc.note == "" && p.Empty() {
				t.Error("the plan says it is empty")
			}
		})
	}
}
