package archive

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/tusk-backup/tusk/wal"
)

// AheadOptions turn on push-ahead: while PostgreSQL's archiver waits for one
// file, the later files it has already marked .ready are uploaded in
// parallel, and each one that is durably stored is marked .done in
// pg_wal/archive_status, as PostgreSQL itself does after archive_command
// succeeds. The archiver re-checks each file's .ready status before calling
// archive_command (PostgreSQL's own comment: "the archive_command for a
// previous file may have already marked it done"), so it never starts a
// process for those files. This matters because one process start costs
// more than the upload of a segment.
//
// A file is marked .done only after its upload has completed, so PostgreSQL
// is never told a file is stored before it is. A kill -9 at any moment
// leaves at worst a stored file still marked .ready: the archiver's call for
// it finds the identical copy and succeeds.
//
// With RecordDir set and Rename false, push-ahead leaves archive_status to
// PostgreSQL and records each file it stored in RecordDir instead (see record.go): the
// archiver still calls for every file, and each call for a recorded file
// answers at once.
type AheadOptions struct {
	Max         int // files pushed ahead per call; 0 turns push-ahead off
	Concurrency int // uploads at once, the called-for file included
	// Rename marks files pushed ahead .done; otherwise they are recorded
	// in RecordDir.
	Rename    bool
	RecordDir string
}

// PushAhead archives the WAL file at path like Push and pushes ahead up to
// opts.Max later .ready files from the same pg_wal. Its result and error
// concern path's file only; failures of files pushed ahead are logged and
// left for the archiver's own calls.
func (a *Archive) PushAhead(ctx context.Context, path string, opts PushOptions, ahead AheadOptions) (PushResult, error) {
	if ahead.Max <= 0 {
		return a.Push(ctx, path, opts)
	}
	name, err := wal.ParseName(filepath.Base(path))
	if err != nil {
		return PushResult{}, err
	}
	walDir := filepath.Dir(path)
	statusDir := filepath.Join(walDir, "archive_status")
	record := !ahead.Rename && ahead.RecordDir != ""
	if record {
		if res, ok := a.fromRecord(ahead.RecordDir, path, name); ok {
			return res, nil
		}
		pruneRecords(ahead.RecordDir, statusDir)
	}
	candidates := readyFiles(statusDir, name, ahead.Max)
	if record {
		candidates = slices.DeleteFunc(candidates, func(c string) bool {
			_, _, ok := readRecord(ahead.RecordDir, c)
			return ok
		})
	}

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(ahead.Concurrency, 1))
	var res PushResult
	g.Go(func() error {
		var err error
		res, err = a.Push(gctx, path, opts)
		return err
	})
	for _, c := range candidates {
		g.Go(func() error {
			r, err := a.Push(gctx, filepath.Join(walDir, c), opts)
			if err != nil {
				if gctx.Err() == nil {
					a.log().Warn("push-ahead failed; the archiver's own call will retry", "wal", c, "error", err)
				}
				return nil
			}
			if !record {
				markDone(statusDir, c, a)
			} else if err := writeRecord(ahead.RecordDir, c, r.Size, r.Sum); err != nil {
				a.log().Warn("pushed ahead but not recorded; the archiver's call will find the identical copy", "wal", c, "error", err)
			}
			return nil
		})
	}
	err = g.Wait()
	return res, err
}

// FromRecord answers the archiver's call for the WAL file at path if a
// push-ahead has already stored it: the record in dir must match the file's
// size and checksum. It needs no storage, so a caller can try it before
// opening the repository.
func (a *Archive) FromRecord(dir, path string) (PushResult, bool) {
	name, err := wal.ParseName(filepath.Base(path))
	if err != nil {
		return PushResult{}, false
	}
	return a.fromRecord(dir, path, name)
}

// fromRecord is FromRecord for a parsed name.
func (a *Archive) fromRecord(dir, path string, name wal.Name) (PushResult, bool) {
	size, sum, ok := readRecord(dir, name.File)
	if !ok {
		return PushResult{}, false
	}
	os.Remove(filepath.Join(dir, name.File)) // used once, whatever it says
	f, err := os.Open(path)
	if err != nil {
		return PushResult{}, false
	}
	defer f.Close()
	n, h, err := sumFile(f, a.sumKind())
	if err != nil {
		return PushResult{}, false
	}
	mine := Header{Size: n, SumKind: a.sumKind(), Sum: h}
	if n != size || mine.SumString() != sum {
		a.log().Warn("record of a push-ahead does not match the file; pushing it again", "wal", name.File)
		return PushResult{}, false
	}
	a.log().Info("wal already archived", "wal", name.File, "key", name.Key(), "checksum", sum, "by", "push-ahead")
	return PushResult{Name: name, Key: name.Key(), Size: n, Sum: sum, AlreadyArchived: true}, true
}

// markDone renames c's .ready status file to .done. A missing .ready (the
// archiver or another wal-push got there first) is fine.
func markDone(statusDir, c string, a *Archive) {
	err := os.Rename(filepath.Join(statusDir, c+".ready"), filepath.Join(statusDir, c+".done"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		a.log().Warn("pushed ahead but not marked done; the archiver's call will find the identical copy", "wal", c, "error", err)
	}
}

// readyFiles lists the WAL files marked .ready other than current, in the
// archiver's order (history files first, then by name), at most n.
func readyFiles(statusDir string, current wal.Name, n int) []string {
	des, err := os.ReadDir(statusDir)
	if err != nil {
		return nil
	}
	var out []string
	for _, de := range des {
		f, ok := strings.CutSuffix(de.Name(), ".ready")
		if !ok || f == current.File {
			continue
		}
		if _, err := wal.ParseName(f); err != nil {
			continue
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(x, y string) int {
		hx, hy := strings.HasSuffix(x, ".history"), strings.HasSuffix(y, ".history")
		if hx != hy {
			if hx {
				return -1
			}
			return 1
		}
		return strings.Compare(x, y)
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}
