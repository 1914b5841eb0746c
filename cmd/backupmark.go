package cmd

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/retention"
)

func newBackupMarkCmd(root *rootOpts) *cobra.Command {
	var impermanent bool
	c := &cobra.Command{
		Use:   "backup-mark NAME",
		Short: "Make a backup permanent (or, with --impermanent, ordinary again)",
		Long: `backup-mark makes a backup permanent: delete retain, before and garbage never
delete it or the WAL from its start to its end. An incremental backup restores
only with its chain, so marking one permanent marks its parents too, up to the
full backup (as wal-g's does). --impermanent undoes it for the one backup, so
that retention treats it like any other; it is refused while a permanent
incremental backup is built on it (unmark that one first).`,
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
			res, err := retention.Mark(ctx, st, name, !impermanent, retention.MarkOptions{Wait: markWait})
			switch {
			case errors.Is(err, retention.ErrBeingDeleted), errors.Is(err, retention.ErrDeletedWhileMarking),
				errors.Is(err, retention.ErrBrokenChain), errors.Is(err, retention.ErrNeededByPermanent):
				return err
			case err != nil:
				return describeStorageErr(diagnose(ctx, st, err), cfg)
			}
			state := "permanent"
			if impermanent {
				state = "not permanent"
			}
			if len(res.Parents) > 0 {
				log.Info("backup marked", "backup", strings.Join(res.Parents, ","), "permanent", true, "needed_by", name)
				fmt.Fprintf(root.stdout, "backups %s, which incremental backup %s needs to restore, are now permanent\n", strings.Join(res.Parents, ", "), name)
			}
			if !res.Changed {
				fmt.Fprintf(root.stdout, "backup %s is already %s\n", name, state)
				return nil
			}
			log.Info("backup marked", "backup", name, "permanent", res.Meta.Permanent)
			fmt.Fprintf(root.stdout, "backup %s is now %s\n", name, state)
			return nil
		},
	}
	c.Flags().BoolVarP(&impermanent, "impermanent", "i", false, "make the backup ordinary again, so retention may delete it")
	return c
}

// markWait bounds how long backup-mark waits for a delete that began while
// it marked to decide about the backup.
const markWait = 2 * time.Minute
