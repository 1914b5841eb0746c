package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/config"
	"github.com/tusk-backup/tusk/restore"
	"github.com/tusk-backup/tusk/wal"
)

type backupFetchOpts struct {
	targetTime, targetLSN, targetXID, targetName string
	targetImmediate, targetExclusive             bool
	targetAction, targetTimeline                 string
	standby                                      bool
	primaryConninfo                              string
	tablespaceMap                                []string
	recover                                      bool
	port                                         int
	socketDir, pgBin, owner                      string
	json                                         bool
	noSync                                       bool
}

func newBackupFetchCmd(root *rootOpts) *cobra.Command {
	var o backupFetchOpts
	c := &cobra.Command{
		Use:   "backup-fetch DEST NAME|LATEST",
		Short: "Restore a backup into DEST and set up point-in-time recovery",
		Long: `backup-fetch restores backup NAME (or LATEST, the newest) into DEST, which must be
empty or missing: parts are downloaded, verified and unpacked in parallel
(TUSK_DOWNLOAD_CONCURRENCY at a time), files 0600 and folders 0700. Tablespaces
return to their original location unless mapped with --tablespace-mapping.

Every restored file and folder, the recovery settings included, is on disk
when backup-fetch exits 0 (--no-sync skips that, for a throwaway restore).
global/pg_control is put in place last, so a restore stopped mid-way (kill -9,
a crash) leaves a folder PostgreSQL cannot start from, which a later
backup-fetch into it recognizes as unfinished.

wal-g's base backups on the same prefix (basebackups_005/, full and delta)
are restored too, as wal-g's backup-fetch composes them; LATEST is the newest
of tusk's and wal-g's backups alike.

It then writes restore_command (this tusk binary with the same repository
settings, or --config file) into DEST/postgresql.auto.conf and creates
recovery.signal (standby.signal with --standby), with the recovery target
given: --target-time, --target-lsn, --target-xid, --target-name or
--target-immediate, and --target-action, --target-timeline. With a target
time or LSN and LATEST, tusk picks the newest backup that finished before the
target and says which.

With --recover, tusk also starts PostgreSQL on DEST (as DEST's owner, on a unix
socket only), follows the replay, waits until the target (or the archive's end)
is reached, reports where recovery stopped, and leaves the server as
--target-action says: promoted and running, paused and running, or shut down.
It exits non-zero, with PostgreSQL's reason, if the target was not reached.`,
		Example: `  tusk backup-fetch /var/lib/postgresql/15/main LATEST
  tusk backup-fetch /srv/restore LATEST --target-time '2026-11-22 03:00:00+00' --recover`,
		Args: exactArgs(2, "the restore folder and a backup name or LATEST"),
		RunE: func(c *cobra.Command, args []string) error {
			return runBackupFetch(c, root, &o, args[0], args[1])
		},
	}
	f := c.Flags()
	f.StringVar(&o.targetTime, "target-time", "", "recover to this time (e.g. '2026-11-22 03:00:00+00', RFC 3339 also accepted)")
	f.StringVar(&o.targetLSN, "target-lsn", "", "recover to this WAL position (e.g. 0/3000060)")
	f.StringVar(&o.targetXID, "target-xid", "", "recover to this transaction id")
	f.StringVar(&o.targetName, "target-name", "", "recover to this restore point (pg_create_restore_point)")
	f.BoolVar(&o.targetImmediate, "target-immediate", false, "stop as soon as the backup is consistent")
	f.BoolVar(&o.targetExclusive, "target-exclusive", false, "stop just before the target time, LSN or xid instead of just after")
	f.StringVar(&o.targetAction, "target-action", "", "at the target: pause (PostgreSQL's default), promote or shutdown")
	f.StringVar(&o.targetTimeline, "target-timeline", "", "timeline to follow: latest (default), current or a number")
	f.BoolVar(&o.standby, "standby", false, "set the restored cluster up as a standby (standby.signal)")
	f.StringVar(&o.primaryConninfo, "primary-conninfo", "", "with --standby: connection string of the primary to stream from")
	f.StringArrayVar(&o.tablespaceMap, "tablespace-mapping", nil, "restore the tablespace at OLD into NEW (OLD=NEW, repeatable)")
	f.BoolVar(&o.recover, "recover", false, "start PostgreSQL on DEST and drive recovery to the target")
	f.IntVar(&o.port, "port", 0, "with --recover: the server's port (default: a free one)")
	f.StringVar(&o.socketDir, "socket-dir", "", "with --recover: folder for the server's unix socket (default: a new temporary folder)")
	f.StringVar(&o.pgBin, "pg-bin", "", "with --recover: folder of PostgreSQL's programs (default: /usr/lib/postgresql/MAJOR/bin, else PATH)")
	f.StringVar(&o.owner, "owner", "", "when run as root: user to own the restored files and run the server (default: the owner of DEST or its parent; postgres when that is root)")
	f.BoolVar(&o.json, "json", false, "print what was restored (and where recovery stopped) as JSON")
	f.BoolVar(&o.noSync, "no-sync", false, "do not wait for the restored files to reach the disk (for a throwaway restore: a crash of the machine can then lose them)")
	addSettingFlags(f, "TUSK_DOWNLOAD_CONCURRENCY")
	return c
}

