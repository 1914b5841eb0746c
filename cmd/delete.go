package cmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/retention"
	"github.com/tusk-backup/tusk/storage"
)

// deleteOpts are the flags every delete subcommand shares.
type deleteOpts struct {
	confirm bool
	json    bool
}

func newDeleteCmd(root *rootOpts) *cobra.Command {
	o := &deleteOpts{}
	c := &cobra.Command{
		Use:   "delete",
		Short: "Delete old backups and WAL (a dry run without --confirm)",
		Long: `delete removes backups and WAL by retention rules, with wal-g's grammar:

  tusk delete retain [FULL|FIND_FULL] N [--after NAME|TIME] [--retain-window 14d]
  tusk delete before [FIND_FULL] NAME|TIME
  tusk delete everything [FORCE]
  tusk delete target [FIND_FULL] NAME
  tusk delete garbage [ARCHIVES|BACKUPS]

Without --confirm every delete is a dry run: it prints what would go, what
stays and why, and the bytes it would free. With --confirm it carries out the
same plan. Backups are ordered by their metadata (finish time, LSN), never by
name, and counted per cluster (system identifier), so a re-initialized or
upgraded cluster on the same prefix never deletes the other's backups.
Permanent backups (backup-push --permanent, backup-mark) and the WAL from their
start to their end are never deleted, except by "everything FORCE".

An incremental backup restores only with its chain (its parent, and so on up
to a full backup), so no delete leaves one without its parent: whatever a kept
backup, a permanent one, or an incremental backup-push still running needs
stays, and the plan says why. A backup whose chain misses a backup (deleted
behind tusk's back) is broken: plans name it, and only "garbage" deletes it.

retain and before also delete the WAL that no remaining backup needs (as
wal-g's do); target leaves it for "delete garbage", which also removes the
leftovers of interrupted backups. wal-g's backups and WAL on the same prefix
(basebackups_005/, wal_005/) are counted and deleted as tusk's own. Deletes are crash-safe: an interrupted delete leaves no listed backup
with missing parts, and the next delete finishes it. A backup marked permanent
while a delete runs is spared with the WAL it needs; the rest of the plan is
carried out and the delete exits 1 saying so.`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef(errors.New("delete needs one of retain, before, everything, target or garbage (see tusk delete --help)"))
			}
			return usagef(fmt.Errorf("%q is not a delete command: use retain, before, everything, target or garbage (see tusk delete --help)", args[0]))
		},
		RunE: func(*cobra.Command, []string) error { return nil },
	}
	pf := c.PersistentFlags()
	pf.BoolVar(&o.confirm, "confirm", false, "carry out the plan (without it, delete only prints what it would do)")
	pf.BoolVar(&o.json, "json", false, "print the plan (and with --confirm what was done) as JSON")
	c.AddCommand(newDeleteRetainCmd(root, o), newDeleteBeforeCmd(root, o), newDeleteEverythingCmd(root, o),
		newDeleteTargetCmd(root, o), newDeleteGarbageCmd(root, o))
	return c
}

