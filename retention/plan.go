package retention

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/wal"
)

// Plan is what a delete command removes and keeps, and why.
type Plan struct {
	// Backups lists every readable backup, oldest first, each with its
	// decision.
	Backups []Decision
	// Unreadable are backups whose metadata cannot be read; they are left
	// alone unless Target names one (then DeleteUnreadable holds it).
	Unreadable       []Unreadable
	DeleteUnreadable []string
	// Interrupted are deletes a previous run did not finish; Execute
	// finishes them first.
	Interrupted []string
	// Leftovers are folders of unfinished backups with their decision
	// (garbage and everything only).
	Leftovers []LeftoverDecision
	// WAL is the WAL decision, over tusk's WAL and wal-g's; nil when the
	// command deletes no WAL (target, garbage BACKUPS) or the plan keeps it
	// all for a reason its Notes give.
	WAL *WALPlan
	// SweepBefore, when set, also removes the invisible remains of writes
	// started before it and never finished, where the storage can find them
	// (the folder store's temporary files).
	SweepBefore time.Time
	// Broken are the incremental backups whose chain does not reach a full
	// backup (see the chain rules in chain.go).
	Broken []Broken
	// Notes are sentences for the operator ("nothing to delete").
	Notes []string
	// emptyNote is the note for a plan that deletes nothing, added once that
	// is known (after CountWAL when the plan deletes WAL).
	emptyNote string
}

// Decision is the fate of one backup.
type Decision struct {
	Meta   basebackup.Meta
	Delete bool
	Reason string
}

// LeftoverDecision is the fate of one unfinished backup's folder.
type LeftoverDecision struct {
	Leftover
	Delete bool
	Reason string
}

// WALPlan is which archived WAL objects go: a rule over WAL file names,
// decided from the backups alone (every WAL file with everything; otherwise
// what NeededWAL does not keep), and the figures CountWAL found by listing
// the archive under it.
type WALPlan struct {
	// KeepFrom is the start segment of the backup from which all WAL is
	// kept, on any timeline ("" when all WAL is kept or all deleted).
	KeepFrom string
	// Protected are the permanent backups' ranges kept before KeepFrom.
	Protected []Range

	// Filled by CountWAL, over both layouts (tusk's wal/, then wal-g's
	// wal_005/). Delete and DeleteBytes are the objects the rule deletes;
	// First and Last name the WAL files of the first and last of them in
	// key order; Strays are objects in either that are no WAL file's.
	Delete      int
	DeleteBytes int64
	First, Last string
	Keep        int
	KeepBytes   int64
	Strays      int

	all  bool   // everything: every WAL file goes
	need Needed // otherwise: what need does not keep goes
	// segSizes are the kept backups' segment sizes, which place wal-g's
	// delta maps (see walgwal.go).
	segSizes []uint64
	// running are the start segments of the backups that may still be
	// running, which the plan kept the WAL of (Execute plans the WAL again
	// with them when it spares a backup).
	running []string
	// known are the names of every backup and unfinished backup the plan
	// saw, sorted; Execute keeps the WAL that any other one may need.
	known []string
	// counted is set by CountWAL. lastKey is the key of the last object the
	// rule deletes, and newest the newest modification time among those
	// objects: Execute deletes nothing after lastKey, and nothing modified
	// after newest (by the repository's own clock), so that nothing archived
	// after the plan was counted is deleted.
	counted bool
	lastKey string
	newest  time.Time
}

// deletes reports whether the rule deletes WAL file n.
func (w *WALPlan) deletes(n wal.Name) bool { return w.all || !w.need.Keeps(n) }

// Range is a permanent backup's WAL, first through last segment.
type Range struct {
	Backup      string `json:"backup"`
	First, Last string
}

// Deleting lists the backups the plan deletes.
func (p Plan) Deleting() []basebackup.Meta {
	var out []basebackup.Meta
	for _, d := range p.Backups {
		if d.Delete {
			out = append(out, d.Meta)
		}
	}
	return out
}

// Empty reports whether executing the plan would change nothing. For a plan
// that deletes WAL it can tell only once CountWAL has run.
func (p Plan) Empty() bool {
	if len(p.Deleting()) > 0 || len(p.DeleteUnreadable) > 0 || len(p.Interrupted) > 0 {
		return false
	}
	for _, l := range p.Leftovers {
		if l.Delete {
			return false
		}
	}
	return p.WAL == nil || p.WAL.Delete == 0
}