// fetchResult is backup-fetch's --json output.
type fetchResult struct {
	Backup      string            `json:"backup"`
	Dest        string            `json:"dest"`
	Target      string            `json:"target"`
	RestoreSecs float64           `json:"restore_seconds"`
	Recovery    *recoveryOutcome  `json:"recovery,omitempty"`
	Tablespaces map[string]string `json:"tablespaces,omitempty"`
}

// recoveryOutcome is where recovery stopped, in --json.
type recoveryOutcome struct {
	State        string  `json:"state"` // promoted, paused, shut down
	StopLSN      string  `json:"stop_lsn,omitempty"`
	StopReason   string  `json:"stop_reason,omitempty"`
	LastXactTime string  `json:"last_transaction_time,omitempty"`
	Timeline     string  `json:"new_timeline,omitempty"`
	Segments     int     `json:"segments_restored"`
	ReplaySecs   float64 `json:"replay_seconds"`
	Port         int     `json:"port"`
	SocketDir    string  `json:"socket_dir"`
	LogFile      string  `json:"log_file"`
}

func newRecoveryOutcome(o *restore.Outcome) *recoveryOutcome {
	if o == nil {
		return nil
	}
	return &recoveryOutcome{State: o.State, StopLSN: o.StopLSN, StopReason: o.StopReason, LastXactTime: o.LastXactTime,
		Timeline: o.Timeline, Segments: o.Segments, ReplaySecs: o.Replay.Seconds(), Port: o.Port, SocketDir: o.SocketDir, LogFile: o.LogFile}
}

func (o *backupFetchOpts) target() (restore.Target, error) {
	var t restore.Target
	n := 0
	if o.targetTime != "" {
		n++
		tm, err := parseTargetTime(o.targetTime)
		if err != nil {
			return t, usagef(err)
		}
		t.Time = tm
	}
	if o.targetLSN != "" {
		n++
		l, err := parseTargetLSN(o.targetLSN)
		if err != nil {
			return t, usagef(err)
		}
		t.LSN = l
	}
	if o.targetXID != "" {
		n++
		if err := checkTargetXID(o.targetXID); err != nil {
			return t, usagef(err)
		}
		t.XID = o.targetXID
	}
	if o.targetName != "" {
		n++
		t.Name = o.targetName
	}
	if o.targetImmediate {
		n++
		t.Immediate = true
	}
	if n > 1 {
		return t, usagef(errors.New("give at most one of --target-time, --target-lsn, --target-xid, --target-name, --target-immediate"))
	}
	switch o.targetAction {
	case "", "pause", "promote", "shutdown":
	default:
		return t, usagef(fmt.Errorf("--target-action %q is not pause, promote or shutdown", o.targetAction))
	}
	if o.targetAction != "" && n == 0 {
		return t, usagef(errors.New("--target-action needs a target (--target-time, --target-lsn, --target-xid, --target-name or --target-immediate)"))
	}
	t.Action = o.targetAction
	if err := checkTargetTimeline(o.targetTimeline); err != nil {
		return t, usagef(err)
	}
	t.Timeline = o.targetTimeline
	if o.targetExclusive && o.targetTime == "" && o.targetLSN == "" && o.targetXID == "" {
		return t, usagef(errors.New("--target-exclusive applies to --target-time, --target-lsn or --target-xid (a restore point or --target-immediate has no inside to exclude); give one of them or drop --target-exclusive"))
	}
	t.Exclusive = o.targetExclusive
	return t, nil
}

