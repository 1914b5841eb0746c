package cmd

import (
	"errors"
	"fmt"
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
			res, err := retention.Mark(ctx, st, name, !impermanent, retention.MarkOptions{Wait: markWait})
			switch {
			case errors.Is(err, retention.ErrBeingDeleted), errors.Is(err, retention.ErrDeletedWhileMarking):
				return err
			case err != nil:
				return describeStorageErr(diagnose(ctx, st, err), cfg)
			}
			state := "permanent"
			if impermanent {
				state = "not permanent"
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
	c.Flags().BoolVar(&impermanent, "impermanent", false, "make the backup ordinary again, so retention may delete it")
	return c
}

// markWait bounds how long backup-mark waits for a delete that began while
// it marked to decide about the backup.
const markWait = 2 * time.Minute
