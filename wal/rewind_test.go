package wal

import (
	"reflect"
	"testing"
)

func TestForkPoint(t *testing.T) {
	t.Parallel()
	b := func(tli uint32, lsn LSN) Branch { return Branch{Timeline: tli, End: lsn} }
	cases := []struct {
		name           string
		target, source Ancestry
		tli            uint32
		lsn            LSN
		err            bool
	}{
		{"target on 1, source promoted", nil, Ancestry{b(1, 0x5000000)}, 1, 0x5000000, false},
		{"source on 1, target promoted", Ancestry{b(1, 0x5000000)}, nil, 1, 0x5000000, false},
		{"both promoted from 1 at different points", Ancestry{b(1, 0x5000000)}, Ancestry{b(1, 0x4000000)}, 1, 0x4000000, false},
		{"a shared switch, then apart", Ancestry{b(1, 0x3000000), b(2, 0x9000000)}, Ancestry{b(1, 0x3000000), b(2, 0x7000000), b(3, 0xA000000)}, 2, 0x7000000, false},
		{"source further down the same line", Ancestry{b(1, 0x3000000)}, Ancestry{b(1, 0x3000000), b(2, 0x7000000)}, 2, 0x7000000, false},
		{"same history", Ancestry{b(1, 0x3000000)}, Ancestry{b(1, 0x3000000)}, 0, 0, true},
	}
	for _, c := range cases {
		tli, lsn, err := ForkPoint(c.target, c.source)
		if (err != nil) != c.err || tli != c.tli || lsn != c.lsn {
			t.Errorf("%s: ForkPoint = %d %s %v, want %d %s (error %v)", c.name, tli, lsn, err, c.tli, c.lsn, c.err)
		}
	}
}

// TestRewindWAL: from the source's newest segment back to the fork point,
// across its switch, the segments its pg_wal lacks.
func TestRewindWAL(t *testing.T) {
	t.Parallel()
	hist := Ancestry{{Timeline: 1, End: 0x4000100}} // timeline 2 from inside segment 4
	have := map[string]bool{"000000020000000000000006": true, "000000020000000000000004": true}
	got, err := RewindWAL(hist, 2, 0x3000028, 7, 0, func(f string) bool { return have[f] })
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"000000020000000000000007", "000000020000000000000005", "000000010000000000000003"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("RewindWAL = %v, want %v", got, want)
	}
	if _, err := RewindWAL(hist, 2, 0x9000000, 7, 0, func(string) bool { return true }); err == nil {
		t.Fatal("newest before the fork: no error")
	}
}
