package retention

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/walg"
)

// ErrBeingDeleted is returned (wrapped) by Mark when a delete holds the
// backup's tombstone: before Mark writes (a delete that was interrupted, or
// one that is running), or for longer than MarkOptions.Wait after it wrote.
var ErrBeingDeleted = errors.New("backup is being deleted")

// ErrDeletedWhileMarking is returned (wrapped) by Mark when a delete that
// began while it marked deleted the backup.
var ErrDeletedWhileMarking = errors.New("backup was deleted while it was being marked")

// ErrBrokenChain is returned (wrapped) by Mark when a backup of the chain
// of the incremental backup to be made permanent is not in the repository.
var ErrBrokenChain = errors.New("backup chain is broken")

// ErrNeededByPermanent is returned (wrapped) by Mark when a backup to be
// made ordinary again is in the chain of a permanent incremental backup.
var ErrNeededByPermanent = errors.New("backup is needed by a permanent backup")

// Defaults of MarkOptions.
const (
	DefaultMarkWait = 2 * time.Minute
	DefaultMarkPoll = 100 * time.Millisecond
)

// MarkOptions tune Mark.
type MarkOptions struct {
	// Wait bounds how long Mark waits, after it wrote, for a delete that
	// holds the backup's tombstone to decide; 0 means DefaultMarkWait.
	Wait time.Duration
	// Poll is how often it looks; 0 means DefaultMarkPoll.
	Poll time.Duration
}

// MarkResult says what Mark did.
type MarkResult struct {
	Meta    basebackup.Meta // the backup's metadata as it is stored now
	Changed bool            // false: it already was so, and nothing was written
	// Parents are the backups of an incremental backup's chain that Mark
	// made permanent with it (those that were not yet), full backup first.
	Parents []string
}

// Mark makes backup name permanent (or, with permanent false, ordinary
// again) and returns once it knows the mark holds. It is one half of a
// protocol whose other half is Execute's (deleter.backups):
//
//	delete:  tombstone, read the metadata again, then either spare a
//	         backup that is permanent now (delete the tombstone) or delete
//	         metadata, parts, tombstone
//	mark:    read the metadata, refuse if a tombstone exists, write the
//	         metadata, wait until no tombstone exists, then look: metadata
//	         and parts there means the mark holds
//
// A delete whose tombstone Mark did not see began after Mark's check: if it
// reads the metadata after Mark wrote, it sees the mark and spares the
// backup; if before, it deletes the backup, and Mark, which waits for the
// tombstone to go before it decides anything, finds the backup gone and
// says so (ErrDeletedWhileMarking). Until the tombstone is gone Mark
// deletes nothing, so a backup the delete spared never loses its metadata.
// A write of Mark's that lands after the delete removed the metadata brings
// back metadata without parts; Mark deletes that metadata again once the
// tombstone is gone and the parts it saw before it wrote are gone (no
// delete removes the parts of a backup it spares). A tombstone that exists
// before Mark writes, or outlives Wait, is ErrBeingDeleted: the delete
// that wrote it may not have finished, and the next delete finishes it
// without reading the metadata again. The protocol relies on the storage
// contract's read-after-write: a Stat or List after a Put or Delete sees it.
//
// An incremental backup restores only with its chain, so making one
// permanent makes every backup of its chain permanent first, full backup
// first, each by the protocol above (as wal-g's backup-mark does): a
// delete that re-reads a chain member's metadata after its mark spares it,
// and one that re-reads the incremental's spares its chain too (Execute).
// A chain that misses a backup is refused (ErrBrokenChain). Making a backup
// ordinary again is refused while a permanent incremental backup is built
// on it (ErrNeededByPermanent); it changes only that backup.
func Mark(ctx context.Context, st storage.Storage, name string, permanent bool, opts MarkOptions) (MarkResult, error) {
	if opts.Wait <= 0 {
		opts.Wait = DefaultMarkWait
	}
	if opts.Poll <= 0 {
		opts.Poll = DefaultMarkPoll
	}
	m, err := basebackup.ReadMeta(ctx, st, name)
	if errors.Is(err, basebackup.ErrNoBackup) && walg.IsName(name) {
		if _, werr := walg.ReadMeta(ctx, st, name); werr == nil {
			return MarkResult{}, fmt.Errorf("backup %s is wal-g's, and tusk never writes into wal-g's layout: mark it with wal-g backup-mark, or mark a tusk backup instead", name)
		}
	}
	if err != nil {
		return MarkResult{}, err
	}
	var parents []string
	if permanent && m.Incremental() {
		chain, err := readChain(ctx, st, m)
		if err != nil {
			return MarkResult{}, err
		}
		for i := len(chain) - 1; i >= 0; i-- {
			res, err := markOne(ctx, st, chain[i], true, opts)
			if err != nil {
				return MarkResult{Parents: parents}, fmt.Errorf("backup %s needs backup %s of its chain, which could not be made permanent: %w", name, chain[i].Name, err)
			}
			if res.Changed {
				parents = append(parents, chain[i].Name)
			}
		}
	}
	if !permanent {
		all, err := basebackup.List(ctx, st, nil)
		if err != nil {
			return MarkResult{}, err
		}
		for _, d := range basebackup.Dependents(all, name) {
			if d.Permanent {
				return MarkResult{}, &markError{fmt.Sprintf("backup %s stays permanent: permanent backup %s is an incremental built on it and needs it to restore; run tusk backup-mark %s --impermanent first", name, d.Name, d.Name), ErrNeededByPermanent}
			}
		}
	}
	res, err := markOne(ctx, st, m, permanent, opts)
	res.Parents = parents
	return res, err
}

