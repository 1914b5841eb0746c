package cmd

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/config"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/wal"
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
			add := func(check, status, format string, a ...any) {
				f := finding{Check: check, Status: status, Detail: fmt.Sprintf(format, a...)}
				fs = append(fs, f)
				if !asJSON {
					fmt.Fprintf(root.stdout, "%-8s %-16s %s\n", strings.ToUpper(status), check, f.Detail)
				}
			}
			st, err := openStorage(ctx, cfg, log, forInteractive)
			if err == nil {
				err = probe(ctx, st)
			}
			var usable storage.Storage
			if err != nil {
				add("repository", "failed", "%v", describeStorageErr(err, cfg))
			} else {
				usable = st
				add("repository", "ok", "%s is reachable and writable (a probe object was written, read back and removed)", cfg.Repo)
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

// probe writes, reads back and deletes a small object.
func probe(ctx context.Context, st storage.Storage) error {
	b := make([]byte, 16)
	rand.Read(b)
	key := "check/probe-" + hex.EncodeToString(b[:8])
	if err := st.Put(ctx, key, bytes.NewReader(b)); err != nil {
		return fmt.Errorf("write a probe object: %w", err)
	}
	defer st.Delete(context.WithoutCancel(ctx), key)
	rc, err := st.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("read the probe object back: %w", err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return fmt.Errorf("read the probe object back: %w", err)
	}
	if !bytes.Equal(got, b) {
		return errors.New("the probe object read back differs from what was written")
	}
	if err := st.Delete(ctx, key); err != nil {
		return fmt.Errorf("delete the probe object: %w", err)
	}
	return nil
}

// checkServer checks the server's archiving settings and the way of one
// WAL segment into the archive (st nil: the repository is unusable).
func checkServer(ctx context.Context, cfg config.Config, pgConn string, st storage.Storage, timeout time.Duration, add func(check, status, format string, a ...any)) {
	conn, err := connect(ctx, cfg.PG, pgConn, false)
	if err != nil {
		add("server", "failed", "%v", err)
		return
	}
	defer conn.Close(context.WithoutCancel(ctx))
	set, standby, err := basebackup.Settings(ctx, conn, "wal_level", "archive_mode", "archive_command", "archive_library", "archive_timeout")
	if err != nil {
		add("server", "failed", "%v", err)
		return
	}
	ok := true
	fail := func(check, format string, a ...any) {
		ok = false
		add(check, "failed", format, a...)
	}
	switch set["wal_level"] {
	case "replica", "logical":
		add("wal_level", "ok", "%s", set["wal_level"])
	default:
		fail("wal_level", "is %q: set wal_level = replica in postgresql.conf and restart PostgreSQL", set["wal_level"])
	}
	switch mode := set["archive_mode"]; {
	case mode == "always", mode == "on" && !standby:
		add("archive_mode", "ok", "%s", mode)
	case mode == "on" && standby:
		fail("archive_mode", "is on, but this server is a standby, which archives only with archive_mode = always; set it (restart needed) or check the primary")
	default:
		fail("archive_mode", "is %q: set archive_mode = on in postgresql.conf and restart PostgreSQL", mode)
	}
	cmdline := set["archive_command"]
	switch {
	case cmdline == "(disabled)":
		// archive_mode is off, which is reported above; the server hides the command.
	case set["archive_library"] != "":
		fail("archive_command", "archive_library = %q takes precedence over archive_command; set archive_library = '' and archive_command = 'tusk wal-push %%p'", set["archive_library"])
	default:
		// Judged at once, so that another tool's command fails here
		// instead of after the WAL switch's wait.
		switch status, detail := judgeArchiveCommand(cmdline, identifyProgram); {
		case status == "failed":
			fail("archive_command", "%s", detail)
		case otherRepo(cmdline, cfg.Repo.URL) != "":
			fail("archive_command", "archives to %s, but this check is for %s; point both at the same repository", otherRepo(cmdline, cfg.Repo.URL), cfg.Repo.URL)
		default:
			add("archive_command", status, "%s", detail)
		}
	}
	if t := set["archive_timeout"]; t == "" || t == "0" {
		add("archive_timeout", "warning", "is 0: on a quiet server the last transactions may wait a long time for their segment to fill; set archive_timeout = 60 (seconds) to bound what a lost server can lose")
	} else {
		add("archive_timeout", "ok", "%s s", t)
	}
	if standby {
		add("wal switch", "warning", "not tried: a standby cannot switch WAL segments; run check against the primary")
		return
	}
	if st == nil || !ok {
		add("wal switch", "failed", "not tried until the failures above are fixed")
		return
	}
	seg, err := basebackup.SwitchWAL(ctx, conn)
	if err != nil {
		add("wal switch", "failed", "%v (the user needs the superuser attribute or EXECUTE on pg_switch_wal)", err)
		return
	}
	n, err := wal.ParseName(seg)
	if err != nil {
		add("wal switch", "failed", "the server named segment %q: %v", seg, err)
		return
	}
	start := time.Now()
	for {
		if _, err := st.Stat(ctx, n.Key()); err == nil {
			add("wal switch", "ok", "segment %s arrived in the archive %.1f s after the switch", seg, time.Since(start).Seconds())
			return
		} else if !errors.Is(err, storage.ErrNotFound) && !errors.Is(err, storage.ErrNoRepository) {
			// (A repository that is not there yet is made by the first
			// wal-push: a new set-up's switch is what creates it.)
			add("wal switch", "failed", "look for segment %s: %v", seg, err)
			return
		}
		if time.Since(start) > timeout {
			why := ""
			if a, err := basebackup.ArchiverState(ctx, conn); err == nil && a.Failing {
				why = fmt.Sprintf("; the archiver's last attempt failed on %s at %s (see the server log for archive_command's error)", a.LastFailed, a.LastFailedTime)
			}
			add("wal switch", "failed", "segment %s did not arrive in the archive within %s%s", seg, timeout, why)
			return
		}
		select {
		case <-ctx.Done():
			add("wal switch", "failed", "interrupted while waiting for segment %s", seg)
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// otherRepo returns the repository URL named in an archive_command when it
// differs from ours ("" when it names none or the same).
func otherRepo(cmdline, ours string) string {
	for _, f := range strings.Fields(strings.NewReplacer("'", " ", "\"", " ", "=", " ").Replace(cmdline)) {
		if strings.HasPrefix(f, "s3://") || strings.HasPrefix(f, "file://") {
			if strings.TrimSuffix(f, "/") != strings.TrimSuffix(ours, "/") {
				return f
			}
		}
	}
	return ""
}
