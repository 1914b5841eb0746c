package incremental

import (
	"path"
	"strconv"
	"strings"
)

// The visibility map and incremental backups.
//
// A heap record that clears a page's all-visible bit (an UPDATE, DELETE or
// INSERT on a page VACUUM marked all-visible) clears the bit in the
// visibility map too, but names only the heap page: the VM page is changed
// without a block reference of its own, so the WAL summarizer does not see
// it, and an incremental backup sends the VM fork without that page
// (PostgreSQL 17.10 and 18.4 do, as the protocol spike shows). tusk's local
// mode, which picks pages by their LSN, misses the page in the same way:
// clearing the bit leaves the VM page's LSN as it was. Composed as
// pg_combinebackup composes it, the VM page then comes from an older backup
// with the bit still set, and an index-only scan on the restored cluster
// returns tuples that are dead. Setting a bit is always WAL-logged with the
// VM page, so a VM page is stale exactly when a heap page it covers came
// from a newer backup than the VM page itself. The Composer zeroes such VM
// pages (see ComposeOptions.ExactVM): an all-zero VM page says nothing is
// all-visible or all-frozen, which is always safe; the next VACUUM sets the
// bits again.

// heapBlocksPerVMPage is the number of heap blocks one VM page covers: two
// bits each in the page after its 24-byte header (HEAPBLOCKS_PER_PAGE).
const heapBlocksPerVMPage = (BlockSize - 24) * 4

// relFile parses the name of a relation file: base/5/16384.2 is segment 2
// of the main fork of relation base/5/16384, base/5/16384_vm its VM.
func relFile(p string) (rel, fork string, seg uint32, ok bool) {
	dir, name := path.Split(p)
	if !strings.HasPrefix(dir, "base/") && dir != "global/" && !strings.HasPrefix(dir, "pg_tblspc/") {
		return "", "", 0, false
	}
	if i := strings.IndexByte(name, '.'); i >= 0 {
		n, err := strconv.ParseUint(name[i+1:], 10, 32)
		if err != nil {
			return "", "", 0, false
		}
		name, seg = name[:i], uint32(n)
	}
	if i := strings.IndexByte(name, '_'); i >= 0 {
		name, fork = name[:i], name[i+1:]
	}
	if name == "" || strings.Trim(name, "0123456789") != "" {
		return "", "", 0, false
	}
	switch fork {
	case "", "fsm", "vm", "init":
		return dir + name, fork, seg, true
	}
	return "", "", 0, false
}
