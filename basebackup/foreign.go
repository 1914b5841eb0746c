package basebackup

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// ForeignDest is the destination of a restore of a backup stored in another
// tool's layout (package walg reads wal-g's): the caller writes the files,
// and the folder gets what a restore of tusk's own backups gets (see
// durable.go): the checks that it is empty, the unfinished marker, a
// pg_control held under another name until the end, and the durable seal.
type ForeignDest struct {
	d *restoreDest
	w *fileWriter
}

// OpenForeignDest checks and makes dest and the folders of m's tablespaces
// (mapped by opts.TablespaceMap), as a restore of m begins.
func OpenForeignDest(m Meta, dest string, opts FetchOptions) (*ForeignDest, error) {
	d, err := prepareDest(m, dest, opts)
	if err != nil {
		return nil, err
	}
	return &ForeignDest{d: d, w: &fileWriter{early: !opts.NoSync, direct: restoreDirect}}, nil
}

// Dest is the data directory.
func (f *ForeignDest) Dest() string { return f.d.dest }

// Tablespaces maps each tablespace's OID to the folder it is restored into.
func (f *ForeignDest) Tablespaces() map[string]string { return f.d.spaces }

// Path is where the file or folder rel of the data directory (slash
// separated, such as base/5/1259, or pg_tblspc/16384/PG_15_202209061/5/16390
// for a tablespace's) is written: a tablespace's files into its folder,
// never through its link, and global/pg_control under its held name. A
// name that would leave the folders is ErrCorrupt.
func (f *ForeignDest) Path(rel string) (string, error) {
	bad := rel == "" || path.IsAbs(rel)
	for _, elem := range strings.Split(rel, "/") {
		bad = bad || elem == ".."
	}
	if bad {
		return "", fmt.Errorf("%w: entry %q would be written outside the restore folder", ErrCorrupt, rel)
	}
	clean := path.Clean(rel)
	if clean == "." {
		return f.d.dest, nil
	}
	return f.d.composedPath(clean)
}

// LinkTablespaces makes pg_tblspc and in it each tablespace's link to its
// restored folder.
func (f *ForeignDest) LinkTablespaces() error {
	if len(f.d.spaces) == 0 {
		return nil
	}
	dir := filepath.Join(f.d.dest, "pg_tblspc")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return destError(f.d.dest, err)
	}
	for oid, to := range f.d.spaces {
		if err := os.Symlink(to, filepath.Join(dir, oid)); err != nil {
			return destError(f.d.dest, err)
		}
	}
	return nil
}

// WriteFile writes a regular file's data r, as tar entry hdr describes it,
// at target (from Path), replacing what a parent of the backup wrote there:
// through the same writer as tusk's own restores (large writes, writeback
// started as it goes, the modification time kept).
func (f *ForeignDest) WriteFile(target string, hdr *tar.Header, r io.Reader) error {
	if err := os.Remove(target); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return destError(f.d.dest, err)
	}
	return f.w.writeEntry(f.d.dest, target, hdr, r)
}

// WriteError is err, of writing into the restore's folders, as the
// DestError a restore reports.
func (f *ForeignDest) WriteError(err error) error { return destError(f.d.dest, err) }

// Finish ends a restore whose files are all written, as one of tusk's own
// backups ends (checks, opts.BeforeSeal, durable writes, pg_control last).
func (f *ForeignDest) Finish(m Meta, opts FetchOptions) error { return f.d.finish(m, opts) }

// Cleanup removes what a failed restore wrote; err nil leaves all.
func (f *ForeignDest) Cleanup(err error) { f.d.cleanup(err) }