// readChain reads the metadata of m's chain from the repository, nearest
// parent first.
func readChain(ctx context.Context, st storage.Storage, m basebackup.Meta) ([]basebackup.Meta, error) {
	var chain []basebackup.Meta
	seen := map[string]bool{m.Name: true}
	for cur := m; cur.Incremental(); {
		if seen[cur.Parent] {
			return nil, &markError{fmt.Sprintf("backup %s cannot be made permanent: its chain comes back to backup %s, so its metadata is damaged", m.Name, cur.Parent), ErrBrokenChain}
		}
		seen[cur.Parent] = true
		p, err := basebackup.ReadMeta(ctx, st, cur.Parent)
		if errors.Is(err, basebackup.ErrNoBackup) {
			return nil, &markError{fmt.Sprintf("backup %s cannot be made permanent: backup %s of its chain is not in the repository, so it cannot be restored", m.Name, cur.Parent), ErrBrokenChain}
		}
		if err != nil {
			return nil, fmt.Errorf("read the chain of backup %s: %w", m.Name, err)
		}
		chain = append(chain, p)
		cur = p
	}
	return chain, nil
}

// markOne is Mark's protocol for one backup, whose metadata m was read.
func markOne(ctx context.Context, st storage.Storage, m basebackup.Meta, permanent bool, opts MarkOptions) (MarkResult, error) {
	name := m.Name
	// A failed check is no reason to refuse: the wait after the write
	// decides. This one only turns away, in one sentence, the tombstone of a
	// delete that was interrupted.
	if _, err := st.Stat(ctx, basebackup.TombstoneKey(name)); err == nil {
		return MarkResult{}, &markError{fmt.Sprintf("backup %s is being deleted; it cannot be marked (run the delete again to finish it)", name), ErrBeingDeleted}
	}
	if m.Permanent == permanent {
		return MarkResult{Meta: m}, nil
	}
	hadData, err := hasData(ctx, st, name)
	if err != nil {
		return MarkResult{}, err
	}
	m.Permanent = permanent
	if err := basebackup.WriteMeta(ctx, st, m); err != nil {
		return MarkResult{}, err
	}
	if err := waitTombstoneGone(ctx, st, name, opts); err != nil {
		return MarkResult{}, err
	}
	deleted := &markError{fmt.Sprintf("backup %s was deleted while it was being marked", name), ErrDeletedWhileMarking}
	if _, err := st.Stat(ctx, basebackup.MetaKey(name)); errors.Is(err, storage.ErrNotFound) {
		return MarkResult{}, deleted
	} else if err != nil {
		return MarkResult{}, fmt.Errorf("check that backup %s is still there: %w", name, err)
	}
	data, err := hasData(ctx, st, name)
	if err != nil {
		return MarkResult{}, err
	}
	if hadData && !data {
		// The delete removed the backup, and the write above came after it
		// had removed the metadata: take back what the write brought back.
		if err := st.Delete(ctx, basebackup.MetaKey(name)); err != nil {
			return MarkResult{}, fmt.Errorf("backup %s was deleted while it was being marked, and removing the metadata the mark wrote back failed (tusk delete target %s removes it): %w", name, name, err)
		}
		return MarkResult{}, deleted
	}
	return MarkResult{Meta: m, Changed: true}, nil
}

// hasData reports whether any object of backup name's parts is stored.
func hasData(ctx context.Context, st storage.Storage, name string) (bool, error) {
	found := false
	err := st.List(ctx, basebackup.DataPrefix(name), func(storage.Object) error {
		found = true
		return errListDone
	})
	if err != nil && !errors.Is(err, errListDone) {
		return false, fmt.Errorf("list the parts of backup %s: %w", name, err)
	}
	return found, nil
}

// waitTombstoneGone waits until no delete holds backup name's tombstone.
func waitTombstoneGone(ctx context.Context, st storage.Storage, name string, opts MarkOptions) error {
	deadline := time.Now().Add(opts.Wait)
	t := time.NewTicker(opts.Poll)
	defer t.Stop()
	for {
		_, err := st.Stat(ctx, basebackup.TombstoneKey(name))
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return nil
		case err != nil:
			return fmt.Errorf("check whether backup %s is being deleted: %w", name, err)
		case time.Now().After(deadline):
			return &markError{fmt.Sprintf("backup %s is being deleted by a delete that has not finished in %v (%s exists), so it may not stay marked: run the delete again, then backup-mark", name, opts.Wait, basebackup.TombstoneKey(name)), ErrBeingDeleted}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// markError is a sentence of Mark's that wraps one of its sentinels.
type markError struct {
	msg string
	err error
}

func (e *markError) Error() string { return e.msg }
func (e *markError) Unwrap() error { return e.err }