// serverFlags checks the flags of the server that --recover (or a drill,
// recovering always) starts, and --owner, the user who owns the restored
// files and runs that server.
func (o *backupFetchOpts) serverFlags(recovering bool) error {
	if o.port < 0 || o.port > 65535 {
		return usagef(fmt.Errorf("--port %d is not a TCP port: give one from 1 to 65535, or leave it out for a free one", o.port))
	}
	if o.owner != "" {
		if _, err := user.Lookup(o.owner); err != nil {
			return usagef(fmt.Errorf("--owner %s is not a user on this host: give the user PostgreSQL runs as, such as postgres", o.owner))
		}
	}
	if recovering {
		return nil
	}
	for _, f := range []struct {
		name string
		set  bool
	}{{"--port", o.port != 0}, {"--socket-dir", o.socketDir != ""}, {"--pg-bin", o.pgBin != ""}} {
		if f.set {
			return usagef(fmt.Errorf("%s is for the server that --recover starts; add --recover, or drop %s", f.name, f.name))
		}
	}
	return nil
}

// parseTablespaceMap reads --tablespace-mapping OLD=NEW flags: absolute
// paths, each OLD once, and no two tablespaces into one folder.
func parseTablespaceMap(flags []string) (map[string]string, error) {
	mapping := map[string]string{}
	into := map[string]string{}
	for _, m := range flags {
		from, to, ok := strings.Cut(m, "=")
		if !ok || !filepath.IsAbs(from) || !filepath.IsAbs(to) {
			return nil, usagef(fmt.Errorf("--tablespace-mapping %q is not OLD=NEW with two absolute paths", m))
		}
		from, to = filepath.Clean(from), filepath.Clean(to)
		if prev, ok := mapping[from]; ok && prev != to {
			return nil, usagef(fmt.Errorf("--tablespace-mapping maps %s twice, to %s and to %s: give one NEW for each OLD", from, prev, to))
		}
		if prev, ok := into[to]; ok && prev != from {
			return nil, usagef(fmt.Errorf("--tablespace-mapping maps both %s and %s to %s: each tablespace needs a folder of its own", prev, from, to))
		}
		mapping[from], into[to] = to, from
	}
	return mapping, nil
}

// parseTargetLSN reads a recovery target LSN as PostgreSQL's pg_lsn does
// (two hexadecimal numbers of up to 8 digits) and refuses 0/0, which is
// before any WAL and so never a place recovery stops.
func parseTargetLSN(s string) (wal.LSN, error) {
	l, err := wal.ParseLSN(s)
	if err != nil {
		return 0, fmt.Errorf("--target-lsn %q is not a WAL position: give two hexadecimal numbers of up to 8 digits each, such as 0/3000060, as pg_current_wal_lsn() prints", s)
	}
	if l == 0 {
		return 0, fmt.Errorf("--target-lsn %s is the start of WAL, never a place recovery stops: give a position from pg_current_wal_lsn() or the server log, or --target-immediate to stop as soon as the backup is consistent", s)
	}
	return l, nil
}

