package cmd

import (
	"testing"

	"github.com/tusk-backup/tusk/crypt"
)

// TestObjectClassWALG: wal-g's WAL is read with wal-g's framing (no
// additional data); tusk's own objects keep theirs.
func TestObjectClassWALG(t *testing.T) {
	for key, want := range map[string]crypt.Class{
		"wal_005/000000010000000000000001.lz4":          crypt.WALG,
		"wal_005/00000002.history.zst":                  crypt.WALG,
		"wal/0000000100000000/000000010000000000000001": crypt.Encrypt,
		"wal/timelines/00000002.history":                crypt.Encrypt,
	} {
		if got := objectClass(key); got != want {
			t.Errorf("objectClass(%s) = %v, want %v", key, got, want)
		}
	}
}