// noteIfEmpty adds p.emptyNote to the notes when executing p would change
// nothing. A plan whose WAL is not counted yet cannot tell: CountWAL calls
// it again.
func (p *Plan) noteIfEmpty() {
	if p.emptyNote == "" || (p.WAL != nil && !p.WAL.counted) {
		return
	}
	if p.Empty() {
		p.Notes = append(p.Notes, p.emptyNote)
	}
	p.emptyNote = ""
}

// ErrRefused is returned when a plan would break a rule (delete every backup
// through before, delete a permanent backup): nothing is deleted.
var ErrRefused = errors.New("nothing was deleted")

// Bound is a point given by the operator: a backup's name or a time.
type Bound struct {
	Name string
	Time time.Time
}

func (b Bound) String() string {
	if b.Name != "" {
		return b.Name
	}
	return b.Time.UTC().Format(time.RFC3339)
}

// resolve returns the bound's time: the named backup's finish time.
func (b Bound) resolve(inv Inventory) (basebackup.Meta, time.Time, error) {
	if b.Name == "" {
		return basebackup.Meta{}, b.Time, nil
	}
	for _, m := range inv.Backups {
		if m.Name == b.Name {
			return m, m.FinishTime, nil
		}
	}
	return basebackup.Meta{}, time.Time{}, fmt.Errorf("backup %s: %w in the repository (see tusk backup-list)", b.Name, basebackup.ErrNoBackup)
}

// RetainOptions are delete retain's rules; a backup kept by any rule stays,
// and so does every backup its chain needs (FIND_FULL is this, and so it is
// the plain rule).
type RetainOptions struct {
	Keep int // the newest Keep backups of each lineage (≥ 1)
	// Full (FULL) counts full backups only: the newest Keep full backups
	// stay, and every backup newer than the oldest of them, which includes
	// every incremental built on them.
	Full   bool
	After  *Bound        // and every backup that finished at or after it
	Window time.Duration // and every backup needed to restore to any moment of the last Window
	Now    time.Time
}

// Retain plans delete retain.
func Retain(inv Inventory, opts RetainOptions) (Plan, error) {
	if opts.Keep < 1 {
		return Plan{}, fmt.Errorf("retain must keep at least 1 backup; to delete every backup use tusk delete everything")
	}
	var after time.Time
	if opts.After != nil {
		var err error
		if _, after, err = opts.After.resolve(inv); err != nil {
			return Plan{}, err
		}
	}
	cutoff := opts.Now.Add(-opts.Window)
	p := newPlan(inv)
	broken := p.findBroken(inv)
	newest := fmt.Sprintf("the newest %d", opts.Keep)
	if opts.Full {
		newest = fmt.Sprintf("the newest %d full backups", opts.Keep)
	}
	for _, idx := range lineages(inv.Backups) {
		// Walk the lineage newest first.
		windowBase := false
		counted := 0
		for k := len(idx) - 1; k >= 0; k-- {
			d := &p.Backups[idx[k]]
			m := d.Meta
			_, isBroken := broken[m.Name]
			switch {
			case isBroken:
				d.Reason = "broken (not counted): its chain misses backup " + broken[m.Name].Missing
			case m.Permanent:
				d.Reason = "permanent (not counted)"
			case opts.Full && counted < opts.Keep && m.Incremental():
				d.Reason = "newer than the oldest of " + newest
			case counted < opts.Keep:
				counted++
				d.Reason = "one of " + newest
			case opts.After != nil && !m.FinishTime.Before(after):
				d.Reason = "finished at or after " + opts.After.String()
			case opts.Window > 0 && !m.FinishTime.Before(cutoff):
				d.Reason = "inside the retain window of " + durationString(opts.Window)
			case opts.Window > 0 && !windowBase:
				d.Reason = "needed to restore to the start of the retain window"
			default:
				d.Delete = true
				d.Reason = "older than " + newest
			}
			// The newest ordinary backup before the window is what restoring
			// to the window's start needs (a permanent one keeps only its
			// own WAL, so it cannot serve, and a broken one cannot restore);
			// keepNeeded keeps its chain.
			if opts.Window > 0 && !m.Permanent && !isBroken && m.FinishTime.Before(cutoff) {
				windowBase = true
			}
		}
	}
	p.keepNeeded(inv)
	if len(p.Deleting()) == 0 {
		p.Notes = append(p.Notes, fmt.Sprintf("no backup to delete: every backup is kept (%d backups, retain %s)", len(inv.Backups), retainString(opts)))
	}
	if err := p.planWAL(inv, inv.Leftovers); err != nil {
		return Plan{}, err
	}
	return p, nil
}

