package cmd

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tusk-backup/tusk/basebackup"
)

func newBackupListCmd(root *rootOpts) *cobra.Command {
	var asJSON, detail bool
	c := &cobra.Command{
		Use:   "backup-list",
		Short: "List the repository's backups, oldest first",
		Long: `backup-list prints one line per finished backup, oldest first by finish time:
name, when it finished, its first WAL segment, timeline, data size, stored size,
how long it took, whether it is permanent, whether it is a full or an
incremental backup, the backup an incremental was taken against, and what its
whole chain (the full backup and every incremental up to it, all of which a
restore reads) stores. --detail adds LSNs, the PostgreSQL version and the
system identifier; --json prints the whole metadata, with chain_stored_size.
The last column, origin, says whose layout a backup is in: tusk's own, or
wal-g's (basebackups_005/ on the same prefix, restorable by backup-fetch).`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			cfg, log, st, err := root.loadRepo(c)
			if err != nil {
				return err
			}
			ctx := c.Context()
			ms, err := listBackups(ctx, st, log)
			if err != nil {
				return describeStorageErr(diagnose(ctx, st, err), cfg)
			}
			entries := listEntries(ms)
			if asJSON {
				enc := json.NewEncoder(root.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(entries)
			}
			if len(ms) == 0 {
				fmt.Fprintf(root.stdout, "no backups in %s\n", cfg.Repo)
				return nil
			}
			tw := tabwriter.NewWriter(root.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprint(tw, "name\tfinished\tstart WAL\ttimeline\tdata\tstored\tduration\tpermanent\ttype\tparent\tchain stored")
			if detail {
				fmt.Fprint(tw, "\tstart LSN\tend LSN\tversion\tsystem id\tfrom standby")
			}
			fmt.Fprint(tw, "\torigin")
			fmt.Fprintln(tw)
			for _, e := range entries {
				m := e.Meta
				perm := "no"
				if m.Permanent {
					perm = "yes"
				}
				parent, chain := "-", bytesString(e.ChainStoredSize)
				if m.Incremental() {
					parent = m.Parent
				}
				if e.ChainError != "" {
					chain = "broken (parent missing)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s", m.Name, m.FinishTime.Local().Format("2006-01-02 15:04:05 MST"),
					m.StartWAL, m.StartTLI, bytesString(m.DataSize), bytesString(m.StoredSize),
					m.Duration().Round(100*time.Millisecond), perm, m.Kind(), parent, chain)
				if detail {
					fmt.Fprintf(tw, "\t%s\t%s\t%d\t%s\t%v", m.StartLSN, m.EndLSN, m.PGVersion, m.SystemID, m.FromStandby)
				}
				fmt.Fprintf(tw, "\t%s", m.OriginName())
				fmt.Fprintln(tw)
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print every backup's metadata as a JSON array")
	c.Flags().BoolVar(&detail, "detail", false, "add LSNs, PostgreSQL version, system identifier")
	return c
}

// listEntry is one backup as backup-list --json prints it: the metadata,
// and what a restore of it reads.
type listEntry struct {
	basebackup.Meta
	// ChainStoredSize is the bytes stored by the backup and every backup it
	// needs (its parents, up to the full backup).
	ChainStoredSize int64 `json:"chain_stored_size"`
	// ChainError says why the chain cannot be restored (a parent is
	// missing); empty when it can.
	ChainError string `json:"chain_error,omitempty"`
}

func listEntries(ms []basebackup.Meta) []listEntry {
	out := make([]listEntry, 0, len(ms))
	for _, m := range ms {
		e := listEntry{Meta: m}
		chain, err := basebackup.ChainOf(ms, m)
		if err != nil {
			e.ChainError = err.Error()
		}
		for _, b := range chain {
			e.ChainStoredSize += b.StoredSize
		}
		out = append(out, e)
	}
	return out
}
