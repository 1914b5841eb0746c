package retention

import (
	"context"
	"errors"
	"strings"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/walg"
)

// wal-g's backups on the same prefix (package walg) are retained as tusk's
// are: the plans order and count both kinds together by their metadata, and
// Execute deletes a wal-g backup as it deletes one of tusk's, under a
// tombstone in backups/ (tusk's layout, which wal-g never reads): the
// sentinel first with the metadata batch (from then on wal-g and tusk no
// longer list the backup), then everything under basebackups_005/NAME/,
// then the tombstone. wal-g's WAL (wal_005/) is retained with tusk's (see
// walgwal.go).

// readBackup reads backup name's metadata, tusk's or wal-g's.
func readBackup(ctx context.Context, st storage.Storage, name string) (basebackup.Meta, error) {
	m, err := basebackup.ReadMeta(ctx, st, name)
	if errors.Is(err, basebackup.ErrNoBackup) && walg.IsName(name) {
		m, err = walg.ReadMeta(ctx, st, name)
		if errors.Is(err, walg.ErrBadSentinel) {
			err = errors.Join(basebackup.ErrBadMeta, err)
		}
	}
	return m, err
}

// metaKeys are the objects whose presence lists backup name.
func metaKeys(name string) []string {
	keys := []string{basebackup.MetaKey(name)}
	if walg.IsName(name) {
		keys = append(keys, walg.SentinelKey(name))
	}
	return keys
}

// dataPrefixes hold the rest of backup name's objects.
func dataPrefixes(name string) []string {
	ps := []string{basebackup.DataPrefix(name)}
	if walg.IsName(name) {
		ps = append(ps, walg.DataPrefix(name))
	}
	return ps
}

// Keys lists the objects whose presence lists backup name (tusk's metadata,
// wal-g's sentinel) and the prefixes that hold the rest of its objects,
// tusk's or wal-g's: what Execute deletes of it, besides its tombstone.
func Keys(name string) (meta, data []string) { return metaKeys(name), dataPrefixes(name) }

// readWALG adds wal-g's backups to inv: those without a tombstone to
// Backups, those whose sentinel or metadata cannot be read to Unreadable.
func readWALG(ctx context.Context, st storage.Storage, inv *Inventory, tombs map[string]bool) error {
	var failed error
	ms, err := walg.List(ctx, st, func(key string, err error) {
		name := strings.TrimSuffix(strings.TrimPrefix(key, walg.Prefix), walgSentinelSuffix)
		switch {
		case tombs[name], errors.Is(err, basebackup.ErrNoBackup):
		case errors.Is(err, walg.ErrBadSentinel):
			inv.Unreadable = append(inv.Unreadable, Unreadable{Name: name, Err: err.Error()})
		case failed == nil:
			failed = err
		}
	})
	if err != nil {
		return err
	}
	if failed != nil {
		return failed
	}
	for _, m := range ms {
		if !tombs[m.Name] {
			inv.Backups = append(inv.Backups, m)
		}
	}
	return nil
}
