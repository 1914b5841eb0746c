package retention

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tusk-backup/tusk/basebackup"
)

// The chain rules. An incremental backup (basebackup.Meta.Parent) restores
// only with every backup of its chain: its parent, its parent's parent, up
// to the full backup at the root. So no plan deletes a backup that a backup
// it keeps needs:
//
//   - After a plan's own rule (retain, before, target, garbage) has decided,
//     keepNeeded keeps the whole chain of every backup the plan keeps, of
//     every unfinished backup whose backup_started.json names a parent (a
//     backup-push that may still be taking an incremental), and of every
//     permanent backup (so a permanent incremental makes its chain
//     undeletable). Only everything deletes a chain whole.
//   - What an unknown backup needs is unknown: a backup whose metadata
//     cannot be read, or an unfinished backup whose backup_started.json
//     cannot be read, may be an incremental built on any backup that
//     finished before it started. So retain and before keep every such
//     backup (by the start time in the name backup-push gives it, or every
//     backup when the name does not tell), and target refuses to delete
//     one, as the WAL rule keeps all WAL while metadata is unreadable. The
//     operator repairs the object or removes it with delete target, which
//     is always allowed for the unreadable backup itself.
//   - A broken backup is an incremental whose chain does not reach a full
//     backup: a parent was deleted behind tusk's back (or its delete was
//     interrupted). It can never be restored. retain, before and target
//     leave it alone and do not count it; delete garbage (BACKUPS) deletes
//     it, as wal-g leaves orphans to its garbage collection, so that the
//     operator sees it in plans and backup-list before it goes.
//   - Execute deletes dependents before their parents: it writes the
//     tombstones (which unlist a backup) of incremental backups before
//     those of the backups they are built on, so an interrupted delete never
//     leaves a listed incremental whose parent is no longer listed.

// Broken is an incremental backup whose chain does not reach a full backup.
type Broken struct {
	Backup  string `json:"backup"`
	Missing string `json:"missing_parent"` // the first backup of its chain that is not in the repository
}

func (b Broken) String() string {
	return fmt.Sprintf("backup %s is broken: backup %s of its chain is not in the repository, so it cannot be restored (tusk delete garbage removes it)", b.Backup, b.Missing)
}

// brokenBackups finds inv's broken backups: incremental ones whose chain
// reaches a backup that is neither listed nor unreadable (an unreadable
// parent may be repaired). A backup whose delete was interrupted is missing:
// the next delete finishes it.
func brokenBackups(inv Inventory) map[string]Broken {
	unreadable := map[string]bool{}
	for _, u := range inv.Unreadable {
		unreadable[u.Name] = true
	}
	out := map[string]Broken{}
	for _, m := range inv.Backups {
		if !m.Incremental() {
			continue
		}
		if _, missing := basebackup.Chain(inv.Backups, m.Name); missing != "" && !unreadable[missing] {
			out[m.Name] = Broken{Backup: m.Name, Missing: missing}
		}
	}
	return out
}

// unknownNeed is a backup, finished or not, whose needs are unknown: it may
// be an incremental built on any backup that finished before Start (zero:
// any backup).
type unknownNeed struct {
	Name   string
	Start  time.Time
	Reason string // "the metadata of backup X cannot be read"
}

// mayNeed reports whether the unknown backup may need m.
func (u unknownNeed) mayNeed(m basebackup.Meta) bool {
	return u.Start.IsZero() || m.FinishTime.Before(u.Start)
}

// unknownNeeds lists inv's backups whose chain is unknown.
func unknownNeeds(inv Inventory) []unknownNeed {
	var out []unknownNeed
	for _, u := range inv.Unreadable {
		out = append(out, unknownNeed{u.Name, startTimeOf(u.Name), "the metadata of backup " + u.Name + " cannot be read"})
	}
	for _, l := range inv.Leftovers {
		if l.StartedErr != "" {
			out = append(out, unknownNeed{l.Name, startTimeOf(l.Name), "the backup_started.json of unfinished backup " + l.Name + " cannot be read"})
		}
	}
	return out
}

