package retention

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/storage"
)

// batch is how many keys one Delete call gets (S3's DeleteObjects limit).
const batch = 1000

// Report is what Execute did.
type Report struct {
	Backups     []string `json:"backups"`     // deleted backups, oldest first
	Finished    []string `json:"finished"`    // interrupted deletes finished
	Skipped     []string `json:"skipped"`     // marked permanent after the plan was made
	Leftovers   []string `json:"leftovers"`   // unfinished backups' folders removed
	WALDeleted  int      `json:"wal_deleted"` // WAL objects deleted
	Swept       int      `json:"unfinished_uploads_removed"`
	Objects     int      `json:"objects"` // objects deleted in all
	FreedBytes  int64    `json:"freed_bytes"`
	DurationSec float64  `json:"duration_seconds"`
}

// Counter hears of deleted objects (progress on a terminal).
type Counter interface {
	Add(objects int, bytes int64)
}

type nopCounter struct{}

func (nopCounter) Add(int, int64) {}

// Execute carries out p on st. Backups go crash-safely: tombstones first,
// then every metadata object in one batch (from then on the backups are not
// listed), then their parts, then the tombstones. An interrupted Execute
// leaves tombstones that the next delete finishes. WAL goes oldest first,
// so an interrupted garbage run leaves a repository whose oldest WAL is
// simply older than necessary.
func Execute(ctx context.Context, st storage.Storage, p Plan, c Counter) (Report, error) {
	if c == nil {
		c = nopCounter{}
	}
	start := time.Now()
	var r Report
	defer func() { r.DurationSec = time.Since(start).Seconds() }()
	d := deleter{st: st, c: c, r: &r}

	for _, name := range p.Interrupted {
		if _, err := d.backups(ctx, []string{name}, false); err != nil {
			return r, fmt.Errorf("finish the interrupted delete of backup %s: %w", name, err)
		}
		r.Finished = append(r.Finished, name)
	}

	var names []string
	for _, m := range p.Deleting() {
		names = append(names, m.Name)
	}
	names = append(names, p.DeleteUnreadable...)
	if len(names) > 0 {
		done, err := d.backups(ctx, names, true)
		r.Backups = done
		if err != nil {
			return r, err
		}
	}

	for _, l := range p.Leftovers {
		if !l.Delete {
			continue
		}
		if err := d.prefix(ctx, basebackup.DataPrefix(l.Name)); err != nil {
			return r, fmt.Errorf("delete unfinished backup %s: %w", l.Name, err)
		}
		r.Leftovers = append(r.Leftovers, l.Name)
	}

	if sw, ok := storage.As[sweeper](st); ok && !p.SweepBefore.IsZero() {
		n, err := sw.Sweep(ctx, p.SweepBefore)
		r.Swept = n
		if err != nil {
			return r, err
		}
	}

	// A backup spared because it became permanent changes which WAL is
	// needed: leave the WAL for the next run, which plans with it.
	if p.WAL != nil && len(r.Skipped) == 0 {
		keys := make([]string, 0, batch)
		var size int64
		flush := func() error {
			if err := st.Delete(ctx, keys...); err != nil {
				return fmt.Errorf("delete WAL: %w", err)
			}
			r.WALDeleted += len(keys)
			d.count(len(keys), size)
			keys, size = keys[:0], 0
			return nil
		}
		for _, w := range p.WAL.Delete {
			keys = append(keys, w.Key)
			size += w.Size
			if len(keys) == batch {
				if err := flush(); err != nil {
					return r, err
				}
			}
		}
		if len(keys) > 0 {
			if err := flush(); err != nil {
				return r, err
			}
		}
	}
	return r, nil
}

// sweeper is a storage that can find the remains of unfinished uploads
// (storage/local's temporary files). S3 is not one: MinIO lists multipart
// uploads only by exact key, so tusk aborts its own failed uploads and leaves
// those of killed processes to the bucket's AbortIncompleteMultipartUpload
// lifecycle rule.
type sweeper interface {
	Sweep(ctx context.Context, before time.Time) (int, error)
}

