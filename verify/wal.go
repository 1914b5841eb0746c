// Package verify reads the WAL archive as a whole: which timelines it holds,
// how they branch (their history files), which segments each has, and
// whether every segment point-in-time recovery needs is there (and, with
// Content, intact). What "needs" means is retention's rule (NeededWAL), so
// a gap that retention made on purpose is expected, not lost.
package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/tusk-backup/tusk/archive"
	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/retention"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/wal"
)

// Archive is what the repository's WAL archive holds.
type Archive struct {
	Timelines []*Timeline `json:"timelines"` // by ID
	// Others counts objects under wal/ that are not WAL file names, and
	// wal-g's objects under wal_005/ that are not WAL files (its .json
	// metadata, delta maps).
	Others int `json:"other_objects"`
	// WALG counts the WAL files read from wal-g's layout (wal_005/), which
	// the timelines include beside tusk's own.
	WALG int `json:"walg_files"`
	// UnreadableWAL are objects in wal-g's layout that hold a WAL file in
	// a form tusk cannot read (wal-g's .lzo, an unknown extension).
	UnreadableWAL []string `json:"unreadable_wal,omitempty"`
	// HistoryErrors are history files that could not be read.
	HistoryErrors []string `json:"history_errors"`
	// UnreadableBackups are metadata objects of backups that could not be
	// read (set by the caller, which lists the backups): while there are
	// any, nobody can tell which WAL they need, so Check takes all of it as
	// needed, as retention does.
	UnreadableBackups []string `json:"unreadable_backups,omitempty"`
	segSize           uint64
}

// Timeline is one timeline's part of the archive.
type Timeline struct {
	ID uint32 `json:"timeline"`
	// Parent and Switch say where this timeline branched off (from its
	// history file); Parent is 0 for timeline 1 or without a history file.
	Parent     uint32 `json:"parent_timeline"`
	Switch     string `json:"switch_lsn,omitempty"`
	HasHistory bool   `json:"history_file"`
	// history is the whole ancestry, from the history file.
	history wal.Ancestry

	Segments int       `json:"segments"`
	Bytes    int64     `json:"bytes"`
	Ranges   []wal.Run `json:"ranges"` // runs of consecutive segments
	Gaps     []wal.Run `json:"gaps"`   // missing runs between them
	Partial  []string  `json:"partial_segments"`
	Backups  []string  `json:"backups"` // backups that start on this timeline

	positions []uint64 // sorted segment numbers
}

