package basebackup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// How a restore ends, so that one killed at any moment (kill -9, a crash,
// a power cut) never leaves a folder PostgreSQL would start from.
//
// PostgreSQL cannot start without global/pg_control: the postmaster reads
// it before anything else and stops ("could not open file
// global/pg_control"). So a restore writes the backup's pg_control under
// another name, global/pg_control.tusk-restoring, as it comes, and installs
// it only at the very end (seal): after every other file, the backup
// manifest and the recovery settings (FetchOptions.BeforeSeal) are written
// and, unless NoSync, on disk. The rename is then made durable (the global
// folder fsynced) before anything else happens, so at every moment the
// folder either has no pg_control or is whole.
//
// From its first write to its end a restore also keeps a marker,
// tusk-restore-unfinished, in the data directory and in each tablespace
// folder. PostgreSQL ignores it; tusk does not: CheckDest refuses a folder
// holding one ("holds an unfinished restore: remove it"), so a restarted
// backup-fetch says what the folder is instead of only that it is not
// empty. The markers go after pg_control is in place; one left by a kill
// between the two sits in a complete restore, which CheckDest still
// refuses, the safe side.
//
// A restore that fails (rather than being killed) removes what it wrote,
// markers included (restoreDest.cleanup).
const (
	controlFile      = "global/pg_control"
	heldControl      = "global/pg_control.tusk-restoring"
	unfinishedMarker = "tusk-restore-unfinished"
)

// ErrUnfinished is CheckDest's error for a folder that a restore stopped
// mid-way (killed, or its machine lost power) left behind.
var ErrUnfinished = errors.New("holds an unfinished restore")

// unfinished reports whether a folder's entries include a restore's marker.
func unfinished(des []fs.DirEntry) bool {
	return slices.ContainsFunc(des, func(de fs.DirEntry) bool { return de.Name() == unfinishedMarker })
}

// mark writes the marker into each of d's folders, naming them all, so
// that whoever finds one knows what to remove.
func (d *restoreDest) mark() error {
	var b strings.Builder
	b.WriteString("tusk is restoring a backup into this folder, or was stopped before it ended.\n")
	b.WriteString("Until this file is gone PostgreSQL cannot start here (global/pg_control is written last).\n")
	b.WriteString("If no tusk backup-fetch or restore-drill is running, remove these folders and restore again:\n")
	for _, dir := range d.rootList() {
		fmt.Fprintf(&b, "%s\n", dir)
	}
	for _, dir := range d.rootList() {
		if err := os.WriteFile(filepath.Join(dir, unfinishedMarker), []byte(b.String()), 0o600); err != nil {
			return destError(dir, err)
		}
	}
	return nil
}

// rootList is d's folders, the data directory first.
func (d *restoreDest) rootList() []string {
	out := []string{d.dest}
	for k, dir := range d.roots {
		if k != "base" {
			out = append(out, dir)
		}
	}
	slices.Sort(out[1:])
	return out
}

// held is where a regular file of archive (a tar entry named name, meant
// for target) is written while the restore runs: pg_control aside, the
// rest where it belongs.
func held(archive, name, target string) string {
	if archive == "base" && filepath.ToSlash(filepath.Clean(name)) == controlFile {
		return target + ".tusk-restoring"
	}
	return target
}

// finish ends a restore whose files are all written: it checks that the
// folder has what a start needs, lets the caller add its files
// (BeforeSeal), makes everything durable, and seals it.
func (d *restoreDest) finish(m Meta, opts FetchOptions) error {
	if err := d.complete(m); err != nil {
		return err
	}
	if opts.BeforeSeal != nil {
		if err := opts.BeforeSeal(d.dest); err != nil {
			return err
		}
	}
	durable := !opts.NoSync
	if durable {
		start := time.Now()
		if err := syncTrees(d.rootList()); err != nil {
			return err
		}
		if opts.Log != nil {
			opts.Log.Debug("restore synced", "backup", m.Name, "duration", time.Since(start))
		}
	}
	if err := os.Rename(filepath.Join(d.dest, heldControl), filepath.Join(d.dest, controlFile)); err != nil {
		return destError(d.dest, err)
	}
	if durable {
		if err := syncDir(filepath.Join(d.dest, "global")); err != nil {
			return destError(d.dest, err)
		}
	}
	for _, dir := range d.rootList() {
		if err := os.Remove(filepath.Join(dir, unfinishedMarker)); err != nil {
			return destError(dir, err)
		}
		if durable {
			if err := syncDir(dir); err != nil {
				return destError(dir, err)
			}
		}
	}
	return nil
}

// syncDir fsyncs a folder, making the names in it durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
