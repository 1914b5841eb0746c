package verify

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/archive"
	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/compress"
	"github.com/tusk-backup/tusk/storage/local"
	"github.com/tusk-backup/tusk/wal"
)

// archiveOf builds an Archive of 16 MiB segments: positions per timeline,
// and timeline 2 branching from 1 at segment 5.
func archiveOf(segs map[uint32][]uint64) *Archive {
	a := &Archive{segSize: wal.DefaultSegSize}
	for _, id := range []uint32{1, 2} {
		pos, ok := segs[id]
		if !ok {
			continue
		}
		t := &Timeline{ID: id, positions: pos, Segments: len(pos)}
		if id == 2 {
			t.HasHistory = true
			t.history = wal.Ancestry{{Timeline: 1, End: 5*wal.DefaultSegSize + 0x100}}
		}
		t.Ranges, t.Gaps = wal.Runs(id, pos, wal.DefaultSegSize)
		a.Timelines = append(a.Timelines, t)
	}
	return a
}

func seq(a, b uint64) []uint64 {
	var out []uint64
	for i := a; i <= b; i++ {
		out = append(out, i)
	}
	return out
}

func TestCheck(t *testing.T) {
	backup := basebackup.Meta{Name: "b", StartWAL: "000000010000000000000003", EndWAL: "000000010000000000000004"}
	cases := []struct {
		name    string
		segs    map[uint32][]uint64
		srv     *Server
		missing []string
		waiting int
	}{
		{"complete across a switch", map[uint32][]uint64{1: seq(1, 6), 2: seq(5, 9)}, nil, nil, 0},
		{"old timeline's segment after the switch is not needed", map[uint32][]uint64{1: seq(1, 4), 2: seq(5, 9)}, nil, nil, 0},
		{"a gap on the new timeline", map[uint32][]uint64{1: seq(1, 6), 2: append(seq(5, 6), seq(8, 9)...)}, nil, []string{"000000020000000000000007"}, 0},
		{"a gap before the switch", map[uint32][]uint64{1: {1, 2, 3, 5}, 2: seq(5, 9)}, nil, []string{"000000010000000000000004"}, 0},
		{"the server has more to archive", map[uint32][]uint64{1: seq(1, 6), 2: seq(5, 9)},
			&Server{Current: "00000002000000000000000C", LastArchived: "000000020000000000000009"}, nil, 2},
		{"the archiver says archived, the archive lacks it", map[uint32][]uint64{1: seq(1, 6), 2: seq(5, 9)},
			&Server{Current: "00000002000000000000000C", LastArchived: "00000002000000000000000A"}, []string{"00000002000000000000000A"}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := archiveOf(c.segs).Check([]basebackup.Meta{backup}, c.srv)
			if !slices.Equal(r.Missing, append([]string{}, c.missing...)) && !(len(r.Missing) == 0 && len(c.missing) == 0) {
				t.Errorf("missing %v, want %v", r.Missing, c.missing)
			}
			if len(r.Waiting) != c.waiting {
				t.Errorf("waiting %v, want %d", r.Waiting, c.waiting)
			}
			if r.OK != (len(c.missing) == 0) {
				t.Errorf("ok %v (problems %v)", r.OK, r.Problems)
			}
			if r.From != "000000010000000000000003" || r.FromBackup != "b" || !slices.Equal(r.Path, []uint32{1, 2}) {
				t.Errorf("from %s (%s), path %v", r.From, r.FromBackup, r.Path)
			}
		})
	}
	noHistory := archiveOf(map[uint32][]uint64{1: seq(1, 6), 2: seq(5, 9)})
	noHistory.Timelines[1].HasHistory = false
	noHistory.Timelines[1].history = nil
	if r := noHistory.Check(nil, nil); r.OK || len(r.Problems) == 0 {
		t.Errorf("a timeline without its history file passed: %+v", r)
	}
}

// TestBackupWAL: a backup that started on timeline 1 and ended on timeline 2
// (a standby promoted during the backup) needs each segment from the
// timeline recovery reads it from, and timeline 2's history file.
func TestBackupWAL(t *testing.T) {
	st, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	hist := filepath.Join(dir, "00000002.history")
	os.WriteFile(hist, []byte("1\t0/6000100\tno recovery target specified\n"), 0o600)
	a := &archive.Archive{Store: st, Codec: compress.Default, Log: slog.New(slog.DiscardHandler)}
	m := basebackup.Meta{Name: "b", StartWAL: "000000010000000000000004", EndWAL: "000000020000000000000008", SegSize: wal.DefaultSegSize}
	got, err := BackupWAL(t.Context(), st, m)
	if err != nil || !slices.Equal(got, []string{"00000002.history"}) {
		t.Fatalf("without the history file: %v %v", got, err)
	}
	if _, err := a.Push(t.Context(), hist, archive.PushOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err = BackupWAL(t.Context(), st, m)
	want := []string{"00000002.history", "000000010000000000000004", "000000010000000000000005",
		"000000020000000000000006", "000000020000000000000007", "000000020000000000000008"}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("got %v %v, want %v", got, err, want)
	}
	m.EndWAL = "000000010000000000000006"
	if got, _ := BackupWAL(t.Context(), st, m); len(got) != 3 {
		t.Fatalf("one timeline: %v", got)
	}
}

