package restore

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/wal"
)

// TestChoose: a name must serve the target; LATEST is the newest backup
// (by finish time, then end LSN, never by name) that ends before a time or
// LSN target, whichever cluster, lineage or timeline it comes from.
func TestChoose(t *testing.T) {
	t.Parallel()
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	lsn := func(s string) wal.LSN {
		l, err := wal.ParseLSN(s)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	meta := func(name, system string, tli uint32, end, finish string) basebackup.Meta {
		return basebackup.Meta{Name: name, SystemID: system, StartTLI: tli, EndTLI: tli, EndLSN: lsn(end), FinishTime: at(finish)}
	}
	// Two clusters share the prefix: cluster A (timelines 1 and 2, after a
	// promotion) and cluster B, re-initialized later with LSNs starting low
	// again. Its name sorts before A's, so only the metadata orders them.
	a1 := meta("base_000000010000000000000002_20261122T010000Z", "A", 1, "0/2000100", "2026-11-22T01:00:00Z")
	a2 := meta("base_000000010000000000000009_20261122T020000Z", "A", 1, "0/9000100", "2026-11-22T02:00:00Z")
	a3 := meta("base_000000020000000000000010_20261122T030000Z", "A", 2, "0/10000100", "2026-11-22T03:00:00Z")
	b1 := meta("base_000000010000000000000002_20261122T040000Z", "B", 1, "0/2000200", "2026-11-22T04:00:00Z")
	// Same finish second: the end LSN orders them.
	c1 := meta("zzz", "C", 1, "0/3000000", "2026-11-22T05:00:00Z")
	c2 := meta("aaa", "C", 1, "0/4000000", "2026-11-22T05:00:00Z")
	all := []basebackup.Meta{a1, a2, a3, b1}
	basebackup.SortBackups(all)
	tied := []basebackup.Meta{c2, c1}
	basebackup.SortBackups(tied)

	cases := []struct {
		name    string
		backups []basebackup.Meta
		want    string // the backup chosen, or "" for an error
		target  Target
		wantErr string
		isUsage bool // ErrTarget: the operator's target, not the repository
	}{
		{name: "LATEST", backups: all, want: b1.Name},
		{name: "LATEST", backups: tied, want: c2.Name},
		{name: "LATEST", backups: all, want: a2.Name, target: Target{Time: at("2026-11-22T02:30:00Z")}},
		{name: "LATEST", backups: all, want: a1.Name, target: Target{Time: at("2026-11-22T02:00:00Z")}}, // finished at the target: too late
		{name: "LATEST", backups: all, want: a3.Name, target: Target{Time: at("2026-11-22T03:00:00.5Z"), Timeline: "2"}},
		{name: "LATEST", backups: all, want: b1.Name, target: Target{LSN: lsn("0/2000200")}}, // ends at the target: reachable
		// An LSN target is a position in one cluster's WAL, yet LATEST
		// compares it with every backup's end: a later cluster's low LSNs
		// win. (The operator names the backup when clusters share a prefix.)
		{name: "LATEST", backups: all, want: b1.Name, target: Target{LSN: lsn("0/9000100")}},
		{name: "LATEST", backups: []basebackup.Meta{a1, a2, a3}, want: a2.Name, target: Target{LSN: lsn("0/9000100")}},
		{name: "LATEST", backups: all, want: b1.Name, target: Target{XID: "1234"}},
		{name: "LATEST", backups: all, want: b1.Name, target: Target{Name: "before-upgrade"}},
		{name: "LATEST", backups: all, want: b1.Name, target: Target{Immediate: true}},
		{name: "LATEST", backups: all, target: Target{Time: at("2026-11-22T00:59:00Z")},
			wantErr: "no backup finished before the target time 2026-11-22T00:59:00Z (the oldest, " + a1.Name + ", finished at 2026-11-22T01:00:00Z)", isUsage: true},
		{name: "LATEST", backups: []basebackup.Meta{a1}, target: Target{LSN: lsn("0/1000000")},
			wantErr: "no backup finished before the target LSN 0/1000000", isUsage: true},
		{name: "LATEST", wantErr: "the repository holds no backups: take one with tusk backup-push"},
		{name: a2.Name, backups: all, want: a2.Name},
		{name: a1.Name, backups: all, want: a1.Name, target: Target{Time: at("2026-11-22T03:30:00Z")}},
		{name: a2.Name, backups: all, want: a2.Name, target: Target{LSN: lsn("0/9000100")}},
		{name: a3.Name, backups: all, target: Target{Time: at("2026-11-22T02:30:00Z")},
			wantErr: "backup " + a3.Name + " finished at 2026-11-22T03:00:00Z, after the target time 2026-11-22T02:30:00Z: recovery cannot stop before a backup's end; choose an earlier backup or LATEST", isUsage: true},
		{name: a3.Name, backups: all, target: Target{LSN: lsn("0/9000000")},
			wantErr: "backup " + a3.Name + " ends at LSN 0/10000100, after the target LSN 0/9000000: choose an earlier backup or LATEST", isUsage: true},
		{name: "base_000000010000000000000099_20261122T010000Z", backups: all,
			wantErr: "backup base_000000010000000000000099_20261122T010000Z: no such backup in the repository (see tusk backup-list)"},
	}
	for _, c := range cases {
		t.Run(c.name+" "+c.target.Describe(), func(t *testing.T) {
			t.Parallel()
			m, err := Choose(c.backups, c.name, c.target)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("Choose = %s, %v; want an error containing %q", m.Name, err, c.wantErr)
				}
				if errors.Is(err, ErrTarget) != c.isUsage {
					t.Fatalf("errors.Is(%v, ErrTarget) = %v, want %v", err, !c.isUsage, c.isUsage)
				}
				return
			}
			if err != nil || m.Name != c.want {
				t.Fatalf("Choose = %s, %v; want %s", m.Name, err, c.want)
			}
		})
	}
}

