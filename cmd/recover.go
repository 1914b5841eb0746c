package cmd

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

// serverRun is how backup-fetch --recover runs PostgreSQL on the restored
// directory.
type serverRun struct {
	bin       string // folder with pg_ctl
	uid, gid  int
	owner     string
	port      int
	socketDir string
	logFile   string
	// createdSocketDir: tusk made socketDir (and gives it to the owner)
	createdSocketDir bool
	dest             string
	extraOptions     string // more server options ("-c archive_mode=off")
}

// recoveryOutcome is where recovery stopped, as PostgreSQL's log says.
type recoveryOutcome struct {
	State        string  `json:"state"` // promoted, paused, shut down
	StopLSN      string  `json:"stop_lsn,omitempty"`
	StopReason   string  `json:"stop_reason,omitempty"`
	LastXactTime string  `json:"last_transaction_time,omitempty"`
	Timeline     string  `json:"new_timeline,omitempty"`
	Segments     int     `json:"segments_restored"`
	ReplaySecs   float64 `json:"replay_seconds"`
	Port         int     `json:"port"`
	SocketDir    string  `json:"socket_dir"`
	LogFile      string  `json:"log_file"`
}

// prepareRecover settles everything --recover needs before anything is
// restored, so that a missing program or user fails before the download.
func prepareRecover(o *backupFetchOpts, m basebackup.Meta, dest string) (*serverRun, error) {
	r := &serverRun{dest: dest, port: o.port, socketDir: o.socketDir}
	major := m.PGVersion / 10000
	r.bin = o.pgBin
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
	own, err := resolveOwner(o.owner, dest, true)
	if err != nil {
		return nil, err
	}
	if own == nil { // not root: the server runs as we do
		u, err := user.Current()
		if err != nil {
			return nil, err
		}
		own = &restoreOwner{name: u.Username, uid: os.Geteuid(), gid: os.Getegid()}
		if o.owner != "" && o.owner != u.Username {
			return nil, fmt.Errorf("--recover must run as root or as %s, who is to own %s", o.owner, dest)
		}
	}
	r.owner, r.uid, r.gid = own.name, own.uid, own.gid
	if r.port == 0 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		r.port = l.Addr().(*net.TCPAddr).Port
		l.Close()
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
func (r *serverRun) prepare(dest string) error {
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
	if r.socketDir == "" {
		d, err := os.MkdirTemp("", "tusk-recover-")
		if err != nil {
			return err
		}
		r.socketDir, r.createdSocketDir = d, true
		if os.Geteuid() == 0 {
			if err := os.Lchown(d, r.uid, r.gid); err != nil {
				return err
			}
		}
	}
	r.logFile = filepath.Join(r.socketDir, "postgresql.log")
	return nil
}

// restoreOwner is the user a restored data directory is given to.
type restoreOwner struct {
	name     string
	uid, gid int
}

// resolveOwner picks who owns a restore when tusk runs as root: --owner,
// else the owner of DEST (or of its parent) when that is not root, else
// postgres. It returns nil when tusk does not run as root (files are then
// the caller's), or, unless required, when no such user exists.
func resolveOwner(flag, dest string, required bool) (*restoreOwner, error) {
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
	o := &restoreOwner{name: name}
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
func giveTree(o *restoreOwner, dest string, m basebackup.Meta) error {
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

func (r *serverRun) command(ctx context.Context, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, filepath.Join(r.bin, "pg_ctl"), args...)
	c.Dir = r.dest
	if os.Geteuid() == 0 {
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(r.uid), Gid: uint32(r.gid)}}
	}
	return c
}

var (
	reRestored  = regexp.MustCompile(`restored log file "([0-9A-F]{24})" from archive`)
	reStopping  = regexp.MustCompile(`LOG:  (recovery stopping .*)$`)
	reRedoDone  = regexp.MustCompile(`redo done at ([0-9A-F]+/[0-9A-F]+)`)
	reLastXact  = regexp.MustCompile(`last completed transaction was at log time (.*)$`)
	reTimeline  = regexp.MustCompile(`selected new timeline ID: (\d+)`)
	reFatal     = regexp.MustCompile(`(FATAL|PANIC):  (.*)$`)
	rePaused    = regexp.MustCompile(`pausing at the end of recovery|recovery has paused`)
	reReady     = regexp.MustCompile(`database system is ready to accept connections`)
	reShutdown  = regexp.MustCompile(`database system is shut down|shutdown at recovery target`)
	reConsisten = regexp.MustCompile(`consistent recovery state reached`)
)