// TestCheckExpectedGaps: wal-verify follows retention's rule. WAL between a
// permanent backup's end and the next backup's start that the archive lacks
// is an expected gap, not lost; a needed segment that is absent is lost.
func TestCheckExpectedGaps(t *testing.T) {
	mk := func(name string, first, last string, permanent bool, day int) basebackup.Meta {
		return basebackup.Meta{Name: name, StartWAL: first, EndWAL: last, Permanent: permanent,
			FinishTime: time.Date(2026, 11, day, 3, 0, 0, 0, time.UTC)}
	}
	p := mk("p", "000000010000000000000002", "000000010000000000000003", true, 1)
	q := mk("q", "000000010000000000000005", "000000010000000000000005", true, 2)
	x := mk("x", "000000010000000000000008", "000000010000000000000009", false, 3)
	x2 := mk("x2", "000000020000000000000007", "000000020000000000000007", false, 3) // on timeline 2 (which branched at 5)
	gap := func(first, last uint64, after, before string) ExpectedGap {
		return ExpectedGap{First: wal.SegmentAt(1, first, wal.DefaultSegSize).File, Last: wal.SegmentAt(1, last, wal.DefaultSegSize).File, Count: int(last - first + 1), After: after, Before: before}
	}
	cases := []struct {
		name     string
		bs       []basebackup.Meta
		segs     map[uint32][]uint64
		expected []ExpectedGap
		missing  []string
		checked  int
	}{
		{"a permanent backup, then retention", []basebackup.Meta{p, x}, map[uint32][]uint64{1: append(seq(2, 3), seq(8, 12)...)},
			[]ExpectedGap{gap(4, 7, "p", "x")}, nil, 7},
		{"nothing deleted yet: no gap", []basebackup.Meta{p, x}, map[uint32][]uint64{1: seq(2, 12)}, nil, nil, 7},
		{"a segment retention kept, then deleted meanwhile", []basebackup.Meta{p, x}, map[uint32][]uint64{1: append(seq(2, 3), 5, 8, 9, 10)},
			[]ExpectedGap{gap(4, 4, "p", "x"), gap(6, 7, "p", "x")}, nil, 5},
		{"a permanent backup's own segment is needed", []basebackup.Meta{p, x}, map[uint32][]uint64{1: append([]uint64{2}, seq(8, 12)...)},
			[]ExpectedGap{gap(4, 7, "p", "x")}, []string{"000000010000000000000003"}, 7},
		{"a segment after the window's start is needed", []basebackup.Meta{p, x}, map[uint32][]uint64{1: append(seq(2, 3), 8, 10, 11)},
			[]ExpectedGap{gap(4, 7, "p", "x")}, []string{"000000010000000000000009"}, 6},
		{"two permanent backups", []basebackup.Meta{p, q, x}, map[uint32][]uint64{1: {2, 3, 5, 8, 9}},
			[]ExpectedGap{gap(4, 4, "p", "q"), gap(6, 7, "q", "x")}, nil, 5},
		{"only permanent backups: all WAL from the newest", []basebackup.Meta{p, q}, map[uint32][]uint64{1: {2, 3, 5, 7, 9}},
			[]ExpectedGap{gap(4, 4, "p", "q")}, []string{"000000010000000000000006", "000000010000000000000008"}, 7},
		{"across a timeline switch", []basebackup.Meta{p, x2}, map[uint32][]uint64{1: {2, 3}, 2: seq(7, 9)},
			[]ExpectedGap{{First: "000000010000000000000004", Last: "000000020000000000000006", Count: 3, After: "p", Before: "x2"}}, nil, 5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := archiveOf(c.segs).Check(c.bs, nil)
			if !slices.Equal(r.Expected, append([]ExpectedGap{}, c.expected...)) {
				t.Errorf("expected gaps %+v, want %+v", r.Expected, c.expected)
			}
			if !slices.Equal(r.Missing, append([]string{}, c.missing...)) {
				t.Errorf("missing %v, want %v", r.Missing, c.missing)
			}
			if r.Checked != c.checked || r.OK != (len(c.missing) == 0) || r.Check != "presence" {
				t.Errorf("checked %d (want %d), ok %v, check %s, problems %v", r.Checked, c.checked, r.OK, r.Check, r.Problems)
			}
			if r.From != "000000010000000000000002" || r.FromBackup != "p" {
				t.Errorf("from %s (%s), want the permanent backup's start", r.From, r.FromBackup)
			}
		})
	}
}

