// Package basebackup takes base backups over PostgreSQL's replication
// protocol (Push) or by reading the data directory on the database host
// (PushLocal) into a repository, and restores them.
//
// A backup is a set of part objects and one metadata object. backup-push
// streams BASE_BACKUP's tar archives, cuts them at tar entry boundaries into
// parts of about PartSize bytes (a file larger than what is left of a part
// continues in the next part, as a piece with its offset in PAX records),
// and compresses and uploads the parts concurrently while the stream keeps
// flowing. The metadata object, written last, is what makes the backup
// exist; see Meta.
package basebackup

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tusk-backup/tusk/wal"
)

// System is what IDENTIFY_SYSTEM and a few settings say about the server.
type System struct {
	SystemID   string // decimal, as pg_controldata prints it
	Timeline   uint32
	Version    int // server_version_num, e.g. 150004
	SegSize    uint64
	InRecovery bool // a standby
}

// Identify asks a replication=database connection about the server.
func Identify(ctx context.Context, conn *pgconn.PgConn) (System, error) {
	var s System
	rows, err := simpleQuery(ctx, conn, "IDENTIFY_SYSTEM")
	if err != nil {
		return s, fmt.Errorf("IDENTIFY_SYSTEM: %w", err)
	}
	if len(rows) != 1 || len(rows[0]) < 2 {
		return s, errors.New("IDENTIFY_SYSTEM: unexpected answer")
	}
	s.SystemID = rows[0][0]
	tli, err := strconv.ParseUint(rows[0][1], 10, 32)
	if err != nil {
		return s, fmt.Errorf("IDENTIFY_SYSTEM: timeline %q: %w", rows[0][1], err)
	}
	s.Timeline = uint32(tli)
	rows, err = simpleQuery(ctx, conn, "SELECT current_setting('server_version_num'), "+
		"current_setting('wal_segment_size'), pg_is_in_recovery()")
	if err != nil {
		return s, fmt.Errorf("read server settings: %w", err)
	}
	if len(rows) != 1 || len(rows[0]) != 3 {
		return s, errors.New("read server settings: unexpected answer")
	}
	if s.Version, err = strconv.Atoi(rows[0][0]); err != nil {
		return s, fmt.Errorf("server_version_num %q: %w", rows[0][0], err)
	}
	if s.SegSize, err = wal.ParseSegSize(rows[0][1]); err != nil {
		return s, err
	}
	s.InRecovery = rows[0][2] == "t"
	return s, nil
}

// simpleQuery runs one query and returns its rows as text.
func simpleQuery(ctx context.Context, conn *pgconn.PgConn, sql string) ([][]string, error) {
	res, err := conn.Exec(ctx, sql).ReadAll()
	if err != nil {
		return nil, err
	}
	var out [][]string
	for _, r := range res {
		for _, row := range r.Rows {
			vals := make([]string, len(row))
			for i, v := range row {
				vals[i] = string(v)
			}
			out = append(out, vals)
		}
	}
	return out, nil
}

// Tablespace is one row of BASE_BACKUP's tablespace result set.
type Tablespace struct {
	OID      string `json:"oid"`      // "" for the data directory
	Location string `json:"location"` // "" for the data directory
	SizeKB   int64  `json:"size_kb"`
}

// MinVersion is the oldest server (server_version_num) Stream supports:
// PostgreSQL 14. 13 (out of support since November 2025) speaks 14's
// protocol but is not tested, so backup-push refuses it.
const MinVersion = 140000

// StreamOptions shape the BASE_BACKUP command.
type StreamOptions struct {
	// Version is the server's server_version_num (System.Version; 0 is
	// taken as 15 or later): before PostgreSQL 15 the command takes bare
	// keywords and the stream is untagged (receiveBackup).
	Version int
	Label   string
	Spread  bool // CHECKPOINT 'spread' instead of 'fast'
	// NoWait sends WAIT false: the server does not wait for the backup's
	// WAL to be archived, and the caller must (waitArchived).
	NoWait bool
	// Incremental asks for an incremental backup against the manifest sent
	// before with UploadManifest (PostgreSQL 17 and later).
	Incremental bool
}

