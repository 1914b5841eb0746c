package cmd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tusk-backup/tusk/config"
)

// connString builds a libpq connection string from the settings, or takes
// the one given with --pg-conn, and asks for a replication=database
// connection when replication is set.
func connString(pg config.PGSettings, override string, replication bool) string {
	var parts []string
	if override != "" {
		parts = append(parts, override)
	} else {
		add := func(k, v string) {
			if v != "" {
				parts = append(parts, k+"='"+strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v)+"'")
			}
		}
		add("host", pg.Host)
		add("port", pg.Port)
		add("user", pg.User)
		add("dbname", pg.Database)
		kw := pg.Keywords()
		for _, k := range slices.Sorted(maps.Keys(kw)) {
			add(k, kw[k])
		}
	}
	if replication {
		parts = append(parts, "replication=database")
	}
	return strings.Join(parts, " ")
}

// checkConnSettings parses the connection settings without connecting, so
// that malformed ones are refused before any work.
func checkConnSettings(pg config.PGSettings, override string) error {
	if _, err := pgconn.ParseConfig(connString(pg, override, false)); err != nil {
		return usagef(fmt.Errorf("PostgreSQL connection settings: %v", err))
	}
	return nil
}

// connect opens a connection to PostgreSQL and turns the usual failures into
// one sentence.
func connect(ctx context.Context, pg config.PGSettings, override string, replication bool) (*pgconn.PgConn, error) {
	cs := connString(pg, override, replication)
	cfg, err := pgconn.ParseConfig(cs)
	if err != nil {
		return nil, usagef(fmt.Errorf("PostgreSQL connection settings: %v", err))
	}
	if pg.Password != "" && override == "" {
		cfg.Password = pg.Password
	}
	// Read the socket through a large buffer: a base backup arrives as 32 kB
	// CopyData messages, which pgproto3 alone reads with two or more
	// syscalls each.
	cfg.BuildFrontend = func(r io.Reader, w io.Writer) *pgproto3.Frontend {
		return pgproto3.NewFrontend(bufio.NewReaderSize(r, 1<<20), w)
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		where := fmt.Sprintf("host=%s port=%d user=%s", cfg.Host, cfg.Port, cfg.User)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			return nil, fmt.Errorf("connect to PostgreSQL (%s): %s; check PGHOST, PGPORT and PGUSER (the user needs the REPLICATION attribute and a pg_hba.conf line for replication connections)", where, pgErr.Message)
		}
		return nil, fmt.Errorf("connect to PostgreSQL (%s): %v; check that the server is running and PGHOST and PGPORT point at it", where, errors.Unwrap(err))
	}
	return conn, nil
}
