package restore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/walg"
)

// Latest names the newest backup that serves the target.
const Latest = "LATEST"

// ErrNoBackups is returned when the repository holds no backup at all.
var ErrNoBackups = errors.New("the repository holds no backups: take one with tusk backup-push")

// ErrTarget marks a target that the named backup, or every backup, cannot
// reach: recovery cannot stop before a backup's end. It is the operator's
// choice to correct, not a failure of the repository.
var ErrTarget = errors.New("the target is before the backup's end")

// targetError is an ErrTarget whose sentence says which backup and why.
type targetError struct{ msg string }

func (e targetError) Error() string        { return e.msg }
func (e targetError) Is(target error) bool { return target == ErrTarget }

// Choose picks the backup that serves target t from backups (oldest first,
// as basebackup.List returns them): the one called name, which must end
// before a time or LSN target, or for Latest the newest that does. Backups
// of every cluster and lineage on the prefix compete, ordered by their
// metadata (basebackup.Compare), never by name; full and incremental
// backups alike, except for Latest an incremental whose chain lacks a
// parent in backups, which no restore can compose.
func Choose(backups []basebackup.Meta, name string, t Target) (basebackup.Meta, error) {
	if name != Latest {
		for _, m := range backups {
			if m.Name == name {
				return m, serves(m, t)
			}
		}
		return basebackup.Meta{}, fmt.Errorf("backup %s: %w in the repository (see tusk backup-list)", name, basebackup.ErrNoBackup)
	}
	if len(backups) == 0 {
		return basebackup.Meta{}, ErrNoBackups
	}
	for i := len(backups) - 1; i >= 0; i-- {
		if m := backups[i]; reaches(m, t) {
			if _, err := basebackup.ChainOf(backups, m); err != nil {
				continue
			}
			return m, nil
		}
	}
	return basebackup.Meta{}, targetError{fmt.Sprintf("no backup finished before the target %s (the oldest, %s, finished at %s)",
		t.Describe(), backups[0].Name, backups[0].FinishTime.Format(time.RFC3339))}
}

// reaches reports whether recovery from m can stop at t: a time or LSN
// target must lie after the backup's end.
func reaches(m basebackup.Meta, t Target) bool {
	switch {
	case !t.Time.IsZero() && !m.FinishTime.Before(t.Time):
		return false
	case t.LSN != 0 && t.LSN < m.EndLSN:
		return false
	}
	return true
}

// serves says in a sentence why the named backup m cannot reach t, if it cannot.
func serves(m basebackup.Meta, t Target) error {
	if !t.Time.IsZero() && !m.FinishTime.Before(t.Time) {
		return targetError{fmt.Sprintf("backup %s finished at %s, after the target time %s: recovery cannot stop before a backup's end; choose an earlier backup or LATEST",
			m.Name, m.FinishTime.Format(time.RFC3339), t.Time.Format(time.RFC3339))}
	}
	if t.LSN != 0 && t.LSN < m.EndLSN {
		return targetError{fmt.Sprintf("backup %s ends at LSN %s, after the target LSN %s: choose an earlier backup or LATEST", m.Name, m.EndLSN, t.LSN)}
	}
	return nil
}

// ChoseForTarget reports whether Choose picked a Latest backup because of
// t (a time or LSN target), which is worth telling the operator.
func ChoseForTarget(name string, t Target) bool {
	return name == Latest && (!t.Time.IsZero() || t.LSN != 0)
}

// Find reads the backups Choose needs from st (only the named one's
// metadata, or the whole list for Latest) and chooses. wal-g's backups on
// the same prefix compete with tusk's (package walg).
func Find(ctx context.Context, st storage.Storage, name string, t Target) (basebackup.Meta, error) {
	if name != Latest {
		m, err := basebackup.ReadMeta(ctx, st, name)
		if errors.Is(err, basebackup.ErrNoBackup) && walg.IsName(name) {
			m, err = walg.ReadMeta(ctx, st, name)
		}
		if err != nil {
			return m, err
		}
		return Choose([]basebackup.Meta{m}, name, t)
	}
	ms, err := walg.ListAll(ctx, st, nil)
	if err != nil {
		return basebackup.Meta{}, err
	}
	return Choose(ms, name, t)
}
