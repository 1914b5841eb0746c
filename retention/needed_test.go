package retention

import (
	"testing"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/wal"
)

func TestNeededWAL(t *testing.T) {
	type want struct {
		file          string
		keep          bool
		after, before string // for a file not kept: what Around names
	}
	tests := []struct {
		name     string
		bs       []basebackup.Meta
		running  []string
		from     string
		fromName string
		files    []want
	}{
		{"no backups: everything", nil, nil, "", "", []want{
			{file: seg(1, 1), keep: true}, {file: seg(3, 0x40), keep: true},
		}},
		{"from the oldest ordinary backup, on every timeline", []basebackup.Meta{backup("x", "A", 1, 0x10, 0x11, false), backup("y", "A", 2, 0x19, 0x19, false)}, nil,
			seg(1, 0x10), "x", []want{
				{file: seg(1, 0xF), before: "x"}, {file: seg(1, 0x10), keep: true}, {file: seg(2, 0x10), keep: true},
				{file: seg(2, 0x5), before: "x"}, {file: "00000002.history", keep: true},
				{file: seg(1, 0x5) + ".00000028.backup", before: "x"}, {file: seg(1, 0x18) + ".partial", keep: true},
			}},
		{"a permanent backup keeps its own range; the gap after it is expected", []basebackup.Meta{backup("p", "A", 1, 0x3, 0x5, true), backup("x", "A", 2, 0x10, 0x11, false)}, nil,
			seg(1, 0x10), "x", []want{
				{file: seg(1, 0x2), before: "p"}, {file: seg(1, 0x3), keep: true}, {file: seg(1, 0x5), keep: true},
				{file: seg(1, 0x6), after: "p", before: "x"}, {file: seg(1, 0xF), after: "p", before: "x"},
				{file: seg(1, 0x10), keep: true},
			}},
		{"a permanent backup newer than the oldest ordinary one changes nothing", []basebackup.Meta{backup("x", "A", 1, 0x3, 0x4, false), backup("p", "A", 2, 0x8, 0x9, true)}, nil,
			seg(1, 0x3), "x", []want{{file: seg(1, 0x2), before: "x"}, {file: seg(1, 0x6), keep: true}}},
		{"only permanent backups: the window from the newest", []basebackup.Meta{backup("p", "A", 1, 0x3, 0x4, true), backup("q", "A", 2, 0x8, 0x9, true)}, nil,
			seg(1, 0x8), "q", []want{
				{file: seg(1, 0x4), keep: true}, {file: seg(1, 0x5), after: "p", before: "q"}, {file: seg(1, 0x7), after: "p", before: "q"},
				{file: seg(1, 0x20), keep: true},
			}},
		{"two permanent backups before the window", []basebackup.Meta{backup("p", "A", 1, 0x3, 0x4, true), backup("q", "A", 2, 0x8, 0x9, true), backup("x", "A", 3, 0x10, 0x10, false)}, nil,
			seg(1, 0x10), "x", []want{
				{file: seg(1, 0x5), after: "p", before: "q"}, {file: seg(1, 0x8), keep: true}, {file: seg(1, 0xA), after: "q", before: "x"},
			}},
		{"a running backup-push moves the window back", []basebackup.Meta{backup("x", "A", 1, 0x10, 0x11, false)}, []string{seg(1, 0x8)},
			seg(1, 0x8), "an unfinished backup", []want{{file: seg(1, 0x7), before: "an unfinished backup"}, {file: seg(1, 0x8), keep: true}}},
		{"a running backup-push after the window changes nothing", []basebackup.Meta{backup("x", "A", 1, 0x10, 0x11, false)}, []string{seg(1, 0x18)},
			seg(1, 0x10), "x", []want{{file: seg(1, 0xF), before: "x"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := NeededWAL(tc.bs, tc.running)
			if err != nil {
				t.Fatal(err)
			}
			if n.All != (tc.bs == nil) || n.From != tc.from || n.FromBackup != tc.fromName {
				t.Errorf("all %v, from %s (%s), want %s (%s)", n.All, n.From, n.FromBackup, tc.from, tc.fromName)
			}
			for _, w := range tc.files {
				name, err := wal.ParseName(w.file)
				if err != nil {
					t.Fatal(err)
				}
				if got := n.Keeps(name); got != w.keep {
					t.Errorf("Keeps(%s) = %v, want %v", w.file, got, w.keep)
				}
				if w.keep {
					continue
				}
				if after, before := n.Around(name); after != w.after || before != w.before {
					t.Errorf("Around(%s) = %q, %q; want %q, %q", w.file, after, before, w.after, w.before)
				}
			}
		})
	}
	bad := backup("b", "A", 1, 1, 1, false)
	bad.EndWAL = "nope"
	if _, err := NeededWAL([]basebackup.Meta{bad}, nil); err == nil {
		t.Error("a backup whose end WAL is not a segment name was accepted")
	}
}
