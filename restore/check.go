package restore

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Check is one query run on a restored server, which must return a row.
type Check struct {
	SQL    string
	OK     bool
	Result string // the first row's columns, joined by ", "
	Error  string
}

// Checks is what a drill's queries found.
type Checks struct {
	Checks    []Check
	Relations int64 // the count of pg_class rows
}

// Check connects to the server over its socket, as postgres or as the data
// directory's owner, in database, and runs SELECT 1, a count of relations,
// and then sqls. An error means no connection could be made; a query that
// fails is a Check that is not OK.
func (r *Server) Check(ctx context.Context, database string, sqls []string) (Checks, error) {
	var out Checks
	users := superusers(r.dest)
	var conn *pgconn.PgConn
	var err error
	for _, u := range users {
		var cfg *pgconn.Config
		if cfg, err = pgconn.ParseConfig(""); err != nil {
			break
		}
		cfg.Host, cfg.Port, cfg.Database, cfg.User = r.SocketDir, uint16(r.Port), database, u
		cfg.DialFunc = (&net.Dialer{Timeout: 10 * time.Second}).DialContext
		if conn, err = pgconn.ConnectConfig(ctx, cfg); err == nil {
			break
		}
	}
	if err != nil {
		return out, fmt.Errorf("connect to the restored server as %s: %v", strings.Join(users, " or "), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	queries := append([]string{"SELECT 1", "SELECT count(*) FROM pg_class"}, sqls...)
	for i, q := range queries {
		ch := Check{SQL: q}
		res, err := conn.Exec(ctx, q).ReadAll()
		switch {
		case err != nil:
			ch.Error = err.Error()
		case len(res) == 0 || len(res[len(res)-1].Rows) == 0:
			ch.Error = "returned no rows"
		default:
			row := res[len(res)-1].Rows[0]
			var vals []string
			for _, v := range row {
				vals = append(vals, string(v))
			}
			ch.OK, ch.Result = true, strings.Join(vals, ", ")
			if i == 1 {
				out.Relations, _ = strconv.ParseInt(ch.Result, 10, 64)
			}
		}
		out.Checks = append(out.Checks, ch)
	}
	return out, nil
}

// superusers are the role names to try for the checks: postgres, and the
// data directory's owner (initdb names the superuser after the user who ran it).
func superusers(dest string) []string {
	users := []string{"postgres"}
	if fi, err := os.Stat(dest); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			if u, err := user.LookupId(strconv.Itoa(int(st.Uid))); err == nil && u.Username != "postgres" {
				users = append(users, u.Username)
			}
		}
	}
	return users
}
