package verify

import (
	"fmt"

	"github.com/tusk-backup/tusk/basebackup"
)

// ChainProblems checks the chain of backup m as the repository lists it: bs
// are its readable backups, and unreadable maps the name of a backup whose
// metadata cannot be read to why. An incremental backup restores only with
// every backup of its chain, so each of them must be listed and readable,
// of m's cluster, and in order: each parent ends (EndLSN, end timeline) no
// later than the backup built on it starts; and each backup of the chain
// must record the full backup its parents lead to, at the depth they do.
// Each problem is one sentence naming the backup at fault. The parts of the
// chain's backups are not read here (basebackup.Verify does that).
func ChainProblems(m basebackup.Meta, bs []basebackup.Meta, unreadable map[string]string) []basebackup.Problem {
	byName := make(map[string]basebackup.Meta, len(bs))
	for _, b := range bs {
		byName[b.Name] = b
	}
	var problems []basebackup.Problem
	add := func(name, format string, args ...any) {
		problems = append(problems, basebackup.Problem{Object: basebackup.MetaKey(name), Error: fmt.Sprintf(format, args...)})
	}
	members := []basebackup.Meta{m}
	seen := map[string]bool{m.Name: true}
	cur := m
	for cur.Incremental() {
		name := cur.Parent
		parent, ok := byName[name]
		switch {
		case seen[name]:
			add(cur.Name, "the chain of backup %s comes back to backup %s, so its metadata is damaged and it cannot be restored", m.Name, name)
			return problems
		case unreadable[name] != "":
			add(name, "backup %s, which backup %s needs to restore (the parent of %s), has metadata that cannot be read: %s", name, m.Name, cur.Name, unreadable[name])
			return problems
		case !ok:
			add(name, "backup %s, which backup %s needs to restore (the parent of %s), is not in the repository, so %s cannot be restored", name, m.Name, cur.Name, m.Name)
			return problems
		}
		if parent.SystemID != cur.SystemID {
			add(cur.Name, "backup %s is of cluster %s, but its parent %s is of cluster %s", cur.Name, cur.SystemID, name, parent.SystemID)
		}
		if parent.EndLSN > cur.StartLSN {
			add(cur.Name, "backup %s starts at LSN %s, before its parent %s ends (LSN %s)", cur.Name, cur.StartLSN, name, parent.EndLSN)
		}
		if parent.EndTLI > cur.StartTLI {
			add(cur.Name, "backup %s starts on timeline %d, but its parent %s ends on the later timeline %d", cur.Name, cur.StartTLI, name, parent.EndTLI)
		}
		seen[name] = true
		members = append(members, parent)
		cur = parent
	}
	root := cur
	for i, b := range members {
		depth := len(members) - 1 - i
		if b.Incremental() && (b.ChainFull != root.Name || b.ChainDepth != depth) {
			add(b.Name, "backup %s records full backup %s at depth %d for its chain, but its parents lead to full backup %s at depth %d", b.Name, b.ChainFull, b.ChainDepth, root.Name, depth)
		}
	}
	return problems
}