type deleter struct {
	st storage.Storage
	c  Counter
	r  *Report
}

func (d deleter) count(n int, size int64) {
	d.r.Objects += n
	d.r.FreedBytes += size
	d.c.Add(n, size)
}

// tombstone is the content of backups/NAME.deleting.
type tombstone struct {
	Name  string    `json:"name"`
	Since time.Time `json:"deleting_since"`
}

// backups deletes whole backups: tombstones (when mark), metadata, parts,
// tombstones, and returns the names it deleted. After the tombstones are
// written it reads each backup's metadata again and spares one that was
// marked permanent since the plan was made (backup-mark checks for a
// tombstone after it writes, so one of the two always sees the other).
func (d deleter) backups(ctx context.Context, names []string, mark bool) ([]string, error) {
	if mark {
		for _, n := range names {
			b, _ := json.Marshal(tombstone{Name: n, Since: time.Now().UTC()})
			if err := d.st.Put(ctx, basebackup.TombstoneKey(n), bytes.NewReader(b)); err != nil {
				return nil, fmt.Errorf("mark backup %s as being deleted: %w", n, err)
			}
		}
		var keep []string
		for _, n := range names {
			m, err := basebackup.ReadMeta(ctx, d.st, n)
			switch {
			case err == nil && m.Permanent:
				if err := d.st.Delete(ctx, basebackup.TombstoneKey(n)); err != nil {
					return nil, fmt.Errorf("spare backup %s, marked permanent meanwhile: %w", n, err)
				}
				d.r.Skipped = append(d.r.Skipped, n)
			case err == nil, errors.Is(err, basebackup.ErrNoBackup), errors.Is(err, basebackup.ErrBadMeta):
				keep = append(keep, n)
			default:
				return nil, fmt.Errorf("read backup %s: %w", n, err)
			}
		}
		names = keep
	}
	metas := make([]string, len(names))
	var size int64
	for i, n := range names {
		metas[i] = basebackup.MetaKey(n)
		if o, err := d.st.Stat(ctx, metas[i]); err == nil {
			size += o.Size
		}
	}
	for len(metas) > 0 {
		k := metas[:min(len(metas), batch)]
		metas = metas[len(k):]
		if err := d.st.Delete(ctx, k...); err != nil {
			return nil, fmt.Errorf("delete backup metadata: %w", err)
		}
	}
	d.count(len(names), size)
	for _, n := range names {
		if err := d.prefix(ctx, basebackup.DataPrefix(n)); err != nil {
			return nil, fmt.Errorf("delete backup %s: %w", n, err)
		}
	}
	tombs := make([]string, len(names))
	for i, n := range names {
		tombs[i] = basebackup.TombstoneKey(n)
	}
	for len(tombs) > 0 {
		k := tombs[:min(len(tombs), batch)]
		tombs = tombs[len(k):]
		if err := d.st.Delete(ctx, k...); err != nil {
			return nil, fmt.Errorf("delete tombstones: %w", err)
		}
	}
	return names, nil
}

// prefix deletes every object under prefix, a batch at a time. It lists
// first and deletes after, since deleting during a listing is not part of
// the storage contract.
func (d deleter) prefix(ctx context.Context, prefix string) error {
	for {
		var keys []string
		var size int64
		err := d.st.List(ctx, prefix, func(o storage.Object) error {
			keys = append(keys, o.Key)
			size += o.Size
			if len(keys) == batch {
				return errBatchFull
			}
			return nil
		})
		if err != nil && !errors.Is(err, errBatchFull) {
			return err
		}
		if len(keys) == 0 {
			return nil
		}
		if err := d.st.Delete(ctx, keys...); err != nil {
			return err
		}
		d.count(len(keys), size)
		if err == nil {
			return nil
		}
	}
}

var errBatchFull = errors.New("batch full")
