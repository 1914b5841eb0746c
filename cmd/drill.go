package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/restore"
)

// drillResult is what restore-drill reports (--json).
type drillResult struct {
	OK              bool          `json:"ok"`
	Backup          string        `json:"backup"`
	Target          string        `json:"target"`
	RestoreSecs     float64       `json:"restore_seconds"`
	ReplaySecs      float64       `json:"replay_seconds"`
	RTOSecs         float64       `json:"rto_seconds"`
	Segments        int           `json:"segments_replayed"`
	StopLSN         string        `json:"stop_lsn,omitempty"`
	LastXactTime    string        `json:"last_transaction_time,omitempty"`
	RPOSecs         float64       `json:"rpo_seconds"`
	Relations       int64         `json:"relations"`
	Checks          []drillCheck  `json:"checks"`
	Failures        []string      `json:"failures"`
	Recovery        *recoveryInfo `json:"recovery,omitempty"`
	KeptScratchPath string        `json:"kept_scratch,omitempty"`
}

type recoveryInfo struct {
	Reason string `json:"stop_reason,omitempty"`
	Log    string `json:"log_file,omitempty"`
}

type drillCheck struct {
	SQL    string `json:"sql"`
	OK     bool   `json:"ok"`
	Result string `json:"result,omitempty"`
	Error  string `json:"error,omitempty"`
}

