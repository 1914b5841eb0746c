package wal

import (
	"slices"
	"testing"
)

func TestParseSegSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want uint64 // 0: refused
	}{
		{"16MB", 16 << 20},
		{"1MB", 1 << 20},
		{"1GB", 1 << 30},
		{"16777216", 16 << 20},
		{"0", 0},
		{"", 0},
		{"MB", 0},
		{"16kB", 0},
		{"-1MB", 0},
	}
	for _, tt := range tests {
		got, err := ParseSegSize(tt.in)
		if got != tt.want || (err == nil) != (tt.want != 0) {
			t.Errorf("ParseSegSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestPositions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file    string
		segSize uint64
		pos     uint64
		start   LSN
	}{
		{"000000010000000000000000", 16 << 20, 0, 0},
		{"0000000100000000000000FF", 16 << 20, 0xFF, 0xFF000000},
		{"000000020000000100000000", 0, 0x100, 0x100000000}, // 0: the default size
		{"000000010000000A00000003", 1 << 30, 10*4 + 3, 0xAC0000000},
		{"000000010000000200000FFF", 1 << 20, 2*4096 + 4095, 0x2FFF00000},
		{"000000010000000000000042.partial", 16 << 20, 0x42, 0x42000000},
	}
	for _, tt := range tests {
		n, err := ParseName(tt.file)
		if err != nil {
			t.Fatal(err)
		}
		if got := n.Pos(tt.segSize); got != tt.pos {
			t.Errorf("%s.Pos(%d) = %#x, want %#x", tt.file, tt.segSize, got, tt.pos)
		}
		if got := n.Start(tt.segSize); got != tt.start {
			t.Errorf("%s.Start(%d) = %s, want %s", tt.file, tt.segSize, got, tt.start)
		}
		if got := SegmentAt(n.Timeline, tt.pos, tt.segSize); got.File != tt.file[:24] || got.Log != n.Log || got.Seg != n.Seg || got.Kind != Segment {
			t.Errorf("SegmentAt(%d, %#x, %d) = %+v, want %s", n.Timeline, tt.pos, tt.segSize, got, tt.file[:24])
		}
	}
	if got := SegmentAt(1, 0x100, 16<<20).File; got != "000000010000000100000000" {
		t.Errorf("next segment after 0000000100000000000000FF = %s", got)
	}
}

func TestOrder(t *testing.T) {
	t.Parallel()
	// Sorted by position, whatever the timeline and the segment size.
	files := []string{"000000030000000000000001", "000000010000000000000002", "0000000200000000000000FF",
		"000000010000000100000000", "000000010000000100000FFF", "000000010000000200000000"}
	for i := 1; i < len(files); i++ {
		a, _ := ParseName(files[i-1])
		b, _ := ParseName(files[i])
		if a.Order() >= b.Order() {
			t.Errorf("%s does not order before %s", files[i-1], files[i])
		}
	}
}

func TestRange(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		first, last string
		segSize     uint64
		want        []string // nil: refused
	}{
		{"one segment", "000000010000000000000042", "000000010000000000000042", 16 << 20, []string{"000000010000000000000042"}},
		{"across a log", "0000000100000000000000FE", "000000010000000100000001", 0,
			[]string{"0000000100000000000000FE", "0000000100000000000000FF", "000000010000000100000000", "000000010000000100000001"}},
		{"1 GiB segments", "000000010000000000000002", "000000010000000100000001", 1 << 30,
			[]string{"000000010000000000000002", "000000010000000000000003", "000000010000000100000000", "000000010000000100000001"}},
		{"two timelines", "000000010000000000000002", "000000020000000000000003", 0, nil},
		{"backwards", "000000010000000000000003", "000000010000000000000002", 0, nil},
		{"not a segment", "00000001.history", "000000010000000000000002", 0, nil},
		{"end not a segment", "000000010000000000000002", "000000010000000000000002.partial", 0, nil},
		{"past a log's segments", "000000010000000000000100", "000000010000000100000001", 16 << 20, nil},
		{"past a log's 1 GiB segments", "000000010000000000000004", "000000010000000100000001", 1 << 30, nil},
		{"too long", "000000010000000000000000", "000000010000FFFF00000000", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Range(tt.first, tt.last, tt.segSize)
			if (err == nil) != (tt.want != nil) || !slices.Equal(got, tt.want) {
				t.Errorf("Range = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestRuns(t *testing.T) {
	t.Parallel()
	have, gaps := Runs(1, []uint64{1, 2, 3, 7, 9, 10}, DefaultSegSize)
	if len(have) != 3 || have[0].Count != 3 || len(gaps) != 2 || gaps[0].First != "000000010000000000000004" || gaps[0].Count != 3 {
		t.Fatalf("have %v gaps %v", have, gaps)
	}
	tests := []struct {
		name      string
		pos       []uint64
		have, gap []Run
	}{
		{"none", nil, []Run{}, []Run{}},
		{"one", []uint64{0xFF}, []Run{{"0000000200000000000000FF", "0000000200000000000000FF", 1}}, []Run{}},
		{"across a log", []uint64{0xFE, 0xFF, 0x100}, []Run{{"0000000200000000000000FE", "000000020000000100000000", 3}}, []Run{}},
		{"a gap", []uint64{1, 4, 5}, []Run{{"000000020000000000000001", "000000020000000000000001", 1}, {"000000020000000000000004", "000000020000000000000005", 2}},
			[]Run{{"000000020000000000000002", "000000020000000000000003", 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			have, gaps := Runs(2, tt.pos, 0)
			if !slices.Equal(have, tt.have) || !slices.Equal(gaps, tt.gap) || have == nil || gaps == nil {
				t.Errorf("Runs = %v %v, want %v %v", have, gaps, tt.have, tt.gap)
			}
		})
	}
}