// Handler receives a backup stream's events in order, in the caller's
// goroutine. Data's slice is valid only during the call.
type Handler interface {
	Begin(start wal.LSN, tli uint32, spaces []Tablespace) error
	Archive(name, location string) error // a new tar archive starts
	Data(p []byte) error                 // bytes of the current archive
	Manifest() error                     // the current archive ended; manifest bytes follow
	Progress(sent int64)                 // bytes the server has sent so far
}

// StreamResult is where the backup ended.
type StreamResult struct {
	Start, End       wal.LSN
	StartTLI, EndTLI uint32
}

// Stream runs BASE_BACKUP on a replication connection and feeds its events
// to h. On any error the connection is left mid-protocol: close it.
func Stream(ctx context.Context, conn *pgconn.PgConn, opts StreamOptions, h Handler) (StreamResult, error) {
	conn.Frontend().Send(&pgproto3.Query{String: baseBackupCommand(opts)})
	if err := conn.Frontend().Flush(); err != nil {
		return StreamResult{}, fmt.Errorf("send BASE_BACKUP: %w", err)
	}
	return receiveBackup(ctx, conn.ReceiveMessage, opts.legacy(), h)
}

// legacy reports whether the server predates PostgreSQL 15's BASE_BACKUP.
func (o StreamOptions) legacy() bool { return o.Version != 0 && o.Version < 150000 }

// baseBackupCommand is the BASE_BACKUP command for opts.Version: with
// PostgreSQL 15's parenthesized options, or 14's bare keywords (FAST for a
// fast checkpoint, NOWAIT for not waiting on archiving).
func baseBackupCommand(opts StreamOptions) string {
	label := strings.ReplaceAll(opts.Label, "'", "''")
	if opts.legacy() {
		var b strings.Builder
		fmt.Fprintf(&b, "BASE_BACKUP LABEL '%s' PROGRESS", label)
		if !opts.Spread {
			b.WriteString(" FAST")
		}
		if opts.NoWait {
			b.WriteString(" NOWAIT")
		}
		b.WriteString(" MANIFEST 'yes' MANIFEST_CHECKSUMS 'CRC32C'")
		return b.String()
	}
	checkpoint := "fast"
	if opts.Spread {
		checkpoint = "spread"
	}
	wait := "true"
	if opts.NoWait {
		wait = "false"
	}
	incremental := ""
	if opts.Incremental {
		incremental = ", INCREMENTAL"
	}
	return fmt.Sprintf("BASE_BACKUP (LABEL '%s', PROGRESS, CHECKPOINT '%s', MANIFEST 'yes', "+
		"MANIFEST_CHECKSUMS 'CRC32C', WAIT %s%s)", label, checkpoint, wait, incremental)
}

// UploadManifest sends a previous backup's manifest (PostgreSQL's JSON
// backup_manifest, read from r) on a replication connection, so that the
// next BASE_BACKUP with Incremental sends only what changed since that
// backup. The server checks the manifest (its system identifier, its WAL
// ranges) against its WAL summaries only when the backup starts.
func UploadManifest(ctx context.Context, conn *pgconn.PgConn, r io.Reader) error {
	if _, err := conn.CopyFrom(ctx, r, "UPLOAD_MANIFEST"); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			return &RefusedError{Err: pgErr}
		}
		return fmt.Errorf("UPLOAD_MANIFEST: %w", err)
	}
	return nil
}

// RefusedError is the server's refusal of a replication command before it
// sent any data: the connection is ready for the next command.
type RefusedError struct{ Err *pgconn.PgError }

func (e *RefusedError) Error() string { return "the server refused: " + e.Err.Message }
func (e *RefusedError) Unwrap() error { return e.Err }

// legacyProgressStep is how often, in bytes received, a PostgreSQL 14 stream
// (which sends no progress messages) reports progress.
const legacyProgressStep = 1 << 20

