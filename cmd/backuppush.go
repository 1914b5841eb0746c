package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/spf13/cobra"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/crypt"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/wal"
)

type backupPushOpts struct {
	pgConn    string
	spread    bool
	permanent bool
	json      bool
	full      bool
	failBad   bool
}

func newBackupPushCmd(root *rootOpts) *cobra.Command {
	var o backupPushOpts
	c := &cobra.Command{
		Use:   "backup-push [PGDATA]",
		Short: "Take a base backup (over the replication protocol, or reading PGDATA locally) into the repository",
		Long: `backup-push takes a base backup with BASE_BACKUP over a replication connection
(libpq settings PGHOST, PGPORT, PGUSER, or --pg-conn), from the database host or
any other host, from a primary or a standby; the user needs only the REPLICATION
attribute. The server's tar stream is cut into parts of about
TUSK_BACKUP_PART_SIZE, compressed and uploaded TUSK_UPLOAD_CONCURRENCY at a time
while the stream flows; nothing is staged on local disk. The backup exists once
its metadata object is written, last; an interrupted backup-push leaves no
listed backup.

PGDATA (or TUSK_PGDATA), when given, must be the server's data directory: tusk
compares its system identifier with the server's, so a cron line pointing at the
wrong cluster fails loudly.

--mode (TUSK_BACKUP_MODE) local reads the files itself instead: on a plain
session it holds pg_backup_start while TUSK_UPLOAD_CONCURRENCY readers read
PGDATA and the tablespaces in parallel (leaving out what BASE_BACKUP leaves
out), pg_control last, then stores the backup_label pg_backup_stop returns and
a backup_manifest it writes itself; data page checksums are checked as pages
are read (bad pages are logged and recorded; --fail-on-bad-page fails the
backup instead). The default, auto, is local when PGDATA is the running
server's data directory on this host, unless the backup is an incremental
of PostgreSQL 17 or later (which the server takes), else remote.
The summary line says which mode was used.

The server waits until the WAL the backup needs is archived (archive_command =
'tusk wal-push %p' must be working), so a finished backup is restorable.

Incremental backups: with TUSK_DELTA_MAX_STEPS (wal-g's WALG_DELTA_MAX_STEPS)
N > 0, backup-push takes each backup against the newest one
(TUSK_DELTA_ORIGIN LATEST, or the newest full backup with LATEST_FULL) until
that backup's chain holds N incrementals; then it takes a full backup.
--delta-from-name NAME takes one against NAME. In remote mode (PostgreSQL 17
and later, summarize_wal = on) the server sends only the blocks its WAL
summaries name; in local mode (any version; auto picks it for incrementals
of PostgreSQL 14 to 16) tusk stores the pages whose LSN is at or after the
parent's start. Where an incremental cannot be taken (PostgreSQL 16 or older
in remote mode, summarize_wal off, WAL summaries gone, another timeline),
backup-push says why and takes a full backup; with --delta-from-name it
fails instead. --full always takes a full backup.`,
		Example: "  tusk backup-push /var/lib/postgresql/15/main",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef(fmt.Errorf("backup-push takes at most one argument, the data directory; got %d (see tusk backup-push --help)", len(args)))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			return runBackupPush(c, root, &o, args)
		},
	}
	f := c.Flags()
	f.StringVar(&o.pgConn, "pg-conn", "", "libpq connection string (instead of PGHOST, PGPORT, PGUSER, PGDATABASE)")
	f.BoolVar(&o.spread, "spread-checkpoint", false, "let the server spread the starting checkpoint instead of making it fast")
	f.BoolVarP(&o.permanent, "permanent", "p", false, "mark the backup permanent: retention never deletes it")
	f.BoolVar(&o.json, "json", false, "print the backup's metadata as JSON when done")
	f.BoolVarP(&o.full, "full", "f", false, "take a full backup, even where TUSK_DELTA_MAX_STEPS would take an incremental")
	f.BoolVar(&o.failBad, "fail-on-bad-page", false, "local mode: fail, recording no backup, when a data page fails its checksum (by default bad pages are logged, listed in the metadata, and the backup is kept)")
	addSettingFlags(f, "TUSK_COMPRESSION", "TUSK_UPLOAD_CONCURRENCY", "TUSK_DELTA_FROM_NAME", "TUSK_BACKUP_MODE")
	addWALGBackupPushFlags(f)
	return c
}

// backupLockWait is how long backup-push waits for another backup-push's
// lock on the server before it refuses: long enough for the server process
// of a killed backup-push to notice and end, short enough for a cron line.
const backupLockWait = 10 * time.Second

