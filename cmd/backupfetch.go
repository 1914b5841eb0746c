package cmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/storage"
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

	run *serverRun // the server --recover started, for restore-drill to stop
}

func (o *backupFetchOpts) target() (basebackup.Target, error) {
	var t basebackup.Target
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
func parseTargetLSN(s string) (basebackup.LSN, error) {
	l, err := basebackup.ParseLSN(s)
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
	res, err := fetchBackup(c, root, o, dest, name, fetchExtras{})
	if err != nil {
		return err
	}
	if o.json {
		enc := json.NewEncoder(root.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	return nil
}

// fetchExtras are what restore-drill adds to a backup-fetch.
type fetchExtras struct {
	// tablespacesUnder, if set, maps every tablespace to a folder under it.
	tablespacesUnder string
	// serverOptions are added to the recovering server's options.
	serverOptions string
	// trustLocal replaces pg_hba.conf with local trust authentication (the
	// server listens only on its private socket folder).
	trustLocal bool
}

// fetchBackup restores backup name into dest and, with --recover, drives
// recovery; it prints progress lines unless o.json.
func fetchBackup(c *cobra.Command, root *rootOpts, o *backupFetchOpts, dest, name string, x fetchExtras) (fetchResult, error) {
	var res fetchResult
	cfg, log, err := root.load(c)
	if err != nil {
		return res, err
	}
	ctx := c.Context()
	target, err := o.target()
	if err != nil {
		return res, err
	}
	if err := o.serverFlags(o.recover); err != nil {
		return res, err
	}
	if o.primaryConninfo != "" && !o.standby {
		return res, usagef(errors.New("--primary-conninfo needs --standby"))
	}
	if o.standby && o.recover {
		return res, usagef(errors.New("--recover drives archive recovery to a target; a --standby keeps replaying, so start it yourself"))
	}
	mapping, err := parseTablespaceMap(o.tablespaceMap)
	if err != nil {
		return res, err
	}
	if dest, err = filepath.Abs(dest); err != nil {
		return res, err
	}
	if err := basebackup.CheckDest(dest, "restore folder"); err != nil {
		return res, err
	}
	if name != "LATEST" {
		if err := basebackup.CheckName(name); err != nil {
			return res, usagef(err)
		}
	}
	st, err := openStorage(ctx, cfg, log, forInteractive)
	if err != nil {
		return res, describeStorageErr(err, cfg)
	}
	m, err := chooseBackup(c, root, st, name, target)
	if err != nil {
		return res, describeStorageErr(err, cfg)
	}
	res.Backup = m.Name
	if x.tablespacesUnder != "" {
		for _, s := range m.Tablespaces {
			mapping[filepath.Clean(s.Location)] = filepath.Join(x.tablespacesUnder, s.OID)
		}
	}
	restoreCmd, note, err := restoreCommand(cfg)
	if err != nil {
		return res, err
	}
	own, err := resolveOwner(o.owner, dest, false)
	if err != nil {
		return res, err
	}
	var run *serverRun
	if o.recover {
		if run, err = prepareRecover(o, m, dest); err != nil {
			return res, err
		}
	}

	boundMemory()
	line := newProgressLine(root.stderr)
	start := time.Now()
	err = basebackup.Restore(ctx, m, dest, basebackup.FetchOptions{
		Store:         st,
		Concurrency:   cfg.DownloadConcurrency,
		TablespaceMap: mapping,
		Log:           log,
		Progress: func(done, total int64) {
			line.show("restore %s: %s of %s, %s", m.Name, bytesString(done), bytesString(total), rate(done, time.Since(start)))
		},
	})
	line.done()
	if err != nil {
		return res, describeStorageErr(diagnose(ctx, st, err), cfg)
	}
	if own != nil {
		if err := giveTree(own, dest, m); err != nil {
			return res, err
		}
	}
	rec := basebackup.Recovery{RestoreCommand: restoreCmd, Target: target, Standby: o.standby, PrimaryConninfo: o.primaryConninfo}
	if err := rec.Write(dest); err != nil {
		return res, err
	}
	if own != nil {
		for _, f := range []string{"postgresql.auto.conf", "recovery.signal", "standby.signal"} {
			os.Lchown(filepath.Join(dest, f), own.uid, own.gid) // the signal not written is missing: fine
		}
	}
	restoreTook := time.Since(start)
	res = fetchResult{Backup: m.Name, Dest: dest, Target: target.Describe(), RestoreSecs: restoreTook.Seconds()}
	if !o.json {
		fmt.Fprintf(root.stdout, "restored backup %s into %s in %s (%s)\n", m.Name, dest, restoreTook.Round(10*time.Millisecond), rate(m.DataSize, restoreTook))
		if note != "" {
			fmt.Fprintln(root.stdout, note)
		}
	}
	if run != nil {
		res.run = run
		run.extraOptions = x.serverOptions
		if x.trustLocal {
			hba := "# written by tusk restore-drill: the server listens only on its private socket folder\nlocal all all trust\n"
			if err := os.WriteFile(filepath.Join(dest, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
				return res, err
			}
			if own != nil {
				os.Lchown(filepath.Join(dest, "pg_hba.conf"), own.uid, own.gid)
			}
		}
		if err := run.prepare(dest); err != nil {
			return res, err
		}
		outcome, err := run.recover(ctx, root, target, !o.json)
		res.Recovery = outcome
		if err != nil {
			return res, err
		}
	} else if !o.json {
		fmt.Fprintf(root.stdout, "recovery to %s is set up: start PostgreSQL on %s to replay the archive\n", target.Describe(), dest)
	}
	return res, nil
}

// chooseBackup reads NAME's metadata, or picks LATEST: the newest backup,
// or with a time or LSN target the newest that finished before it.
func chooseBackup(c *cobra.Command, root *rootOpts, st storage.Storage, name string, t basebackup.Target) (basebackup.Meta, error) {
	ctx := c.Context()
	if name != "LATEST" {
		m, err := basebackup.ReadMeta(ctx, st, name)
		if err != nil {
			return m, err
		}
		if !t.Time.IsZero() && !m.FinishTime.Before(t.Time) {
			return m, usagef(fmt.Errorf("backup %s finished at %s, after the target time %s: recovery cannot stop before a backup's end; choose an earlier backup or LATEST",
				m.Name, m.FinishTime.Format(time.RFC3339), t.Time.Format(time.RFC3339)))
		}
		if t.LSN != 0 && t.LSN < m.EndLSN {
			return m, usagef(fmt.Errorf("backup %s ends at LSN %s, after the target LSN %s: choose an earlier backup or LATEST", m.Name, m.EndLSN, t.LSN))
		}
		return m, nil
	}
	ms, err := basebackup.List(ctx, st, nil)
	if err != nil {
		return basebackup.Meta{}, err
	}
	if len(ms) == 0 {
		return basebackup.Meta{}, errors.New("the repository holds no backups: take one with tusk backup-push")
	}
	for i := len(ms) - 1; i >= 0; i-- {
		m := ms[i]
		switch {
		case !t.Time.IsZero() && !m.FinishTime.Before(t.Time):
			continue
		case t.LSN != 0 && t.LSN < m.EndLSN:
			continue
		}
		if t.IsSet() && (!t.Time.IsZero() || t.LSN != 0) {
			fmt.Fprintf(root.stderr, "using backup %s, the newest that finished before the target %s\n", m.Name, t.Describe())
		}
		return m, nil
	}
	return basebackup.Meta{}, usagef(fmt.Errorf("no backup finished before the target %s (the oldest, %s, finished at %s)",
		t.Describe(), ms[0].Name, ms[0].FinishTime.Format(time.RFC3339)))
}

// restoreCommand is the restore_command that calls this tusk binary with the
// same repository: through the config file if one was used, else with the
// repository's settings in the command's environment. Secrets are never
// written into the data directory; note says what the server then needs.
func restoreCommand(cfg Config) (cmd, note string, err error) {
	exe, err := os.Executable()
	if err != nil {
		return "", "", fmt.Errorf("find the tusk binary for restore_command: %w", err)
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return "", "", fmt.Errorf("find the tusk binary for restore_command: %w", err)
	}
	q := shellQuote
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
	return "env " + strings.Join(env, " ") + " " + q(exe) + " wal-fetch %f %p", note, nil
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-:=") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