// checkTargetXID accepts what recovery_target_xid takes: a 32-bit
// transaction id, or a 64-bit one with its epoch in the high 32 bits (as
// pg_current_xact_id() and txid_current() print), of which PostgreSQL uses
// the low 32 bits. Those must name an ordinary transaction: 0, 1 and 2 are
// reserved (invalid, bootstrap, frozen) and never commit.
func checkTargetXID(s string) error {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return fmt.Errorf("--target-xid %q is not a transaction id: give a decimal number such as 1234, as txid_current() or pg_current_xact_id() prints", s)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("--target-xid %s is too large for a transaction id: PostgreSQL takes a 32-bit one (up to 4294967295) or one with its epoch (up to 18446744073709551615), as pg_current_xact_id() prints", s)
	}
	if xid := uint32(n); xid < 3 {
		if n > math.MaxUint32 {
			return fmt.Errorf("--target-xid %s is epoch %d, transaction %d, and transactions 0, 1 and 2 are reserved (ordinary ones start at 3): give the id of a transaction that committed", s, n>>32, xid)
		}
		return fmt.Errorf("--target-xid %s is reserved (0, 1 and 2 are; ordinary transactions start at 3): give the id of a transaction that committed", s)
	}
	return nil
}

// checkTargetTimeline accepts what tusk passes on as recovery_target_timeline:
// latest, current, or a timeline number (1 to 4294967295, in decimal).
func checkTargetTimeline(s string) error {
	if s == "" || s == "latest" || s == "current" {
		return nil
	}
	if strings.Trim(s, "0123456789") == "" {
		if n, err := strconv.ParseUint(s, 10, 32); err == nil && n > 0 {
			return nil
		}
	}
	return fmt.Errorf("--target-timeline %q is not latest, current or a timeline number from 1 to 4294967295 (decimal: timeline 0000000A in WAL file names is 10)", s)
}

var targetTimeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z07",
	"2006-01-02 15:04:05.999999999-07",
	"2006-01-02 15:04:05.999999999-07:00",
	"2006-01-02 15:04:05.999999999 MST",
}

func parseTargetTime(s string) (time.Time, error) {
	for _, l := range targetTimeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--target-time %q is not a time with a zone, such as '2026-11-22 03:00:00+00' or 2026-11-22T03:00:00Z", s)
}

