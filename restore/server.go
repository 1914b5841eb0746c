package restore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tusk-backup/tusk/basebackup"
)

// ServerOptions say how to run PostgreSQL on the restored directory.
type ServerOptions struct {
	Port      int    // 0: a free one
	SocketDir string // "": a new temporary folder
	PGBin     string // folder with pg_ctl; "": /usr/lib/postgresql/MAJOR/bin, else PATH
	// Isolated runs the server for a drill: it archives nothing, starts no
	// logical replication workers (they would consume the production
	// publisher's slots), and lets local users in by a pg_hba.conf of its
	// own (local trust: it listens only on its private socket folder), even
	// if the backup's configuration points hba_file elsewhere.
	Isolated bool
}

// Server is PostgreSQL running (or once run) on a restored directory.
type Server struct {
	bin       string // folder with pg_ctl
	uid, gid  int
	owner     string
	Port      int
	SocketDir string
	LogFile   string
	// CreatedSocketDir: the restore made SocketDir (and gave it to the owner).
	CreatedSocketDir bool
	dest             string
	extraOptions     string // more server options ("-c archive_mode=off")
}

// Outcome is where recovery stopped, as PostgreSQL's log says.
type Outcome struct {
	State        string // Promoted, Paused, ShutDown or Failed
	StopLSN      string
	StopReason   string
	LastXactTime string
	Timeline     string // the new timeline, after a promotion
	Segments     int    // WAL segments restored from the archive
	Replay       time.Duration
	Port         int
	SocketDir    string
	LogFile      string
}

// newServer settles everything recovery needs before anything is restored,
// so that a missing program or user fails before the download.
func newServer(o ServerOptions, owner string, m basebackup.Meta, dest string) (*Server, error) {
	r := &Server{dest: dest, Port: o.Port, SocketDir: o.SocketDir}
	major := m.PGVersion / 10000
	r.bin = o.PGBin
	if r.bin == "" {
		r.bin = fmt.Sprintf("/usr/lib/postgresql/%d/bin", major)
		if _, err := os.Stat(filepath.Join(r.bin, "pg_ctl")); err != nil {
			p, err := exec.LookPath("pg_ctl")
			if err != nil {
				return nil, fmt.Errorf("--recover needs PostgreSQL %d's programs: none in /usr/lib/postgresql/%d/bin or on PATH; install them or give --pg-bin", major, major)
			}
			r.bin = filepath.Dir(p)
		}
	}
	if _, err := os.Stat(filepath.Join(r.bin, "pg_ctl")); err != nil {
		return nil, fmt.Errorf("--pg-bin %s has no pg_ctl", r.bin)
	}
	if major > 0 {
		// A pg_ctl on PATH may be another version's, which would start its
		// own postgres on the restored files and fail in the server log.
		out, err := exec.Command(filepath.Join(r.bin, "pg_ctl"), "--version").Output()
		if err != nil {
			return nil, fmt.Errorf("run %s --version: %v", filepath.Join(r.bin, "pg_ctl"), err)
		}
		if got, ok := programMajor(string(out)); !ok || got != major {
			return nil, fmt.Errorf("--recover needs PostgreSQL %d's programs, and %s is %s; install them or give --pg-bin",
				major, filepath.Join(r.bin, "pg_ctl"), strings.TrimSpace(string(out)))
		}
	}
	own, err := resolveOwner(owner, dest, true)
	if err != nil {
		return nil, err
	}
	if own == nil { // not root: the server runs as we do
		u, err := user.Current()
		if err != nil {
			return nil, err
		}
		own = &fileOwner{name: u.Username, uid: os.Geteuid(), gid: os.Getegid()}
		if owner != "" && owner != u.Username {
			return nil, fmt.Errorf("--recover must run as root or as %s, who is to own %s", owner, dest)
		}
	}
	r.owner, r.uid, r.gid = own.name, own.uid, own.gid
	if r.Port == 0 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		r.Port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	if o.Isolated {
		r.extraOptions = "-c archive_mode=off -c max_logical_replication_workers=0 -c hba_file=" +
			ShellQuote(filepath.Join(dest, "pg_hba.conf")) + " -c ident_file=" + ShellQuote(filepath.Join(dest, "pg_ident.conf"))
	}
	return r, nil
}

