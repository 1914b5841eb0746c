package verify

import (
	"reflect"
	"testing"
)

func TestRuns(t *testing.T) {
	t.Parallel()
	r := Result{
		present: []segRef{{1, 2}, {1, 3}, {1, 5}, {2, 6}, {2, 7}},
		Missing: []string{"000000010000000000000004"},
		Waiting: []string{"000000020000000000000008", "000000020000000000000009"},
		segSize: 16 << 20,
	}
	want := []SegmentRun{
		{1, "000000010000000000000002", "000000010000000000000003", 2, SegmentFound},
		{1, "000000010000000000000004", "000000010000000000000004", 1, SegmentLost},
		{1, "000000010000000000000005", "000000010000000000000005", 1, SegmentFound},
		{2, "000000020000000000000006", "000000020000000000000007", 2, SegmentFound},
		{2, "000000020000000000000008", "000000020000000000000009", 2, SegmentDelayed},
	}
	if got := r.Runs(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Runs:\n%v\nwant\n%v", got, want)
	}
	if got := (Result{segSize: 16 << 20}).Runs(); len(got) != 0 {
		t.Fatalf("no segments: %v", got)
	}
}