// Read lists the WAL archive, tusk's layout and wal-g's (wal_005/) as one,
// and reads every timeline history file. segSize is the cluster's
// wal_segment_size (0 for 16 MiB).
func Read(ctx context.Context, st storage.Storage, segSize uint64, backups []basebackup.Meta) (*Archive, error) {
	if segSize == 0 {
		segSize = wal.DefaultSegSize
	}
	a := &Archive{segSize: segSize}
	byID := map[uint32]*Timeline{}
	get := func(id uint32) *Timeline {
		t := byID[id]
		if t == nil {
			t = &Timeline{ID: id}
			byID[id] = t
		}
		return t
	}
	var histories []wal.Name
	historyKeys := map[string]string{}
	add := func(o storage.Object, n wal.Name) {
		t := get(n.Timeline)
		switch n.Kind {
		case wal.Segment:
			t.Segments++
			t.Bytes += o.Size
			t.positions = append(t.positions, n.Pos(segSize))
		case wal.Partial:
			t.Partial = append(t.Partial, n.File)
			t.Bytes += o.Size
		case wal.History:
			t.HasHistory = true
			if historyKeys[n.File] == "" {
				historyKeys[n.File] = o.Key // tusk's own, listed first, is the one read
				histories = append(histories, n)
			}
		case wal.BackupHistory:
			t.Bytes += o.Size
		}
	}
	err := wal.List(ctx, st, wal.Prefix, func(o storage.Object, n wal.Name, ok bool) error {
		if !ok {
			a.Others++
			return nil
		}
		add(o, n)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list WAL: %w", err)
	}
	err = st.List(ctx, archive.WALGPrefix, func(o storage.Object) error {
		n, known, ok := archive.WALGKeyOf(o.Key)
		switch {
		case !ok:
			a.Others++
		case !known:
			a.UnreadableWAL = append(a.UnreadableWAL, o.Key)
		default:
			a.WALG++
			add(o, n)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list wal-g's WAL: %w", err)
	}
	reader := &archive.Archive{Store: st}
	for _, n := range histories {
		var buf bytes.Buffer
		if _, err := reader.Check(ctx, n.File, &buf); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if !errors.Is(err, archive.ErrCorrupt) && !errors.Is(err, archive.ErrUnreadable) && !errors.Is(err, storage.ErrNotFound) {
				return nil, err
			}
			a.HistoryErrors = append(a.HistoryErrors, fmt.Sprintf("%s: %v", historyKeys[n.File], err))
			continue
		}
		h, err := wal.ParseHistory(&buf)
		if err != nil {
			a.HistoryErrors = append(a.HistoryErrors, fmt.Sprintf("%s: %v", historyKeys[n.File], err))
			continue
		}
		t := get(n.Timeline)
		t.history = h
		if len(h) > 0 {
			last := h[len(h)-1]
			t.Parent, t.Switch = last.Timeline, last.End.String()
		}
	}
	for _, m := range backups {
		if n, err := wal.ParseName(m.StartWAL); err == nil {
			get(n.Timeline).Backups = append(get(n.Timeline).Backups, m.Name)
		}
	}
	for _, t := range byID {
		slices.Sort(t.positions)
		t.positions = slices.Compact(t.positions)
		t.Segments = len(t.positions) // a segment in both layouts is one
		slices.Sort(t.Partial)
		t.Partial = slices.Compact(t.Partial)
		t.Ranges, t.Gaps = wal.Runs(t.ID, t.positions, segSize)
		a.Timelines = append(a.Timelines, t)
	}
	slices.SortFunc(a.Timelines, func(x, y *Timeline) int { return int(x.ID) - int(y.ID) })
	return a, nil
}

// Server is what a running server says of its WAL, for Check.
type Server struct {
	Current      string // the segment being written (pg_walfile_name(pg_current_wal_lsn()), "" on a standby)
	LastArchived string // pg_stat_archiver.last_archived_wal ("" if none)
}

// Result is wal-verify's verdict.
type Result struct {
	OK bool `json:"ok"`
	// Check is what was checked: "presence" (Check: every needed segment is
	// listed) or "content" (Content too: each was read, decompressed and its
	// checksum verified).
	Check      string   `json:"check"`
	Timeline   uint32   `json:"timeline"`      // the newest timeline, whose ancestry is followed
	Path       []uint32 `json:"timeline_path"` // oldest first
	From       string   `json:"from"`          // first segment required
	FromBackup string   `json:"from_backup,omitempty"`
	To         string   `json:"to"`      // newest archived segment on the path
	Checked    int      `json:"checked"` // needed segments from From to To
	// Read counts the segments Content read and verified.
	Read    int      `json:"read"`
	Missing []string `json:"missing"` // lost: needed and not archived
	// Corrupt are the needed segments whose objects failed the content check.
	Corrupt []basebackup.Problem `json:"corrupt"`
	// Expected are runs of segments that are not archived and that no backup
	// needs: retention deleted them between a permanent backup's end and the
	// next backup's start.
	Expected []ExpectedGap `json:"expected_gaps"`
	Waiting  []string      `json:"waiting,omitempty"` // not yet archived by a running server
	Problems []string      `json:"problems"`

	present []segRef // the needed segments that are archived, for Content
	segSize uint64
}

// segRef is a segment by timeline and position: 16 bytes, where an
// wal.Name with its file name takes about 64, and Check keeps one per
// needed segment.
type segRef struct {
	tli uint32
	pos uint64
}

// ExpectedGap is a run of segments absent from the archive that no backup
// needs (retention.NeededWAL): it lies after the end of permanent backup
// After ("" if none) and before the start of backup Before.
type ExpectedGap struct {
	First  string `json:"first"`
	Last   string `json:"last"`
	Count  int    `json:"count"`
	After  string `json:"after_permanent_backup,omitempty"`
	Before string `json:"before_backup"`
}

// Check follows the newest timeline's ancestry from the oldest backup on it
// (or the oldest archived segment) to the newest archived segment and lists
// every segment recovery would ask for that is not archived. A segment that
// no backup needs by retention's rule (retention.NeededWAL: between a
// permanent backup's end and the next backup's start) is not required; if
// it is absent, it is reported as an expected gap. With a server, segments
// after the newest archived one up to the server's current segment are
// reported as waiting if the archiver has not reported them archived, and as
// missing if it has. Check reads nothing: it only compares listings.
func (a *Archive) Check(backups []basebackup.Meta, srv *Server) Result {
	r := Result{Check: "presence", Missing: []string{}, Corrupt: []basebackup.Problem{}, Expected: []ExpectedGap{}, Problems: []string{}, segSize: a.segSize}
	var target *Timeline
	for _, t := range a.Timelines {
		if t.Segments > 0 {
			target = t
		}
	}
	if target == nil {
		r.Problems = append(r.Problems, "the archive holds no WAL segments")
		return r
	}
	r.Timeline = target.ID
	for _, e := range a.HistoryErrors {
		r.Problems = append(r.Problems, e)
	}
	for _, key := range a.UnreadableWAL {
		r.Problems = append(r.Problems, fmt.Sprintf("%s holds a WAL file in a form tusk cannot read (wal-g's .lzo, or an extension tusk does not know)", key))
	}
	if target.ID > 1 && !target.HasHistory {
		r.Problems = append(r.Problems, fmt.Sprintf("history file %s of timeline %d is not in the archive, so recovery cannot follow it", wal.HistoryFile(target.ID), target.ID))
	}
	need, err := retention.NeededWAL(backups, nil)
	if err != nil {
		r.Problems = append(r.Problems, fmt.Sprintf("cannot tell which WAL the backups need, so all of it is checked: %v", err))
		need = retention.Needed{All: true}
	}
	for _, key := range a.UnreadableBackups {
		r.Problems = append(r.Problems, fmt.Sprintf("backup metadata %s cannot be read, so which WAL it needs is unknown and all of it is checked as needed", key))
		need = retention.Needed{All: true}
	}
	steps := target.history.Path(target.ID, a.segSize)
	path := steps.Timelines()
	r.Path = path
	byID := map[uint32]*Timeline{}
	for _, t := range a.Timelines {
		byID[t.ID] = t
	}
	has := func(tli uint32, pos uint64) bool {
		t := byID[tli]
		if t == nil {
			return false
		}
		_, ok := slices.BinarySearch(t.positions, pos)
		return ok
	}

	// From: the oldest backup that starts on the path; else the oldest
	// segment on the path.
	from := uint64(1<<64 - 1)
	for _, m := range backups {
		n, err := wal.ParseName(m.StartWAL)
		if err != nil || !slices.Contains(path, n.Timeline) {
			continue
		}
		if p := n.Pos(a.segSize); p < from {
			from, r.FromBackup = p, m.Name
		}
	}
	if r.FromBackup == "" {
		for _, step := range steps {
			if t := byID[step.Timeline]; t != nil && len(t.positions) > 0 {
				for _, p := range t.positions {
					if p >= step.From {
						from = min(from, p)
						break
					}
				}
			}
		}
	}
	to := target.positions[len(target.positions)-1]
	if from > to {
		from = to
	}
	r.From, r.To = wal.SegmentAt(steps.At(from), from, a.segSize).File, wal.SegmentAt(target.ID, to, a.segSize).File
	var segments uint64
	for _, tli := range path {
		if t := byID[tli]; t != nil {
			segments += uint64(len(t.positions))
		}
	}
	r.present = make([]segRef, 0, min(segments, to-from+1))
	var gap *ExpectedGap
	for p := from; p <= to; p++ {
		tli := steps.At(p)
		n := wal.SegmentAt(tli, p, a.segSize)
		present := has(tli, p)
		if !need.Keeps(n) {
			switch {
			case present:
				gap = nil
			case gap != nil:
				gap.Last, gap.Count = wal.SegmentAt(tli, p, a.segSize).File, gap.Count+1
			default:
				after, before := need.Around(n)
				file := wal.SegmentAt(tli, p, a.segSize).File
				r.Expected = append(r.Expected, ExpectedGap{First: file, Last: file, Count: 1, After: after, Before: before})
				gap = &r.Expected[len(r.Expected)-1]
			}
			continue
		}
		gap = nil
		r.Checked++
		if present {
			r.present = append(r.present, segRef{tli, p})
		} else {
			r.Missing = append(r.Missing, wal.SegmentAt(tli, p, a.segSize).File)
		}
	}
	if srv != nil {
		// Segments the archiver reports archived must be in the archive;
		// later ones before the current segment are still waiting.
		var last, cur uint64
		// A .backup file is archived after the segment it names.
		if la, err := wal.ParseName(srv.LastArchived); err == nil && (la.Kind == wal.Segment || la.Kind == wal.BackupHistory) && la.Timeline == target.ID {
			last = la.Pos(a.segSize)
		}
		if c, err := wal.ParseName(srv.Current); err == nil && c.Timeline == target.ID {
			cur = c.Pos(a.segSize)
		}
		for p := to + 1; p <= max(last, cur); p++ {
			name := wal.SegmentAt(target.ID, p, a.segSize).File
			switch {
			case p <= last:
				r.Missing = append(r.Missing, name)
			case p < cur:
				r.Waiting = append(r.Waiting, name)
			}
		}
	}
	r.OK = len(r.Missing) == 0 && len(r.Problems) == 0
	return r
}

// ContentOptions are Content's settings.
type ContentOptions struct {
	Store       storage.Storage
	Concurrency int // objects read at a time (TUSK_DOWNLOAD_CONCURRENCY)
	// Progress, if set, hears of each segment read (from several goroutines).
	Progress func(done, total int)
}

// Content reads every needed segment that r found archived, as wal-fetch
// would: it decompresses the object and verifies its size and the XXH3-128
// checksum wal-push recorded. A damaged object is added to r.Corrupt, a
// segment deleted since the listing to r.Missing; r.Check becomes "content"
// and r.OK is decided again. It returns an error only when the storage
// fails (or ctx ends), since then nothing can be said of the rest.
func Content(ctx context.Context, r *Result, opts ContentOptions) error {
	reader := &archive.Archive{Store: opts.Store}
	var mu sync.Mutex
	var done atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(opts.Concurrency, 1))
	for _, ref := range r.present {
		file := wal.SegmentAt(ref.tli, ref.pos, r.segSize).File
		g.Go(func() error {
			n, err := wal.ParseName(file)
			if err != nil {
				return err
			}
			_, err = reader.Check(gctx, file, io.Discard)
			d := done.Add(1)
			if opts.Progress != nil {
				opts.Progress(int(d), len(r.present))
			}
			switch {
			case err == nil:
				return nil
			case errors.Is(err, archive.ErrCorrupt), errors.Is(err, archive.ErrUnreadable):
				key := n.Key()
				if o, serr := archive.Stat(gctx, opts.Store, n); serr == nil {
					key = o.Key // wal-g's, where tusk's layout lacks it
				}
				msg := strings.TrimPrefix(strings.TrimPrefix(err.Error(), key+": "), key+" (wal-g's): ")
				mu.Lock()
				r.Corrupt = append(r.Corrupt, basebackup.Problem{Object: key, Error: msg})
				mu.Unlock()
				return nil
			case errors.Is(err, storage.ErrNotFound) && gctx.Err() == nil:
				mu.Lock()
				r.Missing = append(r.Missing, n.File)
				mu.Unlock()
				return nil
			}
			return fmt.Errorf("read WAL segment %s: %w", n.File, err)
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	slices.SortFunc(r.Corrupt, func(x, y basebackup.Problem) int { return strings.Compare(x.Object, y.Object) })
	slices.Sort(r.Missing)
	r.Check, r.Read = "content", int(done.Load())
	r.OK = len(r.Missing) == 0 && len(r.Corrupt) == 0 && len(r.Problems) == 0
	return nil
}

// BackupWAL lists the WAL files backup m needs (wal.BackupWAL), reading a
// history file from st when the backup ended on a later timeline than it
// started. A history file that is missing or damaged is what it lists then:
// the one file known to be needed and absent.
func BackupWAL(ctx context.Context, st storage.Storage, m basebackup.Meta) ([]string, error) {
	var unreadable string
	files, err := wal.BackupWAL(m.StartWAL, m.EndWAL, m.SegSize, func(tli uint32) (wal.Ancestry, error) {
		h, err := (&archive.Archive{Store: st}).History(ctx, tli)
		if errors.Is(err, storage.ErrNotFound) || errors.Is(err, archive.ErrCorrupt) {
			unreadable = wal.HistoryFile(tli)
		}
		return h, err
	})
	switch {
	case unreadable != "":
		return []string{unreadable}, nil
	case err != nil:
		return nil, fmt.Errorf("backup %s: %w", m.Name, err)
	}
	return files, nil
}
