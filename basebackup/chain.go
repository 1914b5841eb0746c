package basebackup

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
