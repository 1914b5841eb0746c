// Package check judges a set-up the way tusk check reports it: a
// repository that must be reachable and writable, a server whose archiving
// settings and archive_command must hand PostgreSQL tusk wal-push %p's exit
// status, and one WAL segment's way into the archive. cmd connects, prints
// and chooses the exit code.
package check

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

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/crypt"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/wal"
)

// Add receives one finding: the check's name, "ok", "warning" or
// "failed", and one sentence.
type Add func(check, status, format string, a ...any)

// ServerOptions are what Server needs besides the connection.
type ServerOptions struct {
	Repo      string        // the repository's URL, which archive_command must name if it names one
	Timeout   time.Duration // how long to wait for the switched segment
	IsWALPush func(args []string) bool
}

// Probe writes, reads back and deletes a small object, under check/.
func Probe(ctx context.Context, st storage.Storage) error {
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
	switch {
	case errors.Is(err, crypt.ErrNoIdentity):
		// An age-mode host that only writes cannot read it back: the
		// write is what it needs.
	case err != nil:
		return fmt.Errorf("read the probe object back: %w", err)
	case !bytes.Equal(got, b):
		return errors.New("the probe object read back differs from what was written")
	}
	if err := st.Delete(ctx, key); err != nil {
		return fmt.Errorf("delete the probe object: %w", err)
	}
	return nil
}

// Server checks the server's archiving settings and the way of one WAL
// segment into the archive of repo, whose storage is st (nil: the
// repository is unusable, so no segment is switched). Each finding reaches
// add as it is made; a check that fails says what to change.
func Server(ctx context.Context, conn *pgconn.PgConn, st storage.Storage, o ServerOptions, add Add) {
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
		switch status, detail := ArchiveCommand(cmdline, IdentifyProgram, o.IsWALPush); {
		case status == "failed":
			fail("archive_command", "%s", detail)
		case otherRepo(cmdline, o.Repo) != "":
			fail("archive_command", "archives to %s, but this check is for %s; point both at the same repository", otherRepo(cmdline, o.Repo), o.Repo)
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
		if time.Since(start) > o.Timeout {
			why := ""
			if a, err := basebackup.ArchiverState(ctx, conn); err == nil && a.Failing {
				why = fmt.Sprintf("; the archiver's last attempt failed on %s at %s (see the server log for archive_command's error)", a.LastFailed, a.LastFailedTime)
			}
			add("wal switch", "failed", "segment %s did not arrive in the archive within %s%s", seg, o.Timeout, why)
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