// startTimeOf reads the start time out of a backup name
// (base_<segment>_<20060102T150405Z>, as backup-push names them); zero if
// the name does not tell.
func startTimeOf(name string) time.Time {
	rest, ok := strings.CutPrefix(name, "base_")
	if _, seg := startOf(name); !ok || !seg || len(rest) < 25+16 || rest[24] != '_' {
		return time.Time{}
	}
	t, err := time.Parse("20060102T150405Z", rest[25:25+16])
	if err != nil {
		return time.Time{}
	}
	return t.Add(time.Second) // the name's time is cut to the second
}

// keepNeeded undoes the deletion of every backup that something the plan
// keeps needs (see the chain rules above), with a reason naming it, and
// adds a note per chain it kept whole. It must run after the plan's own
// rule and before planWAL.
func (p *Plan) keepNeeded(inv Inventory) {
	metas := make([]basebackup.Meta, len(p.Backups))
	at := map[string]int{}
	for i, d := range p.Backups {
		metas[i] = d.Meta
		at[d.Meta.Name] = i
	}
	kept := map[string][]string{} // who kept them: by the backup that needs them
	keep := func(i int, reason, by string) {
		d := &p.Backups[i]
		if !d.Delete {
			return
		}
		d.Delete, d.Reason = false, reason
		kept[by] = append(kept[by], d.Meta.Name)
	}
	for _, u := range unknownNeeds(inv) {
		for i, d := range p.Backups {
			if u.mayNeed(d.Meta) {
				keep(i, u.Reason+", and it may be an incremental backup that needs this one", u.Name)
			}
		}
	}
	keepChain := func(name, reason, by string) {
		chain, _ := basebackup.Chain(metas, name)
		for _, m := range chain {
			keep(at[m.Name], reason, by)
		}
	}
	for _, l := range inv.Leftovers {
		if l.Parent == "" {
			continue
		}
		if i, ok := at[l.Parent]; ok {
			keep(i, "the parent of unfinished backup "+l.Name+", an incremental backup-push that may still be running", l.Name)
			keepChain(l.Parent, "in the chain of unfinished backup "+l.Name+", an incremental backup-push that may still be running", l.Name)
		}
	}
	// Newest first, so that a reason names the newest backup that needs it.
	for i := len(p.Backups) - 1; i >= 0; i-- {
		d := p.Backups[i]
		if d.Delete || !d.Meta.Incremental() {
			continue
		}
		what := "kept"
		if d.Meta.Permanent {
			what = "permanent"
		}
		keepChain(d.Meta.Name, fmt.Sprintf("in the chain of backup %s, which is %s and needs it to restore", d.Meta.Name, what), d.Meta.Name)
	}
	var by []string
	for b := range kept {
		by = append(by, b)
	}
	slices.Sort(by)
	for _, b := range by {
		p.Notes = append(p.Notes, fmt.Sprintf("kept %s, which the rule would delete: %s needs them", strings.Join(kept[b], ", "), b))
	}
}

// DependentsError refuses to delete a backup that others are built on.
type DependentsError struct {
	Backup     string   `json:"backup"`
	Dependents []string `json:"dependents"` // the backups whose restore needs it, nearest first
	Msg        string   `json:"error"`
}

func (e *DependentsError) Error() string { return e.Msg }
func (e *DependentsError) Unwrap() error { return ErrRefused }

func names(ms []basebackup.Meta) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Name
	}
	return out
}

// deleteOrder orders names so that a backup comes before any backup it is
// built on: the unreadable ones first (what they are built on is unknown),
// then by chain depth, deepest first, and by the chain as found in metas
// (which a depth in metadata cannot contradict).
func deleteOrder(names []string, metas []basebackup.Meta) []string {
	depth := map[string]int{}
	for _, m := range metas {
		chain, _ := basebackup.Chain(metas, m.Name)
		depth[m.Name] = len(chain)
	}
	out := slices.Clone(names)
	slices.SortStableFunc(out, func(a, b string) int {
		da, oka := depth[a]
		db, okb := depth[b]
		switch {
		case !oka && okb:
			return -1
		case oka && !okb:
			return 1
		}
		return db - da
	})
	return out
}
