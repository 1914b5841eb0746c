package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tusk-backup/tusk/archive"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/wal"
)

func newWALRestoreCmd(root *rootOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "wal-restore TARGET_PGDATA SOURCE_PGDATA",
		Short: "Fetch into the source's pg_wal the WAL a pg_rewind of the target needs (wal-g's wal-restore)",
		Long: `wal-restore prepares a pg_rewind of TARGET_PGDATA (an old primary, shut down)
from SOURCE_PGDATA (the cluster it follows now, shut down, on a later
timeline), as wal-g's does: it reads both clusters' pg_control and timeline
history files (from pg_wal, else from the archive), finds where their
histories parted, and downloads from the archive every WAL segment of the
source's timeline path from that point to the newest segment in the source's
pg_wal that its pg_wal lacks (recycled since), verified, into that pg_wal.
Then run pg_rewind -D TARGET_PGDATA --source-pgdata=SOURCE_PGDATA.

The two must be one cluster (the same system identifier) on different
timelines. A segment the archive does not have is named, and wal-restore
exits 1 (wal-g logs it and exits 0; pg_rewind would fail on it later).`,
		Example: "  tusk wal-restore /var/lib/postgresql/15/old /var/lib/postgresql/15/main && pg_rewind -D /var/lib/postgresql/15/old --source-pgdata=/var/lib/postgresql/15/main",
		Args:    exactArgs(2, "the target's and the source's data directory"),
		RunE: func(c *cobra.Command, args []string) error {
			return runWALRestore(c, root, args[0], args[1])
		},
	}
}

// rewindSide is one cluster of a rewind: its data directory, pg_wal,
// timeline and ancestry.
type rewindSide struct {
	dataDir, walDir, systemID string
	tli                       uint32
	hist                      wal.Ancestry
}

func readRewindSide(role, dataDir string) (rewindSide, error) {
	s := rewindSide{dataDir: dataDir}
	var err error
	if s.systemID, err = wal.SystemIDOf(dataDir); err != nil {
		return s, usagef(fmt.Errorf("the %s: %w", role, err))
	}
	if s.tli, err = wal.TimelineOf(dataDir); err != nil {
		return s, usagef(fmt.Errorf("the %s: %w", role, err))
	}
	if s.walDir, err = filepath.EvalSymlinks(filepath.Join(dataDir, "pg_wal")); err != nil {
		return s, usagef(fmt.Errorf("the %s's pg_wal: %w", role, unwrapPathErr(err)))
	}
	return s, nil
}

// history reads s's ancestry from its pg_wal, else from the archive.
func (s *rewindSide) history(ctx context.Context, a *archive.Archive) error {
	if s.tli == 1 {
		return nil
	}
	file := wal.HistoryFile(s.tli)
	f, err := os.Open(filepath.Join(s.walDir, file))
	if err == nil {
		defer f.Close()
		if s.hist, err = wal.ParseHistory(f); err != nil {
			return fmt.Errorf("%s in %s: %w", file, s.walDir, err)
		}
		return nil
	}
	if s.hist, err = a.History(ctx, s.tli); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("history file %s of timeline %d is neither in %s nor in the archive, so where the clusters parted is unknown", file, s.tli, s.walDir)
		}
		return err
	}
	return nil
}

func runWALRestore(c *cobra.Command, root *rootOpts, targetDir, sourceDir string) error {
	target, err := readRewindSide("target", targetDir)
	if err != nil {
		return err
	}
	source, err := readRewindSide("source", sourceDir)
	if err != nil {
		return err
	}
	if target.systemID != source.systemID {
		return usagef(fmt.Errorf("the target %s (system identifier %s) and the source %s (%s) are different clusters; pg_rewind works on one cluster's diverged copies", targetDir, target.systemID, sourceDir, source.systemID))
	}
	if target.tli == source.tli {
		return usagef(fmt.Errorf("the target %s and the source %s are both on timeline %d at their latest checkpoint, so there is nothing to rewind across (run it after the source's promotion, with both shut down)", targetDir, sourceDir, target.tli))
	}
	cfg, log, st, err := root.loadRepo(c)
	if err != nil {
		return err
	}
	ctx := c.Context()
	a := &archive.Archive{Store: st, Log: log}
	for _, s := range []*rewindSide{&target, &source} {
		if err := s.history(ctx, a); err != nil {
			return describeStorageErr(err, cfg)
		}
	}
	forkTLI, fork, err := wal.ForkPoint(target.hist, source.hist)
	if err != nil {
		return usagef(fmt.Errorf("the target %s and the source %s: %w", targetDir, sourceDir, err))
	}
	entries, err := os.ReadDir(source.walDir)
	if err != nil {
		return fmt.Errorf("read the source's pg_wal %s: %w", source.walDir, unwrapPathErr(err))
	}
	have := map[string]bool{}
	var newest uint64
	var segSize uint64
	found := false
	for _, e := range entries {
		n, err := wal.ParseName(e.Name())
		if err != nil || n.Kind != wal.Segment {
			continue
		}
		have[n.File] = true
		if segSize == 0 {
			if fi, err := e.Info(); err == nil {
				if sz := uint64(fi.Size()); sz >= 1<<20 && sz <= 1<<30 && sz&(sz-1) == 0 {
					segSize = sz
				}
			}
		}
		if n.Timeline == source.tli {
			if p := n.Pos(segSize); !found || p > newest {
				newest, found = p, true
			}
		}
	}
	if !found {
		return fmt.Errorf("the source's pg_wal %s holds no segment of its timeline %d, so what pg_rewind reads cannot be told", source.walDir, source.tli)
	}
	missing, err := wal.RewindWAL(source.hist, source.tli, fork, newest, segSize, func(f string) bool { return have[f] })
	if err != nil {
		return err
	}
	log.Info("clusters parted", "timeline", forkTLI, "lsn", fork.String(), "source_timeline", source.tli, "target_timeline", target.tli)
	if len(missing) == 0 {
		log.Info("no WAL files to restore", "pg_wal", source.walDir)
		return nil
	}
	var failed []string
	for _, f := range missing {
		dest := filepath.Join(source.walDir, f)
		_, err := a.Fetch(ctx, f, dest)
		if err == nil {
			err = ownLike(dest, source.walDir)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			log.Error("wal not restored", "wal", f, "error", err)
			failed = append(failed, f)
			continue
		}
		log.Info("wal restored", "wal", f, "pg_wal", source.walDir)
	}
	if len(failed) > 0 {
		return &ExitError{Code: 1, Err: fmt.Errorf("wal-restore could not fetch %d of the %d WAL files pg_rewind needs (%s); see the lines above, and do not run pg_rewind until they are in %s", len(failed), len(missing), strings.Join(failed, ", "), source.walDir)}
	}
	return nil
}
