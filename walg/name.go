package walg

import (
	"strconv"
	"strings"
)

// Prefix is where wal-g keeps its base backups.
const Prefix = "basebackups_005/"

const sentinelSuffix = "_backup_stop_sentinel.json"

// SentinelKey is the key of backup name's stop sentinel.
func SentinelKey(name string) string { return Prefix + name + sentinelSuffix }

// DataPrefix is the prefix of backup name's objects besides its sentinel.
func DataPrefix(name string) string { return Prefix + name + "/" }

// IsPartKey reports whether key is a tar partition of a wal-g backup
// (basebackups_005/NAME/tar_partitions/...): the only objects of a backup
// that wal-g compresses and encrypts; its sentinel and metadata are always
// stored as they are.
func IsPartKey(key string) bool {
	rest, ok := strings.CutPrefix(key, Prefix)
	if !ok {
		return false
	}
	name, file, ok := strings.Cut(rest, "/tar_partitions/")
	return ok && file != "" && !strings.Contains(name, "/") && !strings.Contains(file, "/")
}

// partsPrefix is the prefix of backup name's tar partitions.
func partsPrefix(name string) string { return DataPrefix(name) + "tar_partitions/" }

// IsName reports whether s is a wal-g backup name: base_ and a WAL segment
// name (the start's), then for a delta _D_ and its parent's segment name,
// then optionally _ and 8 hexadecimal digits, as wal-g's
// base_%[1]s(_D_%[1]s)?(_%[2]s)? (backup.go) matches it.
func IsName(s string) bool {
	rest, ok := strings.CutPrefix(s, "base_")
	if !ok || len(rest) < 24 || !upperHex(rest[:24]) {
		return false
	}
	rest = rest[24:]
	if r, ok := strings.CutPrefix(rest, "_D_"); ok {
		if len(r) < 24 || !upperHex(r[:24]) {
			return false
		}
		rest = r[24:]
	}
	if rest == "" {
		return true
	}
	r, ok := strings.CutPrefix(rest, "_")
	return ok && len(r) == 8 && upperHex(r)
}

// startSegment is the WAL segment name in a wal-g backup name, and its
// timeline.
func startSegment(name string) (seg string, tli uint32) {
	seg = name[len("base_") : len("base_")+24]
	t, _ := strconv.ParseUint(seg[:8], 16, 32)
	return seg, uint32(t)
}

func upperHex(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}
