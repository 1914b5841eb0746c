// Package archive moves WAL files between PostgreSQL and the repository:
// wal-push's upload with overwrite protection and wal-fetch's verified
// download.
package archive

import (
	"fmt"
	"strconv"
	"strings"
)

// Kind is what sort of file PostgreSQL archives.
type Kind int

// The files PostgreSQL hands to archive_command and asks restore_command for.
const (
	Segment       Kind = iota + 1 // 000000010000000000000042
	History                       // 00000002.history
	Partial                       // 000000010000000000000042.partial
	BackupHistory                 // 000000010000000000000042.00000028.backup
)

func (k Kind) String() string {
	switch k {
	case Segment:
		return "segment"
	case History:
		return "history file"
	case Partial:
		return "partial segment"
	case BackupHistory:
		return "backup history file"
	}
	return "unknown"
}

// Name is a parsed WAL file name.
type Name struct {
	File     string // the file name as PostgreSQL wrote it
	Kind     Kind
	Timeline uint32
	Log, Seg uint32 // zero for history files
}

// ParseName parses a WAL file name (no directory).
func ParseName(s string) (Name, error) {
	bad := fmt.Errorf("%q is not a WAL file name (expected 24 hex digits like 000000010000000000000042, TIMELINE.history, SEGMENT.partial or SEGMENT.OFFSET.backup)", s)
	switch {
	case len(s) == 24 && isHex(s):
		return segmentName(s, Segment)
	case len(s) == 16 && strings.HasSuffix(s, ".history") && isHex(s[:8]):
		tli, _ := strconv.ParseUint(s[:8], 16, 32)
		if tli == 0 {
			return Name{}, bad
		}
		return Name{File: s, Kind: History, Timeline: uint32(tli)}, nil
	case len(s) == 32 && strings.HasSuffix(s, ".partial") && isHex(s[:24]):
		n, err := segmentName(s[:24], Partial)
		n.File = s
		return n, err
	case len(s) == 40 && strings.HasSuffix(s, ".backup") && s[24] == '.' && isHex(s[:24]) && isHex(s[25:33]):
		n, err := segmentName(s[:24], BackupHistory)
		n.File = s
		return n, err
	}
	return Name{}, bad
}

func segmentName(s string, k Kind) (Name, error) {
	tli, _ := strconv.ParseUint(s[:8], 16, 32)
	log, _ := strconv.ParseUint(s[8:16], 16, 32)
	seg, _ := strconv.ParseUint(s[16:24], 16, 32)
	if tli == 0 {
		return Name{}, fmt.Errorf("%q is not a WAL file name: timeline 0 does not exist", s)
	}
	return Name{File: s, Kind: k, Timeline: uint32(tli), Log: uint32(log), Seg: uint32(seg)}, nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// Key is the object key of the file in the repository. Segments are grouped
// by timeline and log (256 segments of 16 MiB per folder) so that no folder
// grows without bound; history files sit together under wal/timelines.
func (n Name) Key() string {
	if n.Kind == History {
		return "wal/timelines/" + n.File
	}
	return "wal/" + n.File[:16] + "/" + n.File
}

// SegmentFile returns the name of the segment on the same timeline that is
// delta segments after n (for segments only), given the segments per log
// file (0x100 for 16 MiB segments).
func (n Name) SegmentFile(delta int, segsPerLog uint32) string {
	abs := uint64(n.Log)*uint64(segsPerLog) + uint64(n.Seg) + uint64(delta)
	return fmt.Sprintf("%08X%08X%08X", n.Timeline, uint32(abs/uint64(segsPerLog)), uint32(abs%uint64(segsPerLog)))
}