// receiveBackup reads BASE_BACKUP's answer from receive. PostgreSQL 15 and
// later send one COPY whose CopyData messages are tagged (handleCopyData).
// Before 15 (legacy) the server sends one COPY of plain tar bytes per
// tablespace, in the order of the tablespace rows, then one COPY holding the
// manifest, and no progress messages: the bytes received stand in for them.
func receiveBackup(ctx context.Context, receive func(context.Context) (pgproto3.BackendMessage, error), legacy bool, h Handler) (StreamResult, error) {
	var res StreamResult
	// Result sets: start position, tablespaces, (copy), end position.
	var (
		set      int
		rows     [][]string
		spaces   []Tablespace
		inCopy   bool
		started  bool
		manifest bool
		copies   int   // legacy: COPYs begun
		received int64 // legacy: bytes received
		reported int64 // legacy: received at the last progress report
	)
	for {
		msg, err := receive(ctx)
		if err != nil {
			return res, fmt.Errorf("receive base backup: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.RowDescription:
			rows = rows[:0]
		case *pgproto3.DataRow:
			vals := make([]string, len(m.Values))
			for i, v := range m.Values {
				vals[i] = string(v)
			}
			rows = append(rows, vals)
		case *pgproto3.CommandComplete:
			switch set {
			case 0:
				if len(rows) != 1 || len(rows[0]) < 2 {
					return res, errors.New("BASE_BACKUP: unexpected start position")
				}
				if res.Start, err = wal.ParseLSN(rows[0][0]); err != nil {
					return res, fmt.Errorf("BASE_BACKUP start: %w", err)
				}
				tli, err := strconv.ParseUint(rows[0][1], 10, 32)
				if err != nil {
					return res, fmt.Errorf("BASE_BACKUP start timeline %q: %w", rows[0][1], err)
				}
				res.StartTLI = uint32(tli)
			case 1:
				for _, r := range rows {
					if len(r) < 3 {
						return res, errors.New("BASE_BACKUP: unexpected tablespace row")
					}
					ts := Tablespace{OID: r[0], Location: r[1]}
					ts.SizeKB, _ = strconv.ParseInt(r[2], 10, 64)
					spaces = append(spaces, ts)
				}
			default:
				if len(rows) == 1 && len(rows[0]) >= 2 {
					if res.End, err = wal.ParseLSN(rows[0][0]); err != nil {
						return res, fmt.Errorf("BASE_BACKUP end: %w", err)
					}
					tli, err := strconv.ParseUint(rows[0][1], 10, 32)
					if err != nil {
						return res, fmt.Errorf("BASE_BACKUP end timeline %q: %w", rows[0][1], err)
					}
					res.EndTLI = uint32(tli)
				}
			}
			set++
			rows = rows[:0]
		case *pgproto3.CopyOutResponse:
			inCopy = true
			if !started {
				started = true
				if err := h.Begin(res.Start, res.StartTLI, spaces); err != nil {
					return res, err
				}
			}
			if !legacy {
				continue
			}
			copies++
			switch {
			case copies <= len(spaces):
				s := spaces[copies-1]
				name := "base.tar"
				if s.OID != "" {
					name = s.OID + ".tar"
				}
				if err := h.Archive(name, s.Location); err != nil {
					return res, err
				}
			case copies == len(spaces)+1 && !manifest:
				manifest = true
				if err := h.Manifest(); err != nil {
					return res, err
				}
			default:
				return res, fmt.Errorf("BASE_BACKUP: COPY %d, after %d tablespaces and the manifest", copies, len(spaces))
			}
		case *pgproto3.CopyData:
			if !inCopy || (!legacy && len(m.Data) == 0) {
				return res, errors.New("BASE_BACKUP: data outside COPY")
			}
			if !legacy {
				if err := handleCopyData(m.Data, h, &manifest); err != nil {
					return res, err
				}
				continue
			}
			if err := h.Data(m.Data); err != nil {
				return res, err
			}
			received += int64(len(m.Data))
			if received-reported >= legacyProgressStep {
				reported = received
				h.Progress(received)
			}
		case *pgproto3.CopyDone:
			inCopy = false
			if legacy && received != reported {
				reported = received
				h.Progress(received)
			}
			// The tablespace row set's CommandComplete came before COPY.
		case *pgproto3.ErrorResponse:
			pgErr := pgconn.ErrorResponseToPgError(m)
			if started {
				return res, pgErr
			}
			// Refused before any data: the server ends the command with
			// ReadyForQuery, and the connection can run another.
			for {
				msg, err := receive(ctx)
				if err != nil {
					return res, pgErr
				}
				if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
					return res, &RefusedError{Err: pgErr}
				}
			}
		case *pgproto3.NoticeResponse, *pgproto3.ParameterStatus:
		case *pgproto3.ReadyForQuery:
			if res.End == 0 {
				return res, errors.New("BASE_BACKUP ended without an end position")
			}
			return res, nil
		}
	}
}

