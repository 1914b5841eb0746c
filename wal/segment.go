package wal

import (
	"fmt"
	"strconv"
	"strings"
)

// DefaultSegSize is PostgreSQL's default wal_segment_size, assumed where the
// size is not known (0).
const DefaultSegSize = 16 << 20

// ParseSegSize reads the wal_segment_size setting as SHOW prints it
// ("16MB", "1GB") or as a number of bytes.
func ParseSegSize(v string) (uint64, error) {
	mult := uint64(1)
	switch {
	case strings.HasSuffix(v, "MB"):
		mult, v = 1<<20, strings.TrimSuffix(v, "MB")
	case strings.HasSuffix(v, "GB"):
		mult, v = 1<<30, strings.TrimSuffix(v, "GB")
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("wal_segment_size %q is not understood", v)
	}
	return n * mult, nil
}

// orDefault is segSize, or DefaultSegSize for 0.
func orDefault(segSize uint64) uint64 {
	if segSize == 0 {
		return DefaultSegSize
	}
	return segSize
}

// perLog is how many segments of segSize a log (4 GiB of WAL) holds.
func perLog(segSize uint64) uint64 { return (1 << 32) / orDefault(segSize) }

// Pos is the position of segment (or .partial or .backup file) n: its
// number counted from the start of WAL, for segments of segSize (0 for
// DefaultSegSize). Consecutive segments have consecutive positions,
// whatever their timeline.
func (n Name) Pos(segSize uint64) uint64 {
	return uint64(n.Log)*perLog(segSize) + uint64(n.Seg)
}

// Order is a key that orders segments by position regardless of timeline,
// without knowing the segment size (positions need it).
func (n Name) Order() uint64 { return uint64(n.Log)<<32 | uint64(n.Seg) }

// Start is the LSN where segment n starts, for segments of segSize.
func (n Name) Start(segSize uint64) LSN {
	return LSN(n.Pos(segSize) * orDefault(segSize))
}

// SegmentAt is the segment at position pos on timeline tli, for segments
// of segSize (0 for DefaultSegSize).
func SegmentAt(tli uint32, pos, segSize uint64) Name {
	per := perLog(segSize)
	log, seg := uint32(pos/per), uint32(pos%per)
	return Name{File: fmt.Sprintf("%08X%08X%08X", tli, log, seg), Kind: Segment, Timeline: tli, Log: log, Seg: seg}
}

// maxRange bounds the segments Range lists: more than any backup spans.
const maxRange = 1 << 20

// Range lists the segments from first to last, both on one timeline. A
// backup that crossed a timeline switch needs BackupWAL.
func Range(first, last string, segSize uint64) ([]string, error) {
	a, err := ParseName(first)
	if err != nil || a.Kind != Segment {
		return nil, fmt.Errorf("start segment %q is not a WAL segment name", first)
	}
	b, err := ParseName(last)
	if err != nil || b.Kind != Segment {
		return nil, fmt.Errorf("end segment %q is not a WAL segment name", last)
	}
	if err := fits(a, segSize); err != nil {
		return nil, err
	}
	if err := fits(b, segSize); err != nil {
		return nil, err
	}
	pa, pb := a.Pos(segSize), b.Pos(segSize)
	if b.Timeline != a.Timeline || pb < pa || pb-pa > maxRange {
		return nil, fmt.Errorf("WAL range %s to %s is not a backup's", first, last)
	}
	var out []string
	for p := pa; p <= pb; p++ {
		out = append(out, SegmentAt(a.Timeline, p, segSize).File)
	}
	return out, nil
}

// fits refuses a segment name that no cluster with segments of segSize
// writes: one numbered past the segments a log holds.
func fits(n Name, segSize uint64) error {
	if uint64(n.Seg) >= perLog(segSize) {
		return fmt.Errorf("%q is not the name of a WAL segment of %d bytes", n.File, orDefault(segSize))
	}
	return nil
}

// Run is a run of consecutive segments, first through last (file names).
type Run struct {
	First string `json:"first"`
	Last  string `json:"last"`
	Count int    `json:"count"`
}

// Runs groups the sorted, distinct segment positions pos of timeline tli
// into runs of consecutive segments (have) and the runs missing between
// them (gaps). Both are empty, never nil, when pos is.
func Runs(tli uint32, pos []uint64, segSize uint64) (have, gaps []Run) {
	name := func(p uint64) string { return SegmentAt(tli, p, segSize).File }
	have, gaps = []Run{}, []Run{}
	for i := 0; i < len(pos); {
		j := i
		for j+1 < len(pos) && pos[j+1] == pos[j]+1 {
			j++
		}
		have = append(have, Run{name(pos[i]), name(pos[j]), j - i + 1})
		if j+1 < len(pos) {
			a, b := pos[j]+1, pos[j+1]-1
			gaps = append(gaps, Run{name(a), name(b), int(b - a + 1)})
		}
		i = j + 1
	}
	return have, gaps
}
