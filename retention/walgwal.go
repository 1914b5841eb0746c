package retention

import (
	"context"
	"strings"

	"github.com/tusk-backup/tusk/archive"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/wal"
)

// wal-g's WAL on the same prefix (archive.WALGPrefix, wal_005/) is retained
// as tusk's own WAL is: the plans' WAL rule is over WAL file names, and it
// is applied to the WAL files of both layouts, listed in one streaming pass
// of two listings, tusk's (wal/) and then wal-g's (wal_005/); "wal/" sorts
// before "wal_005/", so the pass goes in key order, which Execute's bound
// (nothing past the last key the plan counted) relies on.
//
// What wal_005/ holds (wal-g's internal/databases/postgres): each WAL file
// as <file>[.<codec extension>] (segments, .partial, .backup, .history);
// with WALG_UPLOAD_WAL_METADATA, <file>.json beside it
// (wal_metadata_uploader.go), or with the BULK level one
// <first 23 characters>.json per 16 segments whose names differ in the last
// hex digit; with WALG_USE_WAL_DELTA, <segment>_delta[.<ext>] per 16
// segments by position from a multiple of 16 (wal_delta_util.go,
// GetDeltaFilenameFor). A file's metadata goes with the file; an object
// about 16 segments goes once the rule deletes all 16. Anything else there
// is a stray: counted, never deleted.

// walFile is a WAL object of either layout, placed by the WAL file it is
// about.
type walFile struct {
	name wal.Name
	// group, when set, is how an object about 16 segments from name on
	// covers them: by the last hex digit of the name (bulk metadata) or by
	// position (a delta map, which needs the segment size).
	group groupKind
}

type groupKind int

const (
	single groupKind = iota
	byDigit
	byPosition
)

// groupSize is how many segments one of wal-g's delta maps or bulk metadata
// objects covers (wal-g's WalFileInDelta).
const groupSize = 16

// walgFile places key, under archive.WALGPrefix; ok is false for a stray.
func walgFile(key string) (walFile, bool) {
	if n, _, ok := archive.WALGKeyOf(key); ok {
		return walFile{name: n}, true
	}
	rest, found := strings.CutPrefix(key, archive.WALGPrefix)
	if !found {
		return walFile{}, false
	}
	if base, ok := strings.CutSuffix(rest, ".json"); ok {
		if n, err := wal.ParseName(base); err == nil {
			return walFile{name: n}, true
		}
		if n, err := wal.ParseSegment(base + "0"); err == nil && len(base) == 23 {
			return walFile{name: n, group: byDigit}, true
		}
		return walFile{}, false
	}
	if i := strings.Index(rest, "_delta"); i == 24 {
		ext := rest[i+len("_delta"):]
		if ext != "" && (ext[0] != '.' || strings.Count(ext, ".") != 1) {
			return walFile{}, false // _delta_part and others: wal-g keeps those locally
		}
		if n, err := wal.ParseSegment(rest[:24]); err == nil {
			return walFile{name: n, group: byPosition}, true
		}
	}
	return walFile{}, false
}

// covered calls fn with each WAL file f is about, and reports whether fn
// held for any; a delta map is placed with every segment size in sizes (the
// kept backups' own; the default if none is known).
func (f walFile) covered(sizes []uint64, fn func(wal.Name) bool) bool {
	switch f.group {
	case byDigit:
		for i := range uint32(groupSize) {
			n := f.name
			n.Seg = n.Seg&^0xF | i
			if fn(n) {
				return true
			}
		}
		return false
	case byPosition:
		if len(sizes) == 0 {
			sizes = []uint64{wal.DefaultSegSize}
		}
		for _, size := range sizes {
			pos := f.name.Pos(size)
			for i := range uint64(groupSize) {
				if fn(wal.SegmentAt(f.name.Timeline, pos+i, size)) {
					return true
				}
			}
		}
		return false
	}
	return fn(f.name)
}

// listWAL lists the WAL objects of both layouts in key order, tusk's and
// then wal-g's, and calls fn with each and its place; ok is false for a
// stray. It returns the listing's error, or fn's, as it is.
func listWAL(ctx context.Context, st storage.Storage, fn func(o storage.Object, f walFile, ok bool) error) error {
	err := wal.List(ctx, st, wal.Prefix, func(o storage.Object, n wal.Name, ok bool) error {
		return fn(o, walFile{name: n}, ok)
	})
	if err != nil {
		return err
	}
	return st.List(ctx, archive.WALGPrefix, func(o storage.Object) error {
		f, ok := walgFile(o.Key)
		return fn(o, f, ok)
	})
}

// Objects calls fn with each WAL object, of either layout, that the rule
// deletes, in key order (for naming what a dry run would delete; Execute
// may keep some, see Report).
func (w *WALPlan) Objects(ctx context.Context, st storage.Storage, fn func(storage.Object) error) error {
	return listWAL(ctx, st, func(o storage.Object, f walFile, ok bool) error {
		if ok && w.deletesFile(f) {
			return fn(o)
		}
		return nil
	})
}

// deletesFile reports whether the rule deletes the object placed at f: for
// an object about 16 segments, whether it deletes all of them.
func (w *WALPlan) deletesFile(f walFile) bool {
	return w.all || !f.covered(w.segSizes, func(n wal.Name) bool { return !w.deletes(n) })
}
