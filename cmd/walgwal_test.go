package cmd

import (
	"testing"

	"github.com/tusk-backup/tusk/crypt"
)

// TestObjectClassWALG: wal-g's WAL and its backups' tar partitions are read
// with wal-g's framing (no additional data), its sentinels and metadata as
// plain text (wal-g never encrypts them); tusk's own objects keep theirs.
func TestObjectClassWALG(t *testing.T) {
	for key, want := range map[string]crypt.Class{
		"wal_005/000000010000000000000001.lz4":                                            crypt.WALG,
		"wal_005/00000002.history.zst":                                                    crypt.WALG,
		"wal/0000000100000000/000000010000000000000001":                                   crypt.Encrypt,
		"wal/timelines/00000002.history":                                                  crypt.Encrypt,
		"basebackups_005/base_000000010000000000000002/tar_partitions/part_001.tar.lz4":   crypt.WALG,
		"basebackups_005/base_000000010000000000000002/tar_partitions/pg_control.tar.lz4": crypt.WALG,
		"basebackups_005/base_000000010000000000000002_backup_stop_sentinel.json":         crypt.Plain,
		"basebackups_005/base_000000010000000000000002/metadata.json":                     crypt.Plain,
	} {
		if got := objectClass(key); got != want {
			t.Errorf("objectClass(%s) = %v, want %v", key, got, want)
		}
	}
}