func newDeleteRetainCmd(root *rootOpts, o *deleteOpts) *cobra.Command {
	var after, window string
	c := &cobra.Command{
		Use:   "retain [FULL|FIND_FULL] N",
		Short: "Keep the newest N backups of each cluster and delete the older ones",
		Long: `retain keeps the newest N backups of each cluster (system identifier) and
the backups their chains need (an incremental's parents up to its full
backup), and deletes the older ones, and the WAL that no remaining backup
needs. FULL N keeps the newest N full backups and every backup newer than the
oldest of them, so every incremental built on them; FIND_FULL N is the same as
N (the full backup a kept incremental needs is always kept). Permanent and
broken backups are kept and not counted. --after NAME|TIME also keeps every
backup that finished at or after it; --retain-window 14d also keeps every
backup needed to restore to any moment of the last 14 days (the backups inside
the window and the newest one before it, with their chains).`,
		RunE: func(c *cobra.Command, args []string) error {
			full, modifier := false, ""
			if len(args) == 2 && (args[0] == "FULL" || args[0] == "FIND_FULL") {
				full, modifier = args[0] == "FULL", args[0]+" "
				args = args[1:]
			}
			if len(args) == 1 && (args[0] == "FULL" || args[0] == "FIND_FULL") {
				return usagef(fmt.Errorf("retain %s needs the number of backups to keep after it, e.g. tusk delete retain %s 7", args[0], args[0]))
			}
			if len(args) != 1 {
				return usagef(errors.New("retain takes [FULL|FIND_FULL] N, the number of backups to keep, e.g. tusk delete retain FULL 7"))
			}
			n, err := strconv.Atoi(args[0])
			if err != nil || n < 1 {
				return usagef(fmt.Errorf("retain needs the number of backups to keep, at least 1; got %q (to delete every backup use tusk delete everything)", args[0]))
			}
			ro := retention.RetainOptions{Keep: n, Full: full, Now: time.Now()}
			if after != "" {
				b, err := parseBound(after, "--after")
				if err != nil {
					return err
				}
				ro.After = &b
			}
			if window != "" {
				if ro.Window, err = retention.ParseDuration(window); err != nil {
					return usagef(fmt.Errorf("--retain-window: %w", err))
				}
			}
			what := "retain " + modifier + args[0]
			return runDelete(c, root, o, what, func(inv retention.Inventory) (retention.Plan, error) {
				return retention.Retain(inv, ro)
			})
		},
	}
	c.Flags().StringVar(&after, "after", "", "also keep every backup that finished at or after this backup NAME or TIME")
	c.Flags().StringVar(&window, "retain-window", "", "also keep what restoring to any moment of this last span needs, e.g. 14d or 36h")
	c.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		// "retain -1" reaches pflag as the shorthand flag "-1".
		var ne *pflag.NotExistError
		if errors.As(err, &ne) && ne.GetSpecifiedShortnames() != "" && strings.Trim(ne.GetSpecifiedShortnames(), "0123456789") == "" {
			return usagef(fmt.Errorf("retain needs the number of backups to keep, at least 1; got -%s (to delete every backup use tusk delete everything)", ne.GetSpecifiedShortnames()))
		}
		return usagef(fmt.Errorf("%v (see %s --help)", err, c.CommandPath()))
	})
	return c
}

func newDeleteBeforeCmd(root *rootOpts, o *deleteOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "before [FIND_FULL] NAME|TIME",
		Short: "Delete the backups that finished before a backup or a time",
		Long: `before NAME deletes the backups of NAME's cluster that finished before NAME;
before TIME deletes the backups of every cluster that finished before TIME
(2026-11-20T03:00:00Z; a time without a zone is UTC; a date means its
midnight UTC), and the WAL that no remaining backup needs. Permanent and broken
backups stay. When the bound cuts a chain, the parents the kept backups need
stay and the plan says so; with FIND_FULL the bound moves back to the full
backup their chain starts from instead, as wal-g's does. A plan that would
leave no backup at all is refused.`,
		RunE: func(c *cobra.Command, args []string) error {
			findFull := false
			if len(args) == 2 && args[0] == "FIND_FULL" {
				findFull = true
				args = args[1:]
			}
			if len(args) != 1 || args[0] == "FIND_FULL" {
				return usagef(errors.New("before takes [FIND_FULL] NAME|TIME, e.g. tusk delete before 2026-11-01T00:00:00Z"))
			}
			b, err := parseBound(args[0], "delete before")
			if err != nil {
				return err
			}
			what := "before " + args[0]
			if findFull {
				what = "before FIND_FULL " + args[0]
			}
			return runDelete(c, root, o, what, func(inv retention.Inventory) (retention.Plan, error) {
				return retention.Before(inv, retention.BeforeOptions{Bound: b, FindFull: findFull})
			})
		},
	}
}

func newDeleteEverythingCmd(root *rootOpts, o *deleteOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "everything [FORCE]",
		Short: "Delete every backup and all WAL",
		Long: `everything deletes every backup of every cluster, the leftovers of unfinished
backups, and all WAL including timeline history files. It refuses while
permanent backups exist unless FORCE is given, which deletes them too. A backup
marked permanent while the delete runs is spared, with the WAL from its start
on, and the delete then exits 1 saying so.`,
		RunE: func(c *cobra.Command, args []string) error {
			force := len(args) == 1 && args[0] == "FORCE"
			if len(args) > 1 || (len(args) == 1 && !force) {
				return usagef(fmt.Errorf("everything takes only the word FORCE; got %q", strings.Join(args, " ")))
			}
			return runDelete(c, root, o, "everything", func(inv retention.Inventory) (retention.Plan, error) {
				return retention.Everything(inv, retention.EverythingOptions{Force: force, Now: time.Now()})
			})
		},
	}
}

