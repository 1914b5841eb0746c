package retention

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/wal"
)

// Needed is the WAL the archive must hold for a set of backups: the one rule
// that both the delete planner (which deletes the rest) and wal-verify
// (which reports the rest as an expected gap, not as lost) follow.
//
// Positions are compared regardless of timeline: every WAL object whose
// segment lies at or after From is needed, on every timeline, and so is
// every segment of a permanent backup's own range (start through end);
// timeline history files always are. No backup needs anything else.
type Needed struct {
	// All is set when every WAL object is needed: there are no backups, so
	// nothing tells where a future restore would start.
	All bool
	// From is the start segment from which all WAL is needed, and
	// FromBackup the backup (or unfinished backup) that starts there.
	From, FromBackup string
	// Permanent are the permanent backups' ranges, by start segment.
	Permanent []Range
	from      uint64 // wal.Name.Order of From
	perm      []span // parallel to Permanent
}

// span is a permanent backup's range, by wal.Name.Order.
type span struct{ first, last uint64 }

// NeededWAL decides which WAL the backups need. From is the start of the
// oldest non-permanent backup (the point-in-time window: each such backup
// restores to any later moment); with only permanent backups it is the
// newest one's start. running are the start segments of backups that may
// still be running (read from their unfinished folders' names); they move
// From back to their start. With no backups at all, All is set.
func NeededWAL(backups []basebackup.Meta, running []string) (Needed, error) {
	if len(backups) == 0 {
		return Needed{All: true}, nil
	}
	n := Needed{from: 1<<64 - 1}
	type perm struct {
		span
		r Range
	}
	var perms []perm
	var newest *basebackup.Meta // the newest permanent backup
	var newestFirst uint64
	for i, m := range backups {
		first, err := order(m.StartWAL)
		if err != nil {
			return Needed{}, fmt.Errorf("backup %s: start WAL: %w", m.Name, err)
		}
		last, err := order(m.EndWAL)
		if err != nil {
			return Needed{}, fmt.Errorf("backup %s: end WAL: %w", m.Name, err)
		}
		if m.Permanent {
			perms = append(perms, perm{span{first, last}, Range{Backup: m.Name, First: m.StartWAL, Last: m.EndWAL}})
			if newest == nil || basebackup.Compare(m, *newest) > 0 {
				newest, newestFirst = &backups[i], first
			}
			continue
		}
		if n.FromBackup == "" || first < n.from {
			n.from, n.From, n.FromBackup = first, m.StartWAL, m.Name
		}
	}
	if n.FromBackup == "" {
		n.from, n.From, n.FromBackup = newestFirst, newest.StartWAL, newest.Name
	}
	for _, r := range running {
		if first, err := order(r); err == nil && first < n.from {
			n.from, n.From, n.FromBackup = first, r, "an unfinished backup"
		}
	}
	slices.SortStableFunc(perms, func(a, b perm) int { return cmp.Compare(a.first, b.first) })
	for _, p := range perms {
		n.perm = append(n.perm, p.span)
		n.Permanent = append(n.Permanent, p.r)
	}
	return n, nil
}

// order is segment s's wal.Name.Order: positions are compared regardless
// of timeline and segment size.
func order(s string) (uint64, error) {
	n, err := wal.ParseSegment(s)
	if err != nil {
		return 0, err
	}
	return n.Order(), nil
}

// Keeps reports whether the archive must hold WAL file w. Segments,
// .partial segments and .backup files are placed by their segment.
func (n Needed) Keeps(w wal.Name) bool {
	if n.All || w.Kind == wal.History {
		return true
	}
	p := w.Order()
	if p >= n.from {
		return true
	}
	for _, s := range n.perm {
		if p >= s.first && p <= s.last {
			return true
		}
	}
	return false
}

// Around names what bounds a segment that Keeps does not keep: the
// permanent backup whose range ends last before it (after is "" if none)
// and the backup whose needed WAL starts first after it (before), so
// wal-verify can say which backups an expected gap lies between.
func (n Needed) Around(w wal.Name) (after, before string) {
	p := w.Order()
	var afterEnd uint64
	beforeStart := n.from
	before = n.FromBackup
	for i, s := range n.perm {
		if s.last < p && (after == "" || s.last > afterEnd) {
			after, afterEnd = n.Permanent[i].Backup, s.last
		}
		if s.first > p && s.first < beforeStart {
			before, beforeStart = n.Permanent[i].Backup, s.first
		}
	}
	return after, before
}
