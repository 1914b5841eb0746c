package basebackup

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/tusk-backup/tusk/storage"
)

// MinIncrementalVersion is the first server_version_num with incremental
// backups over the replication protocol (UPLOAD_MANIFEST, BASE_BACKUP
// INCREMENTAL).
const MinIncrementalVersion = 170000

// MinLocalIncrementalVersion is the first server_version_num of which local
// mode takes incremental backups (by page LSN, see PushLocal): every server
// tusk backs up.
const MinLocalIncrementalVersion = MinVersion

// DeltaOptions say when backup-push takes an incremental backup, in wal-g's
// terms.
type DeltaOptions struct {
	MaxSteps int    // incrementals in a chain before the next full; 0: full only
	Origin   string // "LATEST" or "LATEST_FULL"
	FromName string // take an incremental against this backup
	Full     bool   // --full: a full backup, whatever else says
	// Local: the backup is taken in local mode, which finds the changed
	// pages by their LSN itself and so takes incrementals on servers
	// older than 17 too.
	Local bool
}

// minVersion is the oldest server an incremental can be taken of with o.
func (o DeltaOptions) minVersion() int {
	if o.Local {
		return MinLocalIncrementalVersion
	}
	return MinIncrementalVersion
}

// Wanted reports whether the options ask for incremental backups at all.
func (o DeltaOptions) Wanted() bool { return !o.Full && (o.MaxSteps > 0 || o.FromName != "") }

// ChooseParent picks the backup an incremental backup of the server sys is
// taken against, from backups
// (oldest first, as List returns them). It returns nil for a full backup,
// with a sentence saying why when incrementals were asked for and cannot be
// taken; that is never an error, a full backup is always right. An error is
// a --delta-from-name that cannot serve: the operator named that backup,
// so tusk does not quietly take a full one instead.
func ChooseParent(backups []Meta, sys System, o DeltaOptions) (parent *Meta, why string, err error) {
	if !o.Wanted() {
		return nil, "", nil
	}
	if o.FromName != "" {
		i := slices.IndexFunc(backups, func(m Meta) bool { return m.Name == o.FromName })
		if i < 0 {
			return nil, "", fmt.Errorf("--delta-from-name %s: %w in the repository (see tusk backup-list)", o.FromName, ErrNoBackup)
		}
		m := backups[i]
		if err := canParent(m, sys, o); err != nil {
			return nil, "", fmt.Errorf("--delta-from-name %s: %v", o.FromName, err)
		}
		return &m, "", nil
	}
	if sys.Version < o.minVersion() {
		return nil, tooOld(sys.Version) + "; taking a full backup", nil
	}
	var newest *Meta
	for i := len(backups) - 1; i >= 0; i-- {
		m := backups[i]
		if m.SystemID != sys.SystemID || (o.Origin == "LATEST_FULL" && m.Incremental()) {
			continue
		}
		newest = &backups[i]
		break
	}
	switch {
	case newest == nil && o.Origin == "LATEST_FULL":
		return nil, "the repository holds no full backup of this cluster to take an incremental against; taking a full backup", nil
	case newest == nil:
		return nil, "the repository holds no backup of this cluster to take an incremental against; taking a full backup", nil
	case newest.ChainDepth >= o.MaxSteps:
		return nil, fmt.Sprintf("the chain ending in %s holds %d incremental backups, TUSK_DELTA_MAX_STEPS allows %d; taking a full backup", newest.Name, newest.ChainDepth, o.MaxSteps), nil
	}
	if err := canParent(*newest, sys, o); err != nil {
		return nil, fmt.Sprintf("the newest backup %s %v; taking a full backup", newest.Name, err), nil
	}
	m := *newest
	return &m, "", nil
}

// tooOld says why a server of version cannot take an incremental backup in
// remote mode.
func tooOld(version int) string {
	return fmt.Sprintf("the server runs PostgreSQL %d, and incremental backups need PostgreSQL 17 or later in remote mode (local mode, with the server's PGDATA on this host, takes them from PostgreSQL 14 on)", version/10000)
}

