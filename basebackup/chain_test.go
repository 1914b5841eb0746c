package basebackup

import (
	"slices"
	"testing"
)

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