// TestCheckUnreadableBackup: while a backup's metadata cannot be read, no
// gap is expected: the WAL it may need is checked as needed, as retention
// keeps it.
func TestCheckUnreadableBackup(t *testing.T) {
	p := basebackup.Meta{Name: "p", StartWAL: "000000010000000000000002", EndWAL: "000000010000000000000003", Permanent: true,
		FinishTime: time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC)}
	x := basebackup.Meta{Name: "x", StartWAL: "000000010000000000000008", EndWAL: "000000010000000000000009",
		FinishTime: time.Date(2026, 11, 3, 3, 0, 0, 0, time.UTC)}
	a := archiveOf(map[uint32][]uint64{1: append(seq(2, 3), seq(8, 12)...)})
	a.UnreadableBackups = []string{"backups/b1.json"}
	r := a.Check([]basebackup.Meta{p, x}, nil)
	if r.OK || len(r.Expected) != 0 || len(r.Missing) != 4 || len(r.Problems) != 1 || !strings.Contains(r.Problems[0], "backups/b1.json") {
		t.Fatalf("ok %v, expected %v, missing %v, problems %v; want the gap lost and the metadata named", r.OK, r.Expected, r.Missing, r.Problems)
	}
}

// TestContent: the content check reads every needed segment; a bit-flipped
// object and a truncated one are named, a deleted one is lost, the rest pass.
func TestContent(t *testing.T) {
	dir := t.TempDir()
	st, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	a := &archive.Archive{Store: st, Codec: compress.Default, Log: slog.New(slog.DiscardHandler)}
	src := t.TempDir()
	for i := uint64(1); i <= 6; i++ {
		name := wal.SegmentAt(1, i, wal.DefaultSegSize).File
		p := filepath.Join(src, name)
		b := make([]byte, wal.DefaultSegSize) // wal-push takes whole segments only
		copy(b[4096:], bytes.Repeat([]byte(fmt.Sprintf("segment %d ", i)), 10000))
		n, _ := wal.ParseName(name)
		copy(b, archive.LongPageHeader(n, uint32(wal.DefaultSegSize), 7000000000000000001))
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Push(t.Context(), p, archive.PushOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	key := func(i uint64) string {
		n, _ := wal.ParseName(wal.SegmentAt(1, i, wal.DefaultSegSize).File)
		return n.Key()
	}
	backups := []basebackup.Meta{{Name: "b", StartWAL: wal.SegmentAt(1, 1, wal.DefaultSegSize).File, EndWAL: wal.SegmentAt(1, 2, wal.DefaultSegSize).File}}
	check := func() Result {
		t.Helper()
		ar, err := Read(t.Context(), st, wal.DefaultSegSize, backups)
		if err != nil {
			t.Fatal(err)
		}
		r := ar.Check(backups, nil)
		var calls atomic.Int64
		if err := Content(t.Context(), &r, ContentOptions{Store: st, Concurrency: 3, Progress: func(int, int) { calls.Add(1) }}); err != nil {
			t.Fatal(err)
		}
		if r.Check != "content" || int(calls.Load()) != r.Read || r.Read != r.Checked {
			t.Errorf("check %s, read %d of %d, progress %d", r.Check, r.Read, r.Checked, calls.Load())
		}
		return r
	}
	if r := check(); !r.OK || r.Read != 6 || len(r.Corrupt) != 0 {
		t.Fatalf("an intact archive: %+v", r)
	}

	// Flip one bit in the middle of segment 3, cut segment 5 short.
	p3 := filepath.Join(dir, filepath.FromSlash(key(3)))
	b, err := os.ReadFile(p3)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x10
	os.WriteFile(p3, b, 0o600)
	p5 := filepath.Join(dir, filepath.FromSlash(key(5)))
	b, _ = os.ReadFile(p5)
	os.WriteFile(p5, b[:len(b)-9], 0o600)
	ar, err := Read(t.Context(), st, wal.DefaultSegSize, backups)
	if err != nil {
		t.Fatal(err)
	}
	r := ar.Check(backups, nil)
	if !r.OK {
		t.Fatalf("the presence check failed on damaged objects: %+v", r)
	}
	// Segment 6 goes after the listing: reading it finds it lost.
	os.Remove(filepath.Join(dir, filepath.FromSlash(key(6))))
	if err := Content(t.Context(), &r, ContentOptions{Store: st, Concurrency: 2}); err != nil {
		t.Fatal(err)
	}
	var objects []string
	for _, c := range r.Corrupt {
		objects = append(objects, c.Object)
	}
	if r.OK || !slices.Equal(objects, []string{key(3), key(5)}) || !slices.Equal(r.Missing, []string{wal.SegmentAt(1, 6, wal.DefaultSegSize).File}) {
		t.Fatalf("corrupt %v, missing %v, ok %v", r.Corrupt, r.Missing, r.OK)
	}
	for _, c := range r.Corrupt {
		if strings.HasPrefix(c.Error, "wal/") || c.Error == "" {
			t.Errorf("problem %q repeats the object or says nothing", c.Error)
		}
	}
}
