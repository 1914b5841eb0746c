package retention

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/walg"
)

// batch is how many keys one Delete call gets (S3's DeleteObjects limit).
const batch = 1000

// Report is what Execute did.
type Report struct {
	Backups  []string `json:"backups"`  // deleted backups, oldest first
	Finished []string `json:"finished"` // interrupted deletes finished
	Skipped  []string `json:"skipped"`  // marked permanent after the plan was made
	// KeptNeeded are backups the plan deleted and Execute kept, because a
	// backup in Skipped, or an incremental backup-push that began after the
	// plan was made, needs them (they are in its chain).
	KeptNeeded []string `json:"kept_needed,omitempty"`
	Leftovers  []string `json:"leftovers"`   // unfinished backups' folders removed
	WALDeleted int      `json:"wal_deleted"` // WAL objects deleted
	// WALSpared are WAL objects the plan deleted and Execute kept, because
	// a backup in Skipped needs them.
	WALSpared int `json:"wal_kept_for_skipped"`
	// WALKeptForNew are WAL objects the plan deleted and Execute kept,
	// because a backup (or unfinished backup) that appeared since the plan
	// may need them: one of another cluster on the same prefix.
	WALKeptForNew int     `json:"wal_kept_for_new_backups,omitempty"`
	Swept         int     `json:"unfinished_uploads_removed"`
	Objects       int     `json:"objects"` // objects deleted in all
	FreedBytes    int64   `json:"freed_bytes"`
	DurationSec   float64 `json:"duration_seconds"`
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
// leaves tombstones that the next delete finishes. WAL goes last, in a
// streaming pass over the archive in key order (see wal), so an interrupted
// garbage run leaves a repository whose oldest WAL is simply older than
// necessary. Execute counts p's WAL first (CountWAL) if the caller did not.
func Execute(ctx context.Context, st storage.Storage, p Plan, c Counter) (Report, error) {
	if c == nil {
		c = nopCounter{}
	}
	start := time.Now()
	var r Report
	defer func() { r.DurationSec = time.Since(start).Seconds() }()
	d := deleter{st: st, c: c, r: &r}

	for _, name := range p.Interrupted {
		if _, err := d.remove(ctx, []string{name}); err != nil {
			return r, fmt.Errorf("finish the interrupted delete of backup %s: %w", name, err)
		}
		r.Finished = append(r.Finished, name)
	}

	var names []string
	forced := map[string]bool{} // permanent when planned: deleted anyway (everything FORCE)
	for _, m := range p.Deleting() {
		names = append(names, m.Name)
		if m.Permanent {
			forced[m.Name] = true
		}
	}
	var metas []basebackup.Meta
	for _, b := range p.Backups {
		metas = append(metas, b.Meta)
	}
	names = deleteOrder(append(slices.Clone(p.DeleteUnreadable), names...), metas)
	var spared []basebackup.Meta
	if len(names) > 0 {
		done, sp, err := d.backups(ctx, names, forced, metas)
		r.Backups, spared = done, sp
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

	if sw, ok := storage.As[storage.Sweeper](st); ok && !p.SweepBefore.IsZero() {
		n, err := sw.Sweep(ctx, p.SweepBefore)
		r.Swept = n
		if err != nil {
			return r, err
		}
	}

	if p.WAL != nil {
		if err := p.CountWAL(ctx, st); err != nil {
			return r, err
		}
		if err := d.wal(ctx, p, spared); err != nil {
			return r, err
		}
	}
	return r, nil
}

// wal deletes the WAL objects p's rule selects, in a second streaming pass
// over the archive, a batch at a time as the listing goes. Of them it keeps
// what the spared backups need (NeededWAL of the kept and the spared
// backups, with those that may still be running: never more than the plan
// deletes) and what any backup or unfinished backup that appeared since the
// plan may need (all WAL from its start). It deletes nothing modified after
// the newest object the plan counted, nor beyond the last one in key order:
// WAL archived after the plan was made stays, as it did when plans listed
// objects.
func (d deleter) wal(ctx context.Context, p Plan, spared []basebackup.Meta) error {
	w := p.WAL
	if w.Delete == 0 {
		return nil
	}
	var keepSpared *Needed
	if len(spared) > 0 {
		kept := append([]basebackup.Meta{}, spared...)
		for _, b := range p.Backups {
			if !b.Delete {
				kept = append(kept, b.Meta)
			}
		}
		basebackup.SortBackups(kept)
		need, err := NeededWAL(kept, w.running)
		if err != nil {
			return fmt.Errorf("plan the WAL again for the spared backups: %w", err)
		}
		keepSpared = &need
	}
	keepNew, err := d.newcomers(ctx, w.known)
	if err != nil {
		return err
	}
	b := d.newBatch(func(n int) { d.r.WALDeleted += n })
	err = listWAL(ctx, d.st, func(o storage.Object, f walFile, ok bool) error {
		if o.Key > w.lastKey {
			return errListDone
		}
		if !ok || !w.deletesFile(f) || o.ModTime.After(w.newest) {
			return nil
		}
		switch {
		case keepSpared != nil && f.covered(w.segSizes, keepSpared.Keeps):
			d.r.WALSpared++
			return nil
		case keepNew != nil && f.covered(w.segSizes, keepNew.Keeps):
			d.r.WALKeptForNew++
			return nil
		}
		return b.add(ctx, o)
	})
	switch {
	case b.err != nil:
		return fmt.Errorf("delete WAL: %w", b.err)
	case err != nil && !errors.Is(err, errListDone):
		return fmt.Errorf("list WAL: %w", err)
	}
	if err := b.flush(ctx); err != nil {
		return fmt.Errorf("delete WAL: %w", err)
	}
	return nil
}

var errListDone = errors.New("past the last WAL object to delete")

// newcomers lists the backups and unfinished backups (backups/NAME.json,
// backups/NAME/...), and wal-g's finished backups (their sentinels), whose
// names are not in known, sorted: those that appeared since the plan was
// made. It returns what they may need: all WAL from the
// oldest one's start (read from its name), or all WAL if a name does not
// tell; nil if there are none. Such a backup can only need WAL that lies
// before the plan's own KeepFrom if it is of another cluster (a lineage
// with no kept backup) on the same prefix.
func (d deleter) newcomers(ctx context.Context, known []string) (*Needed, error) {
	var need *Needed
	var from uint64
	add := func(name string) error {
		if _, ok := slices.BinarySearch(known, name); ok || basebackup.CheckName(name) != nil {
			return nil
		}
		start, ok := startOf(name)
		if !ok {
			need = &Needed{All: true, FromBackup: name}
			return errListDone
		}
		pos, _ := order(start)
		if need == nil || pos < from {
			need, from = &Needed{From: start, FromBackup: name, from: pos}, pos
		}
		return nil
	}
	err := d.st.List(ctx, backupsPrefix, func(o storage.Object) error {
		rest := strings.TrimPrefix(o.Key, backupsPrefix)
		name, _, folder := strings.Cut(rest, "/")
		if !folder {
			var ok bool
			if name, ok = strings.CutSuffix(rest, ".json"); !ok {
				return nil // a tombstone: being deleted, it needs nothing
			}
		}
		return add(name)
	})
	if err == nil {
		// wal-g's finished backups (a wal-g backup-push still in use on the
		// prefix), by their sentinels; a delta's name starts with its own
		// start segment too. A wal-g backup-push still running is not
		// waited for: its partitions without a sentinel are not told from
		// those of one that failed long ago. Its start lies after KeepFrom
		// unless it is another cluster's.
		err = d.st.List(ctx, walg.Prefix, func(o storage.Object) error {
			name, ok := strings.CutSuffix(strings.TrimPrefix(o.Key, walg.Prefix), walgSentinelSuffix)
			if !ok || strings.Contains(name, "/") || !walg.IsName(name) {
				return nil
			}
			return add(name)
		})
	}
	if err != nil && !errors.Is(err, errListDone) {
		return nil, fmt.Errorf("list backups: %w", err)
	}
	return need, nil
}

// walgSentinelSuffix ends the key of a wal-g backup's sentinel
// (walg.SentinelKey).
const walgSentinelSuffix = "_backup_stop_sentinel.json"

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

// backups deletes whole backups: tombstones, metadata, parts, tombstones,
// and returns the names it deleted and the backups it spared. After the
// tombstones are written it reads each backup's metadata again and spares
// one that is permanent now unless forced holds it (it was permanent when
// the plan was made, and the plan deletes it: everything FORCE). So a
// backup marked permanent since the plan was made, or one whose metadata
// could not be read then, is spared.
//
// This is one half of backup-mark's race protocol; Mark is the other (see
// its comment). Mark refuses a backup whose tombstone exists, and after it
// writes it waits until the tombstone is gone before it judges the outcome:
// a mark written before the re-read below is seen and spares the backup; a
// mark written after it loses, and Mark reports the backup deleted (and
// removes the metadata its write brought back once the parts are gone). So
// the tombstone must be written before the re-read, and be deleted only
// once the decision is carried out: after the spare, or after the parts.
func (d deleter) backups(ctx context.Context, names []string, forced map[string]bool, planned []basebackup.Meta) ([]string, []basebackup.Meta, error) {
	// names come dependents first (deleteOrder): an interrupted run leaves
	// tombstones on a backup's dependents before it, so no listed backup
	// ever has a parent that is no longer listed.
	for _, n := range names {
		b, _ := json.Marshal(tombstone{Name: n, Since: time.Now().UTC()})
		if err := d.st.Put(ctx, basebackup.TombstoneKey(n), bytes.NewReader(b)); err != nil {
			return nil, nil, fmt.Errorf("mark backup %s as being deleted: %w", n, err)
		}
	}
	metas := map[string]basebackup.Meta{}
	spare := map[string]bool{}
	var read []basebackup.Meta // what the metadata says now, for the chains
	for _, n := range names {
		m, err := readBackup(ctx, d.st, n)
		switch {
		case err == nil && m.Permanent && !forced[n]:
			d.r.Skipped = append(d.r.Skipped, n)
			spare[n] = true
			metas[n] = m
			read = append(read, m)
		case err == nil:
			metas[n] = m
			read = append(read, m)
		case errors.Is(err, basebackup.ErrNoBackup), errors.Is(err, basebackup.ErrBadMeta):
		default:
			return nil, nil, fmt.Errorf("read backup %s: %w", n, err)
		}
	}
	// What a spared backup, or an incremental backup-push that began since
	// the plan was made, is built on stays too. (A backup-push writes its
	// backup_started.json, naming its parent, and then checks that the
	// parent has no tombstone: either it sees the tombstone written above
	// and takes no incremental on it, or the listing below sees its record.)
	running, err := d.runningParents(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, m := range planned {
		if _, ok := metas[m.Name]; !ok {
			read = append(read, m)
		}
	}
	needers := slices.Clone(d.r.Skipped)
	for _, parent := range running {
		if _, ok := metas[parent]; ok {
			needers = append(needers, parent)
			if !spare[parent] {
				spare[parent] = true
				d.r.KeptNeeded = append(d.r.KeptNeeded, parent)
			}
		}
	}
	for _, n := range needers {
		chain, _ := basebackup.Chain(read, n)
		for _, m := range chain {
			if _, ok := metas[m.Name]; ok && !spare[m.Name] {
				spare[m.Name] = true
				d.r.KeptNeeded = append(d.r.KeptNeeded, m.Name)
			}
		}
	}
	var keep []string
	var spared []basebackup.Meta
	for _, n := range names {
		if !spare[n] {
			keep = append(keep, n)
			continue
		}
		if err := d.st.Delete(ctx, basebackup.TombstoneKey(n)); err != nil {
			return nil, nil, fmt.Errorf("spare backup %s: %w", n, err)
		}
		spared = append(spared, metas[n])
	}
	done, err := d.remove(ctx, keep)
	return done, spared, err
}

// runningParents lists the parents that the backup_started.json of every
// unfinished backup names: the backups incremental backup-pushes that may
// be running are taken against.
func (d deleter) runningParents(ctx context.Context) ([]string, error) {
	var folders []string
	done := map[string]bool{} // finished (their parents are the plan's) or being deleted
	err := d.st.List(ctx, backupsPrefix, func(o storage.Object) error {
		rest := strings.TrimPrefix(o.Key, backupsPrefix)
		if name, sub, ok := strings.Cut(rest, "/"); ok && sub == "backup_started.json" && basebackup.CheckName(name) == nil {
			folders = append(folders, name)
		} else if name, ok := strings.CutSuffix(rest, ".json"); ok && !strings.Contains(name, "/") {
			done[name] = true
		} else if name, ok := strings.CutSuffix(rest, tombSuffix); ok && !strings.Contains(name, "/") {
			done[name] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list backups: %w", err)
	}
	var out []string
	for _, name := range folders {
		if done[name] {
			continue
		}
		parent, err := basebackup.StartedParent(ctx, d.st, name)
		switch {
		case err == nil && parent != "":
			out = append(out, parent)
		case err == nil, errors.Is(err, storage.ErrNotFound), errors.Is(err, basebackup.ErrBadMeta):
			// A full backup-push, a folder deleted since the listing, or a
			// record the plan already judged (an unreadable one is a
			// leftover the plan saw, or one whose push began after it:
			// then it takes its parent from what is not being deleted).
		default:
			return nil, err
		}
	}
	return out, nil
}

// remove deletes whole backups whose tombstones are written: metadata,
// parts, tombstones. It returns the names it deleted.
func (d deleter) remove(ctx context.Context, names []string) ([]string, error) {
	var metas []string
	var size int64
	for _, n := range names {
		for _, k := range metaKeys(n) {
			metas = append(metas, k)
			if o, err := d.st.Stat(ctx, k); err == nil {
				size += o.Size
			}
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
		for _, p := range dataPrefixes(n) {
			if err := d.prefix(ctx, p); err != nil {
				return nil, fmt.Errorf("delete backup %s: %w", n, err)
			}
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

// prefix deletes every object under prefix, a batch at a time as it lists
// them (the storage contract lets a listing go on past keys deleted behind
// it).
func (d deleter) prefix(ctx context.Context, prefix string) error {
	b := d.newBatch(nil)
	err := d.st.List(ctx, prefix, func(o storage.Object) error { return b.add(ctx, o) })
	switch {
	case b.err != nil:
		return b.err
	case err != nil:
		return err
	}
	return b.flush(ctx)
}

// deleteBatch deletes the objects a listing hands it, batch keys at a time,
// and counts them (d.count, and deleted if set). A failed Delete is kept in
// err and returned to the listing, which stops it.
type deleteBatch struct {
	d       deleter
	keys    []string
	size    int64
	err     error
	deleted func(n int)
}

func (d deleter) newBatch(deleted func(n int)) *deleteBatch {
	return &deleteBatch{d: d, keys: make([]string, 0, batch), deleted: deleted}
}

// add queues o and deletes the batch once it is full.
func (b *deleteBatch) add(ctx context.Context, o storage.Object) error {
	b.keys = append(b.keys, o.Key)
	b.size += o.Size
	if len(b.keys) == batch {
		return b.flush(ctx)
	}
	return nil
}

// flush deletes what is queued.
func (b *deleteBatch) flush(ctx context.Context) error {
	if len(b.keys) == 0 {
		return nil
	}
	if err := b.d.st.Delete(ctx, b.keys...); err != nil {
		b.err = err
		return err
	}
	if b.deleted != nil {
		b.deleted(len(b.keys))
	}
	b.d.count(len(b.keys), b.size)
	b.keys, b.size = b.keys[:0], 0
	return nil
}