func newDeleteTargetCmd(root *rootOpts, o *deleteOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "target [FIND_FULL] NAME",
		Short: "Delete one backup",
		Long: `target deletes one backup, also one whose metadata cannot be read. A
permanent backup is refused (tusk backup-mark NAME --impermanent first). A
backup that incremental backups are built on is refused, naming them, unless
FIND_FULL is given, which deletes it and every backup built on it (the plan
lists them). It is refused too while an incremental backup-push may be running
on its chain, or while a backup whose metadata cannot be read may be built on
it. Like wal-g's, target leaves the WAL for "delete garbage".`,
		RunE: func(c *cobra.Command, args []string) error {
			findFull := false
			if len(args) == 2 && args[0] == "FIND_FULL" {
				findFull = true
				args = args[1:]
			}
			if len(args) != 1 || args[0] == "FIND_FULL" {
				return usagef(errors.New("target takes [FIND_FULL] NAME, the backup to delete"))
			}
			if err := basebackup.CheckName(args[0]); err != nil {
				return usagef(err)
			}
			what := "target " + args[0]
			if findFull {
				what = "target FIND_FULL " + args[0]
			}
			return runDelete(c, root, o, what, func(inv retention.Inventory) (retention.Plan, error) {
				return retention.Target(inv, retention.TargetOptions{Name: args[0], FindFull: findFull})
			})
		},
	}
}

func newDeleteGarbageCmd(root *rootOpts, o *deleteOpts) *cobra.Command {
	var age time.Duration
	c := &cobra.Command{
		Use:   "garbage [ARCHIVES|BACKUPS]",
		Short: "Delete WAL no backup needs, leftovers of interrupted backups, broken backups",
		Long: `garbage deletes the WAL that no remaining backup needs, the folders of
backups that never finished, and broken backups (incremental backups whose
chain misses a backup, which can never be restored). WAL stays from the start of the oldest
non-permanent backup onward (point-in-time recovery from any kept backup), and
from start to end of every permanent backup; timeline history files always
stay. An unfinished backup's folder goes only once its newest object is older
than --leftover-age, so a backup-push running now is never touched. ARCHIVES
limits it to WAL, BACKUPS to unfinished and broken backups.`,
		RunE: func(c *cobra.Command, args []string) error {
			what := ""
			if len(args) == 1 && (args[0] == "ARCHIVES" || args[0] == "BACKUPS") {
				what = args[0]
			} else if len(args) > 0 {
				return usagef(fmt.Errorf("garbage takes ARCHIVES, BACKUPS or nothing; got %q", strings.Join(args, " ")))
			}
			if age < 0 {
				return usagef(errors.New("--leftover-age must not be negative"))
			}
			return runDelete(c, root, o, "garbage", func(inv retention.Inventory) (retention.Plan, error) {
				return retention.Garbage(inv, retention.GarbageOptions{LeftoverAge: age, Now: time.Now(),
					WAL: what != "BACKUPS", Leftovers: what != "ARCHIVES"})
			})
		},
	}
	c.Flags().DurationVar(&age, "leftover-age", 6*time.Hour, "leave an unfinished backup's folder alone until its newest object is this old")
	return c
}

// parseBound reads NAME|TIME.
func parseBound(s, what string) (retention.Bound, error) {
	if t, ok := parseDeleteTime(s); ok {
		return retention.Bound{Time: t}, nil
	}
	if looksLikeTime(s) {
		return retention.Bound{}, usagef(fmt.Errorf("%s %q is not a valid time: give one like 2026-11-20T03:00:00Z or '2026-11-20 03:00:00+00' (without a zone it is UTC), or a date like 2026-11-20 (its midnight UTC)", what, s))
	}
	if err := basebackup.CheckName(s); err != nil {
		return retention.Bound{}, usagef(fmt.Errorf("%s %q is neither a backup name nor a time like 2026-11-20T03:00:00Z", what, s))
	}
	return retention.Bound{Name: s}, nil
}

// looksLikeTime reports whether s was meant as a time: it starts with a
// year and a dash, as no backup name does (theirs start with base_).
func looksLikeTime(s string) bool {
	return len(s) >= 5 && strings.Trim(s[:4], "0123456789") == "" && s[4] == '-'
}

