package testenv

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// DefaultVersion is the PostgreSQL major version a test server runs when
// PostgresOptions.Version is 0: Debian's PostgreSQL 15, whose client programs
// (psql, pgbench, pg_basebackup, pg_verifybackup) every test uses, whatever
// its server's version.
const DefaultVersion = 15

// MatrixVersions are the other major versions scripts/install-test-deps.sh
// installs (server programs only), for tests that run on each.
var MatrixVersions = []int{14, 16, 17, 18}

// VersionBinaries returns the folder of PostgreSQL major version v's server
// programs (initdb, pg_ctl, postgres) and whether they are there and report
// that version. For DefaultVersion it is PostgresAvailable's folder; for the
// others ${XDG_CACHE_HOME:-$HOME/.cache}/tusk/pg/<v>/bin, where
// scripts/install-test-deps.sh installs them.
func VersionBinaries(v int) (dir string, ok bool) {
	if v == 0 || v == DefaultVersion {
		dir, ok := PostgresAvailable()
		return dir, ok && (v == 0 || majorVersion(dir) == v)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", false
	}
	dir = filepath.Join(cache, "tusk", "pg", strconv.Itoa(v), "bin")
	return dir, hasPrograms(dir, "initdb", "pg_ctl", "postgres") && majorVersion(dir) == v
}

// reachableBinaries returns dir (a bin folder with its lib and share folders
// beside it), or, when the server runs as another user who cannot reach dir
// (root's cache in a 0700 home), a copy of its installation that the user
// can reach: hard links where possible, made once per test process under
// $TMPDIR/tusk-test-pg and removed by a later test process, as BuildTusk's
// builds are.
func reachableBinaries(o owner, dir string) (string, error) {
	if !o.switchUser || othersCanTraverse(dir) {
		return dir, nil
	}
	linkedMu.Lock()
	defer linkedMu.Unlock()
	if d, ok := linked[dir]; ok {
		return d, nil
	}
	parent := filepath.Join(sharedTempRoot(), "tusk-test-pg")
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	removeStaleBuilds(parent)
	top, err := os.MkdirTemp(parent, strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(top, 0o755); err != nil {
		return "", err
	}
	install := filepath.Dir(dir)
	dest := filepath.Join(top, filepath.Base(install))
	if err := linkTree(install, dest); err != nil {
		return "", fmt.Errorf("make %s reachable for user %s: %w", install, o.name, err)
	}
	linked[dir] = filepath.Join(dest, filepath.Base(dir))
	return linked[dir], nil
}

var (
	linkedMu sync.Mutex
	linked   = map[string]string{} // bin folder -> its reachable copy
)

// linkTree recreates the tree at src under dest (folders 0755, symlinks as
// they are, files hard-linked, or copied with their mode when src is on
// another file system).
func linkTree(src, dest string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dest, rel)
		switch {
		case d.IsDir():
			if err := os.Mkdir(to, 0o755); err != nil {
				return err
			}
			return os.Chmod(to, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case d.Type().IsRegular():
			if os.Link(path, to) == nil {
				return nil
			}
			return copyFile(path, to)
		}
		return nil // sockets and the like: not part of an installation
	})
}

func copyFile(src, dest string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dest, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dest, fi.Mode().Perm()) // whatever the umask

}