// canParent says why m cannot be the parent of an incremental backup of sys
// taken with o.
func canParent(m Meta, sys System, o DeltaOptions) error {
	version := sys.Version
	switch {
	case version < o.minVersion():
		return errors.New(tooOld(version))
	case m.SystemID != sys.SystemID:
		return fmt.Errorf("is of another cluster (system identifier %s, the server's is %s)", m.SystemID, sys.SystemID)
	case m.PGVersion/10000 != version/10000:
		return fmt.Errorf("was taken from PostgreSQL %d, the server runs %d", m.PGVersion/10000, version/10000)
	}
	return nil
}

// ChainOf returns the backups a restore of m needs, the full backup first
// and m last, from backups (which must hold m). It fails in one sentence
// naming the first backup of the chain that is missing.
func ChainOf(backups []Meta, m Meta) ([]Meta, error) {
	parents, missing := Chain(backups, m.Name)
	if missing != "" {
		child := m
		if len(parents) > 0 {
			child = parents[len(parents)-1]
		}
		if missing == m.Name && !child.Incremental() {
			return nil, fmt.Errorf("backup %s: %w", m.Name, ErrNoBackup)
		}
		if slices.ContainsFunc(parents, func(p Meta) bool { return p.Name == missing }) || missing == m.Name {
			return nil, fmt.Errorf("backup %s's chain of parents loops back to %s", m.Name, missing)
		}
		return nil, fmt.Errorf("backup %s is incremental on %s, which the repository no longer holds: %s cannot be restored (restore an older backup, or take a full one)", child.Name, missing, m.Name)
	}
	chain := slices.Clone(parents)
	slices.Reverse(chain)
	return append(chain, m), nil
}

// ReadChain reads the metadata of m's parents, up to its full backup, and
// returns the chain as Chain does: the full backup first, m last.
func ReadChain(ctx context.Context, st storage.Storage, m Meta) ([]Meta, error) {
	known := []Meta{m}
	for cur := m; cur.Incremental(); {
		if len(known) > maxChain {
			return nil, fmt.Errorf("backup %s's chain of parents is longer than %d backups", m.Name, maxChain)
		}
		p, err := ReadMeta(ctx, st, cur.Parent)
		if errors.Is(err, ErrNoBackup) {
			break // ChainOf says which one is missing
		}
		if err != nil {
			return nil, fmt.Errorf("backup %s needs its parent %s: %w", m.Name, cur.Parent, err)
		}
		known = append(known, p)
		cur = p
	}
	return ChainOf(known, m)
}

// maxChain bounds the parents ReadChain follows.
const maxChain = 1000

// Chain returns the backups that restoring backup name needs besides
// itself, read from bs: its parent, its parent's parent, and so on up to the
// full backup at the root, nearest first (nil for a full backup). missing is
// the name of the first backup of the chain that bs does not hold ("" when
// the chain reaches a full backup); the backups before it are returned. A
// chain that comes back to a backup already in it (metadata that names
// parents in a loop) ends there, missing naming that backup. Chain does not
// look at name itself: it must be in bs.
func Chain(bs []Meta, name string) (chain []Meta, missing string) {
	byName := make(map[string]int, len(bs))
	for i, m := range bs {
		byName[m.Name] = i
	}
	i, ok := byName[name]
	if !ok {
		return nil, name
	}
	seen := map[string]bool{name: true}
	for m := bs[i]; m.Incremental(); {
		j, ok := byName[m.Parent]
		if !ok || seen[m.Parent] {
			return chain, m.Parent
		}
		seen[m.Parent] = true
		m = bs[j]
		chain = append(chain, m)
	}
	return chain, ""
}

// Dependents returns the backups of bs built on backup name, directly or
// through others, nearest first (breadth first): those whose restore needs
// it.
func Dependents(bs []Meta, name string) []Meta {
	children := map[string][]int{}
	for i, m := range bs {
		if m.Incremental() {
			children[m.Parent] = append(children[m.Parent], i)
		}
	}
	var out []Meta
	seen := map[string]bool{name: true}
	queue := []string{name}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, i := range children[n] {
			if m := bs[i]; !seen[m.Name] {
				seen[m.Name] = true
				out = append(out, m)
				queue = append(queue, m.Name)
			}
		}
	}
	return out
}
