package wal

import (
	"slices"
	"strings"
	"testing"
)

func TestParseHistory(t *testing.T) {
	t.Parallel()
	h, err := ParseHistory(strings.NewReader("1\t0/5000000\tno recovery target specified\n\n2\t0/9000A28\tat restore point \"x\"\n"))
	if err != nil || len(h) != 2 || h[0] != (Branch{1, 0x5000000}) || h[1] != (Branch{2, 0x9000A28}) {
		t.Fatalf("%v %v", h, err)
	}
	tests := []struct {
		name, in string
		want     Ancestry
		bad      bool
	}{
		{"empty", "", nil, false},
		{"comment", "# made by hand\n1\t1/0\tx\n", Ancestry{{1, 0x100000000}}, false},
		{"spaces", "  1 0/3000028   reason words\n", Ancestry{{1, 0x3000028}}, false},
		{"bad LSN", "1\tnot-an-lsn\n", nil, true},
		{"no switch point", "1\n", nil, true},
		{"bad timeline", "x\t0/1\n", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseHistory(strings.NewReader(tt.in))
			if (err != nil) != tt.bad || !slices.Equal(got, tt.want) {
				t.Errorf("ParseHistory = %v, %v; want %v (bad %v)", got, err, tt.want, tt.bad)
			}
		})
	}
}

func TestPath(t *testing.T) {
	t.Parallel()
	// Timeline 3: 1 ended at 0/5000100 (segment 5), 2 at 0/9000000 (the
	// very start of segment 9).
	h := Ancestry{{1, 0x5000100}, {2, 0x9000000}}
	p := h.Path(3, 16<<20)
	if want := (Path{{1, 0}, {2, 5}, {3, 9}}); !slices.Equal(p, want) {
		t.Fatalf("Path = %v, want %v", p, want)
	}
	if got := p.Timelines(); !slices.Equal(got, []uint32{1, 2, 3}) {
		t.Errorf("Timelines = %v", got)
	}
	tests := []struct {
		pos uint64
		tli uint32
	}{{0, 1}, {4, 1}, {5, 2}, {8, 2}, {9, 3}, {100, 3}}
	for _, tt := range tests {
		if got := p.At(tt.pos); got != tt.tli {
			t.Errorf("At(%d) = %d, want %d", tt.pos, got, tt.tli)
		}
	}
	if p := (Ancestry(nil)).Path(1, 0); !slices.Equal(p, Path{{1, 0}}) || p.At(7) != 1 {
		t.Errorf("timeline 1's path: %v", p)
	}
	// The switch point's segment depends on the segment size.
	if got := (Ancestry{{1, 0x5000100}}).Path(2, 1<<30).At(0); got != 2 {
		t.Errorf("1 GiB segments: segment 0 holds the switch point, read from timeline %d, want 2", got)
	}
}
