package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// serverUserName is the account that runs PostgreSQL when the tests run as
// root, because initdb and postgres refuse to run as root.
const serverUserName = "postgres"

// owner is the account that owns a server's files and runs the server and its
// archive_command. When the tests do not run as root it is the current user
// and no switching happens.
type owner struct {
	switchUser bool
	name       string
	uid, gid   int
}

func serverOwner() (owner, error) {
	if os.Geteuid() != 0 {
		return owner{uid: os.Geteuid(), gid: os.Getegid()}, nil
	}
	u, err := user.Lookup(serverUserName)
	if err != nil {
		return owner{}, fmt.Errorf("look up user %s: %w", serverUserName, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return owner{}, fmt.Errorf("parse uid of %s: %w", serverUserName, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return owner{}, fmt.Errorf("parse gid of %s: %w", serverUserName, err)
	}
	return owner{switchUser: true, name: u.Username, uid: uid, gid: gid}, nil
}

// requireOwner returns the server owner, or skips or fails the test when the
// tests run as root and the postgres user does not exist.
func requireOwner(t testing.TB) owner {
	t.Helper()
	o, err := serverOwner()
	why := "tests run as root, and initdb refuses root, so the server runs as user postgres"
	if err != nil {
		why += ": " + err.Error()
	}
	Require(t, "postgres user", err == nil, why)
	return o
}

// apply makes cmd run as the owner.
func (o owner) apply(cmd *exec.Cmd) {
	if !o.switchUser {
		return
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Credential = &syscall.Credential{
		Uid:    uint32(o.uid),
		Gid:    uint32(o.gid),
		Groups: []uint32{},
	}
}

// chown gives path to the owner; a no-op when there is no user switching.
func (o owner) chown(path string) error {
	if !o.switchUser {
		return nil
	}
	if err := os.Lchown(path, o.uid, o.gid); err != nil {
		return fmt.Errorf("chown %s: %w", path, err)
	}
	return nil
}

// env returns the environment for a process run as the owner: ours without
// libpq's PG* variables (so that nothing from the developer's shell reaches a
// test server), and with HOME, USER and TMPDIR the owner can use when
// switching users. home is a directory the owner may write.
func (o owner) env(home string) []string {
	env := cleanEnv()
	if o.switchUser {
		env = append(env,
			"HOME="+home,
			"USER="+o.name,
			"LOGNAME="+o.name,
			"TMPDIR="+sharedTempRoot(),
		)
	}
	return env
}

// cleanEnv returns os.Environ() without libpq's PG* variables.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// sharedTempRoot returns the directory under which directories shared with
// the server user are made: os.TempDir(), or /tmp when running as root and
// other users cannot reach os.TempDir() (t.TempDir() is never usable: its
// parents are 0700).
func sharedTempRoot() string {
	dir := os.TempDir()
	if os.Geteuid() != 0 || othersCanTraverse(dir) {
		return dir
	}
	return "/tmp"
}

// othersCanTraverse reports whether every directory from / down to dir is
// searchable by other users.
func othersCanTraverse(dir string) bool {
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return false
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return false
	}
	for {
		fi, err := os.Stat(dir)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return true
		}
		dir = parent
	}
}

// ServerTempDir returns a new empty directory, mode 0755, owned by the user
// that runs PostgreSQL (postgres when the tests run as root, else the current
// user), so that archive_command and commands from Postgres.RunAsOwner can
// write into it: use it for a local backup repository, for example. Its
// parents are searchable by everyone. It is removed when the test and all its
// subtests finish. Directories that the test itself creates inside it (as
// root) are not writable by the server user.
func ServerTempDir(t testing.TB) string {
	t.Helper()
	o := requireOwner(t)
	return serverTempDir(t, o, "tusk-test-")
}

func serverTempDir(t testing.TB, o owner, pattern string) string {
	t.Helper()
	dir, err := os.MkdirTemp(sharedTempRoot(), pattern)
	if err != nil {
		t.Fatalf("make server directory: %v", err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove server directory: %v", err)
		}
	})
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("make server directory: %v", err)
	}
	if err := o.chown(dir); err != nil {
		t.Fatalf("make server directory: %v", err)
	}
	return dir
}

// mkdirOwned makes dir with mode perm, owned by o.
func mkdirOwned(o owner, dir string, perm os.FileMode) error {
	if err := os.Mkdir(dir, perm); err != nil {
		return err
	}
	if err := os.Chmod(dir, perm); err != nil {
		return err
	}
	return o.chown(dir)
}
