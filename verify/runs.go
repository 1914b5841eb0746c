package verify

import (
	"cmp"
	"slices"

	"github.com/tusk-backup/tusk/wal"
)

// Segment statuses of wal-g's wal-verify integrity report.
const (
	SegmentFound   = "FOUND"
	SegmentLost    = "MISSING_LOST"
	SegmentDelayed = "MISSING_DELAYED" // not archived yet by a running server (Waiting)
)

// SegmentRun is a run of consecutive segments on one timeline with one
// status, as wal-g's wal-verify integrity reports them.
type SegmentRun struct {
	Timeline uint32 `json:"timeline_id"`
	First    string `json:"start_segment"`
	Last     string `json:"end_segment"`
	Count    int    `json:"segments_count"`
	Status   string `json:"status"`
}

// Runs are the needed segments Check looked at (present, Missing, and
// Waiting), oldest first, in runs of one timeline and status. The
// expected gaps, which no backup needs, are not among them.
func (r Result) Runs() []SegmentRun {
	type seg struct {
		tli    uint32
		pos    uint64
		status string
	}
	segs := make([]seg, 0, len(r.present)+len(r.Missing)+len(r.Waiting))
	for _, p := range r.present {
		segs = append(segs, seg{p.tli, p.pos, SegmentFound})
	}
	for _, list := range []struct {
		names  []string
		status string
	}{{r.Missing, SegmentLost}, {r.Waiting, SegmentDelayed}} {
		for _, f := range list.names {
			if n, err := wal.ParseName(f); err == nil {
				segs = append(segs, seg{n.Timeline, n.Pos(r.segSize), list.status})
			}
		}
	}
	slices.SortStableFunc(segs, func(a, b seg) int { return cmp.Or(cmp.Compare(a.pos, b.pos), cmp.Compare(a.tli, b.tli)) })
	var out []SegmentRun
	for i, s := range segs {
		file := wal.SegmentAt(s.tli, s.pos, r.segSize).File
		if i > 0 {
			prev, last := segs[i-1], &out[len(out)-1]
			if prev.tli == s.tli && prev.status == s.status && prev.pos+1 == s.pos {
				last.Last, last.Count = file, last.Count+1
				continue
			}
		}
		out = append(out, SegmentRun{Timeline: s.tli, First: file, Last: file, Count: 1, Status: s.status})
	}
	return out
}
