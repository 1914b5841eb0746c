//go:build unix

package cmd

import (
	"os"
	"syscall"
)

// ownLike gives file the owner of dir, where this process may (as root):
// wal-restore run as root must leave pg_wal's files readable by the
// server's user, who runs pg_rewind and the server.
func ownLike(file, dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	return os.Lchown(file, int(st.Uid), int(st.Gid))
}
