package cmd

import (
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/tusk-backup/tusk/archive"
	"github.com/tusk-backup/tusk/storage"
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

Exit codes: 0 the file is at DEST_PATH; 1 the file is not in the archive (a
normal answer: PostgreSQL asks for files that do not exist); 200 the archive
could not be read (storage error after retries, or a corrupt object) while the
server is in archive recovery (recovery.signal), which makes PostgreSQL stop
recovery instead of promoting early. On a standby (standby.signal) such
failures exit 1, and the standby asks again later.`,
		Example: "  restore_command = 'tusk wal-fetch %f %p'",
		Args:    exactArgs(2, "the WAL file name (%f) and the destination path (%p)"),
		RunE: func(c *cobra.Command, args []string) error {
			return runWALFetch(c, root, args[0], args[1])
		},
	}
	return c
}

func runWALFetch(c *cobra.Command, root *rootOpts, name, dest string) error {
	cfg, log, err := root.load(c)
	if err != nil {
		return err
	}
	ctx := c.Context()
	fail := func(err error) error {
		if errors.Is(err, storage.ErrNotFound) {
			log.Info("wal not in archive", "wal", name)
			return &ExitError{Code: 1, Err: err, Quiet: true}
		}
		err = describeStorageErr(err, cfg)
		if inArchiveRecovery(cfg) {
			return &ExitError{Code: exitRecoveryAbort, Err: err}
		}
		return err
	}
	if _, err := archive.ParseName(name); err != nil {
		return usagef(err)
	}
	st, err := openStorage(ctx, cfg, log, false)
	if err != nil {
		return fail(err)
	}
	a := &archive.Archive{Store: st, Log: log}
	start := time.Now()
	res, err := a.Fetch(ctx, name, dest, archive.FetchOptions{Attempts: 3, Backoff: time.Second})
	if err != nil {
		if !errors.Is(err, archive.ErrCorrupt) {
			err = diagnose(ctx, st, err)
		}
		return fail(err)
	}
	log.Info("wal restored", "wal", name, "bytes", res.Size, "duration", time.Since(start).Round(time.Millisecond))
	return nil
}

// inArchiveRecovery reports whether the data directory (PGDATA, or the
// working directory, which is the data directory under restore_command)
// holds recovery.signal without standby.signal.
func inArchiveRecovery(cfg Config) bool {
	dir := cfg.PG.DataDir
	if dir == "" {
		dir = "."
	}
	exists := func(name string) bool {
		_, err := os.Stat(filepath.Join(dir, name))
		return err == nil
	}
	return exists("recovery.signal") && !exists("standby.signal")
}