// parseDeleteTime reads a time with a zone like --target-time, or one
// without a zone as UTC, or a date as its midnight UTC.
func parseDeleteTime(s string) (time.Time, bool) {
	if t, err := parseTargetTime(s); err == nil {
		return t, true
	}
	for _, l := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999", "2006-01-02"} {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// runDelete reads the inventory, plans, and prints or carries out the plan.
func runDelete(c *cobra.Command, root *rootOpts, o *deleteOpts, what string, plan func(retention.Inventory) (retention.Plan, error)) error {
	cfg, log, st, err := root.loadRepo(c)
	if err != nil {
		return err
	}
	ctx := c.Context()
	inv, err := retention.Read(ctx, st)
	if err != nil {
		return describeStorageErr(diagnose(ctx, st, err), cfg)
	}
	p, err := plan(inv)
	if err != nil {
		var de *retention.DependentsError
		if o.json && errors.As(err, &de) {
			if werr := writeJSON(root.stdout, refusalOutput{Command: what, Refused: true, Error: de.Error(), Backup: de.Backup, Dependents: de.Dependents}); werr != nil {
				return werr
			}
		}
		if errors.Is(err, basebackup.ErrNoBackup) {
			return &ExitError{Code: 1, Err: err}
		}
		return err
	}
	// The plan's WAL side is a rule; one streaming pass over the archive
	// counts what it deletes (Execute deletes in a second pass).
	if err := p.CountWAL(ctx, st); err != nil {
		return describeStorageErr(diagnose(ctx, st, err), cfg)
	}
	if !o.confirm {
		// Name each object, as wal-g's dry run does.
		objects := []string{}
		err := planObjects(ctx, st, p, func(ob storage.Object) error {
			log.Info("object would be deleted", "key", ob.Key)
			objects = append(objects, ob.Key)
			return nil
		})
		if err != nil {
			return describeStorageErr(diagnose(ctx, st, err), cfg)
		}
		if o.json {
			out := planJSON(p, what, true, nil)
			out.Objects = objects
			return writeJSON(root.stdout, out)
		}
		printPlan(root.stdout, p, what, true)
		return nil
	}
	if !o.json {
		printPlan(root.stdout, p, what, false)
	}
	prog := &deleteProgress{line: newProgressLine(root.stderr)}
	named := &namingStore{Storage: st, log: log}
	rep, err := retention.Execute(ctx, named, p, prog)
	prog.line.done()
	if err != nil {
		return describeStorageErr(fmt.Errorf("delete %s stopped after %d objects (run it again to finish): %w", what, rep.Objects, err), cfg)
	}
	log.Info("delete done", "command", what, "backups", len(rep.Backups), "wal", rep.WALDeleted,
		"objects", rep.Objects, "bytes", rep.FreedBytes, "spared", len(rep.Skipped))
	if o.json {
		out := planJSON(p, what, false, &rep)
		out.Objects = named.deleted()
		if err := writeJSON(root.stdout, out); err != nil {
			return err
		}
	} else {
		printReport(root.stdout, p, rep)
	}
	if len(rep.Skipped) > 0 {
		// The plan was not carried out in full: say so in the exit code too,
		// so a script that deletes everything before removing the bucket stops.
		return &ExitError{Code: 1, Err: sparedErr(what, rep.Skipped)}
	}
	if len(rep.KeptNeeded) > 0 {
		return &ExitError{Code: 1, Err: fmt.Errorf("delete %s kept %s, which an incremental backup-push that began while it ran is built on; the rest is done (run the delete again once that backup-push has finished)",
			what, strings.Join(rep.KeptNeeded, ", "))}
	}
	return nil
}

// refusalOutput is delete --json's document for a plan refused because
// other backups are built on the one it would delete.
type refusalOutput struct {
	Command    string   `json:"command"`
	Refused    bool     `json:"refused"`
	Error      string   `json:"error"`
	Backup     string   `json:"backup"`
	Dependents []string `json:"dependents"`
}

// sparedErr says that a delete spared backups marked permanent while it
// ran, and what to do to delete them.
func sparedErr(what string, spared []string) error {
	if len(spared) == 1 {
		return fmt.Errorf("delete %s spared backup %s, marked permanent while it ran, and kept the WAL it needs; the rest is done (to delete it too, run tusk backup-mark %s --impermanent, then the delete again)",
			what, spared[0], spared[0])
	}
	return fmt.Errorf("delete %s spared %d backups marked permanent while it ran (%s) and kept the WAL they need; the rest is done (to delete them too, run tusk backup-mark NAME --impermanent for each, then the delete again)",
		what, len(spared), strings.Join(spared, ", "))
}

type deleteProgress struct {
	line           *progressLine
	objects, bytes atomic.Int64
}

func (d *deleteProgress) Add(n int, size int64) {
	o, b := d.objects.Add(int64(n)), d.bytes.Add(size)
	d.line.show("deleted %d objects, %s", o, bytesString(b))
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// planOutput is delete's --json document.
type planOutput struct {
	Command     string                 `json:"command"`
	DryRun      bool                   `json:"dry_run"`
	Backups     []backupDecision       `json:"backups"`
	Unreadable  []retention.Unreadable `json:"unreadable"`
	Interrupted []string               `json:"interrupted_deletes"`
	Leftovers   []leftoverDecision     `json:"leftovers"`
	Broken      []retention.Broken     `json:"broken"`
	WAL         *walDecision           `json:"wal"`
	Notes       []string               `json:"notes"`
	FreesBytes  int64                  `json:"frees_bytes"`
	Done        *retention.Report      `json:"done,omitempty"`
	// Objects are the keys of every object deleted (with --confirm) or that
	// would be (a dry run), in the order of deletion, as wal-g names them.
	Objects []string `json:"objects"`
}

type backupDecision struct {
	Name       string    `json:"name"`
	SystemID   string    `json:"system_identifier"`
	FinishTime time.Time `json:"finish_time"`
	StartWAL   string    `json:"start_wal_segment"`
	Kind       string    `json:"kind"`                 // "full" or "incremental"
	Parent     string    `json:"parent,omitempty"`     // the backup an incremental is built on
	ChainFull  string    `json:"chain_full,omitempty"` // the full backup its chain starts from
	Broken     bool      `json:"broken,omitempty"`     // its chain misses a backup (see broken)
	Permanent  bool      `json:"permanent"`
	StoredSize int64     `json:"stored_size"`
	Action     string    `json:"action"` // "delete" or "keep"
	Reason     string    `json:"reason"`
}

type leftoverDecision struct {
	retention.Leftover
	Action string `json:"action"`
	Reason string `json:"reason"`
}

type walDecision struct {
	KeepFrom    string            `json:"keep_from_segment"`
	Protected   []retention.Range `json:"permanent_ranges"`
	Delete      int               `json:"delete_objects"`
	DeleteBytes int64             `json:"delete_bytes"`
	FirstDelete string            `json:"first_deleted"`
	LastDelete  string            `json:"last_deleted"`
	Keep        int               `json:"keep_objects"`
	KeepBytes   int64             `json:"keep_bytes"`
	Strays      int               `json:"other_objects"`
}

func action(del bool) string {
	if del {
		return "delete"
	}
	return "keep"
}

func planJSON(p retention.Plan, what string, dry bool, rep *retention.Report) planOutput {
	out := planOutput{Command: what, DryRun: dry, Unreadable: p.Unreadable, Interrupted: p.Interrupted,
		Notes: p.Notes, Done: rep, Backups: []backupDecision{}, Leftovers: []leftoverDecision{}, Broken: p.Broken, Objects: []string{}}
	if out.Broken == nil {
		out.Broken = []retention.Broken{}
	}
	broken := map[string]bool{}
	for _, b := range p.Broken {
		broken[b.Backup] = true
	}
	if out.Unreadable == nil {
		out.Unreadable = []retention.Unreadable{}
	}
	if out.Interrupted == nil {
		out.Interrupted = []string{}
	}
	if out.Notes == nil {
		out.Notes = []string{}
	}
	for _, d := range p.Backups {
		m := d.Meta
		out.Backups = append(out.Backups, backupDecision{Name: m.Name, SystemID: m.SystemID, FinishTime: m.FinishTime,
			StartWAL: m.StartWAL, Kind: m.Kind(), Parent: m.Parent, ChainFull: m.ChainFull, Broken: broken[m.Name],
			Permanent: m.Permanent, StoredSize: m.StoredSize, Action: action(d.Delete), Reason: d.Reason})
		if d.Delete {
			out.FreesBytes += m.StoredSize
		}
	}
	for _, l := range p.Leftovers {
		out.Leftovers = append(out.Leftovers, leftoverDecision{Leftover: l.Leftover, Action: action(l.Delete), Reason: l.Reason})
		if l.Delete {
			out.FreesBytes += l.Bytes
		}
	}
	if w := p.WAL; w != nil {
		wd := &walDecision{KeepFrom: w.KeepFrom, Protected: append([]retention.Range{}, w.Protected...), Delete: w.Delete, DeleteBytes: w.DeleteBytes,
			FirstDelete: w.First, LastDelete: w.Last, Keep: w.Keep, KeepBytes: w.KeepBytes, Strays: w.Strays}
		out.WAL = wd
		out.FreesBytes += wd.DeleteBytes
	}
	return out
}

// printPlan prints the plan as a table of backups and a few sentences.
func printPlan(w io.Writer, p retention.Plan, what string, dry bool) {
	j := planJSON(p, what, dry, nil)
	if dry {
		fmt.Fprintf(w, "dry run of delete %s: nothing is deleted without --confirm\n", what)
	}
	for _, n := range p.Notes {
		fmt.Fprintln(w, n)
	}
	if len(p.Interrupted) > 0 {
		verb := "finishing"
		if dry {
			verb = "would finish"
		}
		fmt.Fprintf(w, "%s %d interrupted delete(s): %s\n", verb, len(p.Interrupted), strings.Join(p.Interrupted, ", "))
	}
	if len(j.Backups) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "action\tname\tkind\tfinished\tsystem id\tstored\twhy")
		for _, b := range j.Backups {
			kind := b.Kind
			if b.Parent != "" {
				kind += " on " + b.Parent
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", b.Action, b.Name, kind, b.FinishTime.Local().Format("2006-01-02 15:04:05 MST"),
				b.SystemID, bytesString(b.StoredSize), b.Reason)
		}
		tw.Flush()
	}
	for _, b := range p.Broken {
		fmt.Fprintln(w, b.String())
	}
	for _, u := range p.Unreadable {
		verb := "left alone"
		for _, n := range p.DeleteUnreadable {
			if n == u.Name {
				verb = "deleted"
			}
		}
		fmt.Fprintf(w, "backup %s has unreadable metadata (%s): %s\n", u.Name, u.Err, verb)
	}
	for _, l := range j.Leftovers {
		fmt.Fprintf(w, "%s unfinished backup %s (%d objects, %s): %s\n", l.Action, l.Name, l.Objects, bytesString(l.Bytes), l.Reason)
	}
	if wd := j.WAL; wd != nil {
		switch {
		case wd.Delete > 0 && wd.KeepFrom != "":
			fmt.Fprintf(w, "delete %d WAL objects (%s): those positioned before %s, on any timeline; from there on all WAL is kept\n",
				wd.Delete, bytesString(wd.DeleteBytes), wd.KeepFrom)
		case wd.Delete > 0:
			fmt.Fprintf(w, "delete all %d WAL objects (%s)\n", wd.Delete, bytesString(wd.DeleteBytes))
		default:
			fmt.Fprintln(w, "no WAL to delete")
		}
		for _, r := range wd.Protected {
			fmt.Fprintf(w, "keep WAL %s through %s: permanent backup %s\n", r.First, r.Last, r.Backup)
		}
		fmt.Fprintf(w, "keep %d WAL objects (%s)\n", wd.Keep, bytesString(wd.KeepBytes))
	}
	if dry && !p.Empty() {
		fmt.Fprintf(w, "would free %s; run again with --confirm to delete\n", bytesString(j.FreesBytes))
	}
}