var reProgramVersion = regexp.MustCompile(`\(PostgreSQL\) (\d+)`)

// programMajor reads the major version from a PostgreSQL program's
// --version output ("pg_ctl (PostgreSQL) 15.18", "... 18beta1").
func programMajor(out string) (int, bool) {
	m := reProgramVersion.FindStringSubmatch(out)
	if m == nil {
		return 0, false
	}
	v, err := strconv.Atoi(m[1])
	return v, err == nil
}

// prepare adds the configuration files a data directory from a
// Debian-style cluster lacks, and the socket folder.
func (r *Server) prepare(dest string) error {
	for _, f := range []string{"postgresql.conf", "pg_hba.conf", "pg_ident.conf"} {
		p := filepath.Join(dest, f)
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			content := "# written by tusk backup-fetch: the backed-up cluster kept its configuration outside its data directory\n"
			if f == "pg_hba.conf" {
				content += "local all all peer\n"
			}
			if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
				return err
			}
			if os.Geteuid() == 0 {
				if err := os.Lchown(p, r.uid, r.gid); err != nil {
					return err
				}
			}
		}
	}
	if r.SocketDir == "" {
		d, err := os.MkdirTemp("", "tusk-recover-")
		if err != nil {
			return err
		}
		r.SocketDir, r.CreatedSocketDir = d, true
		if os.Geteuid() == 0 {
			if err := os.Lchown(d, r.uid, r.gid); err != nil {
				return err
			}
		}
	}
	r.LogFile = filepath.Join(r.SocketDir, "postgresql.log")
	return nil
}

// fileOwner is the user a restored data directory is given to.
type fileOwner struct {
	name     string
	uid, gid int
}

// resolveOwner picks who owns a restore when tusk runs as root: flag
// (--owner), else the owner of DEST (or of its parent) when that is not
// root, else postgres. It returns nil when tusk does not run as root (files
// are then the caller's), or, unless required, when no such user exists.
func resolveOwner(flag, dest string, required bool) (*fileOwner, error) {
	if os.Geteuid() != 0 && flag == "" {
		return nil, nil
	}
	name := flag
	if name == "" {
		probe := dest
		if _, err := os.Stat(probe); err != nil {
			probe = filepath.Dir(dest)
		}
		if fi, err := os.Stat(probe); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 {
				if u, err := user.LookupId(strconv.Itoa(int(st.Uid))); err == nil {
					name = u.Username
				}
			}
		}
	}
	if name == "" {
		name = "postgres"
	}
	u, err := user.Lookup(name)
	if err != nil {
		if flag == "" && !required {
			return nil, nil
		}
		return nil, fmt.Errorf("user %s, to own the restored data directory, does not exist; give --owner", name)
	}
	o := &fileOwner{name: name}
	o.uid, _ = strconv.Atoi(u.Uid)
	o.gid, _ = strconv.Atoi(u.Gid)
	if o.uid == 0 && required {
		return nil, errors.New("PostgreSQL cannot run as root: give --owner with the user that should own the restored cluster")
	}
	if os.Geteuid() != 0 {
		if o.uid != os.Geteuid() {
			return nil, fmt.Errorf("only root can give the restored files to %s (--owner)", name)
		}
		return nil, nil
	}
	return o, nil
}

// giveTree gives the restored data directory and its tablespaces to o.
func giveTree(o *fileOwner, dest string, m basebackup.Meta) error {
	dirs := []string{dest}
	for _, s := range m.Tablespaces {
		if s.OID != "" {
			if target, err := os.Readlink(filepath.Join(dest, "pg_tblspc", s.OID)); err == nil {
				dirs = append(dirs, target)
			}
		}
	}
	for _, d := range dirs {
		err := filepath.WalkDir(d, func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, o.uid, o.gid)
		})
		if err != nil {
			return fmt.Errorf("give %s to %s: %w", d, o.name, err)
		}
	}
	return nil
}

