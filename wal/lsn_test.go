package wal

import (
	"encoding/json"
	"testing"
)

func TestParseLSN(t *testing.T) {
	t.Parallel()
	good := []struct {
		in, out string
		lsn     LSN
	}{
		{"16/B374D848", "16/B374D848", 0x16B374D848},
		{"0/0", "0/0", 0},
		{"FFFFFFFF/FFFFFFFF", "FFFFFFFF/FFFFFFFF", 1<<64 - 1},
		{"00000001/0000000a", "1/A", 0x10000000A},
	}
	for _, g := range good {
		l, err := ParseLSN(g.in)
		if err != nil || l != g.lsn || l.String() != g.out {
			t.Errorf("ParseLSN(%q) = %v (%s), %v; want %#x", g.in, uint64(l), l, err, uint64(g.lsn))
		}
	}
	// pg_lsn's own rule: 1 to 8 hexadecimal digits on each side.
	for _, bad := range []string{"x/1", "1", "/1", "1/", "123456789/0", "000000001/0", "0/123456789", "+1/1", "1/-1", "1/1/1", " 1/1", "0x1/1"} {
		if _, err := ParseLSN(bad); err == nil {
			t.Errorf("ParseLSN accepted %q", bad)
		}
	}
}

func TestLSNSegment(t *testing.T) {
	t.Parallel()
	tests := []struct {
		lsn     LSN
		tli     uint32
		segSize uint64
		name    string
		pos     uint64
	}{
		{0x16B374D848, 1, 16 << 20, "0000000100000016000000B3", 0x16B3},
		{0x1000000, 2, 16 << 20, "000000020000000000000001", 1},
		{0xFFFFFF, 2, 16 << 20, "000000020000000000000000", 0},
		{0x16B374D848, 1, 1 << 30, "000000010000001600000002", 0x16*4 + 2},
		{0x16B374D848, 3, 1 << 20, "000000030000001600000B37", 0x16B37},
	}
	for _, tt := range tests {
		if got := tt.lsn.SegmentName(tt.tli, tt.segSize); got != tt.name {
			t.Errorf("%s.SegmentName(%d, %d) = %s, want %s", tt.lsn, tt.tli, tt.segSize, got, tt.name)
		}
		if got := tt.lsn.Pos(tt.segSize); got != tt.pos {
			t.Errorf("%s.Pos(%d) = %#x, want %#x", tt.lsn, tt.segSize, got, tt.pos)
		}
	}
}

func TestLSNJSON(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(struct{ L LSN }{0x16B374D848})
	if err != nil || string(b) != `{"L":"16/B374D848"}` {
		t.Fatalf("Marshal = %s, %v", b, err)
	}
	var v struct{ L LSN }
	if err := json.Unmarshal(b, &v); err != nil || v.L != 0x16B374D848 {
		t.Fatalf("Unmarshal = %v, %v", v, err)
	}
	for _, bad := range []string{`{"L":"x"}`, `{"L":5}`} {
		if err := json.Unmarshal([]byte(bad), &v); err == nil {
			t.Errorf("Unmarshal(%s) accepted", bad)
		}
	}
}
