package cmd

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tusk-backup/tusk/archive"
	"github.com/tusk-backup/tusk/config"
	"github.com/tusk-backup/tusk/crypt"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/wal"
)

// exitRecoveryAbort is wal-fetch's exit code for "the archive could not be
// read" during archive recovery. PostgreSQL treats any restore_command exit
// above 125 as fatal and stops recovery, instead of reading the failure as
// the end of the archive and promoting at the wrong point.
const exitRecoveryAbort = 200

func newWALFetchCmd(root *rootOpts) *cobra.Command {
	c := &cobra.Command{
		Use:   "wal-fetch WAL_NAME DEST_PATH",
		Short: "Restore one WAL file (use as restore_command = 'tusk wal-fetch %f %p')",
		Long: `wal-fetch downloads one archived WAL file, verifies its checksum, and writes it
to DEST_PATH through a temporary file, so PostgreSQL only ever sees a whole,
verified file.

A file missing from tusk's own layout is looked for in wal-g's (wal_005/, with
every codec wal-g writes and its libsodium encryption under the same key
settings), so that a repository wal-g archived into keeps serving recovery.

Exit codes: 0 the file is at DEST_PATH; 1 the file is not in the archive (a
normal answer: PostgreSQL asks for files that do not exist); 200 the archive
could not be read (storage error after retries, a corrupt object, or one tusk
cannot read, such as wal-g's .lzo or an encrypted object without its key)
while the server is in archive recovery (recovery.signal), which makes
PostgreSQL stop recovery instead of promoting early. On a standby
(standby.signal) such failures exit 1, and the standby asks again later.

While PostgreSQL replays a segment, a background "tusk wal-prefetch" downloads,
verifies and flushes to disk up to TUSK_WAL_PREFETCH following segments into
the spool folder (TUSK_SPOOL_DIR), so that recovery does not wait on the
storage's latency. One prefetcher follows the whole recovery and ends with it.`,
		Example: "  restore_command = 'tusk wal-fetch %f %p'",
		Args:    exactArgs(2, "the WAL file name (%f) and the destination path (%p)"),
		RunE: func(c *cobra.Command, args []string) error {
			return runWALFetch(c, root, args[0], args[1])
		},
	}
	addSettingFlags(c.Flags(), "TUSK_DOWNLOAD_CONCURRENCY")
	return c
}

func runWALFetch(c *cobra.Command, root *rootOpts, name, dest string) error {
	cfg, log, err := root.load(c)
	if err != nil {
		// Settings that cannot be read (a config file on a volume that is
		// not mounted, a refused setting) are no answer about the archive:
		// during archive recovery PostgreSQL must stop, not take the
		// failure for the end of the archive.
		pgdata := envValue(root.env, "TUSK_PGDATA")
		if pgdata == "" {
			pgdata = envValue(root.env, "PGDATA")
		}
		if wal.InArchiveRecovery(cmp.Or(pgdata, ".")) {
			return &ExitError{Code: exitRecoveryAbort, Err: err}
		}
		return err
	}
	ctx := c.Context()
	fail := func(err error) error {
		if errors.Is(err, storage.ErrNotFound) {
			log.Info("wal not in archive", "wal", name)
			return &ExitError{Code: 1, Err: err, Quiet: true}
		}
		err = describeStorageErr(err, cfg)
		if wal.InArchiveRecovery(dataDir(cfg)) {
			return &ExitError{Code: exitRecoveryAbort, Err: err}
		}
		return err
	}
	n, err := wal.ParseName(name)
	if err != nil {
		return usagef(err)
	}
	start := time.Now()
	// A prefetched copy needs no storage client: check the spool first.
	prefetch := cfg.WALPrefetch > 0 && n.Kind == wal.Segment && cfg.Repo.Scheme != ""
	var spool string
	if prefetch {
		if spool, err = archive.SpoolDirFor(cfg.SpoolDir, dataDir(cfg), cfg.Repo.URL); err != nil {
			return fail(err)
		}
		// A running prefetcher follows this position (wal-prefetch). Before
		// the first prefetch there is no spool folder, and nothing to tell.
		if err := archive.SetPosition(spool, name); err != nil {
			log.Debug("prefetch position not recorded", "error", err)
		}
		spooled := &archive.Archive{Log: log}
		ok, err := spooled.FromSpool(spool, name, dest)
		if !ok && err == nil {
			// The prefetcher is behind: how long recovery waits here is what
			// tells "prefetch not ahead" from CPU contention in the replay
			// benchmark, so it is logged.
			waitStart := time.Now()
			if archive.WaitSpool(ctx, spool, name, 30*time.Second) {
				ok, err = spooled.FromSpool(spool, name, dest)
				log.Info("waited for the prefetcher", "wal", name, "waited", time.Since(waitStart).Round(time.Millisecond))
			}
		}
		if err != nil {
			log.Warn("prefetched copy not used", "wal", name, "error", err)
		}
		if ok {
			startPrefetch(c, root, spool, n, cfg.WALPrefetch, log)
			return nil
		}
	}
	st, err := openStorage(ctx, cfg, log, forArchiver)
	if err != nil {
		return fail(err)
	}
	a := &archive.Archive{Store: st, Log: log, WALGHint: walgHint(cfg)}
	res, err := a.Fetch(ctx, name, dest)
	if err != nil {
		if errors.Is(err, archive.ErrUnreadable) {
			// The file is there in a form tusk cannot read: the
			// sentence says which and why; never "not found".
			return fail(fmt.Errorf("fetch %s: %w", name, err))
		}
		if errors.Is(err, archive.ErrCorrupt) || errors.Is(err, crypt.ErrDecrypt) || errors.Is(err, crypt.ErrDamaged) {
			// An object that does not read may be one of an encrypted
			// repository read without its key, or the other way round.
			if cerr := st.CheckEncryption(ctx); cerr != nil {
				err = fmt.Errorf("fetch %s: %w", name, cerr)
			}
		} else {
			err = diagnose(ctx, st, err)
		}
		return fail(err)
	}
	log.Info("wal restored", "wal", name, "bytes", res.Size, "duration", time.Since(start).Round(time.Millisecond))
	if prefetch {
		startPrefetch(c, root, spool, n, cfg.WALPrefetch, log)
	}
	return nil
}

