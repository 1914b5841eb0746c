package basebackup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tusk-backup/tusk/archive"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/wal"
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

// waitArchived returns once every WAL file backup m needs (wal.BackupWAL,
// the list verify checks and a restore reads) is in st, polling often at
// first. For a backup that ended on a later timeline it first waits for
// that timeline's history file and reads it, to know which timeline each
// segment comes from. It keeps waiting while the server's archiving fails
// (a backup whose WAL never arrives cannot be restored, and a storage
// outage may pass), logging that it waits; it fails when the server says it
// archived a segment that the repository does not have, because then
// archive_command writes somewhere else and the wait would never end.
// waiting is told the file waited for.
// server reads the server's archiver state (ArchiverState).
func waitArchived(ctx context.Context, server func(context.Context) (Archiver, error), st storage.Storage, m Meta, w archiveWait, log func(msg string, args ...any), waiting func(seg string)) error {
	p := &archivePoll{server: server, st: st, w: w, log: log, waiting: waiting, start: time.Now(), interval: w.first}
	segs, err := wal.BackupWAL(m.StartWAL, m.EndWAL, m.SegSize, func(tli uint32) (wal.Ancestry, error) {
		if err := p.wait(ctx, []string{wal.HistoryFile(tli)}); err != nil {
			return nil, err
		}
		return (&archive.Archive{Store: st, Log: slog.New(slog.DiscardHandler)}).History(ctx, tli)
	})
	if err != nil {
		return err
	}
	return p.wait(ctx, segs)
}

// archivePoll is one waitArchived's state across the files it waits for.
type archivePoll struct {
	server               func(context.Context) (Archiver, error)
	st                   storage.Storage
	w                    archiveWait
	log                  func(msg string, args ...any)
	waiting              func(seg string)
	start                time.Time
	interval             time.Duration
	lastServer, lastWarn time.Time
}

// wait returns once every one of files is in the repository.
func (p *archivePoll) wait(ctx context.Context, files []string) error {
	var serverSaid time.Time
	for len(files) > 0 {
		n, err := wal.ParseName(files[0])
		if err != nil {
			return err
		}
		_, err = archive.Stat(ctx, p.st, n) // tusk's layout, or else wal-g's
		switch {
		case err == nil:
			files, serverSaid = files[1:], time.Time{}
			continue
		case !errors.Is(err, storage.ErrNotFound):
			return fmt.Errorf("check that WAL segment %s is archived: %w", files[0], err)
		}
		p.waiting(files[0])
		now := time.Now()
		if now.Sub(p.lastServer) >= p.w.serverEvery {
			p.lastServer = now
			a, err := p.server(ctx)
			if err != nil {
				return err
			}
			// WAL file names sort in archiving order: a server that has
			// archived a later segment has archived this file.
			if len(a.LastArchived) >= 24 && a.LastArchived[:24] >= files[0] {
				if serverSaid.IsZero() {
					serverSaid = now
				}
			}
			if !serverSaid.IsZero() && now.Sub(serverSaid) >= p.w.mismatch {
				return fmt.Errorf("the server has archived WAL segment %s (pg_stat_archiver says %s) but the repository does not have it, so archive_command stores WAL somewhere else and this backup could not be restored from here: point archive_command at tusk wal-push with this repository (tusk check tells)", files[0], a.LastArchived)
			}
			if now.Sub(p.start) >= p.w.warnEvery && now.Sub(p.lastWarn) >= p.w.warnEvery {
				p.lastWarn = now
				why := "the archiver has not reached it yet"
				if a.Failing {
					why = fmt.Sprintf("the server's WAL archiving is failing (last failure: %s at %s; see the server log)", a.LastFailed, a.LastFailedTime)
				}
				p.log("still waiting for the backup's WAL to be archived", "segment", files[0], "waited", time.Since(p.start).Round(time.Second).String(), "why", why)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(p.interval):
		}
		p.interval = min(p.interval*3/2, p.w.max)
	}
	return nil
}