// findFull moves a before bound back until no backup it keeps has a chain
// that starts before it: to the full backup at the root of that chain (a
// name bound names it; a time bound becomes its finish time). It returns
// the new bound and the full backup's name ("" if the bound did not move).
// Broken chains are left out: they have no full backup to find.
func findFull(inv Inventory, bound Bound, target basebackup.Meta, t time.Time) (Bound, basebackup.Meta, time.Time, string) {
	deletes := func(m basebackup.Meta) bool {
		if bound.Name != "" {
			return m.SystemID == target.SystemID && basebackup.Compare(m, target) < 0
		}
		return m.FinishTime.Before(t)
	}
	full := ""
	for moved := true; moved; {
		moved = false
		for _, m := range inv.Backups {
			if !m.Incremental() || deletes(m) {
				continue
			}
			chain, missing := basebackup.Chain(inv.Backups, m.Name)
			if missing != "" {
				continue
			}
			if root := chain[len(chain)-1]; deletes(root) {
				if bound.Name != "" {
					bound, target = Bound{Name: root.Name}, root
				} else {
					bound = Bound{Time: root.FinishTime}
				}
				t, full, moved = root.FinishTime, root.Name, true
			}
		}
	}
	return bound, target, t, full
}

func retainString(o RetainOptions) string {
	if o.Full {
		return fmt.Sprintf("FULL %d", o.Keep)
	}
	return fmt.Sprint(o.Keep)
}

// BeforeOptions are delete before's.
type BeforeOptions struct {
	Bound Bound
	// FindFull (FIND_FULL) moves the bound back to the full backup at the
	// root of the chain of every backup it keeps, so that no chain is cut;
	// without it, a chain the bound cuts keeps the parents it needs (and
	// the plan says so).
	FindFull bool
}

// Before plans delete before: with a name, the backups of that backup's
// lineage that finished before it; with a time, the backups of any lineage
// that finished before it. Permanent and broken backups stay, and so do the
// chains of those it keeps; a plan that would leave no backup at all is
// refused.
func Before(inv Inventory, opts BeforeOptions) (Plan, error) {
	bound := opts.Bound
	target, t, err := bound.resolve(inv)
	if err != nil {
		return Plan{}, err
	}
	var fullName string
	if opts.FindFull {
		bound, target, t, fullName = findFull(inv, bound, target, t)
	}
	p := newPlan(inv)
	broken := p.findBroken(inv)
	kept := 0
	for i := range p.Backups {
		d := &p.Backups[i]
		m := d.Meta
		switch {
		case bound.Name != "" && m.SystemID != target.SystemID:
			d.Reason = "another cluster (system identifier " + m.SystemID + ")"
		case bound.Name != "" && m.Name == target.Name:
			d.Reason = "the named backup"
		case bound.Name != "" && basebackup.Compare(m, target) > 0:
			d.Reason = "newer than " + bound.Name
		case bound.Name == "" && !m.FinishTime.Before(t):
			d.Reason = "finished at or after " + bound.String()
		case m.Permanent:
			d.Reason = "permanent"
		case broken[m.Name] != Broken{}:
			d.Reason = "broken: its chain misses backup " + broken[m.Name].Missing + " (tusk delete garbage removes it)"
		default:
			d.Delete = true
			d.Reason = "finished before " + bound.String()
		}
	}
	p.keepNeeded(inv)
	for _, d := range p.Backups {
		if !d.Delete {
			kept++
		}
	}
	if kept == 0 && len(p.Backups) > 0 {
		return Plan{}, fmt.Errorf("delete before %s would delete every backup in the repository; use tusk delete everything if that is what you want (%w)", bound, ErrRefused)
	}
	if fullName != "" {
		p.Notes = append(p.Notes, fmt.Sprintf("FIND_FULL moved the bound from %s back to %s, the full backup a kept backup's chain starts from", opts.Bound, fullName))
	}
	if len(p.Deleting()) == 0 {
		p.Notes = append(p.Notes, "no backup to delete: none finished before "+bound.String()+" that no kept backup needs")
	}
	if err := p.planWAL(inv, inv.Leftovers); err != nil {
		return Plan{}, err
	}
	return p, nil
}

// TargetOptions are delete target's.
type TargetOptions struct {
	Name string
	// FindFull (FIND_FULL) deletes the backups built on the target with it;
	// without it, a target that others are built on is refused.
	FindFull bool
}

