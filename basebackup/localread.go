package basebackup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// What a local-mode backup leaves out, as PostgreSQL's BASE_BACKUP does
// (src/backend/backup/basebackup.c).

// excludeDirContents are folders of the data directory sent empty: their
// contents are rebuilt or meaningless on a restored server.
var excludeDirContents = []string{
	"pg_stat_tmp",  // PG_STAT_TMP_DIR (stats_temp_directory before 15)
	"pg_replslot",  // slots would hold back WAL on the restored server
	"pg_dynshmem",  // dynamic shared memory of the running server
	"pg_notify",    // LISTEN/NOTIFY queue, reset at start
	"pg_serial",    // serializable transactions' state, reset at start
	"pg_snapshots", // exported snapshots, reset at start
	"pg_subtrans",  // rebuilt at start
}

// excludeFiles are files left out wherever they are; prefix entries match
// any name starting with them.
var excludeFiles = []struct {
	name   string
	prefix bool
}{
	{"postgresql.auto.conf.tmp", false}, // ALTER SYSTEM's temporary file
	{"current_logfiles.tmp", false},
	{"pg_internal.init", true}, // relation cache, rebuilt at start
	{"backup_label", false},    // an old exclusive backup's; ours comes from pg_backup_stop
	{"tablespace_map", false},
	{"backup_label.old", false},
	{"backup_manifest", false}, // the manifest of the backup this server was restored from
	{"postmaster.pid", false},
	{"postmaster.opts", false},
}

// tempPrefix is PG_TEMP_FILE_PREFIX: temporary files and folders
// (pgsql_tmp) are never sent.
const tempPrefix = "pgsql_tmp"

// excludedName reports whether an entry named name (in any folder) is left
// out: temporary files and folders and excludeFiles.
func excludedName(name string) bool {
	if strings.HasPrefix(name, tempPrefix) {
		return true
	}
	for _, e := range excludeFiles {
		if name == e.name || e.prefix && strings.HasPrefix(name, e.name) {
			return true
		}
	}
	return false
}

// contentsExcluded reports whether the data directory's folder rel (a
// slash path relative to it) is sent without its contents. pg_wal is sent
// with its archive_status (and, from 17, summaries) folders only: the
// backup's WAL comes from the archive.
func contentsExcluded(rel string) bool {
	return rel == "pg_wal" || slices.Contains(excludeDirContents, rel)
}

// relFile is a relation file name: <relfilenode>[_fork][.segment].
type relFile struct {
	node string
	fork string // "", "fsm", "vm" or "init"
	seg  uint32
}

// parseRelFile parses a relation file name as PostgreSQL's
// parse_filename_for_nontemp_relation; ok is false for anything else
// (including temporary relations, t<backend>_<node>).
func parseRelFile(name string) (relFile, bool) {
	var r relFile
	i := 0
	for i < len(name) && name[i] >= '0' && name[i] <= '9' {
		i++
	}
	if i == 0 || i > 10 {
		return r, false
	}
	r.node, name = name[:i], name[i:]
	if rest, ok := strings.CutPrefix(name, "_"); ok {
		j := strings.IndexByte(rest, '.')
		if j < 0 {
			j = len(rest)
		}
		switch rest[:j] {
		case "fsm", "vm", "init":
			r.fork = rest[:j]
		default:
			return r, false
		}
		name = rest[j:]
	}
	if rest, ok := strings.CutPrefix(name, "."); ok {
		n, err := strconv.ParseUint(rest, 10, 32)
		if err != nil || rest == "" || rest[0] < '0' || rest[0] > '9' || n == 0 {
			return r, false
		}
		r.seg = uint32(n)
		name = ""
	}
	return r, name == ""
}

// tempRelFile reports whether name is a temporary relation's file
// (looks_like_temp_rel_name: t<digits>_<digits>[_fork][.segment]).
func tempRelFile(name string) bool {
	rest, ok := strings.CutPrefix(name, "t")
	if !ok {
		return false
	}
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	if i == 0 || i >= len(rest) || rest[i] != '_' {
		return false
	}
	_, ok = parseRelFile(rest[i+1:])
	return ok
}

// dbDirSkips returns the names in a database folder (base/<oid>, or
// <tablespace>/PG_*/<oid>) that a backup leaves out: temporary relations,
// and every fork but the init fork of an unlogged relation (one with an
// _init fork), which a restored server resets from that init fork.
func dbDirSkips(names []string) map[string]bool {
	unlogged := map[string]bool{}
	for _, n := range names {
		if r, ok := parseRelFile(n); ok && r.fork == "init" {
			unlogged[r.node] = true
		}
	}
	skip := map[string]bool{}
	for _, n := range names {
		if tempRelFile(n) {
			skip[n] = true
			continue
		}
		if r, ok := parseRelFile(n); ok && r.fork != "init" && unlogged[r.node] {
			skip[n] = true
		}
	}
	return skip
}

