package cmd

import (
	"strings"
	"testing"

	"github.com/tusk-backup/tusk/verify"
)

func TestParseWALGChecks(t *testing.T) {
	t.Parallel()
	if got, err := parseWALGChecks([]string{"timeline", "integrity", "timeline"}); err != nil || strings.Join(got, " ") != "timeline integrity" {
		t.Fatalf("got %v, %v", got, err)
	}
	if got, err := parseWALGChecks(nil); err != nil || len(got) != 0 {
		t.Fatalf("no checks: %v, %v", got, err)
	}
	if _, err := parseWALGChecks([]string{"integrity", "bogus"}); err == nil || !strings.Contains(err.Error(), `got "bogus"`) {
		t.Fatalf("bogus: %v", err)
	}
}

// TestWALGTimelineCheck: OK when the server's timeline is the archive's
// highest, FAILURE when not, WARNING with no timeline in the archive, as
// wal-g's newTimelineCheckResult.
func TestWALGTimelineCheck(t *testing.T) {
	t.Parallel()
	a := &verify.Archive{Timelines: []*verify.Timeline{{ID: 1}, {ID: 2}}}
	for _, c := range []struct {
		a       *verify.Archive
		current string
		want    string
	}{
		{a, "000000020000000000000009", walgStatusOK},
		{a, "000000010000000000000009", walgStatusFailure},
		{&verify.Archive{}, "000000010000000000000009", walgStatusWarning},
	} {
		rep := walgVerify([]string{walgTimeline}, verify.Result{}, c.a, c.current)
		if rep.Timeline.Status != c.want || rep.Integrity != nil {
			t.Errorf("current %s: %+v, want %s", c.current, rep.Timeline, c.want)
		}
		var b strings.Builder
		rep.print(&b)
		if !strings.HasPrefix(b.String(), "[wal-verify] timeline check status: "+c.want+"\n[wal-verify] timeline check details:\nHighest timeline found in storage: ") {
			t.Errorf("printed:\n%s", b.String())
		}
	}
	rep := walgVerify([]string{walgIntegrity}, verify.Result{Missing: []string{"000000010000000000000004"}}, a, "")
	if rep.Integrity.Status != walgStatusFailure || !rep.failed() {
		t.Errorf("a lost segment: %+v", rep.Integrity)
	}
}