// Target plans delete target: one backup, which may have unreadable
// metadata, and with FindFull the backups built on it. A permanent backup
// is refused, and so is one that a backup the plan keeps may need: an
// incremental built on it (without FindFull: a DependentsError), an
// incremental backup-push that may still be running on its chain, a backup
// whose needs are unknown (see the chain rules in chain.go).
func Target(inv Inventory, opts TargetOptions) (Plan, error) {
	name := opts.Name
	p := newPlan(inv)
	p.findBroken(inv)
	found := false
	var target basebackup.Meta
	for i := range p.Backups {
		d := &p.Backups[i]
		if d.Meta.Name != name {
			d.Reason = "not the target"
			continue
		}
		if d.Meta.Permanent {
			return Plan{}, fmt.Errorf("backup %s is permanent; run tusk backup-mark %s --impermanent first (%w)", name, name, ErrRefused)
		}
		d.Delete, d.Reason, found, target = true, "the target", true, d.Meta
	}
	if found {
		if err := p.targetDependents(inv, target, opts.FindFull); err != nil {
			return Plan{}, err
		}
	}
	for _, u := range inv.Unreadable {
		if u.Name == name {
			p.DeleteUnreadable = append(p.DeleteUnreadable, name)
			found = true
		}
	}
	if slices.Contains(inv.Interrupted, name) {
		found = true // Execute finishes it
	}
	if !found {
		return Plan{}, fmt.Errorf("backup %s: %w in the repository (see tusk backup-list)", name, basebackup.ErrNoBackup)
	}
	return p, nil
}

// targetDependents marks the backups built on target for deletion
// (FIND_FULL), or refuses; and refuses when something that stays may need
// one of those the plan deletes.
func (p *Plan) targetDependents(inv Inventory, target basebackup.Meta, findFull bool) error {
	deps := basebackup.Dependents(inv.Backups, target.Name)
	if len(deps) > 0 && !findFull {
		n := names(deps)
		return &DependentsError{Backup: target.Name, Dependents: n,
			Msg: fmt.Sprintf("backup %s cannot be deleted alone: the incremental backups %s are built on it and would be left without their parent; delete them first, or run tusk delete target FIND_FULL %s to delete it with them (%v)",
				target.Name, strings.Join(n, ", "), target.Name, ErrRefused)}
	}
	del := map[string]bool{target.Name: true}
	for _, m := range deps {
		if m.Permanent {
			return fmt.Errorf("backup %s cannot be deleted: permanent backup %s is built on it; run tusk backup-mark %s --impermanent first (%w)", target.Name, m.Name, m.Name, ErrRefused)
		}
		del[m.Name] = true
	}
	for i := range p.Backups {
		if d := &p.Backups[i]; del[d.Meta.Name] && d.Meta.Name != target.Name {
			d.Delete, d.Reason = true, "built on "+target.Name+" (target FIND_FULL)"
		}
	}
	if len(deps) > 0 {
		p.Notes = append(p.Notes, fmt.Sprintf("FIND_FULL: deleting the %d backup(s) built on %s with it: %s", len(deps), target.Name, strings.Join(names(deps), ", ")))
	}
	for _, l := range inv.Leftovers {
		if l.Parent == "" {
			continue
		}
		chain, _ := basebackup.Chain(inv.Backups, l.Parent)
		for _, m := range append(chain, basebackup.Meta{Name: l.Parent}) {
			if del[m.Name] {
				return fmt.Errorf("backup %s cannot be deleted: unfinished backup %s is an incremental backup-push on its chain that may still be running; wait for it to finish (if it is not running, tusk delete garbage removes it) (%w)", m.Name, l.Name, ErrRefused)
			}
		}
	}
	for _, u := range unknownNeeds(inv) {
		for _, d := range p.Backups {
			if d.Delete && u.mayNeed(d.Meta) {
				return fmt.Errorf("backup %s cannot be deleted: %s, and it may be an incremental backup that needs it; repair that object or delete it first with tusk delete target %s (%w)", d.Meta.Name, u.Reason, u.Name, ErrRefused)
			}
		}
	}
	return nil
}

// EverythingOptions are delete everything's.
type EverythingOptions struct {
	Force bool      // delete permanent backups too (FORCE)
	Now   time.Time // unfinished uploads older than this are swept
}

