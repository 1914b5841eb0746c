package basebackup

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrBusy is returned (wrapped, with who holds the lock) when another tusk
// backup-push is backing up the same server.
var ErrBusy = errors.New("another tusk backup-push is already backing up this server")

// lockKey is the session advisory lock a backup-push holds on its server for
// as long as its connection lives (ASCII "tusk", then 1 for backups). The
// server releases it when the connection ends, however the process ends.
const (
	lockClass = 1953723243
	lockObj   = 1
)

// lockPoll is how often Lock asks again while it waits.
const lockPoll = 200 * time.Millisecond

// Lock takes tusk's backup lock on conn's server. While another connection
// holds it, Lock asks again for up to wait: the server process of a
// backup-push that was just killed holds it until it notices its client is
// gone. After that it returns ErrBusy, naming the server process that holds
// the lock. Two backups of one server at once would only compete for its
// disks and its archive, and could start at the same LSN under one name.
func Lock(ctx context.Context, conn *pgconn.PgConn, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		rows, err := simpleQuery(ctx, conn, fmt.Sprintf("SELECT pg_try_advisory_lock(%d, %d)", lockClass, lockObj))
		if err != nil {
			return fmt.Errorf("take the backup lock: %w", err)
		}
		if len(rows) != 1 || len(rows[0]) != 1 {
			return errors.New("take the backup lock: unexpected answer")
		}
		if rows[0][0] == "t" {
			// An advisory lock belongs to one database: a run connected to
			// another database of the server holds its own. Only one may
			// go on, so a run that sees another lets go and waits.
			others, err := simpleQuery(ctx, conn, fmt.Sprintf("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "+
				"AND classid = %d AND objid = %d AND objsubid = 2 AND granted AND pid <> pg_backend_pid()", lockClass, lockObj))
			if err != nil || len(others) != 1 || len(others[0]) != 1 {
				return fmt.Errorf("take the backup lock: look for other holders: %v", err)
			}
			if others[0][0] == "0" {
				return nil
			}
			if _, err := simpleQuery(ctx, conn, fmt.Sprintf("SELECT pg_advisory_unlock(%d, %d)", lockClass, lockObj)); err != nil {
				return fmt.Errorf("release the backup lock: %w", err)
			}
		}
		if time.Now().After(deadline) {
			return busy(ctx, conn)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(lockPoll + time.Duration(rand.Int64N(int64(lockPoll)))): // apart from a run that let go at the same moment
		}
	}
}

// busy describes the holder of the lock in ErrBusy's sentence.
func busy(ctx context.Context, conn *pgconn.PgConn) error {
	rows, err := simpleQuery(ctx, conn, fmt.Sprintf("SELECT l.pid, coalesce(a.client_addr::text, 'local'), "+
		"coalesce(to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS UTC'), '') "+
		"FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid "+
		"WHERE l.locktype = 'advisory' AND l.classid = %d AND l.objid = %d AND l.granted LIMIT 1", lockClass, lockObj))
	if err != nil || len(rows) != 1 || len(rows[0]) != 3 {
		return fmt.Errorf("%w; wait for it to finish, or stop it", ErrBusy)
	}
	r := rows[0]
	return fmt.Errorf("%w (server process %s, connected from %s since %s); wait for it to finish, or end it with SELECT pg_terminate_backend(%s)",
		ErrBusy, r[0], r[1], r[2], r[0])
}
