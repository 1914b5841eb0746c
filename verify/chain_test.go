package verify

import (
	"strings"
	"testing"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/wal"
)

// link makes backup name, of cluster "A" on timeline 1 over LSNs
// start..end, built on parent (full at depth) or full when parent is "".
func link(name, parent, full string, depth int, start, end wal.LSN) basebackup.Meta {
	return basebackup.Meta{Name: name, SystemID: "A", Parent: parent, ChainFull: full, ChainDepth: depth,
		StartLSN: start, EndLSN: end, StartTLI: 1, EndTLI: 1}
}

func TestChainProblems(t *testing.T) {
	chain := func() []basebackup.Meta {
		return []basebackup.Meta{link("F", "", "", 0, 0x100, 0x200), link("I1", "F", "F", 1, 0x300, 0x400), link("I2", "I1", "F", 2, 0x500, 0x600)}
	}
	tests := []struct {
		name       string
		bs         []basebackup.Meta
		unreadable map[string]string
		check      string
		want       []string // one substring per problem, in order
	}{
		{"a sound chain", chain(), nil, "I2", nil},
		{"a full backup", chain(), nil, "F", nil},
		{"a parent deleted behind tusk's back", chain()[1:], nil, "I2", []string{"backup F, which backup I2 needs to restore (the parent of I1), is not in the repository"}},
		{"an unreadable parent", chain()[1:], map[string]string{"F": "bad json"}, "I2", []string{"backup F, which backup I2 needs to restore (the parent of I1), has metadata that cannot be read: bad json"}},
		{"another cluster's parent", func() []basebackup.Meta { bs := chain(); bs[0].SystemID = "B"; return bs }(), nil, "I2",
			[]string{"backup I1 is of cluster A, but its parent F is of cluster B"}},
		{"a parent that ends after its child starts", func() []basebackup.Meta { bs := chain(); bs[1].EndLSN = 0x501; return bs }(), nil, "I2",
			[]string{"backup I2 starts at LSN 0/500, before its parent I1 ends (LSN 0/501)"}},
		{"a parent on a later timeline", func() []basebackup.Meta { bs := chain(); bs[0].EndTLI = 2; return bs }(), nil, "I2",
			[]string{"backup I1 starts on timeline 1, but its parent F ends on the later timeline 2"}},
		{"a wrong chain record", func() []basebackup.Meta { bs := chain(); bs[2].ChainDepth = 5; return bs }(), nil, "I2",
			[]string{"backup I2 records full backup F at depth 5 for its chain, but its parents lead to full backup F at depth 2"}},
		{"a loop", []basebackup.Meta{link("I1", "I2", "F", 1, 0, 0), link("I2", "I1", "F", 2, 0, 0)}, nil, "I2", []string{"comes back to backup I2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var m basebackup.Meta
			for _, b := range tc.bs {
				if b.Name == tc.check {
					m = b
				}
			}
			got := ChainProblems(m, tc.bs, tc.unreadable)
			if len(got) != len(tc.want) {
				t.Fatalf("problems %v, want %d", got, len(tc.want))
			}
			for i, p := range got {
				if !strings.Contains(p.Error, tc.want[i]) || strings.Contains(p.Error, "\n") {
					t.Errorf("problem %q, want one sentence with %q", p.Error, tc.want[i])
				}
				if !strings.HasPrefix(p.Object, "backups/") {
					t.Errorf("problem object %q", p.Object)
				}
			}
		})
	}
}