// Everything plans delete everything: every backup, every leftover and all
// WAL, history files included. Permanent backups refuse it unless
// opts.Force.
func Everything(inv Inventory, opts EverythingOptions) (Plan, error) {
	var perm []string
	for _, m := range inv.Backups {
		if m.Permanent {
			perm = append(perm, m.Name)
		}
	}
	if len(perm) > 0 && !opts.Force {
		return Plan{}, fmt.Errorf("the repository holds permanent backups (%s); run tusk delete everything FORCE to delete them too (%w)", strings.Join(perm, ", "), ErrRefused)
	}
	p := newPlan(inv)
	for i := range p.Backups {
		p.Backups[i].Delete, p.Backups[i].Reason = true, "everything"
		if p.Backups[i].Meta.Permanent {
			p.Backups[i].Reason = "everything FORCE: permanent, deleted too"
		}
	}
	for _, u := range inv.Unreadable {
		p.DeleteUnreadable = append(p.DeleteUnreadable, u.Name)
	}
	for _, l := range inv.Leftovers {
		p.Leftovers = append(p.Leftovers, LeftoverDecision{Leftover: l, Delete: true, Reason: "everything"})
	}
	p.WAL = &WALPlan{all: true, Strays: inv.Strays, known: inv.names()}
	p.SweepBefore = opts.Now
	p.emptyNote = "nothing to delete: the repository is empty"
	p.noteIfEmpty()
	return p, nil
}

// GarbageOptions are delete garbage's rules.
type GarbageOptions struct {
	// LeftoverAge: an unfinished backup's folder goes only when its newest
	// object is older than this, so a running backup-push is never touched.
	LeftoverAge time.Duration
	Now         time.Time
	// WAL and Leftovers choose what to collect (wal-g's ARCHIVES and BACKUPS).
	WAL, Leftovers bool
}

// Garbage plans delete garbage: WAL that no kept backup needs, the
// leftovers of interrupted backups, and broken backups (incremental ones
// whose chain misses a backup: they can never be restored). Unreadable metadata refuses the WAL
// part, since the WAL that backup needs is unknown.
func Garbage(inv Inventory, opts GarbageOptions) (Plan, error) {
	p := newPlan(inv)
	broken := p.findBroken(inv)
	for i := range p.Backups {
		d := &p.Backups[i]
		d.Reason = "kept (garbage deletes only broken backups)"
		if b, ok := broken[d.Meta.Name]; ok {
			d.Reason = "broken: its chain misses backup " + b.Missing + ", so it cannot be restored"
			d.Delete = opts.Leftovers && !d.Meta.Permanent
			if !opts.Leftovers {
				d.Reason += " (left alone: ARCHIVES)"
			}
			if d.Meta.Permanent {
				d.Reason += " (left alone: permanent)"
			}
		}
	}
	// What the leftovers this plan deletes were built on needs no keeping.
	stay := inv
	stay.Leftovers = nil
	for _, l := range inv.Leftovers {
		if !opts.Leftovers || opts.Now.Sub(l.Newest) < opts.LeftoverAge {
			stay.Leftovers = append(stay.Leftovers, l)
		}
	}
	p.keepNeeded(stay)
	var young []Leftover
	for _, l := range inv.Leftovers {
		d := LeftoverDecision{Leftover: l}
		if opts.Now.Sub(l.Newest) >= opts.LeftoverAge && opts.Leftovers {
			d.Delete, d.Reason = true, "unfinished backup (no metadata)"
		} else {
			young = append(young, l)
			d.Reason = fmt.Sprintf("written less than %s ago: a backup-push may still be running", durationString(opts.LeftoverAge))
			if !opts.Leftovers {
				d.Reason = "left alone (ARCHIVES)"
			}
		}
		p.Leftovers = append(p.Leftovers, d)
	}
	if opts.Leftovers {
		p.SweepBefore = opts.Now.Add(-opts.LeftoverAge)
	}
	if opts.WAL {
		if len(inv.Unreadable) > 0 {
			u := inv.Unreadable[0]
			return Plan{}, fmt.Errorf("cannot tell which WAL backup %s needs (%s); repair the object or remove the backup with tusk delete target %s (%w)", u.Name, u.Err, u.Name, ErrRefused)
		}
		if err := p.planWAL(inv, young); err != nil {
			return Plan{}, err
		}
	}
	p.emptyNote = "nothing to delete: no garbage"
	p.noteIfEmpty()
	return p, nil
}

