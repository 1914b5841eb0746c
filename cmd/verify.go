package cmd

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/tusk-backup/tusk/archive"
	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/verify"
	"github.com/tusk-backup/tusk/wal"
	"github.com/tusk-backup/tusk/walg"
)

// verifyResult is one backup's verdict, as verify --json prints it.
type verifyResult struct {
	Backup      string               `json:"backup"`
	OK          bool                 `json:"ok"`
	Kind        string               `json:"kind,omitempty"`   // "full" or "incremental"
	Parent      string               `json:"parent,omitempty"` // the backup an incremental is built on
	Chain       []string             `json:"chain,omitempty"`  // an incremental's parents, nearest first, as checked
	Parts       int                  `json:"parts"`
	DataSize    int64                `json:"data_size"`
	StoredSize  int64                `json:"stored_size"`
	WALFirst    string               `json:"wal_first"`
	WALLast     string               `json:"wal_last"`
	WALSegments int                  `json:"wal_segments"`
	Deep        bool                 `json:"deep"`
	Seconds     float64              `json:"seconds"`
	Problems    []basebackup.Problem `json:"problems"`
}

func newVerifyCmd(root *rootOpts) *cobra.Command {
	var all, deep, asJSON bool
	c := &cobra.Command{
		Use:   "verify [NAME|LATEST] [--all]",
		Short: "Check that backups restore: every part, checksum, tar entry, and the WAL they need",
		Long: `verify reads a backup the way backup-fetch does, without writing anything:
every part must be present with the size and checksum its metadata records,
decompress, and hold only tar entries a restore accepts; the WAL from the
backup's start segment to its end segment must be in the archive and pass its
checksum. --deep also checks every file against PostgreSQL's backup manifest
stored with the backup (size and CRC32C) and the manifest's own checksum.

An incremental backup restores only with its chain, so verify also checks that
every backup of its chain is in the repository, readable and sound (its parts
present with their sizes and checksums), of the same cluster, and in order
(each parent ends before the backup built on it starts). The WAL checked is the
backup's own: restoring it needs its chain's data, not its chain's WAL.

A wal-g backup on the same prefix is read as backup-fetch reads it: its
sentinel and files metadata, every partition they list (wal-g records no
checksums: each must decompress and hold the entries listed), pg_control and
backup_label, a delta's page files, and its chain.

Without a name it verifies the newest backup; --all verifies every backup.
Each problem is reported with the object it concerns; the exit code is 1 if
there is any. Parts are read TUSK_DOWNLOAD_CONCURRENCY at a time.`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 1 || (all && len(args) > 0) {
				return usagef(errors.New("verify takes one backup name, LATEST, or --all (see tusk verify --help)"))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 1 && args[0] != "LATEST" {
				if err := basebackup.CheckName(args[0]); err != nil {
					return usagef(err)
				}
			}
			cfg, log, st, err := root.loadRepo(c)
			if err != nil {
				return err
			}
			ctx := c.Context()
			var ms []basebackup.Meta
			var results []verifyResult
			bad := 0
			// Every backup is listed, also to verify one: an incremental
			// backup's chain must be there and sound. Metadata that cannot
			// be read is a damaged backup: --all reports it and fails;
			// without --all the newest readable backup is verified and the
			// damage still counts; a named backup fails for it only if its
			// chain needs that backup.
			var unreadable []verifyResult
			why := map[string]string{}
			list, err := walg.ListAll(ctx, st, func(key string, err error) {
				name := strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(key, "backups/"), walg.Prefix), ".json"), "_backup_stop_sentinel")
				why[name] = err.Error()
				unreadable = append(unreadable, verifyResult{Backup: name, Problems: []basebackup.Problem{{Object: key, Error: err.Error()}}})
			})
			if err != nil {
				return describeStorageErr(diagnose(ctx, st, err), cfg)
			}
			if len(args) == 1 && args[0] != "LATEST" {
				i := slices.IndexFunc(list, func(m basebackup.Meta) bool { return m.Name == args[0] })
				if i < 0 {
					_, err := basebackup.ReadMeta(ctx, st, args[0]) // says why
					if errors.Is(err, basebackup.ErrNoBackup) && walg.IsName(args[0]) {
						_, err = walg.ReadMeta(ctx, st, args[0])
					}
					if err == nil {
						err = fmt.Errorf("backup %s: %w in the repository (see tusk backup-list)", args[0], basebackup.ErrNoBackup)
					}
					return describeStorageErr(diagnose(ctx, st, err), cfg)
				}
				ms = list[i : i+1]
			} else {
				for _, r := range unreadable {
					bad++
					if !asJSON {
						printVerify(root.stdout, r)
					}
					results = append(results, r)
				}
				if len(list) == 0 && len(unreadable) == 0 {
					return fmt.Errorf("repository %s holds no backups to verify", cfg.Repo)
				}
				ms = list
				if !all && len(list) > 0 {
					ms = list[len(list)-1:]
				}
			}
			line := newProgressLine(root.stderr)
			// The parts of each backup are read once, also when several
			// incremental backups need it.
			partsOf := map[string][]basebackup.Problem{}
			verifyParts := func(m basebackup.Meta, what string) ([]basebackup.Problem, error) {
				if p, ok := partsOf[m.Name]; ok {
					return p, nil
				}
				verifyBackup := basebackup.Verify
				if walg.IsWALG(m) {
					verifyBackup = walg.Verify
				}
				problems, err := verifyBackup(ctx, m, basebackup.VerifyOptions{
					Store: st, Concurrency: cfg.DownloadConcurrency, Deep: deep,
					Progress: func(done, total int64) {
						line.show("verify %s: %s of %s", what, bytesString(done), bytesString(total))
					},
				})
				if err != nil {
					return nil, err
				}
				partsOf[m.Name] = problems
				return problems, nil
			}
			for _, m := range ms {
				start := time.Now()
				problems, err := verifyParts(m, m.Name)
				if err != nil {
					line.done()
					return describeStorageErr(fmt.Errorf("verify backup %s: %w", m.Name, err), cfg)
				}
				r := verifyResult{Backup: m.Name, Kind: m.Kind(), Parent: m.Parent, Parts: len(m.Parts), DataSize: m.DataSize, StoredSize: m.StoredSize,
					WALFirst: m.StartWAL, WALLast: m.EndWAL, Deep: deep, Problems: problems}
				if m.Incremental() {
					r.Problems = append(r.Problems, verify.ChainProblems(m, list, why)...)
					chain, _ := basebackup.Chain(list, m.Name)
					r.Chain = []string{}
					for _, parent := range chain {
						r.Chain = append(r.Chain, parent.Name)
						pp, err := verifyParts(parent, parent.Name+" (in the chain of "+m.Name+")")
						if err != nil {
							line.done()
							return describeStorageErr(fmt.Errorf("verify backup %s, in the chain of %s: %w", parent.Name, m.Name, err), cfg)
						}
						if len(pp) > 0 {
							r.Problems = append(r.Problems, basebackup.Problem{Object: basebackup.MetaKey(parent.Name),
								Error: fmt.Sprintf("backup %s, which backup %s needs to restore, is damaged (%d problem(s), listed here)", parent.Name, m.Name, len(pp))})
							r.Problems = append(r.Problems, pp...)
						}
					}
				}
				// Restoring needs the backup's own WAL, not that of its chain.
				walProblems, n, err := verifyWAL(c, st, m, cfg.DownloadConcurrency, line)
				if err != nil {
					line.done()
					return describeStorageErr(fmt.Errorf("verify the WAL of backup %s: %w", m.Name, err), cfg)
				}
				r.WALSegments = n
				r.Problems = append(r.Problems, walProblems...)
				if r.Problems == nil {
					r.Problems = []basebackup.Problem{}
				}
				r.OK = len(r.Problems) == 0
				r.Seconds = time.Since(start).Seconds()
				line.done()
				if !r.OK {
					bad++
				}
				log.Info("backup verified", "backup", m.Name, "ok", r.OK, "problems", len(r.Problems), "duration", time.Since(start))
				if !asJSON {
					printVerify(root.stdout, r)
				}
				results = append(results, r)
			}
			if asJSON {
				if err := writeJSON(root.stdout, results); err != nil {
					return err
				}
			}
			if bad > 0 {
				return &ExitError{Code: 1, Err: fmt.Errorf("%d of %d backup(s) failed verification; see the problems listed above", bad, len(results))}
			}
			return nil
		},
	}
	c.Flags().BoolVar(&all, "all", false, "verify every backup, oldest first")
	c.Flags().BoolVar(&deep, "deep", false, "also check every file's size and CRC32C against PostgreSQL's backup manifest")
	c.Flags().BoolVar(&asJSON, "json", false, "print the results as a JSON array")
	return c
}

