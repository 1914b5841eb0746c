package verify

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tusk-backup/tusk/archive"
	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/compress"
	"github.com/tusk-backup/tusk/storage/local"
)

func TestParseHistory(t *testing.T) {
	h, err := parseHistory(strings.NewReader("1\t0/5000000\tno recovery target specified\n\n2\t0/9000A28\tat restore point \"x\"\n"))
	if err != nil || len(h) != 2 || h[0] != (branch{1, 0x5000000}) || h[1] != (branch{2, 0x9000A28}) {
		t.Fatalf("%v %v", h, err)
	}
	if _, err := parseHistory(strings.NewReader("1\tnot-an-lsn\n")); err == nil {
		t.Fatal("bad LSN accepted")
	}
}

// archiveOf builds an Archive of 16 MiB segments: positions per timeline,
// and timeline 2 branching from 1 at segment 5.
func archiveOf(segs map[uint32][]uint64) *Archive {
	a := &Archive{segSize: defaultSegSize}
	for _, id := range []uint32{1, 2} {
		pos, ok := segs[id]
		if !ok {
			continue
		}
		t := &Timeline{ID: id, positions: pos, Segments: len(pos)}
		if id == 2 {
			t.HasHistory = true
			t.history = []branch{{1, 5*defaultSegSize + 0x100}}
		}
		t.Ranges, t.Gaps = runs(id, pos, defaultSegSize)
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
	backup := basebackup.Meta{Name: "b", StartWAL: "000000010000000000000003"}
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

func TestRuns(t *testing.T) {
	have, gaps := runs(1, []uint64{1, 2, 3, 7, 9, 10}, defaultSegSize)
	if len(have) != 3 || have[0].Count != 3 || len(gaps) != 2 || gaps[0].First != "000000010000000000000004" || gaps[0].Count != 3 {
		t.Fatalf("have %v gaps %v", have, gaps)
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
	m := basebackup.Meta{Name: "b", StartWAL: "000000010000000000000004", EndWAL: "000000020000000000000008", SegSize: defaultSegSize}
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