func newRestoreDrillCmd(root *rootOpts) *cobra.Command {
	var o backupFetchOpts
	var sqls []string
	var scratch, database string
	var maxRTO, maxRPO time.Duration
	var keep bool
	c := &cobra.Command{
		Use:   "restore-drill [NAME|LATEST]",
		Short: "Restore a backup into a scratch folder, replay the archive, run checks, and report RTO and RPO",
		Long: `restore-drill proves that the repository restores. It restores a backup
(default: the newest) into a scratch folder, starts PostgreSQL on it (as with
backup-fetch --recover: a private unix socket, a free port, archiving off so
the drill never writes into the repository), replays the archive to its end or
to a target (--target-time, --target-lsn, ...), runs the checks (by default
SELECT 1 and a count of relations; --sql 'SELECT ...' adds checks that must
return at least one row), shuts the server down and removes the scratch folder.

It reports the backup used, the restore and replay times, the RTO (their sum),
the last replayed transaction's time, and the RPO: now minus that time, which
is what a restore right now would lose. --max-rto and --max-rpo fail the drill
when the figures exceed them. The scratch restore is made durable, as
backup-fetch's is, so that its time is what a real restore would take (and
PostgreSQL's start-up, which syncs the data directory, is not charged with it);
--no-sync skips that for a quicker check. The exit code is 1 on any failure; --json prints
the report for monitoring. Run it from cron on any host with PostgreSQL
binaries of the backup's major version.`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef(errors.New("restore-drill takes at most one backup name or LATEST (see tusk restore-drill --help)"))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			name := "LATEST"
			if len(args) == 1 {
				name = args[0]
			}
			o.recover = true
			if o.targetAction == "" && (o.targetTime != "" || o.targetLSN != "" || o.targetXID != "" || o.targetName != "" || o.targetImmediate) {
				o.targetAction = "promote"
			}
			if o.targetAction != "" && o.targetAction != "promote" {
				return usagef(errors.New("restore-drill promotes the restored server to run its checks; --target-action can only be promote"))
			}
			// Bad options are usage errors before any work, not a failed
			// drill with a scratch folder made.
			if err := checkDrillOptions(&o, name, drillLimits{sqls: sqls, database: database, maxRTO: maxRTO, maxRPO: maxRPO}); err != nil {
				return err
			}
			base, err := os.MkdirTemp(scratch, "tusk-drill-")
			if err != nil {
				return fmt.Errorf("make a scratch folder in %s: %w (choose another with --scratch)", scratchOr(scratch), unwrapPathErr(err))
			}
			os.Chmod(base, 0o755) // the server's user must reach the data directory inside
			dest := filepath.Join(base, "pgdata")
			// Tablespaces are restored under base/tablespaces/OID; the
			// server's user must be able to reach them.
			if err := os.Mkdir(filepath.Join(base, "tablespaces"), 0o755); err != nil {
				return err
			}
			r := drillResult{Checks: []drillCheck{}, Failures: []string{}}
			var res restore.Result
			f, ferr := setupFetch(c, root, &o, dest, name)
			if ferr == nil {
				f.opts.TablespacesUnder = filepath.Join(base, "tablespaces")
				f.opts.Server = &restore.ServerOptions{Port: o.port, PGBin: o.pgBin, Isolated: true}
				res, ferr = f.run(c.Context(), root, false)
				fr := f.result(res)
				r.Target, r.RestoreSecs = fr.Target, fr.RestoreSecs
			}
			r.Backup = res.Backup.Name
			stopped := true
			stop := func() {
				if res.Server == nil {
					return
				}
				if err := res.Server.Stop(context.WithoutCancel(c.Context())); err != nil {
					stopped = false
					r.Failures = append(r.Failures, fmt.Sprintf("stop the drill's server: %v (stop it with pg_ctl -D %s stop; the scratch folder is kept)", err, dest))
				}
			}
			if ferr != nil {
				stop()
				r.Failures = append(r.Failures, ferr.Error())
			}
			if rec := res.Recovery; rec != nil {
				r.ReplaySecs, r.Segments, r.StopLSN, r.LastXactTime = rec.Replay.Seconds(), rec.Segments, rec.StopLSN, rec.LastXactTime
				r.Recovery = &recoveryInfo{Reason: rec.StopReason, Log: rec.LogFile}
				if ferr == nil {
					found, err := res.Server.Check(c.Context(), database, sqls)
					if err != nil {
						r.Failures = append(r.Failures, err.Error())
					}
					r.Relations = found.Relations
					for _, ch := range found.Checks {
						r.Checks = append(r.Checks, drillCheck{SQL: ch.SQL, OK: ch.OK, Result: ch.Result, Error: ch.Error})
						if !ch.OK {
							r.Failures = append(r.Failures, fmt.Sprintf("check %q: %s", ch.SQL, ch.Error))
						}
					}
				}
			}
			r.RTOSecs = r.RestoreSecs + r.ReplaySecs
			if r.LastXactTime != "" {
				if t, err := parseTargetTime(r.LastXactTime); err == nil {
					r.RPOSecs = time.Since(t).Seconds()
				}
			}
			if ferr == nil && r.LastXactTime == "" && maxRPO > 0 {
				r.Failures = append(r.Failures, "the replayed WAL holds no committed transaction, so the RPO is unknown and --max-rpo cannot be checked")
			}
			if maxRTO > 0 && r.RTOSecs > maxRTO.Seconds() {
				r.Failures = append(r.Failures, fmt.Sprintf("RTO %.1fs exceeds --max-rto %s", r.RTOSecs, maxRTO))
			}
			if maxRPO > 0 && r.LastXactTime != "" && r.RPOSecs > maxRPO.Seconds() {
				r.Failures = append(r.Failures, fmt.Sprintf("RPO %s exceeds --max-rpo %s: the newest archived transaction is from %s", time.Duration(r.RPOSecs*float64(time.Second)).Round(time.Second), maxRPO, r.LastXactTime))
			}
			stop()
			if keep || !stopped {
				r.KeptScratchPath = base
			} else {
				os.RemoveAll(base)
			}
			r.OK = len(r.Failures) == 0
			// The server's socket folder holds its log: kept when the drill
			// failed, for the post-mortem.
			if srv := res.Server; srv != nil && r.Recovery != nil && r.OK && !keep && srv.CreatedSocketDir {
				os.RemoveAll(srv.SocketDir)
				r.Recovery.Log = ""
			}
			if o.json {
				if err := writeJSON(root.stdout, r); err != nil {
					return err
				}
			} else {
				printDrill(root.stdout, r)
			}
			if !r.OK {
				return &ExitError{Code: 1, Err: fmt.Errorf("restore drill failed: %s", r.Failures[0])}
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringArrayVar(&sqls, "sql", nil, "a check: a query that must return at least one row (repeatable)")
	f.StringVar(&database, "database", "postgres", "database the checks run in")
	f.StringVar(&scratch, "scratch", "", "folder for the scratch data directory (default the system's temporary folder)")
	f.BoolVar(&keep, "keep", false, "keep the scratch folder (the server is stopped either way)")
	f.DurationVar(&maxRTO, "max-rto", 0, "fail when restore plus replay take longer than this, e.g. 30m")
	f.DurationVar(&maxRPO, "max-rpo", 0, "fail when the newest archived transaction is older than this, e.g. 15m")
	f.StringVar(&o.targetTime, "target-time", "", "replay up to this time instead of the archive's end")
	f.StringVar(&o.targetLSN, "target-lsn", "", "replay up to this LSN")
	f.StringVar(&o.targetXID, "target-xid", "", "replay up to this transaction id")
	f.StringVar(&o.targetName, "target-name", "", "replay up to this restore point")
	f.StringVar(&o.targetTimeline, "target-timeline", "", "timeline to follow: latest (default), current, or a number")
	f.IntVar(&o.port, "port", 0, "port for the drill's server (default: a free one)")
	f.StringVar(&o.pgBin, "pg-bin", "", "folder with the PostgreSQL binaries (default /usr/lib/postgresql/MAJOR/bin or PATH)")
	f.StringVar(&o.owner, "owner", "", "user to run the server as (default: the owner of the scratch folder's parent, or postgres when run as root)")
	f.BoolVar(&o.json, "json", false, "print the report as JSON")
	f.BoolVar(&o.noSync, "no-sync", false, "do not wait for the scratch restore to reach the disk (its restore time, and so the RTO, then leave out what a real backup-fetch spends on it)")
	return c
}

// drillLimits are a drill's own checks and limits.
type drillLimits struct {
	sqls           []string
	database       string
	maxRTO, maxRPO time.Duration
}

// checkDrillOptions checks a drill's backup name and options as setupFetch
// would, its queries, and its limits, which must not be negative.
func checkDrillOptions(o *backupFetchOpts, name string, l drillLimits) error {
	if name != "LATEST" {
		if err := basebackup.CheckName(name); err != nil {
			return usagef(err)
		}
	}
	if _, err := o.target(); err != nil {
		return err
	}
	if err := o.serverFlags(true); err != nil {
		return err
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"--max-rto", l.maxRTO}, {"--max-rpo", l.maxRPO}} {
		if d.v < 0 {
			return usagef(fmt.Errorf("%s %s is negative: give a duration such as 15m, or leave it out for no limit", d.flag, d.v))
		}
	}
	for _, q := range l.sqls {
		if strings.TrimSpace(q) == "" {
			return usagef(errors.New("--sql is empty: give a query that must return a row, such as 'SELECT 1 FROM orders LIMIT 1'"))
		}
	}
	if strings.TrimSpace(l.database) == "" {
		return usagef(errors.New("--database is empty: give the database the checks run in, or leave it out for postgres"))
	}
	return nil
}

func scratchOr(s string) string {
	if s == "" {
		return os.TempDir()
	}
	return s
}

func printDrill(w io.Writer, r drillResult) {
	verdict := "ok"
	if !r.OK {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "restore drill %s: backup %s, target %s\n", verdict, r.Backup, r.Target)
	fmt.Fprintf(w, "  restore %.1fs + replay %.1fs (%d segments) = RTO %.1fs\n", r.RestoreSecs, r.ReplaySecs, r.Segments, r.RTOSecs)
	if r.LastXactTime != "" {
		fmt.Fprintf(w, "  last replayed transaction %s: RPO %s\n", r.LastXactTime, time.Duration(r.RPOSecs*float64(time.Second)).Round(time.Second))
	}
	for _, ch := range r.Checks {
		if ch.OK {
			fmt.Fprintf(w, "  check ok: %s → %s\n", ch.SQL, ch.Result)
		} else {
			fmt.Fprintf(w, "  check FAILED: %s: %s\n", ch.SQL, ch.Error)
		}
	}
	for _, f := range r.Failures {
		fmt.Fprintf(w, "  failure: %s\n", f)
	}
	if r.Recovery != nil && r.Recovery.Log != "" && !r.OK {
		fmt.Fprintf(w, "  server log: %s\n", r.Recovery.Log)
	}
	if r.KeptScratchPath != "" {
		fmt.Fprintf(w, "  scratch folder kept: %s\n", r.KeptScratchPath)
	}
}