func printReport(w io.Writer, p retention.Plan, rep retention.Report) {
	for _, n := range rep.Skipped {
		fmt.Fprintf(w, "spared backup %s: it was marked permanent while the delete ran\n", n)
	}
	for _, n := range rep.KeptNeeded {
		fmt.Fprintf(w, "spared backup %s: a spared backup, or an incremental backup-push that began while the delete ran, is built on it\n", n)
	}
	if rep.WALSpared > 0 {
		fmt.Fprintf(w, "kept %d WAL objects the plan deleted, because the spared backups need them\n", rep.WALSpared)
	}
	if rep.WALKeptForNew > 0 {
		fmt.Fprintf(w, "kept %d WAL objects the plan deleted, because backups that started after the plan was made may need them\n", rep.WALKeptForNew)
	}
	if rep.Swept > 0 {
		fmt.Fprintf(w, "removed %d unfinished upload(s) left by interrupted runs\n", rep.Swept)
	}
	if p.Empty() {
		return
	}
	fmt.Fprintf(w, "deleted %d backup(s), %d unfinished backup(s), %d WAL objects: %d objects, %s freed in %.1fs\n",
		len(rep.Backups), len(rep.Leftovers), rep.WALDeleted, rep.Objects, bytesString(rep.FreedBytes), rep.DurationSec)
}
