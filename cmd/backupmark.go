package cmd

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/storage"
)

func newBackupMarkCmd(root *rootOpts) *cobra.Command {
	var impermanent bool
	c := &cobra.Command{
		Use:   "backup-mark NAME",
		Short: "Make a backup permanent (or, with --impermanent, ordinary again)",
		Long: `backup-mark makes a backup permanent: delete retain, before and garbage never
delete it or the WAL from its start to its end. --impermanent undoes it, so
that retention treats the backup like any other.`,
		Args: exactArgs(1, "the name of a backup"),
		RunE: func(c *cobra.Command, args []string) error {
			name := args[0]
			if err := basebackup.CheckName(name); err != nil {
				return usagef(err)
			}
			cfg, log, st, err := root.loadRepo(c)
			if err != nil {
				return err
			}
			ctx := c.Context()
			m, err := basebackup.ReadMeta(ctx, st, name)
			if err != nil {
				return describeStorageErr(diagnose(ctx, st, err), cfg)
			}
			if _, err := st.Stat(ctx, basebackup.TombstoneKey(name)); err == nil {
				return fmt.Errorf("backup %s is being deleted; it cannot be marked (run the delete again to finish it)", name)
			}
			state := "permanent"
			if impermanent {
				state = "not permanent"
			}
			if m.Permanent == !impermanent {
				fmt.Fprintf(root.stdout, "backup %s is already %s\n", name, state)
				return nil
			}
			m.Permanent = !impermanent
			if err := basebackup.WriteMeta(ctx, st, m); err != nil {
				return describeStorageErr(err, cfg)
			}
			// A delete that began meanwhile reads the metadata again after
			// writing its tombstone: it either saw the mark and spares the
			// backup, or it deletes it. Which one is known once its tombstone
			// is gone; until then nothing here deletes anything, so a backup
			// the delete spared is never lost.
			if err := waitTombstoneGone(ctx, st, name, markWait); err != nil {
				return err
			}
			_, merr := st.Stat(ctx, basebackup.MetaKey(name))
			_, perr := st.Stat(ctx, m.Manifest.Key)
			if errors.Is(merr, storage.ErrNotFound) || errors.Is(perr, storage.ErrNotFound) {
				return fmt.Errorf("backup %s was deleted while it was being marked", name)
			}
			log.Info("backup marked", "backup", name, "permanent", m.Permanent)
			fmt.Fprintf(root.stdout, "backup %s is now %s\n", name, state)
			return nil
		},
	}
	c.Flags().BoolVar(&impermanent, "impermanent", false, "make the backup ordinary again, so retention may delete it")
	return c
}

// markWait bounds how long backup-mark waits for a delete that began while
// it marked to decide about the backup.
const markWait = 2 * time.Minute

// waitTombstoneGone waits until no delete holds backup name's tombstone.
func waitTombstoneGone(ctx context.Context, st storage.Storage, name string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		_, err := st.Stat(ctx, basebackup.TombstoneKey(name))
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return nil
		case err != nil:
			return fmt.Errorf("check whether backup %s is being deleted: %w", name, err)
		case time.Now().After(deadline):
			return fmt.Errorf("backup %s is being deleted by a delete that has not finished in %v (%s exists), so it may not stay marked: run the delete again, then backup-mark", name, wait, basebackup.TombstoneKey(name))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