// verifyWAL checks that every WAL segment from m's start to its end is in
// the archive and intact, concurrency at a time, and returns a problem per
// missing or corrupt one.
func verifyWAL(c *cobra.Command, st storage.Storage, m basebackup.Meta, concurrency int, line *progressLine) ([]basebackup.Problem, int, error) {
	names, err := verify.BackupWAL(c.Context(), st, m)
	if err != nil {
		return []basebackup.Problem{{Object: basebackup.MetaKey(m.Name), Error: err.Error()}}, 0, nil
	}
	a := &archive.Archive{Store: st}
	var mu sync.Mutex
	var problems []basebackup.Problem
	var done atomic.Int64
	g, ctx := errgroup.WithContext(c.Context())
	g.SetLimit(max(concurrency, 1))
	for _, name := range names {
		g.Go(func() error {
			n, _ := wal.ParseName(name)
			_, err := a.Check(ctx, name, io.Discard)
			line.show("verify %s: WAL %d of %d segments", m.Name, done.Add(1), len(names))
			var p *basebackup.Problem
			switch {
			case err == nil:
			case errors.Is(err, storage.ErrNotFound):
				p = &basebackup.Problem{Object: n.Key(),
					Error: fmt.Sprintf("WAL segment %s, which backup %s needs, is not in the archive", name, m.Name)}
			case errors.Is(err, archive.ErrCorrupt):
				p = &basebackup.Problem{Object: n.Key(), Error: strings.TrimPrefix(err.Error(), n.Key()+": ")}
			default:
				return err
			}
			if p != nil {
				mu.Lock()
				problems = append(problems, *p)
				mu.Unlock()
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, 0, err
	}
	slices.SortFunc(problems, func(x, y basebackup.Problem) int { return strings.Compare(x.Object, y.Object) })
	return problems, len(names), nil
}

func printVerify(w io.Writer, r verifyResult) {
	if r.OK {
		what := "parts and checksums"
		if r.Deep {
			what += ", every file against the backup manifest"
		}
		if len(r.Chain) > 0 {
			what += fmt.Sprintf(", its chain of %d backup(s) (%s) present and sound", len(r.Chain), strings.Join(r.Chain, ", "))
		}
		fmt.Fprintf(w, "backup %s: ok — %d parts (%s of data, %s stored), %s, WAL %s to %s (%d segments), in %.1fs\n",
			r.Backup, r.Parts, bytesString(r.DataSize), bytesString(r.StoredSize), what, r.WALFirst, r.WALLast, r.WALSegments, r.Seconds)
		return
	}
	fmt.Fprintf(w, "backup %s: FAILED, %d problem(s):\n", r.Backup, len(r.Problems))
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  %s: %s\n", p.Object, p.Error)
	}
}
