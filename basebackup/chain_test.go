package basebackup

import (
	"slices"
	"strings"
	"testing"
)

func chainMeta(name, parent, full string, depth int) Meta {
	return Meta{Name: name, SystemID: "7", PGVersion: 170004, Parent: parent, ChainFull: full, ChainDepth: depth}
}

func TestChooseParent(t *testing.T) {
	t.Parallel()
	sys := System{SystemID: "7", Version: 170002, Timeline: 1}
	full := chainMeta("f1", "", "", 0)
	inc1 := chainMeta("i1", "f1", "f1", 1)
	inc2 := chainMeta("i2", "i1", "f1", 2)
	other := Meta{Name: "o1", SystemID: "8", PGVersion: 170004}
	old := Meta{Name: "p16", SystemID: "7", PGVersion: 160004}
	full15 := Meta{Name: "f15", SystemID: "7", PGVersion: 150010}
	full16 := Meta{Name: "f16", SystemID: "7", PGVersion: 160004}
	cases := []struct {
		name    string
		backups []Meta
		sys     System
		o       DeltaOptions
		parent  string // "" for a full backup
		why     string // in the reason, "" for none
		err     string
	}{
		{"not asked", []Meta{full}, sys, DeltaOptions{}, "", "", ""},
		{"--full wins", []Meta{full}, sys, DeltaOptions{MaxSteps: 6, Full: true}, "", "", ""},
		{"on the newest", []Meta{full, inc1}, sys, DeltaOptions{MaxSteps: 6, Origin: "LATEST"}, "i1", "", ""},
		{"LATEST_FULL", []Meta{full, inc1}, sys, DeltaOptions{MaxSteps: 6, Origin: "LATEST_FULL"}, "f1", "", ""},
		{"chain full", []Meta{full, inc1, inc2}, sys, DeltaOptions{MaxSteps: 2, Origin: "LATEST"}, "", "holds 2 incremental backups, TUSK_DELTA_MAX_STEPS allows 2", ""},
		{"first backup", nil, sys, DeltaOptions{MaxSteps: 2}, "", "holds no backup of this cluster", ""},
		{"no full for LATEST_FULL", []Meta{other}, sys, DeltaOptions{MaxSteps: 2, Origin: "LATEST_FULL"}, "", "holds no full backup of this cluster", ""},
		{"other cluster skipped", []Meta{full, other}, sys, DeltaOptions{MaxSteps: 2, Origin: "LATEST"}, "f1", "", ""},
		{"PostgreSQL 15", []Meta{full}, System{SystemID: "7", Version: 150010}, DeltaOptions{MaxSteps: 2}, "", "runs PostgreSQL 15, and incremental backups need PostgreSQL 17", ""},
		{"parent from 16", []Meta{old}, sys, DeltaOptions{MaxSteps: 2}, "", "was taken from PostgreSQL 16, the server runs 17", ""},
		{"from name", []Meta{full, inc1}, sys, DeltaOptions{FromName: "f1"}, "f1", "", ""},
		{"--full beats from name", []Meta{full}, sys, DeltaOptions{FromName: "f1", Full: true}, "", "", ""},
		{"from name missing", []Meta{full}, sys, DeltaOptions{FromName: "nope"}, "", "", "--delta-from-name nope: no such backup"},
		{"from name other cluster", []Meta{other}, sys, DeltaOptions{FromName: "o1"}, "", "", "is of another cluster"},
		{"from name on 15", []Meta{full}, System{SystemID: "7", Version: 150010}, DeltaOptions{FromName: "f1"}, "", "", "need PostgreSQL 17 or later in remote mode"},
		{"local on 15", []Meta{full15}, System{SystemID: "7", Version: 150010}, DeltaOptions{MaxSteps: 2, Local: true}, "f15", "", ""},
		{"local from name on 16", []Meta{full16}, System{SystemID: "7", Version: 160004}, DeltaOptions{FromName: "f16", Local: true}, "f16", "", ""},
		{"local parent from 15 on 16", []Meta{full15}, System{SystemID: "7", Version: 160004}, DeltaOptions{MaxSteps: 2, Local: true}, "", "was taken from PostgreSQL 15, the server runs 16", ""},
		{"local on 17", []Meta{full}, sys, DeltaOptions{MaxSteps: 2, Local: true}, "f1", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, why, err := ChooseParent(c.backups, c.sys, c.o)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if p != nil {
				got = p.Name
			}
			if got != c.parent || !strings.Contains(why, c.why) || (c.why == "") != (why == "") {
				t.Fatalf("parent %q, why %q; want %q, %q", got, why, c.parent, c.why)
			}
		})
	}
}

func TestChainOf(t *testing.T) {
	t.Parallel()
	full := chainMeta("f1", "", "", 0)
	inc1 := chainMeta("i1", "f1", "f1", 1)
	inc2 := chainMeta("i2", "i1", "f1", 2)
	got, err := ChainOf([]Meta{inc2, full, inc1}, inc2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Name != "f1" || got[1].Name != "i1" || got[2].Name != "i2" {
		t.Fatalf("ChainOf = %v", got)
	}
	if got, err := ChainOf([]Meta{full}, full); err != nil || len(got) != 1 {
		t.Fatalf("Chain of a full backup = %v, %v", got, err)
	}
	if _, err := ChainOf([]Meta{full, inc2}, inc2); err == nil || !strings.Contains(err.Error(), "incremental on i1, which the repository no longer holds") {
		t.Fatalf("Chain with a missing parent: %v", err)
	}
	loop := chainMeta("a", "b", "f1", 1)
	loopB := chainMeta("b", "a", "f1", 1)
	if _, err := ChainOf([]Meta{loop, loopB}, loop); err == nil || !strings.Contains(err.Error(), "loops") {
		t.Fatalf("Chain of a loop: %v", err)
	}
}

func TestChainAndDependents(t *testing.T) {
	m := func(name, parent string) Meta { return Meta{Name: name, Parent: parent} }
	// F <- I1 <- I2, F <- J1 (two incrementals on one full), G alone, O on a
	// missing parent, L1 <-> L2 a loop.
	bs := []Meta{m("F", ""), m("I1", "F"), m("J1", "F"), m("I2", "I1"), m("G", ""), m("O", "gone"), m("L1", "L2"), m("L2", "L1")}
	names := func(ms []Meta) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.Name)
		}
		return out
	}
	chains := []struct {
		name, missing string
		chain         []string
	}{
		{"F", "", nil}, {"I1", "", []string{"F"}}, {"I2", "", []string{"I1", "F"}}, {"O", "gone", nil},
		{"L1", "L1", []string{"L2"}}, {"nope", "nope", nil},
	}
	for _, c := range chains {
		chain, missing := Chain(bs, c.name)
		if !slices.Equal(names(chain), c.chain) || missing != c.missing {
			t.Errorf("Chain(%s) = %v, %q; want %v, %q", c.name, names(chain), missing, c.chain, c.missing)
		}
	}
	deps := map[string][]string{"F": {"I1", "J1", "I2"}, "I1": {"I2"}, "I2": nil, "G": nil, "gone": {"O"}, "L1": {"L2"}}
	for n, want := range deps {
		if got := names(Dependents(bs, n)); !slices.Equal(got, want) {
			t.Errorf("Dependents(%s) = %v, want %v", n, got, want)
		}
	}
}