// startPrefetch starts a detached "tusk wal-prefetch" that downloads the
// segments after name into the spool while PostgreSQL replays name. It runs
// in its own session, so it neither holds up this call nor dies with it.
// Only one works on a spool at a time, and it follows recovery (the position
// each wal-fetch records) until recovery ends or stops moving, so one
// process usually serves a whole recovery.
//
// A new prefetcher starts only when none is running and fewer than half of
// the following count segments are already spooled.
func startPrefetch(c *cobra.Command, root *rootOpts, spool string, n wal.Name, count int, log *slog.Logger) {
	name := n.File
	if archive.Spooled(spool, n, count) >= (count+1)/2 || archive.Locked(spool) {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		log.Warn("prefetch not started", "error", err)
		return
	}
	args := []string{"wal-prefetch", spool, name}
	c.Flags().Visit(func(f *pflag.Flag) {
		args = append(args, "--"+f.Name+"="+f.Value.String())
	})
	if root.configPath != "" && c.Flags().Lookup("config") == nil {
		args = append(args, "--config="+root.configPath)
	}
	if err := os.MkdirAll(spool, 0o700); err != nil {
		log.Warn("prefetch not started", "error", err)
		return
	}
	logf, err := os.OpenFile(filepath.Join(spool, archive.SpoolLog), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		log.Warn("prefetch not started", "error", err)
		return
	}
	defer logf.Close()
	p := exec.Command(exe, args...)
	p.Env = root.env
	p.Stdout, p.Stderr = logf, logf
	p.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := p.Start(); err != nil {
		log.Warn("prefetch not started", "error", err)
		return
	}
	p.Process.Release()
}

// walgHint is what to set for a wal-g object that does not decode, which
// without a key is most likely one wal-g encrypted.
func walgHint(cfg config.Config) string {
	if cfg.Encryption.Age() {
		return "; if wal-g encrypted it (WALG_LIBSODIUM_KEY), read it with that key (WALG_LIBSODIUM_KEY or TUSK_ENCRYPTION_KEY) instead of age's settings: age mode does not read wal-g's encryption"
	}
	if cfg.Encryption.Enabled() {
		return ""
	}
	return "; if wal-g encrypted it (WALG_LIBSODIUM_KEY), give tusk the same key (WALG_LIBSODIUM_KEY or TUSK_ENCRYPTION_KEY, or their _PATH/_FILE forms)"
}

func dataDir(cfg config.Config) string {
	if cfg.PG.DataDir != "" {
		return cfg.PG.DataDir
	}
	return "."
}

func newWALPrefetchCmd(root *rootOpts) *cobra.Command {
	return &cobra.Command{
		Use:    "wal-prefetch SPOOL_DIR WAL_NAME",
		Short:  "Download the segments after WAL_NAME into SPOOL_DIR (started by wal-fetch)",
		Hidden: true,
		Args:   exactArgs(2, "the spool folder and the WAL name to prefetch after"),
		RunE: func(c *cobra.Command, args []string) error {
			cfg, log, err := root.load(c)
			if err != nil {
				return err
			}
			// Prefetching only has to keep ahead of replay. At normal
			// priority its decompression and checksums take the cores that
			// PostgreSQL's startup process needs to replay (measured: spool
			// hits went from 27 ms to 50-90 ms while a prefetcher ran).
			if err := lowerPriority(); err != nil {
				log.Debug("prefetch priority not lowered", "error", err)
			}
			st, err := openStorage(c.Context(), cfg, log, forArchiver)
			if err != nil {
				return err
			}
			a := &archive.Archive{Store: st, Log: log, WALGHint: walgHint(cfg)}
			err = a.Prefetch(c.Context(), args[1], archive.PrefetchOptions{
				SpoolDir: args[0], Count: cfg.WALPrefetch, Concurrency: cfg.DownloadConcurrency,
				Follow: true, Poll: prefetchPoll, Idle: prefetchIdle, MaxLife: prefetchMaxLife,
				Done:  func() bool { return !wal.InRecovery(dataDir(cfg)) },
				Flush: sameFileSystem(args[0], filepath.Join(dataDir(cfg), "pg_wal")),
			})
			if errors.Is(err, archive.ErrPrefetchBusy) {
				return nil
			}
			return err
		},
	}
}

// A following prefetcher looks for a new position every prefetchPoll (it
// keeps TUSK_WAL_PREFETCH segments ahead, so this adds no wait), and ends
// when the position has not moved for prefetchIdle: a standby that has
// caught up, or a replay paused at its target. The next wal-fetch that finds
// the spool short starts another.
// It also ends after prefetchMaxLife, so that a standby replaying for
// weeks picks up a new tusk binary or new credentials.
const (
	prefetchPoll    = 20 * time.Millisecond
	prefetchIdle    = 10 * time.Second
	prefetchMaxLife = time.Hour
)

// sameFileSystem reports whether a and b are on one file system, where
// moving a file from one to the other is a rename, not a copy.
func sameFileSystem(a, b string) bool {
	var sa, sb syscall.Stat_t
	return syscall.Stat(a, &sa) == nil && syscall.Stat(b, &sb) == nil && sa.Dev == sb.Dev
}
