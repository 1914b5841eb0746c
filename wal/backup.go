package wal

import "fmt"

// BackupWAL lists the WAL files a backup needs, in the order recovery reads
// them: every segment from its start segment to its end segment (the
// segment holding its end LSN), for segments of segSize (0 for
// DefaultSegSize).
//
// A backup that ended on a later timeline than it started (taken from a
// standby that followed a promotion of its upstream during the backup)
// needs the end timeline's history file, listed first, and each segment
// from the timeline recovery reads it from along that history (Path); the
// segment holding a switch point comes from the child timeline. history
// returns timeline tli's ancestry (its history file, parsed); it is called
// only for such a backup, and its error is returned as it is.
func BackupWAL(start, end string, segSize uint64, history func(tli uint32) (Ancestry, error)) ([]string, error) {
	a, err1 := ParseSegment(start)
	b, err2 := ParseSegment(end)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("start %q or end %q is not a WAL segment name", start, end)
	}
	if err := fits(a, segSize); err != nil {
		return nil, err
	}
	if err := fits(b, segSize); err != nil {
		return nil, err
	}
	if a.Timeline == b.Timeline {
		return Range(start, end, segSize)
	}
	pa, pb := a.Pos(segSize), b.Pos(segSize)
	if b.Timeline < a.Timeline || pb < pa || pb-pa > maxRange {
		return nil, fmt.Errorf("WAL range %s to %s is not a backup's", start, end)
	}
	h, err := history(b.Timeline)
	if err != nil {
		return nil, err
	}
	path := h.Path(b.Timeline, segSize)
	out := []string{HistoryFile(b.Timeline)}
	for p := pa; p <= pb; p++ {
		out = append(out, SegmentAt(path.At(p), p, segSize).File)
	}
	return out, nil
}