// recover starts PostgreSQL on the restored directory and follows its log
// until recovery has reached its end: promoted, paused or shut down.
func (r *serverRun) recover(ctx context.Context, root *rootOpts, t basebackup.Target, verbose bool) (*recoveryOutcome, error) {
	out := &recoveryOutcome{Port: r.port, SocketDir: r.socketDir, LogFile: r.logFile}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses='' -c logging_collector=off -c log_destination=stderr -c log_line_prefix='%%m [%%p] '",
		r.port, shellQuote(r.socketDir))
	if r.extraOptions != "" {
		opts += " " + r.extraOptions
	}
	start := time.Now()
	startCmd := r.command(ctx, "start", "-W", "-D", r.dest, "-l", r.logFile, "-o", opts)
	if b, err := startCmd.CombinedOutput(); err != nil {
		return out, fmt.Errorf("start PostgreSQL on %s: %v: %s", r.dest, err, strings.TrimSpace(string(b)))
	}
	if verbose {
		fmt.Fprintf(root.stdout, "PostgreSQL started on %s (port %d, socket folder %s, log %s); replaying to %s\n",
			r.dest, r.port, r.socketDir, r.logFile, t.Describe())
	}
	line := newProgressLine(root.stderr)
	defer line.done()

	var f *os.File
	var rd *bufio.Reader
	var partial string
	var fatal string
	consistent, seenAlive := false, false
	for {
		if err := ctx.Err(); err != nil {
			r.command(context.Background(), "stop", "-D", r.dest, "-m", "fast").Run()
			return out, err
		}
		if f == nil {
			if ff, err := os.Open(r.logFile); err == nil {
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
			s = strings.TrimRight(s, "\n")
			progressed = true
			switch {
			case reRestored.MatchString(s):
				out.Segments++
				seg := reRestored.FindStringSubmatch(s)[1]
				el := time.Since(start)
				line.show("replaying: %d segments restored, last %s, %.1f segments/s", out.Segments, seg, float64(out.Segments)/el.Seconds())
			case reStopping.MatchString(s):
				out.StopReason = reStopping.FindStringSubmatch(s)[1]
			case reRedoDone.MatchString(s):
				out.StopLSN = reRedoDone.FindStringSubmatch(s)[1]
			case reLastXact.MatchString(s):
				out.LastXactTime = reLastXact.FindStringSubmatch(s)[1]
			case reTimeline.MatchString(s):
				out.Timeline = reTimeline.FindStringSubmatch(s)[1]
			case reConsisten.MatchString(s):
				consistent = true
			case strings.Contains(s, "entering standby mode"):
				r.command(context.Background(), "stop", "-D", r.dest, "-m", "fast").Run()
				return out, fmt.Errorf("PostgreSQL on %s entered standby mode, which never ends; it was stopped (is there a standby.signal?)", r.dest)
			case reFatal.MatchString(s) && fatal == "":
				msg := reFatal.FindStringSubmatch(s)[2]
				if !strings.Contains(msg, "the database system is starting up") && !strings.Contains(msg, "terminating connection") {
					fatal = msg
				}
			case rePaused.MatchString(s):
				out.State = "paused"
			case reReady.MatchString(s) && out.Timeline != "":
				out.State = "promoted"
			case reShutdown.MatchString(s):
				if out.State == "" {
					out.State = "shut down"
				}
			}
		}
		done := out.State == "paused" || out.State == "promoted"
		alive := r.running()
		seenAlive = seenAlive || alive
		// pg_ctl start -W returns before the postmaster writes its pid file.
		gone := !alive && (seenAlive || time.Since(start) > 10*time.Second)
		if gone && !progressed && f != nil {
			// The server is gone and its log is read to the end.
			if out.State == "shut down" && t.IsSet() && t.Action == "shutdown" && fatal == "" {
				done = true
			} else {
				reason := fatal
				if reason == "" {
					reason = "the server stopped"
				}
				out.State = "failed"
				out.ReplaySecs = time.Since(start).Seconds()
				return out, fmt.Errorf("recovery on %s did not reach %s: PostgreSQL says: %s (full log: %s)", r.dest, t.Describe(), reason, r.logFile)
			}
		}
		if done {
			break
		}
		if gone && f == nil {
			return out, fmt.Errorf("PostgreSQL did not start on %s (no log at %s)", r.dest, r.logFile)
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = consistent
	out.ReplaySecs = time.Since(start).Seconds()
	line.done()
	if verbose {
		fmt.Fprintf(root.stdout, "recovery stopped after %.1f s and %d segments from the archive", out.ReplaySecs, out.Segments)
		if out.StopLSN != "" {
			fmt.Fprintf(root.stdout, " at LSN %s", out.StopLSN)
		}
		if out.StopReason != "" {
			fmt.Fprintf(root.stdout, " (%s)", out.StopReason)
		}
		if out.LastXactTime != "" {
			fmt.Fprintf(root.stdout, "; last transaction at %s", out.LastXactTime)
		}
		fmt.Fprintln(root.stdout)
		switch out.State {
		case "promoted":
			fmt.Fprintf(root.stdout, "PostgreSQL is promoted to timeline %s and running on %s (port %d, socket folder %s); stop it with: pg_ctl -D %s stop\n",
				out.Timeline, r.dest, r.port, r.socketDir, r.dest)
		case "paused":
			fmt.Fprintf(root.stdout, "PostgreSQL is paused at the target on %s (port %d, socket folder %s): inspect it, then SELECT pg_wal_replay_resume() to promote, or stop it with: pg_ctl -D %s stop\n",
				r.dest, r.port, r.socketDir, r.dest)
		case "shut down":
			fmt.Fprintf(root.stdout, "PostgreSQL shut down at the target, as asked\n")
		}
	}
	return out, nil
}

// running reports whether the restored server's postmaster is alive.
func (r *serverRun) running() bool {
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
