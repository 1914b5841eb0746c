package basebackup

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// ServerDataDir checks that dataDir (whose system identifier the caller has
// matched with the server's) is the data directory of the server conn is
// connected to, running on this host: the server's data_directory is that
// folder, and the folder's postmaster.pid was written by a postmaster that
// started when the server did. A copy of the data directory (a standby of
// the same cluster on this host) or a server elsewhere fails with the
// reason.
func ServerDataDir(ctx context.Context, conn *pgconn.PgConn, dataDir string) error {
	rows, err := simpleQuery(ctx, conn, "SELECT current_setting('data_directory'), extract(epoch from pg_postmaster_start_time())")
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			return fmt.Errorf("the server does not say where its data directory is (%s)", pgErr.Message)
		}
		return fmt.Errorf("ask the server where its data directory is: %w", err)
	}
	if len(rows) != 1 || len(rows[0]) != 2 {
		return errors.New("ask the server where its data directory is: unexpected answer")
	}
	if !sameDir(rows[0][0], dataDir) {
		return fmt.Errorf("the server's data directory is %s, not %s", rows[0][0], dataDir)
	}
	started, err := strconv.ParseFloat(rows[0][1], 64)
	if err != nil {
		return fmt.Errorf("the server's start time %q: %w", rows[0][1], err)
	}
	pid, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return fmt.Errorf("no running server's postmaster.pid in %s: %w", dataDir, err)
	}
	lines := strings.Split(string(pid), "\n")
	if len(lines) < 3 {
		return fmt.Errorf("%s/postmaster.pid is not a running server's", dataDir)
	}
	at, err := strconv.ParseInt(strings.TrimSpace(lines[2]), 10, 64)
	if err != nil || math.Abs(float64(at)-started) > 2 || !sameDir(strings.TrimSpace(lines[1]), dataDir) {
		return fmt.Errorf("%s/postmaster.pid is another server's than the one tusk connected to (a server of a copy of this data directory on another host?)", dataDir)
	}
	return nil
}

func sameDir(a, b string) bool {
	if ra, err := filepath.EvalSymlinks(a); err == nil {
		a = ra
	}
	if rb, err := filepath.EvalSymlinks(b); err == nil {
		b = rb
	}
	return filepath.Clean(a) == filepath.Clean(b)
}

// ChooseMode decides how backup-push reads the data: want is the setting
// ("auto", "local" or "remote"), dataDir the PGDATA given ("" for none),
// local the verdict of ServerDataDir on it (nil: it is the server's, on this
// host), native whether the backup is to be an incremental the server can
// take itself (PostgreSQL 17+), which auto leaves to remote mode: local mode
// takes incrementals too, by page LSN, and is auto's choice for them on
// older servers. It returns the mode and, for auto, why remote was chosen;
// local asked for where it cannot run is an error.
func ChooseMode(want, dataDir string, local error, native bool) (mode, why string, err error) {
	switch want {
	case ModeRemote:
		return ModeRemote, "", nil
	case ModeLocal:
		switch {
		case dataDir == "":
			return "", "", errors.New("--mode local reads the data directory's files, so it needs the data directory: give PGDATA (the argument or TUSK_PGDATA)")
		case local != nil:
			return "", "", fmt.Errorf("--mode local needs the server's own data directory on this host: %w", local)
		}
		return ModeLocal, "", nil
	}
	switch {
	case dataDir == "":
		return ModeRemote, "no PGDATA given", nil
	case local != nil:
		return ModeRemote, local.Error(), nil
	case native:
		return ModeRemote, "an incremental backup of PostgreSQL 17 or later is taken over the replication protocol, from the server's WAL summaries", nil
	}
	return ModeLocal, "", nil
}
