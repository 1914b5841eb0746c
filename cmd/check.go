package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tusk-backup/tusk/check"
	"github.com/tusk-backup/tusk/config"
	"github.com/tusk-backup/tusk/crypt"
	"github.com/tusk-backup/tusk/storage"
)

// finding is one line of tusk check.
type finding struct {
	Check  string `json:"check"`
	Status string `json:"status"` // "ok", "warning" or "failed"
	Detail string `json:"detail"`
}

func newCheckCmd(root *rootOpts) *cobra.Command {
	var asJSON, noServer bool
	var pgConn string
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "check",
		Short: "Check the set-up: the repository, the server's archiving settings, and a WAL segment's way into the archive",
		Long: `check is for first-time set-up and for monitoring. It checks that the
repository is reachable and writable (a probe object is written, read back and
removed); that the server (PG* settings or --pg-conn) has wal_level replica or
logical, archive_mode on (or always on a standby), an archive_command that
calls tusk wal-push %p for this repository (read as the shell would: another
tool's command, or one whose exit status is not tusk's, fails at once), and an
archive_timeout; then it forces a WAL switch and waits until that segment arrives in the archive. Each
finding is one line saying what to change; the exit code is 1 on any failure
(warnings do not fail). --no-server checks the repository only.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkCheckFlags(timeout, noServer, c.Flags().Changed("pg-conn"), c.Flags().Changed("timeout")); err != nil {
				return err
			}
			cfg, log, err := root.load(c)
			if err != nil {
				return err
			}
			if pgConn != "" {
				if err := checkConnSettings(cfg.PG, pgConn); err != nil {
					return err
				}
			}
			ctx := c.Context()
			var fs []finding
			add := func(name, status, format string, a ...any) {
				f := finding{Check: name, Status: status, Detail: fmt.Sprintf(format, a...)}
				fs = append(fs, f)
				if !asJSON {
					fmt.Fprintf(root.stdout, "%-8s %-16s %s\n", strings.ToUpper(status), name, f.Detail)
				}
			}
			st, err := openStorage(ctx, cfg, log, forInteractive)
			if err == nil {
				err = check.Probe(ctx, st)
			}
			var usable storage.Storage
			if err != nil {
				add("repository", "failed", "%v", describeStorageErr(err, cfg))
			} else {
				usable = st
				add("repository", "ok", "%s is reachable and writable (a probe object was written, read back and removed)", cfg.Repo)
				if cs, ok := storage.As[*crypt.Store](st); ok {
					switch {
					case cs.Kind() == storage.EncryptionSecretstream:
						add("encryption", "ok", "objects are encrypted before they leave this host (libsodium secretstream), with key id %s; %d key(s) given to read", cs.WriteIDs()[0], len(cs.KeyIDs()))
					case !cs.CanRead():
						add("encryption", "ok", "objects are encrypted before they leave this host, to %d age recipient(s); this host has no identity, so it cannot read them back (restores need TUSK_AGE_IDENTITY_FILE)", len(cs.WriteIDs()))
					default:
						add("encryption", "ok", "objects are encrypted before they leave this host, to %d age recipient(s); this host holds %d identity(ies) to read them", len(cs.WriteIDs()), len(cs.KeyIDs())-len(cs.WriteIDs()))
					}
				} else {
					add("encryption", "ok", "objects are stored as they are, unencrypted by tusk (TUSK_ENCRYPTION_KEY_FILE turns client-side encryption on, for a new repository)")
				}
			}
			if !noServer {
				checkServer(ctx, cfg, pgConn, usable, timeout, add)
			}
			if asJSON {
				if err := writeJSON(root.stdout, fs); err != nil {
					return err
				}
			}
			failed := 0
			for _, f := range fs {
				if f.Status == "failed" {
					failed++
				}
			}
			if failed > 0 {
				return &ExitError{Code: 1, Err: fmt.Errorf("%d check(s) failed; each line above says what to change", failed)}
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the findings as JSON")
	c.Flags().BoolVar(&noServer, "no-server", false, "check the repository only")
	c.Flags().StringVar(&pgConn, "pg-conn", "", "libpq connection string (instead of PGHOST, PGPORT, PGUSER, PGDATABASE)")
	c.Flags().DurationVar(&timeout, "timeout", time.Minute, "how long to wait for the switched WAL segment to arrive in the archive")
	return c
}

// checkCheckFlags refuses a --timeout that leaves no time to wait, and
// server flags with --no-server.
func checkCheckFlags(timeout time.Duration, noServer, pgConnSet, timeoutSet bool) error {
	switch {
	case noServer && pgConnSet:
		return usagef(errors.New("--pg-conn names a server, and --no-server skips the server's checks: drop one of them"))
	case noServer && timeoutSet:
		return usagef(errors.New("--timeout is the wait for the WAL switch, which --no-server skips: drop one of them"))
	case timeout <= 0:
		return usagef(fmt.Errorf("--timeout %s leaves no time for the switched segment to arrive: give a duration such as 1m", timeout))
	}
	return nil
}

// checkServer connects and runs the server's checks.
func checkServer(ctx context.Context, cfg config.Config, pgConn string, st storage.Storage, timeout time.Duration, add check.Add) {
	conn, err := connect(ctx, cfg.PG, pgConn, false)
	if err != nil {
		add("server", "failed", "%v", err)
		return
	}
	defer conn.Close(context.WithoutCancel(ctx))
	check.Server(ctx, conn, st, check.ServerOptions{Repo: cfg.Repo.URL, Timeout: timeout, IsWALPush: isWALPushP}, add)
}

// isWALPushP reports whether args, tusk's arguments, are wal-push %p with
// any global or wal-push flags, as tusk itself would parse them.
func isWALPushP(args []string) bool {
	root := newRootCmd(&rootOpts{stdout: io.Discard, stderr: io.Discard})
	sub, rest, err := root.Find(args)
	if err != nil || sub.Name() != "wal-push" || sub.Parent() != root {
		return false
	}
	if err := sub.ParseFlags(rest); err != nil {
		return false
	}
	a := sub.Flags().Args()
	// The archiver runs archive_command in the data directory, so
	// pg_wal/%f is %p too.
	return len(a) == 1 && (a[0] == "%p" || a[0] == "pg_wal/%f")
}
