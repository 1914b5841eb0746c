// Package retention decides what a delete command removes from the
// repository and removes it crash-safely.
//
// A delete runs in two steps: a Plan is computed from an Inventory of the
// repository (pure functions of the metadata, unit-tested without storage),
// and Execute carries it out. Without --confirm the plan is only printed.
//
// Rules the plans keep:
//   - Backups are ordered by their metadata (finish time, end LSN), never by
//     name, and grouped into lineages by system identifier: a re-initialized
//     or upgraded cluster on the same prefix is its own lineage, and counting
//     rules (retain N) apply within each lineage.
//   - Permanent backups are never deleted by retain, before or garbage, and
//     neither is the WAL from their start segment through their end segment.
//   - No plan but everything deletes a backup that an incremental backup it
//     keeps is built on (see the chain rules in chain.go); Execute deletes
//     dependents before their parents.
//   - retain, before and garbage delete a WAL object only when its segment
//     lies before the start segment of every kept non-permanent backup and
//     of every backup-push that may still be running (whatever the
//     timeline), and outside every permanent backup's range; timeline
//     history files are always kept. everything deletes all WAL. NeededWAL
//     is this rule, and wal-verify uses it too, so the gaps retention makes
//     are the gaps wal-verify expects.
//
// The WAL side is a rule over WAL names decided from the backups alone, not
// a list of objects, and it covers wal-g's WAL on the same prefix (wal_005/,
// see walgwal.go) as it covers tusk's own: CountWAL streams the archive once to count what the
// rule deletes (the dry run's figures), and Execute streams it again and
// deletes what the rule selects, a batch at a time. Memory does not grow
// with the number of WAL objects.
//
// Execute deletes a backup crash-safely: it writes a tombstone
// (backups/N.deleting), deletes the metadata (from then on the backup is not
// listed), deletes the parts, and deletes the tombstone. Every later delete
// command finishes the tombstoned deletions it finds first.
package retention

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/storage"
)

const (
	backupsPrefix = "backups/"
	tombSuffix    = ".deleting" // basebackup.TombstoneKey
)

// Inventory is what the repository holds, read once at the start of a delete.
type Inventory struct {
	// Backups are the finished backups, oldest first.
	Backups []basebackup.Meta
	// Unreadable are backups whose metadata exists but cannot be read.
	Unreadable []Unreadable
	// Interrupted are backups a delete started and did not finish.
	Interrupted []string
	// Leftovers are backup folders with neither metadata nor tombstone: an
	// interrupted backup-push, or one still running.
	Leftovers []Leftover
	// Strays are metadata objects with a name that is not a backup name:
	// not tusk's, never deleted (CountWAL adds those under wal/).
	Strays int
}

// Unreadable is a backup whose metadata object cannot be read.
type Unreadable struct {
	Name string `json:"name"`
	Err  string `json:"error"`
}

// Leftover is a backups/NAME/ folder without backups/NAME.json.
type Leftover struct {
	Name    string    `json:"name"`
	Objects int       `json:"objects"`
	Bytes   int64     `json:"bytes"`
	Newest  time.Time `json:"newest_object_time"`
	// Parent is the backup an incremental backup-push that may still be
	// running is taken against, from its backup_started.json: the plans keep
	// that backup's chain. StartedErr says why that object could not be
	// read; then which backups the push needs is unknown (see keepNeeded).
	Parent     string `json:"parent,omitempty"`
	StartedErr string `json:"started_error,omitempty"`
}

// Read takes the inventory of st's backups. The WAL is not listed here: see
// CountWAL.
func Read(ctx context.Context, st storage.Storage) (Inventory, error) {
	var inv Inventory
	metas := map[string]bool{}
	tombs := map[string]bool{}
	folders := map[string]*Leftover{}
	var order []string
	err := st.List(ctx, backupsPrefix, func(o storage.Object) error {
		rest := strings.TrimPrefix(o.Key, backupsPrefix)
		if name, sub, ok := strings.Cut(rest, "/"); ok && sub != "" {
			lo := folders[name]
			if lo == nil {
				lo = &Leftover{Name: name}
				folders[name] = lo
				order = append(order, name)
			}
			lo.Objects++
			lo.Bytes += o.Size
			if o.ModTime.After(lo.Newest) {
				lo.Newest = o.ModTime
			}
			return nil
		}
		if name, ok := strings.CutSuffix(rest, ".json"); ok {
			metas[name] = true
		} else if name, ok := strings.CutSuffix(rest, tombSuffix); ok {
			tombs[name] = true
		}
		return nil
	})
	if err != nil {
		return inv, fmt.Errorf("list backups: %w", err)
	}
	for name := range metas {
		if tombs[name] {
			continue // an interrupted delete: its metadata goes first thing
		}
		if basebackup.CheckName(name) != nil {
			inv.Strays++ // not a name tusk writes: not ours to read or delete
			continue
		}
		m, err := basebackup.ReadMeta(ctx, st, name)
		if err != nil {
			if ctx.Err() != nil {
				return inv, ctx.Err()
			}
			if errors.Is(err, basebackup.ErrNoBackup) {
				continue // deleted since the listing
			}
			if !errors.Is(err, basebackup.ErrBadMeta) {
				return inv, err
			}
			inv.Unreadable = append(inv.Unreadable, Unreadable{Name: name, Err: err.Error()})
			continue
		}
		inv.Backups = append(inv.Backups, m)
	}
	if err := readWALG(ctx, st, &inv, tombs); err != nil {
		return inv, err
	}
	basebackup.SortBackups(inv.Backups)
	for name := range tombs {
		if basebackup.CheckName(name) == nil {
			inv.Interrupted = append(inv.Interrupted, name)
		}
	}
	slices.Sort(inv.Interrupted)
	for _, name := range order {
		if !metas[name] && !tombs[name] && basebackup.CheckName(name) == nil {
			lo := *folders[name]
			parent, err := basebackup.StartedParent(ctx, st, name)
			switch {
			case err == nil:
				lo.Parent = parent
			case ctx.Err() != nil:
				return inv, ctx.Err()
			case errors.Is(err, storage.ErrNotFound):
				// No record (a folder a delete left half removed): no run
				// of a backup-push holds it.
			case errors.Is(err, basebackup.ErrBadMeta):
				lo.StartedErr = err.Error()
			default:
				return inv, err
			}
			inv.Leftovers = append(inv.Leftovers, lo)
		}
	}
	return inv, nil
}

// CountWAL lists the WAL archive (tusk's and wal-g's, see walgwal.go) once, streaming, and counts what p's WAL
// rule deletes and keeps: the figures a dry run prints. It holds nothing per
// object. Execute calls it if the caller did not.
func (p *Plan) CountWAL(ctx context.Context, st storage.Storage) error {
	w := p.WAL
	if w == nil || w.counted {
		p.noteIfEmpty()
		return nil
	}
	err := listWAL(ctx, st, func(o storage.Object, f walFile, ok bool) error {
		switch {
		case !ok:
			w.Strays++
		case w.deletesFile(f):
			w.Delete++
			w.DeleteBytes += o.Size
			if w.First == "" {
				w.First = f.name.File
			}
			w.Last, w.lastKey = f.name.File, o.Key
			if o.ModTime.After(w.newest) {
				w.newest = o.ModTime
			}
		default:
			w.Keep++
			w.KeepBytes += o.Size
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list WAL: %w", err)
	}
	w.counted = true
	p.noteIfEmpty()
	return nil
}