func (r *Server) command(ctx context.Context, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, filepath.Join(r.bin, "pg_ctl"), args...)
	c.Dir = r.dest
	if os.Geteuid() == 0 {
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(r.uid), Gid: uint32(r.gid)}}
	}
	return c
}

// Stop stops the server (pg_ctl stop -m fast) if it runs.
func (r *Server) Stop(ctx context.Context) error {
	if !r.Running() {
		return nil
	}
	if out, err := r.command(ctx, "stop", "-D", r.dest, "-m", "fast").CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// recover starts PostgreSQL on the restored directory and follows its log
// until recovery has reached its end: promoted, paused or shut down.
func (r *Server) recover(ctx context.Context, t Target, progress func(Progress)) (*Outcome, error) {
	out := &Outcome{Port: r.Port, SocketDir: r.SocketDir, LogFile: r.LogFile}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses='' -c logging_collector=off -c log_destination=stderr -c log_line_prefix='%%m [%%p] '",
		r.Port, ShellQuote(r.SocketDir))
	if r.extraOptions != "" {
		opts += " " + r.extraOptions
	}
	start := time.Now()
	startCmd := r.command(ctx, "start", "-W", "-D", r.dest, "-l", r.LogFile, "-o", opts)
	if b, err := startCmd.CombinedOutput(); err != nil {
		return out, fmt.Errorf("start PostgreSQL on %s: %v: %s", r.dest, err, strings.TrimSpace(string(b)))
	}
	progress(Progress{Phase: Started, Server: r})
	var rep Replay
	defer func() { // what the log said, however the wait ends
		out.State, out.StopLSN, out.StopReason, out.LastXactTime, out.Timeline, out.Segments =
			rep.State, rep.StopLSN, rep.StopReason, rep.LastXactTime, rep.Timeline, rep.Segments
		out.Replay = time.Since(start)
	}()

	var f *os.File
	var rd *bufio.Reader
	var partial string
	seenAlive := false
	for {
		if err := ctx.Err(); err != nil {
			r.command(context.Background(), "stop", "-D", r.dest, "-m", "fast").Run()
			return out, err
		}
		if f == nil {
			if ff, err := os.Open(r.LogFile); err == nil {
				f, rd = ff, bufio.NewReader(ff)
				defer f.Close()
			}
		}
		progressed := false
		for rd != nil {
			s, err := rd.ReadString('\n')
			if err == io.EOF {
				partial += s
				break
			}
			if err != nil {
				return out, err
			}
			s, partial = partial+s, ""
			progressed = true
			if rep.Feed(strings.TrimRight(s, "\n")) {
				progress(Progress{Phase: Replaying, Segments: rep.Segments, LastSegment: rep.LastSegment, Elapsed: time.Since(start)})
			}
			if rep.Standby {
				r.command(context.Background(), "stop", "-D", r.dest, "-m", "fast").Run()
				return out, fmt.Errorf("PostgreSQL on %s entered standby mode, which never ends; it was stopped (is there a standby.signal?)", r.dest)
			}
		}
		alive := r.Running()
		seenAlive = seenAlive || alive
		// pg_ctl start -W returns before the postmaster writes its pid file.
		gone := !alive && (seenAlive || time.Since(start) > 10*time.Second)
		if rep.Reached() {
			return out, nil
		}
		if gone && !progressed && f != nil {
			// The server is gone and its log is read to the end.
			ok, reason := rep.Ended(t)
			if ok {
				return out, nil
			}
			rep.State = Failed
			return out, fmt.Errorf("recovery on %s did not reach %s: PostgreSQL says: %s (full log: %s)", r.dest, t.Describe(), reason, r.LogFile)
		}
		if gone && f == nil {
			return out, fmt.Errorf("PostgreSQL did not start on %s (no log at %s)", r.dest, r.LogFile)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Running reports whether the restored server's postmaster is alive.
func (r *Server) Running() bool {
	b, err := os.ReadFile(filepath.Join(r.dest, "postmaster.pid"))
	if err != nil {
		return false
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return false
	}
	return syscall.Kill(pid, 0) == nil
}

// ShellQuote quotes s for a POSIX shell, leaving plain words as they are.
func ShellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-:=") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