func handleCopyData(d []byte, h Handler, manifest *bool) error {
	switch d[0] {
	case 'n':
		parts := strings.SplitN(string(d[1:]), "\x00", 3)
		if len(parts) < 2 {
			return errors.New("BASE_BACKUP: malformed new-archive message")
		}
		return h.Archive(parts[0], parts[1])
	case 'd':
		return h.Data(d[1:])
	case 'p':
		if len(d) >= 9 {
			h.Progress(int64(binary.BigEndian.Uint64(d[1:9])))
		}
		return nil
	case 'm':
		*manifest = true
		return h.Manifest()
	}
	return fmt.Errorf("BASE_BACKUP: unknown message type %q", d[0])
}

// Archiver is what the server says about its WAL archiving.
type Archiver struct {
	Mode           string // archive_mode: off, on, always
	LastArchived   string
	LastFailed     string
	LastFailedTime string
	Failing        bool // the last attempt failed
}

// ArchiverState reads archive_mode and pg_stat_archiver. BASE_BACKUP waits
// until the WAL the backup needs is archived, so a backup on a server whose
// archiving is off or failing would never be restorable or never end.
func ArchiverState(ctx context.Context, conn *pgconn.PgConn) (Archiver, error) {
	rows, err := simpleQuery(ctx, conn, "SELECT current_setting('archive_mode'), coalesce(last_archived_wal, ''), "+
		"coalesce(last_failed_wal, ''), coalesce(last_failed_time::text, ''), "+
		"coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false) FROM pg_stat_archiver")
	if err != nil {
		return Archiver{}, fmt.Errorf("read the archiver's state: %w", err)
	}
	if len(rows) != 1 || len(rows[0]) != 5 {
		return Archiver{}, errors.New("read the archiver's state: unexpected answer")
	}
	r := rows[0]
	return Archiver{Mode: r[0], LastArchived: r[1], LastFailed: r[2], LastFailedTime: r[3], Failing: r[4] == "t"}, nil
}

// CurrentWAL returns the segment the server is writing, or "" on a standby.
func CurrentWAL(ctx context.Context, conn *pgconn.PgConn) (string, error) {
	rows, err := simpleQuery(ctx, conn, "SELECT CASE WHEN pg_is_in_recovery() THEN '' ELSE pg_walfile_name(pg_current_wal_lsn()) END")
	if err != nil {
		return "", fmt.Errorf("read the server's current WAL segment: %w", err)
	}
	if len(rows) != 1 || len(rows[0]) != 1 {
		return "", errors.New("read the server's current WAL segment: unexpected answer")
	}
	return rows[0][0], nil
}

// Settings returns the named server settings (pg_settings.setting) and
// whether the server is a standby.
func Settings(ctx context.Context, conn *pgconn.PgConn, names ...string) (map[string]string, bool, error) {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = "'" + strings.ReplaceAll(n, "'", "''") + "'"
	}
	rows, err := simpleQuery(ctx, conn, "SELECT name, setting, pg_is_in_recovery()::text FROM pg_settings WHERE name IN ("+strings.Join(quoted, ", ")+")")
	if err != nil {
		return nil, false, fmt.Errorf("read the server's settings: %w", err)
	}
	out := map[string]string{}
	standby := false
	for _, r := range rows {
		if len(r) == 3 {
			out[r[0]] = r[1]
			standby = r[2] == "true"
		}
	}
	return out, standby, nil
}

// SwitchWAL closes the current WAL segment (pg_switch_wal) and returns the
// name of the segment that is now complete and due for archiving.
func SwitchWAL(ctx context.Context, conn *pgconn.PgConn) (string, error) {
	// txid_current() makes the transaction write a commit record, so there
	// is always something to switch away from.
	if _, err := simpleQuery(ctx, conn, "SELECT txid_current()"); err != nil {
		return "", fmt.Errorf("switch WAL segment: %w", err)
	}
	rows, err := simpleQuery(ctx, conn, "SELECT pg_walfile_name(pg_switch_wal())")
	if err != nil {
		return "", fmt.Errorf("switch WAL segment: %w", err)
	}
	if len(rows) != 1 || len(rows[0]) != 1 {
		return "", errors.New("switch WAL segment: unexpected answer")
	}
	return rows[0][0], nil
}