// planWAL decides the WAL rule for the backups the plan keeps (NeededWAL:
// everything from the oldest non-permanent backup's start stays, and so
// does each permanent backup's start-to-end range; with only permanent
// backups, the window starts at the newest one; with no backups, everything
// stays), protecting the WAL of unfinished backups that may still be
// running. Unreadable metadata keeps all WAL (with a note), since what
// that backup needs is unknown.
func (p *Plan) planWAL(inv Inventory, running []Leftover) error {
	if len(inv.Unreadable) > 0 {
		p.Notes = append(p.Notes, fmt.Sprintf("all WAL is kept: the metadata of backup %s cannot be read, so the WAL it needs is unknown", inv.Unreadable[0].Name))
		return nil
	}
	var kept []basebackup.Meta
	for _, d := range p.Backups {
		if !d.Delete {
			kept = append(kept, d.Meta)
		}
	}
	var starts []string
	for _, l := range running {
		start, ok := startOf(l.Name)
		if !ok {
			p.Notes = append(p.Notes, fmt.Sprintf("all WAL is kept: unfinished backup %s may still be running and its name does not tell where it starts", l.Name))
			return nil
		}
		starts = append(starts, start)
	}
	need, err := NeededWAL(kept, starts)
	if err != nil {
		return err
	}
	p.WAL = &WALPlan{KeepFrom: need.From, Protected: need.Permanent, Strays: inv.Strays,
		need: need, running: starts, known: inv.names(), segSizes: segSizes(kept)}
	if len(kept) == 0 {
		p.Notes = append(p.Notes, "no backups: all WAL is kept (tusk delete everything removes it)")
	}
	return nil
}

// segSizes lists the distinct segment sizes of bs.
func segSizes(bs []basebackup.Meta) []uint64 {
	var out []uint64
	for _, m := range bs {
		if m.SegSize != 0 && !slices.Contains(out, m.SegSize) {
			out = append(out, m.SegSize)
		}
	}
	return out
}

// startOf reads the start segment out of a backup name
// (base_<segment>_<time>, as backup-push names them).
func startOf(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, "base_")
	if !ok || len(rest) < 24 {
		return "", false
	}
	if _, err := wal.ParseSegment(rest[:24]); err != nil {
		return "", false
	}
	return rest[:24], true
}

// names lists, sorted, every backup and unfinished backup inv holds.
func (inv Inventory) names() []string {
	var out []string
	for _, m := range inv.Backups {
		out = append(out, m.Name)
	}
	for _, u := range inv.Unreadable {
		out = append(out, u.Name)
	}
	for _, l := range inv.Leftovers {
		out = append(out, l.Name)
	}
	out = append(out, inv.Interrupted...)
	slices.Sort(out)
	return slices.Compact(out)
}

// findBroken records inv's broken backups in the plan, oldest first, and
// returns them by name.
func (p *Plan) findBroken(inv Inventory) map[string]Broken {
	broken := brokenBackups(inv)
	for _, m := range inv.Backups {
		if b, ok := broken[m.Name]; ok {
			p.Broken = append(p.Broken, b)
		}
	}
	return broken
}

func newPlan(inv Inventory) Plan {
	p := Plan{Unreadable: inv.Unreadable, Interrupted: inv.Interrupted}
	for _, m := range inv.Backups {
		p.Backups = append(p.Backups, Decision{Meta: m})
	}
	return p
}

// lineages groups backup indexes by system identifier, each oldest first.
func lineages(bs []basebackup.Meta) [][]int {
	pos := map[string]int{}
	var out [][]int
	for i, m := range bs {
		k, ok := pos[m.SystemID]
		if !ok {
			k = len(out)
			pos[m.SystemID] = k
			out = append(out, nil)
		}
		out[k] = append(out[k], i)
	}
	return out
}

// durationString prints whole days as "14d".
func durationString(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// ParseDuration reads a duration with a day unit: "14d", "36h", "1d12h".
func ParseDuration(s string) (time.Duration, error) {
	bad := fmt.Errorf("%q is not a duration (use days or Go units, like 14d, 36h or 1d12h)", s)
	var total time.Duration
	rest := s
	if i := strings.IndexByte(rest, 'd'); i >= 0 {
		var days int
		if _, err := fmt.Sscanf(rest[:i], "%d", &days); err != nil || days < 0 || fmt.Sprint(days) != rest[:i] {
			return 0, bad
		}
		total = time.Duration(days) * 24 * time.Hour
		rest = rest[i+1:]
	}
	if rest != "" {
		d, err := time.ParseDuration(rest)
		if err != nil || d < 0 {
			return 0, bad
		}
		total += d
	}
	if s == "" {
		return 0, bad
	}
	return total, nil
}