func runBackupPush(c *cobra.Command, root *rootOpts, o *backupPushOpts, args []string) error {
	cfg, log, err := root.load(c)
	if err != nil {
		return err
	}
	ctx := c.Context()
	// Malformed connection settings are refused before the repository is
	// initialised.
	if err := checkConnSettings(cfg.PG, o.pgConn); err != nil {
		return err
	}
	dataDir := cfg.PG.DataDir
	if len(args) == 1 {
		dataDir = args[0]
	}
	localID := ""
	if dataDir != "" {
		if dataDir, err = filepath.Abs(dataDir); err != nil {
			return err
		}
		if localID, err = wal.SystemIDOf(dataDir); err != nil {
			return err
		}
	}
	// Upload concurrency parts are stored at once, each through buffers of
	// the S3 part size: at most backupS3PartSize keeps those buffers, and
	// so the process, well inside its memory limit (boundMemory) instead of
	// making the garbage collector run without pause.
	cfg.S3.PartSize = min(cfg.S3.PartSize, backupS3PartSize)
	st, err := openStorage(ctx, cfg, log, forBackup)
	if err == nil {
		err = st.Init(ctx)
	}
	if err != nil {
		return describeStorageErr(err, cfg)
	}
	conn, err := connect(ctx, cfg.PG, o.pgConn, true)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	sys, err := basebackup.Identify(ctx, conn)
	if err != nil {
		return err
	}
	if localID != "" && localID != sys.SystemID {
		return fmt.Errorf("%s belongs to another cluster than the server tusk connected to (system identifier %s there, %s on the server); point PGHOST/PGPORT at the server of that data directory", dataDir, localID, sys.SystemID)
	}
	if sys.Version < basebackup.MinVersion {
		return fmt.Errorf("the server runs PostgreSQL %d.%d; tusk backs up PostgreSQL 14 and later", sys.Version/10000, sys.Version%10000)
	}
	if err := basebackup.Lock(ctx, conn, backupLockWait); err != nil {
		return err
	}
	arch, err := basebackup.ArchiverState(ctx, conn)
	if err != nil {
		return err
	}
	switch {
	case arch.Mode == "off":
		return errors.New("the server's archive_mode is off, so the WAL this backup needs would not be archived and the backup could not be restored: set archive_mode = on and archive_command = 'tusk wal-push %p', restart PostgreSQL, and run backup-push again")
	case sys.InRecovery && arch.Mode != "always":
		return errors.New("the server is a standby with archive_mode = on, which does not archive on a standby, so the backup would wait forever for its WAL: set archive_mode = always there (or back up the primary)")
	case arch.Failing:
		return fmt.Errorf("the server's WAL archiving is failing (last failure: %s at %s; see the server log), and the backup would wait forever for its WAL to be archived: fix archive_command first", arch.LastFailed, arch.LastFailedTime)
	}
	delta := basebackup.DeltaOptions{MaxSteps: cfg.Delta.MaxSteps, Origin: cfg.Delta.Origin, FromName: cfg.Delta.FromName, Full: o.full}
	var local error = errors.New("no PGDATA given")
	if dataDir != "" && cfg.BackupMode != basebackup.ModeRemote {
		local = basebackup.ServerDataDir(ctx, conn, dataDir)
	}
	// Auto leaves incrementals of PostgreSQL 17+ to the server (remote
	// mode, from its WAL summaries); local mode takes incrementals of any
	// version by page LSN.
	native := delta.Wanted() && sys.Version >= basebackup.MinIncrementalVersion
	mode, why, err := basebackup.ChooseMode(cfg.BackupMode, dataDir, local, native)
	if err != nil {
		return err
	}
	delta.Local = mode == basebackup.ModeLocal
	parent, err := chooseParent(ctx, conn, st, sys, delta, log)
	if err != nil {
		return describeStorageErr(err, cfg)
	}
	if why != "" {
		log.Debug("backing up in remote mode", "reason", why)
	}
	var sqlConn *pgconn.PgConn
	if mode == basebackup.ModeLocal {
		// The backup is held on a session of its own: pg_backup_start
		// and pg_backup_stop on a plain connection.
		if sqlConn, err = connect(ctx, cfg.PG, o.pgConn, false); err != nil {
			return err
		}
		defer sqlConn.Close(ctx)
	}
	boundMemory()
	line := newProgressLine(root.stderr)
	start := time.Now()
	opts := basebackup.PushOptions{
		Store:       st,
		Codec:       cfg.Compression,
		PartSize:    cfg.BackupPartSize,
		Concurrency: cfg.UploadConcurrency,
		Spread:      o.spread,
		Permanent:   o.permanent,
		Log:         log,
		Progress: func(p basebackup.Progress) {
			if p.WaitingWAL != "" {
				line.show("backup %s: %s sent, %s stored, waiting for WAL segment %s to be archived (%s)",
					p.Name, bytesString(p.Sent), bytesString(p.Stored), p.WaitingWAL, p.Elapsed.Round(time.Second))
				return
			}
			eta := ""
			if p.Total > 0 && p.Sent > 0 && p.Sent < p.Total {
				left := time.Duration(float64(p.Elapsed) * float64(p.Total-p.Sent) / float64(p.Sent))
				eta = fmt.Sprintf(", ETA %s", left.Round(time.Second))
			}
			pct := ""
			if p.Total > 0 {
				pct = fmt.Sprintf(" of %s (%d%%)", bytesString(p.Total), min(100, p.Sent*100/p.Total))
			}
			line.show("backup %s: %s%s, %s, %s stored%s", p.Name, bytesString(p.Sent), pct,
				rate(p.Sent, p.Elapsed), bytesString(p.Stored), eta)
		},
		Parent: parent,
	}
	push := func() (basebackup.Meta, error) {
		if mode == basebackup.ModeLocal {
			return basebackup.PushLocal(ctx, sqlConn, sys, opts, basebackup.LocalOptions{DataDir: dataDir, Readers: readersFor(cfg.UploadConcurrency), FailOnBadPage: o.failBad})
		}
		return basebackup.Push(ctx, conn, sys, opts)
	}
	m, err := push()
	if errors.Is(err, basebackup.ErrNoIncremental) && delta.FromName == "" {
		line.done()
		log.Info("taking a full backup", "reason", err.Error())
		opts.Parent = nil
		m, err = push()
	}
	line.done()
	if err != nil {
		return describeStorageErr(diagnose(ctx, st, err), cfg)
	}
	if o.json {
		enc := json.NewEncoder(root.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(m)
	}
	took := time.Since(start)
	kind := "full"
	if m.Incremental() {
		kind = fmt.Sprintf("incremental on %s, %d of %d in the chain of %s", m.Parent, m.ChainDepth, max(delta.MaxSteps, m.ChainDepth), m.ChainFull)
	}
	if n := len(m.BadPages); n > 0 {
		kind += fmt.Sprintf(", %d files with pages failing their checksum (see the log and the metadata's bad_pages)", n)
	}
	fmt.Fprintf(root.stdout, "backup %s done (%s), %s mode: %s of data, %s stored (%s), %d parts, %s, %s\n",
		m.Name, kind, mode, bytesString(m.DataSize), bytesString(m.StoredSize), m.Codec, len(m.Parts),
		took.Round(10*time.Millisecond), rate(m.DataSize, took))
	return nil
}

// chooseParent picks the backup an incremental is taken against, or nil
// for a full backup, logging why a full backup is taken where incrementals
// were asked for. Only --delta-from-name that cannot serve is an error.
func chooseParent(ctx context.Context, conn *pgconn.PgConn, st storage.Storage, sys basebackup.System, o basebackup.DeltaOptions, log *slog.Logger) (*basebackup.Meta, error) {
	if !o.Wanted() {
		return nil, nil
	}
	if cs, ok := storage.As[*crypt.Store](st); ok && !cs.CanRead() {
		// An incremental compares with its parent's manifest, which is
		// encrypted to the recipients.
		why := "this host has only age recipients, and an incremental backup needs its parent's manifest, which only an identity can read (set TUSK_AGE_IDENTITY_FILE too, or take full backups here)"
		if o.FromName != "" {
			return nil, fmt.Errorf("--delta-from-name %s: %s", o.FromName, why)
		}
		log.Info("taking a full backup", "reason", why)
		return nil, nil
	}
	ms, err := basebackup.List(ctx, st, nil)
	if err != nil {
		return nil, err
	}
	parent, why, err := basebackup.ChooseParent(ms, sys, o)
	if err != nil {
		return nil, err
	}
	if parent != nil && !o.Local {
		set, _, err := basebackup.Settings(ctx, conn, "summarize_wal")
		if err != nil {
			return nil, err
		}
		if set["summarize_wal"] != "on" {
			why = "summarize_wal is off on the server, so it keeps no WAL summaries to take an incremental backup from; set summarize_wal = on (a reload is enough) and the next backup after a full one can be incremental"
			if o.FromName != "" {
				return nil, fmt.Errorf("--delta-from-name %s: %s", o.FromName, why)
			}
			parent = nil
			why += "; taking a full backup"
		}
	}
	if why != "" {
		log.Info("taking a full backup", "reason", why)
	}
	return parent, nil
}

// backupS3PartSize caps TUSK_S3_PART_SIZE for backup-push's uploads.
const backupS3PartSize = 8 << 20

// boundMemory asks the garbage collector to keep the heap near 64 MiB, unless
// GOMEMLIMIT says otherwise. backup-push and backup-fetch hold at most
// TUSK_UPLOAD_CONCURRENCY (or TUSK_DOWNLOAD_CONCURRENCY) parts' buffers, but
// with Go's default pacing the heap may grow to twice what is live; measured
// on a scale-100 backup to MinIO: peak RSS 130 MiB without, 82 MiB with, at
// the same speed (BENCHMARKS.md, backup). It is a soft limit: more live data
// (a larger part size, more concurrency) still fits, with more GC work.
func boundMemory() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(64 << 20)
	}
}

// readersFor is how many readers a local-mode backup runs with
// TUSK_UPLOAD_CONCURRENCY set to uploads: one per CPU, at least 2, and
// never more than the uploads. Each reader fills and compresses a part of
// its own, so more readers than CPUs compress no faster; they only hold
// more parts in memory at once.
func readersFor(uploads int) int {
	return min(uploads, max(2, runtime.GOMAXPROCS(0)))
}
