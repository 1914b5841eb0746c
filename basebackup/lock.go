package basebackup

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrBusy is returned when another tusk backup-push is backing up the same
// server.
var ErrBusy = errors.New("another tusk backup-push is already backing up this server; wait for it to finish, or stop it")

// lockKey is the session advisory lock a backup-push holds on its server for
// as long as its connection lives (ASCII "tusk", then 1 for backups). The
// server releases it when the connection ends, however the process ends.
const lockKey = "1953723243, 1"

// Lock takes tusk's backup lock on conn's server, or returns ErrBusy if
// another connection holds it. Two backups of one server at once would only
// compete for its disks and its archive; and with a shared checkpoint they
// start at the same LSN, in the same second, under the same name.
func Lock(ctx context.Context, conn *pgconn.PgConn) error {
	rows, err := simpleQuery(ctx, conn, "SELECT pg_try_advisory_lock("+lockKey+")")
	if err != nil {
		return fmt.Errorf("take the backup lock: %w", err)
	}
	if len(rows) != 1 || len(rows[0]) != 1 {
		return errors.New("take the backup lock: unexpected answer")
	}
	if rows[0][0] != "t" {
		return ErrBusy
	}
	return nil
}
