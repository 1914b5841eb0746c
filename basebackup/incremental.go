package basebackup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// Incremental backups (PostgreSQL 17+): a spike's hooks, for the lead to
// fold into StreamOptions (an Incremental field) and Push.

// MinIncrementalVersion is the first server (server_version_num) that takes
// UPLOAD_MANIFEST and BASE_BACKUP ( INCREMENTAL ).
const MinIncrementalVersion = 170000

// UploadManifest sends the parent backup's manifest on a replication
// connection (UPLOAD_MANIFEST), so that the next BASE_BACKUP on the same
// connection can be incremental from it. The server answers the command
// with CopyInResponse; pgconn's CopyFrom sends the manifest as CopyData
// messages and CopyDone, then reads CommandComplete and ReadyForQuery. The
// server parses the manifest when CopyDone arrives, so a manifest it cannot
// use (version 1, another system identifier) fails here.
func UploadManifest(ctx context.Context, conn *pgconn.PgConn, manifest io.Reader) error {
	if _, err := conn.CopyFrom(ctx, manifest, "UPLOAD_MANIFEST"); err != nil {
		return fmt.Errorf("UPLOAD_MANIFEST: %w", err)
	}
	return nil
}

// StreamIncremental is Stream for BASE_BACKUP ( INCREMENTAL, ... ), after
// UploadManifest on the same connection. Files the server sends
// incrementally arrive as INCREMENTAL.<name> entries (see package
// incremental).
func StreamIncremental(ctx context.Context, conn *pgconn.PgConn, opts StreamOptions, h Handler) (StreamResult, error) {
	if opts.legacy() {
		return StreamResult{}, errors.New("incremental backups need PostgreSQL 17 or later")
	}
	cmd := strings.Replace(baseBackupCommand(opts), "BASE_BACKUP (", "BASE_BACKUP (INCREMENTAL, ", 1)
	conn.Frontend().Send(&pgproto3.Query{String: cmd})
	if err := conn.Frontend().Flush(); err != nil {
		return StreamResult{}, fmt.Errorf("send BASE_BACKUP: %w", err)
	}
	return receiveBackup(ctx, conn.ReceiveMessage, false, h)
}
