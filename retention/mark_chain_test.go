package retention

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/storage/local"
)

// TestMarkChain: making an incremental permanent makes its chain permanent,
// full backup first; making a backup a permanent incremental needs ordinary
// again is refused in one sentence; a broken chain cannot be marked.
func TestMarkChain(t *testing.T) {
	ctx := t.Context()
	st, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fillWeek(t, st)
	perm := func() []string {
		var out []string
		for _, m := range checkListed(t, st) {
			if m.Permanent {
				out = append(out, m.Name)
			}
		}
		return out
	}
	res, err := Mark(ctx, st, "I5", true, fastMark)
	if err != nil || !res.Changed || !slices.Equal(res.Parents, []string{"F3", "I4"}) || !slices.Equal(perm(), []string{"F3", "I4", "I5"}) {
		t.Fatalf("mark I5: %+v %v, permanent %v", res, err, perm())
	}
	if res, err := Mark(ctx, st, "I5", true, fastMark); err != nil || res.Changed || len(res.Parents) != 0 {
		t.Errorf("mark I5 again: %+v %v", res, err)
	}
	if _, err := Mark(ctx, st, "I1", true, fastMark); err != nil {
		t.Fatal(err)
	}
	if res, err := Mark(ctx, st, "I2", true, fastMark); err != nil || !slices.Equal(res.Parents, nil) || !res.Changed {
		t.Errorf("mark I2 on a permanent chain: %+v %v", res, err)
	}
	for _, n := range []string{"I4", "F3"} {
		_, err := Mark(ctx, st, n, false, fastMark)
		if !errors.Is(err, ErrNeededByPermanent) || !strings.Contains(err.Error(), "permanent backup I") || strings.Contains(err.Error(), "\n") {
			t.Errorf("unmark %s under permanent I5: %v", n, err)
		}
	}
	for _, n := range []string{"I5", "I4", "F3"} {
		if res, err := Mark(ctx, st, n, false, fastMark); err != nil || !res.Changed {
			t.Errorf("unmark %s: %+v %v", n, res, err)
		}
	}
	if got := perm(); !slices.Equal(got, []string{"F0", "I1", "I2"}) {
		t.Errorf("permanent %v", got)
	}
	if err := st.Delete(ctx, basebackup.MetaKey("F3")); err != nil {
		t.Fatal(err)
	}
	if _, err := Mark(ctx, st, "I5", true, fastMark); !errors.Is(err, ErrBrokenChain) || !strings.Contains(err.Error(), "backup F3 of its chain") {
		t.Errorf("mark I5 without F3: %v", err)
	}
}

// TestMarkChainBeforeDelete: a chain marked between a delete's plan and its
// execution is spared whole.
func TestMarkChainBeforeDelete(t *testing.T) {
	ctx := t.Context()
	st, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fillWeek(t, st)
	inv, err := Read(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Target(inv, TargetOptions{Name: "F3", FindFull: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Mark(ctx, st, "I4", true, fastMark); err != nil {
		t.Fatal(err)
	}
	r, err := Execute(ctx, st, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Skipped, []string{"I4", "F3"}) || !slices.Equal(r.Backups, []string{"I5"}) {
		t.Errorf("skipped %v, deleted %v", r.Skipped, r.Backups)
	}
	if got := checkChains(t, st, "after the delete"); !slices.Equal(got, []string{"F0", "I1", "I2", "F3", "I4", "F6", "I7"}) {
		t.Errorf("left %v", got)
	}
}
