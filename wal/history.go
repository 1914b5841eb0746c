package wal

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Branch is one line of a timeline history file: an ancestor timeline and
// the LSN where it ended and its child began.
type Branch struct {
	Timeline uint32
	End      LSN
}

// Ancestry is a timeline's ancestors as its history file lists them, oldest
// first. Timeline 1 has none.
type Ancestry []Branch

// ParseHistory reads a timeline history file: one line per ancestor,
// "parent_tli<TAB>switch_lsn<TAB>reason", oldest first; blank lines and
// lines starting with # are skipped.
func ParseHistory(r io.Reader) (Ancestry, error) {
	var out Ancestry
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			return nil, fmt.Errorf("history line %q has no switch point", line)
		}
		tli, err := strconv.ParseUint(f[0], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("history line %q: bad timeline", line)
		}
		lsn, err := ParseLSN(f[1])
		if err != nil {
			return nil, fmt.Errorf("history line %q: %v", line, err)
		}
		out = append(out, Branch{Timeline: uint32(tli), End: lsn})
	}
	return out, sc.Err()
}

// Step is one timeline of a Path and the position of the first segment
// recovery reads from it.
type Step struct {
	Timeline uint32
	From     uint64
}

// Path is the timelines recovery reads, oldest first, to reach one
// timeline: each ancestor up to the segment holding its switch point,
// whose copy on the child timeline is the one read (the parent's is
// archived as .partial).
type Path []Step

// Path is the path to timeline tli, whose ancestry h is, for segments of
// segSize (0 for DefaultSegSize).
func (h Ancestry) Path(tli uint32, segSize uint64) Path {
	var p Path
	from := uint64(0)
	for _, b := range h {
		p = append(p, Step{Timeline: b.Timeline, From: from})
		from = b.End.Pos(orDefault(segSize))
	}
	return append(p, Step{Timeline: tli, From: from})
}

// At is the timeline recovery reads the segment at position pos from.
func (p Path) At(pos uint64) uint32 {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i].From <= pos {
			return p[i].Timeline
		}
	}
	return p[0].Timeline
}

// Timelines lists the path's timelines, oldest first.
func (p Path) Timelines() []uint32 {
	out := make([]uint32, len(p))
	for i, s := range p {
		out[i] = s.Timeline
	}
	return out
}