func runBackupFetch(c *cobra.Command, root *rootOpts, o *backupFetchOpts, dest, name string) error {
	f, err := setupFetch(c, root, o, dest, name)
	if err != nil {
		return err
	}
	if o.recover {
		f.opts.Server = &restore.ServerOptions{Port: o.port, SocketDir: o.socketDir, PGBin: o.pgBin}
	}
	r, err := f.run(c.Context(), root, !o.json)
	if err != nil {
		return err
	}
	if o.json {
		enc := json.NewEncoder(root.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(f.result(r))
	}
	if rec := r.Recovery; rec != nil {
		printRecovery(root.stdout, f.opts.Dest, rec)
	} else {
		fmt.Fprintf(root.stdout, "recovery to %s is set up: start PostgreSQL on %s to replay the archive\n", f.opts.Target.Describe(), f.opts.Dest)
	}
	return nil
}

// fetch is a restore that backup-fetch or restore-drill has set up.
type fetch struct {
	opts restore.Options
	cfg  config.Config
	note string // what restore_command needs from the server's environment
}

// setupFetch checks backup-fetch's options (restore-drill's are a subset)
// and opens the repository: everything before restore.Run, so that bad
// input fails before any work.
func setupFetch(c *cobra.Command, root *rootOpts, o *backupFetchOpts, dest, name string) (*fetch, error) {
	cfg, log, err := root.load(c)
	if err != nil {
		return nil, err
	}
	ctx := c.Context()
	target, err := o.target()
	if err != nil {
		return nil, err
	}
	if err := o.serverFlags(o.recover); err != nil {
		return nil, err
	}
	if o.primaryConninfo != "" && !o.standby {
		return nil, usagef(errors.New("--primary-conninfo needs --standby"))
	}
	if o.standby && o.recover {
		return nil, usagef(errors.New("--recover drives archive recovery to a target; a --standby keeps replaying, so start it yourself"))
	}
	mapping, err := parseTablespaceMap(o.tablespaceMap)
	if err != nil {
		return nil, err
	}
	if dest, err = filepath.Abs(dest); err != nil {
		return nil, err
	}
	if err := basebackup.CheckDest(dest, "restore folder"); err != nil {
		return nil, err
	}
	if name != restore.Latest {
		if err := basebackup.CheckName(name); err != nil {
			return nil, usagef(err)
		}
	}
	st, err := openStorage(ctx, cfg, log, forInteractive)
	if err != nil {
		return nil, describeStorageErr(err, cfg)
	}
	restoreCmd, note, err := restoreCommand(cfg)
	if err != nil {
		return nil, err
	}
	return &fetch{cfg: cfg, note: note, opts: restore.Options{
		Store:           st,
		Concurrency:     cfg.DownloadConcurrency,
		Name:            name,
		Dest:            dest,
		Target:          target,
		RestoreCommand:  restoreCmd,
		Standby:         o.standby,
		PrimaryConninfo: o.primaryConninfo,
		TablespaceMap:   mapping,
		Owner:           o.owner,
		NoSync:          o.noSync,
		Log:             log,
	}}, nil
}

// run calls restore.Run, drawing its progress on a terminal and, when
// verbose, printing what it did on stdout; its errors say which setting to
// look at when the repository is the cause.
func (f *fetch) run(ctx context.Context, root *rootOpts, verbose bool) (restore.Result, error) {
	o := f.opts
	boundMemory()
	line := newProgressLine(root.stderr)
	defer line.done()
	o.Progress = func(p restore.Progress) {
		switch p.Phase {
		case restore.Chosen:
			if restore.ChoseForTarget(o.Name, o.Target) {
				fmt.Fprintf(root.stderr, "using backup %s, the newest that finished before the target %s\n", p.Backup.Name, o.Target.Describe())
			}
		case restore.Unpacking:
			line.show("restore %s: %s of %s, %s", p.Backup.Name, bytesString(p.Done), bytesString(p.Total), rate(p.Done, p.Elapsed))
		case restore.Restored:
			line.done()
			if verbose {
				fmt.Fprintf(root.stdout, "restored backup %s into %s in %s (%s)\n", p.Backup.Name, o.Dest, p.Elapsed.Round(10*time.Millisecond), rate(p.Backup.DataSize, p.Elapsed))
				if f.note != "" {
					fmt.Fprintln(root.stdout, f.note)
				}
			}
		case restore.Started:
			if verbose {
				fmt.Fprintf(root.stdout, "PostgreSQL started on %s (port %d, socket folder %s, log %s); replaying to %s\n",
					o.Dest, p.Server.Port, p.Server.SocketDir, p.Server.LogFile, o.Target.Describe())
			}
		case restore.Replaying:
			line.show("replaying: %d segments restored, last %s, %.1f segments/s", p.Segments, p.LastSegment, float64(p.Segments)/p.Elapsed.Seconds())
		}
	}
	r, err := restore.Run(ctx, o)
	line.done()
	switch {
	case err == nil:
	case errors.Is(err, restore.ErrTarget):
		err = usagef(err)
	case r.Backup.Name == "":
		err = describeStorageErr(err, f.cfg)
	case !r.Restored:
		err = describeStorageErr(diagnose(ctx, o.Store, err), f.cfg)
	}
	return r, err
}

// result is backup-fetch's --json output for r.
func (f *fetch) result(r restore.Result) fetchResult {
	res := fetchResult{Backup: r.Backup.Name, Recovery: newRecoveryOutcome(r.Recovery)}
	if r.Restored {
		res.Dest, res.Target, res.RestoreSecs = f.opts.Dest, f.opts.Target.Describe(), r.Restore.Seconds()
	}
	return res
}

// printRecovery says where recovery stopped and how the server was left.
func printRecovery(w io.Writer, dest string, out *restore.Outcome) {
	fmt.Fprintf(w, "recovery stopped after %.1f s and %d segments from the archive", out.Replay.Seconds(), out.Segments)
	if out.StopLSN != "" {
		fmt.Fprintf(w, " at LSN %s", out.StopLSN)
	}
	if out.StopReason != "" {
		fmt.Fprintf(w, " (%s)", out.StopReason)
	}
	if out.LastXactTime != "" {
		fmt.Fprintf(w, "; last transaction at %s", out.LastXactTime)
	}
	fmt.Fprintln(w)
	switch out.State {
	case restore.Promoted:
		fmt.Fprintf(w, "PostgreSQL is promoted to timeline %s and running on %s (port %d, socket folder %s); stop it with: pg_ctl -D %s stop\n",
			out.Timeline, dest, out.Port, out.SocketDir, dest)
	case restore.Paused:
		fmt.Fprintf(w, "PostgreSQL is paused at the target on %s (port %d, socket folder %s): inspect it, then SELECT pg_wal_replay_resume() to promote, or stop it with: pg_ctl -D %s stop\n",
			dest, out.Port, out.SocketDir, dest)
	case restore.ShutDown:
		fmt.Fprintf(w, "PostgreSQL shut down at the target, as asked\n")
	}
}

// restoreCommand is the restore_command that calls this tusk binary with the
// same repository: through the config file if one was used, else with the
// repository's settings in the command's environment. Secrets are never
// written into the data directory; note says what the server then needs.
func restoreCommand(cfg config.Config) (cmd, note string, err error) {
	exe, err := os.Executable()
	if err != nil {
		return "", "", fmt.Errorf("find the tusk binary for restore_command: %w", err)
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return "", "", fmt.Errorf("find the tusk binary for restore_command: %w", err)
	}
	q := restore.ShellQuote
	if cfg.ConfigFile != "" {
		abs, err := filepath.Abs(cfg.ConfigFile)
		if err != nil {
			return "", "", err
		}
		return fmt.Sprintf("%s --config %s wal-fetch %%f %%p", q(exe), q(abs)), "", nil
	}
	env := []string{"TUSK_REPO=" + q(cfg.Repo.URL)}
	if cfg.Repo.Scheme == "s3" {
		s := cfg.S3
		for _, kv := range [][2]string{
			{"TUSK_S3_ENDPOINT", s.Endpoint}, {"TUSK_S3_REGION", s.Region}, {"TUSK_S3_PROFILE", s.Profile},
		} {
			if kv[1] != "" {
				env = append(env, kv[0]+"="+q(kv[1]))
			}
		}
		if s.ForcePathStyle {
			env = append(env, "TUSK_S3_FORCE_PATH_STYLE=true")
		}
		if s.SecretAccessKey != "" {
			note = "note: restore_command does not carry the S3 secret key; the server's environment must provide AWS credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile or an instance role), or restore with --config FILE"
		}
	}
	if e := cfg.Encryption; e.Age() {
		// The restored server archives its new timeline too, which
		// needs the recipients.
		if e.AgeRecipients != "" {
			env = append(env, "TUSK_AGE_RECIPIENTS="+q(e.AgeRecipients))
		}
		if e.AgeIdentities != "" {
			env = append(env, "TUSK_AGE_IDENTITY_FILE="+q(e.AgeIdentities))
		}
	} else if e.Enabled() {
		if e.KeyFile != "" {
			env = append(env, "TUSK_ENCRYPTION_KEY_FILE="+q(e.KeyFile))
		}
		env = append(env, "TUSK_ENCRYPTION_KEY_TRANSFORM="+q(e.Transform))
		if e.Key != "" {
			keyNote := "note: restore_command does not carry the encryption key given in " + e.KeyFrom + "; the server's environment must provide it, or restore with TUSK_ENCRYPTION_KEY_FILE or --config FILE"
			note = strings.TrimPrefix(strings.Join([]string{note, keyNote}, "\n"), "\n")
		}
	}
	return "env " + strings.Join(env, " ") + " " + q(exe) + " wal-fetch %f %p", note, nil
}
