package basebackup

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tusk-backup/tusk/archive"
	"github.com/tusk-backup/tusk/storage"
)

// tusk asks BASE_BACKUP for WAIT false and waits for the backup's WAL
// itself. With WAIT true the server checks once whether the last segment
// is archived and then sleeps a whole second between checks (PostgreSQL
// 15's do_pg_backup_stop), and the archiver has always just been woken for
// that segment, so every backup spent about a second asleep. Waiting here
// also checks what a restore needs, every segment from the backup's start to
// its end in the repository backup-fetch's restore_command reads, instead of
// the server's archive_status files.

// archiveWait tunes waitArchived; tests shorten it.
type archiveWait struct {
	first, max  time.Duration // poll interval, growing from first to max
	serverEvery time.Duration // how often to ask pg_stat_archiver
	mismatch    time.Duration // archived by the server but not in the repository for this long: wrong repository
	warnEvery   time.Duration // how often to log that the wait goes on
}

var defaultArchiveWait = archiveWait{
	first: 20 * time.Millisecond, max: time.Second,
	serverEvery: 2 * time.Second, mismatch: 10 * time.Second, warnEvery: time.Minute,
}

// backupSegments lists the WAL segments a backup needs, start to end. A
// backup that crossed a timeline switch (a standby promoted during it)
// lists its first and last segment only.
func backupSegments(m Meta) ([]string, error) {
	segs, err := archive.SegmentRange(m.StartWAL, m.EndWAL, m.SegSize)
	if err == nil {
		return segs, nil
	}
	if m.StartTLI != m.EndTLI {
		return []string{m.StartWAL, m.EndWAL}, nil
	}
	return nil, err
}

// waitArchived returns once every WAL segment of m is in st, polling often
// at first. It keeps waiting while the server's archiving fails (a backup
// whose WAL never arrives cannot be restored, and a storage outage may
// pass), logging that it waits; it fails when the server says it archived a
// segment that the repository does not have, because then archive_command
// writes somewhere else and the wait would never end. waiting is told the
// segment waited for.
// server reads the server's archiver state (ArchiverState).
func waitArchived(ctx context.Context, server func(context.Context) (Archiver, error), st storage.Storage, m Meta, w archiveWait, log func(msg string, args ...any), waiting func(seg string)) error {
	segs, err := backupSegments(m)
	if err != nil {
		return err
	}
	start := time.Now()
	interval := w.first
	var lastServer, lastWarn, serverSaid time.Time
	for len(segs) > 0 {
		n, err := archive.ParseName(segs[0])
		if err != nil {
			return err
		}
		_, err = st.Stat(ctx, n.Key())
		switch {
		case err == nil:
			segs, serverSaid = segs[1:], time.Time{}
			continue
		case !errors.Is(err, storage.ErrNotFound):
			return fmt.Errorf("check that WAL segment %s is archived: %w", segs[0], err)
		}
		waiting(segs[0])
		now := time.Now()
		if now.Sub(lastServer) >= w.serverEvery {
			lastServer = now
			a, err := server(ctx)
			if err != nil {
				return err
			}
			if len(a.LastArchived) >= 24 && a.LastArchived[:24] >= segs[0] {
				if serverSaid.IsZero() {
					serverSaid = now
				}
			}
			if !serverSaid.IsZero() && now.Sub(serverSaid) >= w.mismatch {
				return fmt.Errorf("the server has archived WAL segment %s (pg_stat_archiver says %s) but the repository does not have it, so archive_command stores WAL somewhere else and this backup could not be restored from here: point archive_command at tusk wal-push with this repository (tusk check tells)", segs[0], a.LastArchived)
			}
			if now.Sub(start) >= w.warnEvery && now.Sub(lastWarn) >= w.warnEvery {
				lastWarn = now
				why := "the archiver has not reached it yet"
				if a.Failing {
					why = fmt.Sprintf("the server's WAL archiving is failing (last failure: %s at %s; see the server log)", a.LastFailed, a.LastFailedTime)
				}
				log("still waiting for the backup's WAL to be archived", "segment", segs[0], "waited", time.Since(start).Round(time.Second).String(), "why", why)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
		interval = min(interval*3/2, w.max)
	}
	return nil
}
