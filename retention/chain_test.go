package retention

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/wal"
)

// incr makes metadata for an incremental backup of cluster "A" built on
// parent (full is its chain's full backup, depth its distance from it).
func incr(name, parent, full string, depth, day int, first, last uint32) basebackup.Meta {
	m := backup(name, "A", day, first, last, false)
	m.Parent, m.ChainFull, m.ChainDepth = parent, full, depth
	return m
}

// week is three chains, a backup a day: F0 I1 I2 | F3 I4 I5 | F6 I7.
func week() []basebackup.Meta {
	return []basebackup.Meta{
		backup("F0", "A", 0, 2, 3, false), incr("I1", "F0", "F0", 1, 1, 6, 7), incr("I2", "I1", "F0", 2, 2, 10, 11),
		backup("F3", "A", 3, 14, 15, false), incr("I4", "F3", "F3", 1, 4, 18, 19), incr("I5", "I4", "F3", 2, 5, 22, 23),
		backup("F6", "A", 6, 26, 27, false), incr("I7", "F6", "F6", 1, 7, 30, 31),
	}
}

// with returns week with fn applied to the backup named name.
func with(bs []basebackup.Meta, name string, fn func(*basebackup.Meta)) []basebackup.Meta {
	for i := range bs {
		if bs[i].Name == name {
			fn(&bs[i])
		}
	}
	return bs
}

func permanent(m *basebackup.Meta) { m.Permanent = true }

// nameAt is a backup-push name of a backup that started day days after t0.
func nameAt(day float64) string {
	return "base_" + seg(1, 1) + "_" + t0.Add(time.Duration(day*24)*time.Hour).Format("20060102T150405Z")
}

// reason returns the reason p gives for backup name.
func reason(p Plan, name string) string {
	for _, d := range p.Backups {
		if d.Meta.Name == name {
			return d.Reason
		}
	}
	return ""
}

