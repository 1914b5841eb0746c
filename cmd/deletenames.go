package cmd

import (
	"context"
	"log/slog"
	"sync"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/retention"
	"github.com/tusk-backup/tusk/storage"
)

// namingStore names each object a delete removes, as wal-g's delete does
// ("Object marked for deletion: KEY"): one Info line per key once it is
// deleted, and the keys for --json.
type namingStore struct {
	storage.Storage
	log  *slog.Logger
	mu   sync.Mutex
	keys []string
}

// Unwrap implements storage.Unwrapper.
func (n *namingStore) Unwrap() storage.Storage { return n.Storage }

func (n *namingStore) Delete(ctx context.Context, keys ...string) error {
	if err := n.Storage.Delete(ctx, keys...); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, k := range keys {
		n.log.Info("object deleted", "key", k)
		n.keys = append(n.keys, k)
	}
	return nil
}

// deleted are the keys deleted so far, in order.
func (n *namingStore) deleted() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string{}, n.keys...)
}

// planObjects calls fn with each object executing p would delete, in the
// order Execute deletes them: interrupted deletes' and the backups'
// metadata, parts and tombstones, unfinished backups' folders, then the
// WAL the plan's rule deletes, tusk's and wal-g's (Execute may keep some of it; see
// retention.Report).
func planObjects(ctx context.Context, st storage.Storage, p retention.Plan, fn func(storage.Object) error) error {
	names := append(append([]string{}, p.Interrupted...), p.DeleteUnreadable...)
	for _, m := range p.Deleting() {
		names = append(names, m.Name)
	}
	for _, n := range names {
		meta, data := retention.Keys(n)
		for _, k := range meta {
			if o, err := st.Stat(ctx, k); err == nil {
				if err := fn(o); err != nil {
					return err
				}
			}
		}
		for _, prefix := range data {
			if err := st.List(ctx, prefix, fn); err != nil {
				return err
			}
		}
		if o, err := st.Stat(ctx, basebackup.TombstoneKey(n)); err == nil {
			if err := fn(o); err != nil {
				return err
			}
		}
	}
	for _, l := range p.Leftovers {
		if l.Delete {
			if err := st.List(ctx, basebackup.DataPrefix(l.Name), fn); err != nil {
				return err
			}
		}
	}
	if w := p.WAL; w != nil && w.Delete > 0 {
		return w.Objects(ctx, st, fn)
	}
	return nil
}
