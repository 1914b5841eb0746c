package wal

import (
	"errors"
	"fmt"
)

// ForkPoint is where two clusters' histories part: the timeline they
// last shared and the LSN where one of them left it. It follows wal-g's
// FindLastCommonPoint (wal_restore_handler.go): the first branch at which
// the two ancestries differ, or where the longer one leaves the end of the
// shorter one.
func ForkPoint(target, source Ancestry) (uint32, LSN, error) {
	if len(target) == len(source) {
		same := true
		for i := range target {
			same = same && target[i] == source[i]
		}
		if same {
			return 0, 0, errors.New("the two clusters have the same timeline history, so they did not part")
		}
	}
	for i, b := range target {
		if i >= len(source) {
			break
		}
		if b != source[i] {
			return b.Timeline, min(b.End, source[i].End), nil
		}
	}
	// One history goes on where the other ends: they parted where the
	// longer one left the shorter one's last timeline. (wal-g returns the
	// last shared switch instead, which fetches more than pg_rewind reads.)
	if len(target) < len(source) {
		return source[len(target)].Timeline, source[len(target)].End, nil
	}
	return target[len(source)].Timeline, target[len(source)].End, nil
}

// RewindWAL lists the WAL files pg_rewind reads from the source cluster
// that its pg_wal lacks (have reports which it holds), newest first: every
// segment the source's timeline path (its ancestry sourceHist to timeline
// sourceTLI) puts between the fork point and newest, the position of the
// newest segment in its pg_wal, as wal-g's wal-restore does.
func RewindWAL(sourceHist Ancestry, sourceTLI uint32, fork LSN, newest uint64, segSize uint64, have func(file string) bool) ([]string, error) {
	segSize = orDefault(segSize)
	from := fork.Pos(segSize)
	if newest < from {
		return nil, fmt.Errorf("the source's newest WAL segment (position %d) is before the fork point %s", newest, fork)
	}
	path := sourceHist.Path(sourceTLI, segSize)
	var out []string
	for p := newest; ; p-- {
		f := SegmentAt(path.At(p), p, segSize).File
		if !have(f) {
			out = append(out, f)
		}
		if p == from {
			break
		}
	}
	return out, nil
}
