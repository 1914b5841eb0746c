package cmd

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tusk-backup/tusk/archive"
	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/config"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/verify"
)

// readWAL lists the backups and reads the WAL archive.
func readWAL(c *cobra.Command, root *rootOpts) (config.Config, storage.Storage, []basebackup.Meta, *verify.Archive, error) {
	cfg, log, st, err := root.loadRepo(c)
	if err != nil {
		return cfg, nil, nil, nil, err
	}
	ctx := c.Context()
	var unreadable []string
	ms, err := basebackup.List(ctx, st, func(key string, err error) {
		log.Warn("skipping unreadable backup metadata", "key", key, "error", err)
		unreadable = append(unreadable, key)
	})
	if err != nil {
		return cfg, nil, nil, nil, describeStorageErr(diagnose(ctx, st, err), cfg)
	}
	var segSize uint64
	if len(ms) > 0 {
		segSize = ms[len(ms)-1].SegSize
	} else if size, ok, err := (&archive.Archive{Store: st}).SegmentSize(ctx); err != nil && !errors.Is(err, archive.ErrCorrupt) {
		return cfg, nil, nil, nil, describeStorageErr(diagnose(ctx, st, err), cfg)
	} else if ok && size >= 1<<20 && size <= 1<<30 && size&(size-1) == 0 {
		segSize = size // no backup records it: the segments' own size
	}
	a, err := verify.Read(ctx, st, segSize, ms)
	if err != nil {
		return cfg, nil, nil, nil, describeStorageErr(diagnose(ctx, st, err), cfg)
	}
	a.UnreadableBackups = unreadable
	return cfg, st, ms, a, nil
}

func newWALShowCmd(root *rootOpts) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "wal-show",
		Short: "Show the timelines in the WAL archive, their segments, gaps and backups",
		Long: `wal-show lists each timeline in the archive: where it branched off its parent
(from its history file), its runs of consecutive segments and the gaps between
them, its size, its .partial segments, and the backups that start on it.
WAL that wal-g archived on the same prefix (wal_005/) is part of the archive.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			_, _, _, a, err := readWAL(c, root)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(root.stdout, a)
			}
			printWALShow(root.stdout, a)
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the timelines as JSON")
	return c
}

func printWALShow(w io.Writer, a *verify.Archive) {
	if len(a.Timelines) == 0 {
		fmt.Fprintln(w, "the archive holds no WAL")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "timeline\tparent\tswitch LSN\tsegments\tsize\tfirst\tlast\tgaps\tbackups")
	for _, t := range a.Timelines {
		parent, sw := "-", "-"
		if t.Parent != 0 {
			parent, sw = fmt.Sprint(t.Parent), t.Switch
		} else if t.ID > 1 {
			parent = "? (no history file)"
		}
		first, last := "-", "-"
		if len(t.Ranges) > 0 {
			first, last = t.Ranges[0].First, t.Ranges[len(t.Ranges)-1].Last
		}
		gaps := 0
		for _, g := range t.Gaps {
			gaps += g.Count
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%s\t%d\t%d\n", t.ID, parent, sw, t.Segments, bytesString(t.Bytes), first, last, gaps, len(t.Backups))
	}
	tw.Flush()
	for _, t := range a.Timelines {
		for _, g := range t.Gaps {
			fmt.Fprintf(w, "timeline %d: gap of %d segment(s), %s to %s\n", t.ID, g.Count, g.First, g.Last)
		}
	}
	for _, e := range a.HistoryErrors {
		fmt.Fprintf(w, "unreadable history file: %s\n", e)
	}
	if a.WALG > 0 {
		fmt.Fprintf(w, "%d of these WAL files are in wal-g's layout (%s), read beside tusk's own\n", a.WALG, archive.WALGPrefix)
	}
	for _, key := range a.UnreadableWAL {
		fmt.Fprintf(w, "unreadable: %s holds a WAL file in a form tusk cannot read\n", key)
	}
}

func newWALVerifyCmd(root *rootOpts) *cobra.Command {
	var asJSON, server, deep bool
	var pgConn string
	c := &cobra.Command{
		Use:   "wal-verify",
		Short: "Check that every WAL segment point-in-time recovery needs is archived",
		Long: `wal-verify follows the newest timeline's history back through its ancestors
and checks that every segment recovery would ask for, from the start of the
oldest backup on that path to the newest archived segment, is in the archive.
"Needed" is retention's rule: all WAL from the start of the oldest ordinary
backup on, and each permanent backup's own WAL before it. WAL that retention
deleted between a permanent backup's end and the next backup's start is
reported as an expected gap, not as lost.

Without --deep the check is of presence: the listing is compared, nothing is
read. --deep also reads every needed segment (TUSK_DOWNLOAD_CONCURRENCY at a
time), decompresses it and verifies the XXH3-128 checksum wal-push recorded,
as wal-fetch would; a damaged object is named.

With --server it also asks the server (PG* settings or --pg-conn) for the
segment it is writing and the last one its archiver reports archived: later
segments the archiver has not reached yet are "waiting"; ones it reports
archived but the archive lacks are lost. The exit code is 1 if any segment is
lost or damaged or a needed history file is missing.

