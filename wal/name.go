// Package wal owns PostgreSQL's WAL arithmetic and the rule for which WAL a
// backup needs: file names and their repository keys, LSNs, segment
// positions, sizes and ranges, timeline history files and the path recovery
// follows through them, and listing the archive's WAL objects. It imports no
// tusk package but storage; archive, basebackup, retention and verify all
// build on it.
package wal

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

// ParseSegment parses the name of a segment: ParseName, refusing the other
// kinds.
func ParseSegment(s string) (Name, error) {
	n, err := ParseName(s)
	if err != nil || n.Kind != Segment {
		return Name{}, fmt.Errorf("%q is not a WAL segment name", s)
	}
	return n, nil
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

// HistoryFile is the name of timeline tli's history file.
func HistoryFile(tli uint32) string { return fmt.Sprintf("%08X.history", tli) }

// Prefix is where the repository keeps WAL: every key Key returns starts
// with it.
const Prefix = "wal/"

// Key is the object key of the file in the repository. Segments are grouped
// by timeline and log (256 segments of 16 MiB per folder) so that no folder
// grows without bound; history files sit together under wal/timelines.
func (n Name) Key() string {
	if n.Kind == History {
		return Prefix + "timelines/" + n.File
	}
	return Prefix + n.File[:16] + "/" + n.File
}

// NameOf reads the WAL file name out of an object key; ok is false for a
// key that is not where Key puts a WAL file (a stray, not tusk's).
func NameOf(key string) (n Name, ok bool) {
	n, err := ParseName(key[strings.LastIndexByte(key, '/')+1:])
	if err != nil || n.Key() != key {
		return Name{}, false
	}
	return n, true
}
