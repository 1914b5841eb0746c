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
	// WAL is the WAL decision (garbage and everything only).
	WAL *WALPlan
	// SweepBefore, when set, also removes the invisible remains of writes
	// started before it and never finished, where the storage can find them
	// (the folder store's temporary files).
	SweepBefore time.Time
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

	// Filled by CountWAL. Delete and DeleteBytes are the objects the rule
	// deletes; First and Last name the first and last of them in key order.
	Delete      int
	DeleteBytes int64
	First, Last string
	Keep        int
	KeepBytes   int64
	Strays      int

	all  bool   // everything: every WAL file goes
	need Needed // otherwise: what need does not keep goes
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

// RetainOptions are delete retain's rules; a backup kept by any rule stays.
type RetainOptions struct {
	Keep   int           // the newest Keep backups of each lineage (≥ 1)
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
	for _, idx := range lineages(inv.Backups) {
		// Walk the lineage newest first.
		windowBase := false
		counted := 0
		for k := len(idx) - 1; k >= 0; k-- {
			d := &p.Backups[idx[k]]
			m := d.Meta
			switch {
			case m.Permanent:
				d.Reason = "permanent (not counted)"
			case counted < opts.Keep:
				counted++
				d.Reason = fmt.Sprintf("one of the newest %d", opts.Keep)
			case opts.After != nil && !m.FinishTime.Before(after):
				d.Reason = "finished at or after " + opts.After.String()
			case opts.Window > 0 && !m.FinishTime.Before(cutoff):
				d.Reason = "inside the retain window of " + durationString(opts.Window)
			case opts.Window > 0 && !windowBase:
				d.Reason = "needed to restore to the start of the retain window"
			default:
				d.Delete = true
				d.Reason = fmt.Sprintf("older than the newest %d", opts.Keep)
			}
			// The newest ordinary backup before the window is what restoring
			// to the window's start needs (a permanent one keeps only its
			// own WAL, so it cannot serve).
			if opts.Window > 0 && !m.Permanent && m.FinishTime.Before(cutoff) {
				windowBase = true
			}
		}
	}
	if len(p.Deleting()) == 0 {
		p.Notes = append(p.Notes, fmt.Sprintf("no backup to delete: every backup is kept (%d backups, retain %d)", len(inv.Backups), opts.Keep))
	}
	if err := p.planWAL(inv, inv.Leftovers); err != nil {
		return Plan{}, err
	}
	return p, nil
}

// Before plans delete before: with a name, the backups of that backup's
// lineage that finished before it; with a time, the backups of any lineage
// that finished before it. Permanent backups stay; a plan that would leave
// no backup at all is refused.
func Before(inv Inventory, bound Bound) (Plan, error) {
	target, t, err := bound.resolve(inv)
	if err != nil {
		return Plan{}, err
	}
	p := newPlan(inv)
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
		default:
			d.Delete = true
			d.Reason = "finished before " + bound.String()
		}
		if !d.Delete {
			kept++
		}
	}
	if kept == 0 && len(p.Backups) > 0 {
		return Plan{}, fmt.Errorf("delete before %s would delete every backup in the repository; use tusk delete everything if that is what you want (%w)", bound, ErrRefused)
	}
	if len(p.Deleting()) == 0 {
		p.Notes = append(p.Notes, "no backup to delete: none finished before "+bound.String())
	}
	if err := p.planWAL(inv, inv.Leftovers); err != nil {
		return Plan{}, err
	}
	return p, nil
}

// Target plans delete target: one backup, which may have unreadable
// metadata. A permanent backup is refused.
func Target(inv Inventory, name string) (Plan, error) {
	p := newPlan(inv)
	found := false
	for i := range p.Backups {
		d := &p.Backups[i]
		if d.Meta.Name != name {
			d.Reason = "not the target"
			continue
		}
		if d.Meta.Permanent {
			return Plan{}, fmt.Errorf("backup %s is permanent; run tusk backup-mark %s --impermanent first (%w)", name, name, ErrRefused)
		}
		d.Delete, d.Reason, found = true, "the target", true
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

// Garbage plans delete garbage: WAL that no kept backup needs and the
// leftovers of interrupted backups. Unreadable metadata refuses the WAL
// part, since the WAL that backup needs is unknown.
func Garbage(inv Inventory, opts GarbageOptions) (Plan, error) {
	p := newPlan(inv)
	for i := range p.Backups {
		p.Backups[i].Reason = "kept (garbage deletes no backup)"
	}
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
		need: need, running: starts, known: inv.names()}
	if len(kept) == 0 {
		p.Notes = append(p.Notes, "no backups: all WAL is kept (tusk delete everything removes it)")
	}
	return nil
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