// TestChoseForTarget: the operator is told which backup LATEST became only
// when a time or LSN target decided it.
func TestChoseForTarget(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		t    Target
		want bool
	}{
		{Latest, Target{}, false},
		{Latest, Target{Time: time.Unix(1, 0)}, true},
		{Latest, Target{LSN: 1}, true},
		{Latest, Target{XID: "5"}, false},
		{"base_x", Target{LSN: 1}, false},
	}
	for _, c := range cases {
		if got := ChoseForTarget(c.name, c.t); got != c.want {
			t.Errorf("ChoseForTarget(%s, %s) = %v, want %v", c.name, c.t.Describe(), got, c.want)
		}
	}
}

// TestChooseSkipsBrokenChains: LATEST never picks an incremental backup
// whose parent is gone; it takes the newest backup that can be composed.
func TestChooseSkipsBrokenChains(t *testing.T) {
	t.Parallel()
	at := func(h int) time.Time { return time.Date(2026, 11, 22, h, 0, 0, 0, time.UTC) }
	full := basebackup.Meta{Name: "f", SystemID: "A", EndLSN: 0x2000000, FinishTime: at(1)}
	inc := basebackup.Meta{Name: "i", SystemID: "A", EndLSN: 0x3000000, FinishTime: at(2), Parent: "f", ChainFull: "f", ChainDepth: 1}
	orphan := basebackup.Meta{Name: "o", SystemID: "A", EndLSN: 0x4000000, FinishTime: at(3), Parent: "gone", ChainFull: "gone", ChainDepth: 1}
	if m, err := Choose([]basebackup.Meta{full, inc, orphan}, Latest, Target{}); err != nil || m.Name != "i" {
		t.Fatalf("Choose = %s, %v; want the incremental i, not the orphan", m.Name, err)
	}
	if m, err := Choose([]basebackup.Meta{full, inc}, Latest, Target{Time: at(1).Add(30 * time.Minute)}); err != nil || m.Name != "f" {
		t.Fatalf("Choose with a time target = %s, %v; want f", m.Name, err)
	}
}