// localEntry is one entry of a local backup's archive.
type localEntry struct {
	name  string // tar name, relative to the archive's root
	abs   string // where it is on disk
	kind  byte   // tar.TypeDir, tar.TypeReg or tar.TypeSymlink
	link  string // a symlink's target
	size  int64  // at listing; the read takes the size at open
	mode  fs.FileMode
	mtime time.Time
	uid   int
	gid   int
	// checked: a relation file whose pages have checksums; block is the
	// relation block number of its first page.
	checked bool
	block   uint32
}

// listing is what listTree found.
type listing struct {
	entries []localEntry
	spaces  map[string]string // pg_tblspc link name (the OID) to its target, for the base archive
}

// listTree lists the entries of one archive: the data directory (base,
// true) or a tablespace's version folder (root is the tablespace's
// location, versionDir its PG_<major>_<catversion> folder). Entries that
// vanish while it lists are left out, as BASE_BACKUP leaves them. The
// listing is in walk order; global/pg_control is left out of the data
// directory's (the backup copies it last).
func listTree(root string, base bool, versionDir string, pgVersion int) (listing, error) {
	l := listing{spaces: map[string]string{}}
	var walk func(abs, rel string, dbDir bool) error
	walk = func(abs, rel string, dbDir bool) error {
		des, err := os.ReadDir(abs)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", abs, err)
		}
		names := make([]string, len(des))
		for i, de := range des {
			names[i] = de.Name()
		}
		var skip map[string]bool
		if dbDir {
			skip = dbDirSkips(names)
		}
		for _, name := range names {
			if excludedName(name) || skip[name] {
				continue
			}
			childRel := path.Join(rel, name)
			if rel == "" {
				childRel = name
			}
			if base && childRel == "global/pg_control" {
				continue
			}
			childAbs := filepath.Join(abs, name)
			fi, err := os.Lstat(childAbs)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return fmt.Errorf("stat %s: %w", childAbs, err)
			}
			e := localEntry{name: childRel, abs: childAbs, mode: fi.Mode().Perm(), mtime: fi.ModTime()}
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				e.uid, e.gid = int(st.Uid), int(st.Gid)
			}
			isDir := fi.IsDir()
			if fi.Mode()&fs.ModeSymlink != 0 {
				target, err := os.Readlink(childAbs)
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				if err != nil {
					return fmt.Errorf("read link %s: %w", childAbs, err)
				}
				// pg_wal may be a link to another file system: it is sent
				// as a folder, as BASE_BACKUP sends it.
				if base && childRel == "pg_wal" {
					isDir = true
				} else {
					if base && rel == "pg_tblspc" {
						l.spaces[name] = target
					}
					e.kind, e.link = '2', target
					l.entries = append(l.entries, e)
					continue
				}
			}
			switch {
			case isDir:
				e.kind = '5'
				l.entries = append(l.entries, e)
				if base && contentsExcluded(childRel) {
					if childRel == "pg_wal" {
						l.entries = append(l.entries, localEntry{name: "pg_wal/archive_status", kind: '5', mode: 0o700, mtime: fi.ModTime(), uid: e.uid, gid: e.gid})
						if pgVersion >= 170000 {
							l.entries = append(l.entries, localEntry{name: "pg_wal/summaries", kind: '5', mode: 0o700, mtime: fi.ModTime(), uid: e.uid, gid: e.gid})
						}
					}
					continue
				}
				db := false
				if base {
					db = rel == "base"
				} else {
					db = rel == versionDir
				}
				if err := walk(childAbs, childRel, db); err != nil {
					return err
				}
			case fi.Mode().IsRegular():
				e.kind = '0'
				e.size = fi.Size()
				inRelDir := dbDir || base && rel == "global"
				if r, ok := parseRelFile(name); ok && inRelDir {
					e.checked = true
					e.block = r.seg * relSegBlocks
				}
				l.entries = append(l.entries, e)
			default:
				// Sockets, pipes, devices: BASE_BACKUP skips them with a warning.
			}
		}
		return nil
	}
	if base {
		return l, walk(root, "", false)
	}
	fi, err := os.Stat(filepath.Join(root, versionDir))
	if err != nil {
		return l, fmt.Errorf("tablespace %s: %w", root, err)
	}
	l.entries = append(l.entries, localEntry{name: versionDir, abs: filepath.Join(root, versionDir), kind: '5', mode: fi.Mode().Perm(), mtime: fi.ModTime()})
	return l, walk(filepath.Join(root, versionDir), versionDir, false)
}

// versionDirOf finds the tablespace version folder of PostgreSQL major
// version major in a tablespace's location: PG_<major>_<catversion>.
func versionDirOf(location string, major int) (string, error) {
	des, err := os.ReadDir(location)
	if err != nil {
		return "", fmt.Errorf("tablespace %s: %w", location, err)
	}
	prefix := fmt.Sprintf("PG_%d_", major)
	for _, de := range des {
		if strings.HasPrefix(de.Name(), prefix) && de.IsDir() {
			return de.Name(), nil
		}
	}
	return "", fmt.Errorf("tablespace %s holds no %s* folder of this server's version", location, prefix)
}