func TestRetainChains(t *testing.T) {
	now := t0.Add(10 * 24 * time.Hour)
	gone := incr("I9", "gone", "gone", 3, 8, 34, 35)
	tests := []struct {
		name string
		inv  Inventory
		opts RetainOptions
		want []string
		why  map[string]string // substrings of the reasons of kept backups
	}{
		{"FULL 1: the newest full backup and what is built on it", Inventory{Backups: week()}, RetainOptions{Keep: 1, Full: true},
			[]string{"F0", "I1", "I2", "F3", "I4", "I5"}, map[string]string{"F6": "one of the newest 1 full", "I7": "newer than the oldest"}},
		{"FULL 2", Inventory{Backups: week()}, RetainOptions{Keep: 2, Full: true}, []string{"F0", "I1", "I2"}, nil},
		{"retain 1 keeps the newest backup's chain", Inventory{Backups: week()}, RetainOptions{Keep: 1},
			[]string{"F0", "I1", "I2", "F3", "I4", "I5"}, map[string]string{"F6": "in the chain of backup I7"}},
		{"retain 3: the third newest needs its parents", Inventory{Backups: week()}, RetainOptions{Keep: 3},
			[]string{"F0", "I1", "I2"}, map[string]string{"I4": "in the chain of backup I5", "F3": "in the chain of backup I5"}},
		{"--after keeps the chain of what it keeps", Inventory{Backups: week()}, RetainOptions{Keep: 1, After: &Bound{Name: "I2"}}, nil, nil},
		{"retain window: the base before the window is an incremental", Inventory{Backups: week()}, RetainOptions{Keep: 1, Window: 108 * time.Hour},
			[]string{"F0", "I1", "I2"}, map[string]string{"I5": "start of the retain window", "F3": "in the chain of backup I5"}},
		{"a permanent incremental keeps its chain", Inventory{Backups: with(week(), "I1", permanent)}, RetainOptions{Keep: 1, Full: true},
			[]string{"I2", "F3", "I4", "I5"}, map[string]string{"F0": "which is permanent"}},
		{"a running incremental keeps its parent's chain", Inventory{Backups: week(), Leftovers: []Leftover{{Name: nameAt(8), Parent: "I4"}}},
			RetainOptions{Keep: 1, Full: true}, []string{"F0", "I1", "I2", "I5"}, map[string]string{"I4": "parent of unfinished backup", "F3": "chain of unfinished backup"}},
		{"unreadable metadata keeps what finished before it started", Inventory{Backups: week(), Unreadable: []Unreadable{{Name: nameAt(4.5)}}},
			RetainOptions{Keep: 1, Full: true}, []string{"I5"}, map[string]string{"F0": "may be an incremental backup that needs this one"}},
		{"unreadable metadata whose name does not tell keeps all", Inventory{Backups: week(), Unreadable: []Unreadable{{Name: "x"}}},
			RetainOptions{Keep: 1, Full: true}, nil, nil},
		{"an unreadable backup_started.json keeps what finished before it started", Inventory{Backups: week(),
			Leftovers: []Leftover{{Name: nameAt(2.5), StartedErr: "bad json"}}}, RetainOptions{Keep: 1, Full: true},
			[]string{"F3", "I4", "I5"}, nil},
		{"a broken backup is not counted and stays", Inventory{Backups: append(week(), gone)}, RetainOptions{Keep: 1},
			[]string{"F0", "I1", "I2", "F3", "I4", "I5"}, map[string]string{"I9": "broken", "I7": "one of the newest 1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Now = now
			p, err := Retain(tc.inv, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := deleted(p); !slices.Equal(got, tc.want) {
				t.Errorf("deleted %v, want %v", got, tc.want)
			}
			for n, why := range tc.why {
				if !strings.Contains(reason(p, n), why) {
					t.Errorf("%s kept because %q, want %q", n, reason(p, n), why)
				}
			}
			checkClosed(t, p, tc.inv)
		})
	}
	p, err := Retain(Inventory{Backups: append(week(), gone)}, RetainOptions{Keep: 1, Now: now})
	if err != nil || len(p.Broken) != 1 || p.Broken[0] != (Broken{Backup: "I9", Missing: "gone"}) {
		t.Fatalf("broken %v (%v)", p.Broken, err)
	}
	if s := p.Broken[0].String(); !strings.Contains(s, "backup I9 is broken") || !strings.Contains(s, "gone") {
		t.Errorf("broken sentence %q", s)
	}
}

// checkClosed fails if p keeps a backup, or a running incremental, whose
// chain it deletes.
func checkClosed(t *testing.T, p Plan, inv Inventory) {
	t.Helper()
	del := map[string]bool{}
	for _, m := range p.Deleting() {
		del[m.Name] = true
	}
	needers := map[string]string{}
	for _, d := range p.Backups {
		if !d.Delete {
			needers[d.Meta.Name] = d.Meta.Name
		}
	}
	for _, l := range inv.Leftovers {
		if l.Parent != "" {
			needers[l.Parent] = l.Name
		}
	}
	for n, by := range needers {
		if del[n] {
			t.Errorf("deletes %s, which %s needs", n, by)
		}
		chain, _ := basebackup.Chain(inv.Backups, n)
		for _, m := range chain {
			if del[m.Name] {
				t.Errorf("deletes %s, which %s needs", m.Name, by)
			}
		}
	}
}

func TestBeforeChains(t *testing.T) {
	// F1 is newer than F0, and I2 is built on F0 (WALG_DELTA_ORIGIN or
	// --delta-from-name): the chains interleave.
	interleaved := []basebackup.Meta{backup("F0", "A", 0, 2, 3, false), backup("F1", "A", 1, 6, 7, false), incr("I2", "F0", "F0", 1, 2, 10, 11)}
	tests := []struct {
		name  string
		bs    []basebackup.Meta
		opts  BeforeOptions
		want  []string
		notes []string
	}{
		{"name: the parents the named backup needs stay", week(), BeforeOptions{Bound: Bound{Name: "I5"}},
			[]string{"F0", "I1", "I2"}, []string{"kept I4, F3, which the rule would delete: I5 needs them"}},
		{"name FIND_FULL: the bound moves to the chain's full backup", week(), BeforeOptions{Bound: Bound{Name: "I5"}, FindFull: true},
			[]string{"F0", "I1", "I2"}, []string{"FIND_FULL moved the bound from I5 back to F3"}},
		{"time cutting a chain", week(), BeforeOptions{Bound: Bound{Time: t0.Add(108 * time.Hour)}},
			[]string{"F0", "I1", "I2"}, []string{"I5 needs them"}},
		{"time FIND_FULL", week(), BeforeOptions{Bound: Bound{Time: t0.Add(108 * time.Hour)}, FindFull: true},
			[]string{"F0", "I1", "I2"}, []string{"back to F3"}},
		{"interleaved: only the needed parent stays", interleaved, BeforeOptions{Bound: Bound{Name: "I2"}}, []string{"F1"}, []string{"I2 needs them"}},
		{"interleaved FIND_FULL: the bound moves to F0", interleaved, BeforeOptions{Bound: Bound{Name: "I2"}, FindFull: true}, nil, []string{"back to F0"}},
		{"a permanent incremental keeps its chain", with(week(), "I4", permanent), BeforeOptions{Bound: Bound{Name: "F6"}},
			[]string{"F0", "I1", "I2", "I5"}, []string{"I4 needs them"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inv := Inventory{Backups: tc.bs}
			p, err := Before(inv, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := deleted(p); !slices.Equal(got, tc.want) {
				t.Errorf("deleted %v, want %v", got, tc.want)
			}
			for _, n := range tc.notes {
				if !slices.ContainsFunc(p.Notes, func(s string) bool { return strings.Contains(s, n) }) {
					t.Errorf("notes %q, want one with %q", p.Notes, n)
				}
			}
			checkClosed(t, p, inv)
		})
	}
	// The bound would leave only a backup whose parents it deletes: they
	// stay, so it is not "every backup".
	if p, err := Before(Inventory{Backups: week()}, BeforeOptions{Bound: Bound{Time: t0.Add(100 * 24 * time.Hour)}}); !errors.Is(err, ErrRefused) {
		t.Errorf("before a time after every backup: %v %v", deleted(p), err)
	}
}

func TestTargetChains(t *testing.T) {
	tests := []struct {
		name     string
		inv      Inventory
		opts     TargetOptions
		want     []string
		refused  string   // a substring of the refusal
		depends  []string // a DependentsError's dependents
		findNote string
	}{
		{"a full backup with incrementals is refused", Inventory{Backups: week()}, TargetOptions{Name: "F3"}, nil,
			"the incremental backups I4, I5 are built on it", []string{"I4", "I5"}, ""},
		{"an incremental with dependents is refused", Inventory{Backups: week()}, TargetOptions{Name: "I4"}, nil, "I5", []string{"I5"}, ""},
		{"the newest incremental goes alone", Inventory{Backups: week()}, TargetOptions{Name: "I5"}, []string{"I5"}, "", nil, ""},
		{"FIND_FULL deletes the dependents too", Inventory{Backups: week()}, TargetOptions{Name: "F3", FindFull: true},
			[]string{"F3", "I4", "I5"}, "", nil, "deleting the 2 backup(s) built on F3 with it: I4, I5"},
		{"FIND_FULL of an incremental: it and what is built on it", Inventory{Backups: week()}, TargetOptions{Name: "I1", FindFull: true},
			[]string{"I1", "I2"}, "", nil, "I2"},
		{"FIND_FULL with a permanent dependent is refused", Inventory{Backups: with(week(), "I5", permanent)}, TargetOptions{Name: "F3", FindFull: true},
			nil, "permanent backup I5 is built on it", nil, ""},
		{"a running incremental on the chain refuses", Inventory{Backups: week(), Leftovers: []Leftover{{Name: nameAt(8), Parent: "I4"}}},
			TargetOptions{Name: "F3", FindFull: true}, nil, "may still be running", nil, ""},
		{"a running incremental elsewhere does not", Inventory{Backups: week(), Leftovers: []Leftover{{Name: nameAt(8), Parent: "I7"}}},
			TargetOptions{Name: "F3", FindFull: true}, []string{"F3", "I4", "I5"}, "", nil, ""},
		{"a broken backup can be deleted", Inventory{Backups: []basebackup.Meta{incr("I9", "gone", "gone", 1, 1, 5, 5)}},
			TargetOptions{Name: "I9"}, []string{"I9"}, "", nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Target(tc.inv, tc.opts)
			if tc.refused != "" {
				if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.refused) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("error %v, want a refusal with %q", err, tc.refused)
				}
				var de *DependentsError
				if errors.As(err, &de) != (tc.depends != nil) || (de != nil && !slices.Equal(de.Dependents, tc.depends)) {
					t.Errorf("dependents %+v, want %v", de, tc.depends)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := deleted(p); !slices.Equal(got, tc.want) {
				t.Errorf("deleted %v, want %v", got, tc.want)
			}
			for _, n := range tc.want[1:] {
				if !strings.Contains(reason(p, n), "built on "+tc.opts.Name) {
					t.Errorf("%s deleted because %q", n, reason(p, n))
				}
			}
			if tc.findNote != "" && !slices.ContainsFunc(p.Notes, func(s string) bool { return strings.Contains(s, tc.findNote) }) {
				t.Errorf("notes %q, want %q", p.Notes, tc.findNote)
			}
			checkClosed(t, p, tc.inv)
		})
	}
}

func TestGarbageAndEverythingChains(t *testing.T) {
	now := t0.Add(30 * 24 * time.Hour)
	// I9 misses its parent; I10 is built on I9, so its chain misses it too.
	bs := append(week(), incr("I9", "gone", "gone", 3, 8, 34, 35), incr("I10", "I9", "gone", 4, 9, 38, 39))
	opts := GarbageOptions{Now: now, WAL: true, Leftovers: true}
	p, err := Garbage(Inventory{Backups: bs}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := deleted(p); !slices.Equal(got, []string{"I9", "I10"}) || len(p.Broken) != 2 {
		t.Errorf("garbage deleted %v, broken %v; want the broken I9, I10", got, p.Broken)
	}
	// An old leftover of a push on I10 goes with it; a young one keeps it.
	opts.LeftoverAge = time.Hour
	for _, c := range []struct {
		age  time.Duration
		want []string
	}{{2 * time.Hour, []string{"I9", "I10"}}, {time.Minute, nil}} {
		inv := Inventory{Backups: bs, Leftovers: []Leftover{{Name: nameAt(9.5), Parent: "I10", Newest: now.Add(-c.age)}}}
		if p, err := Garbage(inv, opts); err != nil || !slices.Equal(deleted(p), c.want) {
			t.Errorf("garbage with a leftover on I10 written %v ago: deleted %v (%v), want %v", c.age, deleted(p), err, c.want)
		}
	}
	opts.Leftovers = false
	if p, _ := Garbage(Inventory{Backups: bs}, opts); len(deleted(p)) != 0 {
		t.Errorf("garbage ARCHIVES deleted %v", deleted(p))
	}
	opts.Leftovers = true
	// A parent whose metadata cannot be read may be repaired: not broken.
	if p, _ := Garbage(Inventory{Backups: bs, Unreadable: []Unreadable{{Name: "gone"}}}, GarbageOptions{Now: now, Leftovers: true}); len(deleted(p)) != 0 || len(p.Broken) != 0 {
		t.Errorf("garbage with an unreadable parent deleted %v, broken %v", deleted(p), p.Broken)
	}
	perm := with(week(), "I1", permanent)
	if _, err := Everything(Inventory{Backups: perm}, EverythingOptions{Now: now}); !errors.Is(err, ErrRefused) {
		t.Errorf("everything with a permanent incremental: %v", err)
	}
	if p, err := Everything(Inventory{Backups: perm}, EverythingOptions{Force: true, Now: now}); err != nil || len(deleted(p)) != 8 {
		t.Errorf("everything FORCE: %v %v", deleted(p), err)
	}
}

func TestDeleteOrder(t *testing.T) {
	got := deleteOrder([]string{"F0", "I1", "U", "I2", "F3", "I4"}, week())
	want := []string{"U", "I2", "I1", "I4", "F0", "F3"}
	if !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
}

// TestNeededWALOfChains: an incremental backup needs only its own WAL (its
// chain's data, but not the WAL between its parents and it), so a
// permanent incremental and its permanent parent keep two ranges, not one.
func TestNeededWALOfChains(t *testing.T) {
	bs := with(with(week(), "F0", permanent), "I1", permanent)
	need, err := NeededWAL(bs[:2], nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []Range{{Backup: "F0", First: seg(1, 2), Last: seg(1, 3)}, {Backup: "I1", First: seg(1, 6), Last: seg(1, 7)}}
	if !slices.Equal(need.Permanent, want) {
		t.Errorf("permanent ranges %v, want %v", need.Permanent, want)
	}
	for _, c := range []struct {
		seg  uint32
		want bool
	}{{1, false}, {2, true}, {3, true}, {4, false}, {5, false}, {6, true}, {7, true}} {
		n := mustName(t, seg(1, c.seg))
		if need.Keeps(n) != c.want {
			t.Errorf("keeps %s: %v, want %v", n.File, !c.want, c.want)
		}
	}
	// An ordinary incremental's start is where its point-in-time window
	// starts, as a full backup's is.
	need, err = NeededWAL(week()[4:], nil)
	if err != nil || need.From != seg(1, 18) || need.FromBackup != "I4" {
		t.Errorf("from %s (%s), %v; want I4's start", need.From, need.FromBackup, err)
	}
}

func mustName(t *testing.T, s string) wal.Name {
	t.Helper()
	n, err := wal.ParseName(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
