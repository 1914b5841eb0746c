package wal

import "testing"

func TestParseName(t *testing.T) {
	t.Parallel()
	good := []struct {
		in       string
		kind     Kind
		tli      uint32
		log, seg uint32
		key      string
	}{
		{"000000010000000000000042", Segment, 1, 0, 0x42, "wal/0000000100000000/000000010000000000000042"},
		{"0000000A00000003000000FF", Segment, 10, 3, 0xFF, "wal/0000000A00000003/0000000A00000003000000FF"},
		{"00000002.history", History, 2, 0, 0, "wal/timelines/00000002.history"},
		{"000000010000000000000042.partial", Partial, 1, 0, 0x42, "wal/0000000100000000/000000010000000000000042.partial"},
		{"000000010000000000000002.00000028.backup", BackupHistory, 1, 0, 2, "wal/0000000100000000/000000010000000000000002.00000028.backup"},
	}
	for _, g := range good {
		t.Run(g.in, func(t *testing.T) {
			n, err := ParseName(g.in)
			if err != nil {
				t.Fatalf("ParseName(%q): %v", g.in, err)
			}
			if n.Kind != g.kind || n.Timeline != g.tli || n.Log != g.log || n.Seg != g.seg || n.Key() != g.key || n.File != g.in {
				t.Errorf("ParseName(%q) = %+v key %s", g.in, n, n.Key())
			}
			if back, ok := NameOf(g.key); !ok || back != n {
				t.Errorf("NameOf(%q) = %+v %v, want %+v", g.key, back, ok, n)
			}
		})
	}
	for _, bad := range []string{"", "00000001000000000000004", "000000010000000000000042x", "00000000000000000000000A",
		"0000000100000000000000g2", "000000010000000000000042.PARTIAL", "0000000g.history", "00000000.history",
		"../000000010000000000000042", "RECOVERYXLOG", "000000010000000000000042.backup"} {
		if _, err := ParseName(bad); err == nil {
			t.Errorf("ParseName(%q) accepted a bad name", bad)
		}
	}
}

func TestParseSegment(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in string
		ok bool
	}{
		{"000000010000000000000042", true},
		{"00000002.history", false},
		{"000000010000000000000042.partial", false},
		{"000000010000000000000002.00000028.backup", false},
		{"junk", false},
	}
	for _, tt := range tests {
		n, err := ParseSegment(tt.in)
		if (err == nil) != tt.ok || (tt.ok && n.File != tt.in) {
			t.Errorf("ParseSegment(%q) = %+v, %v", tt.in, n, err)
		}
	}
}

func TestNameOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key string
		ok  bool
	}{
		{"wal/0000000100000000/000000010000000000000042", true},
		{"wal/timelines/00000002.history", true},
		{"wal/000000010000000000000042", false},                  // not in its folder
		{"wal/0000000100000001/000000010000000000000042", false}, // the wrong folder
		{"wal/0000000100000000/00000002.history", false},
		{"wal/0000000100000000/notes.txt", false},
		{"backups/x.json", false},
		{"000000010000000000000042", false},
	}
	for _, tt := range tests {
		if _, ok := NameOf(tt.key); ok != tt.ok {
			t.Errorf("NameOf(%q) ok = %v, want %v", tt.key, ok, tt.ok)
		}
	}
}

func TestHistoryFileAndKind(t *testing.T) {
	t.Parallel()
	if got := HistoryFile(0x1A); got != "0000001A.history" {
		t.Errorf("HistoryFile(0x1A) = %s", got)
	}
	for k, want := range map[Kind]string{Segment: "segment", History: "history file", Partial: "partial segment", BackupHistory: "backup history file", 0: "unknown"} {
		if k.String() != want {
			t.Errorf("Kind(%d) = %s, want %s", k, k, want)
		}
	}
}