wal-g's command line, wal-verify integrity timeline (either or both), asks
the server as --server does and prints wal-g's report: integrity's runs of
FOUND, MISSING_LOST and MISSING_DELAYED (not archived yet) segments and its
status (OK, WARNING, FAILURE), timeline's comparison of the server's
timeline with the archive's highest; --json prints wal-g's document. Unlike
wal-g, a FAILURE exits 1.`,
		Args: func(c *cobra.Command, args []string) error {
			_, err := parseWALGChecks(args)
			return usageErr(err)
		},
		RunE: func(c *cobra.Command, args []string) error {
			checks, _ := parseWALGChecks(args)
			server = server || len(checks) > 0
			if pgConn != "" {
				// A malformed --pg-conn is refused before the archive is read.
				if err := checkConnSettings(config.PGSettings{}, pgConn); err != nil {
					return err
				}
			}
			cfg, st, ms, a, err := readWAL(c, root)
			if err != nil {
				return err
			}
			var srv *verify.Server
			if server || pgConn != "" {
				conn, err := connect(c.Context(), cfg.PG, pgConn, false)
				if err != nil {
					return err
				}
				defer conn.Close(c.Context())
				cur, err := basebackup.CurrentWAL(c.Context(), conn)
				if err != nil {
					return err
				}
				arch, err := basebackup.ArchiverState(c.Context(), conn)
				if err != nil {
					return err
				}
				srv = &verify.Server{Current: cur, LastArchived: arch.LastArchived}
			}
			r := a.Check(ms, srv)
			if deep {
				line := newProgressLine(root.stderr)
				err := verify.Content(c.Context(), &r, verify.ContentOptions{Store: st, Concurrency: cfg.DownloadConcurrency,
					Progress: func(done, total int) { line.show("wal-verify: read %d of %d segments", done, total) }})
				line.done()
				if err != nil {
					return describeStorageErr(diagnose(c.Context(), st, err), cfg)
				}
			}
			if len(checks) > 0 {
				return printWALGVerify(root.stdout, checks, r, a, srv, asJSON)
			}
			if asJSON {
				if err := writeJSON(root.stdout, r); err != nil {
					return err
				}
			} else {
				printWALVerify(root.stdout, r)
				if deep && a.WALG > 0 {
					fmt.Fprintf(root.stdout, "note: segments in wal-g's layout (%s) carry no checksum; of those, the codec's own checks, the size and the page header were verified\n", archive.WALGPrefix)
				}
			}
			if !r.OK {
				return &ExitError{Code: 1, Err: walVerifyErr(r)}
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	c.Flags().BoolVar(&deep, "deep", false, "also read every needed segment and verify its checksum (TUSK_DOWNLOAD_CONCURRENCY at a time)")
	c.Flags().BoolVar(&server, "server", false, "also compare with the server's current segment (PGHOST, PGPORT, PGUSER...)")
	c.Flags().StringVar(&pgConn, "pg-conn", "", "connection string for --server, e.g. 'host=db1 user=postgres'")
	addSettingFlags(c.Flags(), "TUSK_DOWNLOAD_CONCURRENCY")
	return c
}

// walVerifyErr is wal-verify's one sentence for a failed check.
func walVerifyErr(r verify.Result) error {
	var what []string
	for _, c := range []struct {
		n    int
		what string
	}{{len(r.Missing), "lost"}, {len(r.Corrupt), "damaged"}} {
		if c.n > 0 {
			what = append(what, fmt.Sprintf("%d needed segment(s) %s", c.n, c.what))
		}
	}
	if len(r.Problems) > 0 {
		what = append(what, fmt.Sprintf("%d other problem(s)", len(r.Problems)))
	}
	return fmt.Errorf("the WAL archive is not complete: %s; see the lines above", strings.Join(what, ", "))
}

func printWALVerify(w io.Writer, r verify.Result) {
	path := make([]string, len(r.Path))
	for i, t := range r.Path {
		path[i] = fmt.Sprint(t)
	}
	from := r.From
	if r.FromBackup != "" {
		from += " (start of backup " + r.FromBackup + ")"
	}
	if r.To != "" {
		fmt.Fprintf(w, "checked %d needed segments from %s to %s, across timelines %s\n", r.Checked, from, r.To, strings.Join(path, " → "))
		if r.Check == "content" {
			fmt.Fprintf(w, "check: content: read %d archived segments, decompressed them and verified their checksums\n", r.Read)
		} else {
			fmt.Fprintln(w, "check: presence: listed in the archive, not read (--deep reads them and verifies their checksums)")
		}
	}
	for _, g := range r.Expected {
		between := "before the start of backup " + g.Before
		if g.After != "" {
			between = "between the end of permanent backup " + g.After + " and the start of backup " + g.Before
		}
		fmt.Fprintf(w, "expected gap: %d segment(s) %s to %s, %s: no backup needs them, so retention deletes them\n", g.Count, g.First, g.Last, between)
	}
	for _, p := range r.Problems {
		fmt.Fprintln(w, "problem:", p)
	}
	if len(r.Missing) > 0 {
		fmt.Fprintf(w, "LOST: %d segment(s) recovery needs are not in the archive:\n", len(r.Missing))
		for i, m := range r.Missing {
			if i == 20 {
				fmt.Fprintf(w, "  ... and %d more\n", len(r.Missing)-20)
				break
			}
			fmt.Fprintln(w, "  "+m)
		}
	}
	if len(r.Corrupt) > 0 {
		fmt.Fprintf(w, "DAMAGED: %d segment object(s) recovery needs fail the content check:\n", len(r.Corrupt))
		for _, c := range r.Corrupt {
			fmt.Fprintf(w, "  %s: %s\n", c.Object, c.Error)
		}
	}
	if len(r.Waiting) > 0 {
		fmt.Fprintf(w, "waiting: %d segment(s) the server has not archived yet, %s to %s\n", len(r.Waiting), r.Waiting[0], r.Waiting[len(r.Waiting)-1])
	}
	if r.OK && r.Check == "content" {
		fmt.Fprintln(w, "ok: no needed segment is missing or damaged")
	} else if r.OK {
		fmt.Fprintln(w, "ok: no needed segment is missing")
	}
}
