package cmd

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tusk-backup/tusk/verify"
	"github.com/tusk-backup/tusk/wal"
)

// wal-g's wal-verify checks, by the names its command line takes.
const (
	walgIntegrity = "integrity"
	walgTimeline  = "timeline"
)

// Statuses of a wal-g check.
const (
	walgStatusOK      = "OK"
	walgStatusWarning = "WARNING"
	walgStatusFailure = "FAILURE"
)

// walgIntegrityResult is wal-g's integrity check: FAILURE if a needed
// segment is lost, WARNING if one is not archived yet, else OK.
type walgIntegrityResult struct {
	Status  string              `json:"status"`
	Details []verify.SegmentRun `json:"details"`
}

type walgTimelineDetails struct {
	Current uint32 `json:"current_timeline_id"`
	Highest uint32 `json:"highest_storage_timeline_id"`
}

// walgTimelineResult is wal-g's timeline check: OK if the server's
// timeline is the archive's highest, FAILURE if not, WARNING if the
// archive holds no timeline.
type walgTimelineResult struct {
	Status  string              `json:"status"`
	Details walgTimelineDetails `json:"details"`
}

// walgVerifyReport is wal-verify integrity|timeline's result, as wal-g's
// --json prints it.
type walgVerifyReport struct {
	Integrity *walgIntegrityResult `json:"integrity,omitempty"`
	Timeline  *walgTimelineResult  `json:"timeline,omitempty"`
	order     []string
}

// parseWALGChecks reads wal-verify's arguments: wal-g's check names, each
// at most once.
func parseWALGChecks(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		if a != walgIntegrity && a != walgTimeline {
			return nil, fmt.Errorf("wal-verify takes the checks integrity and timeline (wal-g's), or none; got %q", a)
		}
		if !strings.Contains(strings.Join(out, " "), a) {
			out = append(out, a)
		}
	}
	return out, nil
}

// walgVerify builds wal-g's report of checks from tusk's result r, the
// archive's timelines and the server's current segment.
func walgVerify(checks []string, r verify.Result, a *verify.Archive, current string) walgVerifyReport {
	rep := walgVerifyReport{order: checks}
	for _, c := range checks {
		switch c {
		case walgIntegrity:
			runs := r.Runs()
			status := walgStatusOK
			for _, s := range runs {
				switch {
				case s.Status == verify.SegmentLost:
					status = walgStatusFailure
				case s.Status != verify.SegmentFound && status == walgStatusOK:
					status = walgStatusWarning
				}
			}
			if len(r.Problems) > 0 || len(r.Corrupt) > 0 {
				status = walgStatusFailure
			}
			if runs == nil {
				runs = []verify.SegmentRun{}
			}
			rep.Integrity = &walgIntegrityResult{Status: status, Details: runs}
		case walgTimeline:
			var d walgTimelineDetails
			for _, t := range a.Timelines {
				d.Highest = max(d.Highest, t.ID)
			}
			if n, err := wal.ParseName(current); err == nil {
				d.Current = n.Timeline
			}
			status := walgStatusWarning
			switch {
			case d.Highest > 0 && d.Current == d.Highest:
				status = walgStatusOK
			case d.Highest > 0:
				status = walgStatusFailure
			}
			rep.Timeline = &walgTimelineResult{Status: status, Details: d}
		}
	}
	return rep
}

// failed reports whether a check's status is FAILURE.
func (r walgVerifyReport) failed() bool {
	return (r.Integrity != nil && r.Integrity.Status == walgStatusFailure) || (r.Timeline != nil && r.Timeline.Status == walgStatusFailure)
}

// print writes the report as wal-g's wal-verify does, check by check in
// the order asked for.
func (r walgVerifyReport) print(w io.Writer) {
	for _, c := range r.order {
		switch c {
		case walgIntegrity:
			fmt.Fprintf(w, "[wal-verify] integrity check status: %s\n", r.Integrity.Status)
			fmt.Fprintln(w, "[wal-verify] integrity check details:")
			if len(r.Integrity.Details) == 0 {
				continue
			}
			rows := [][]string{}
			for _, s := range r.Integrity.Details {
				rows = append(rows, []string{strconv.FormatUint(uint64(s.Timeline), 10), s.First, s.Last, strconv.Itoa(s.Count), s.Status})
			}
			writeASCIITable(w, []string{"TLI", "START", "END", "SEGMENTS COUNT", "STATUS"}, []bool{true, false, false, true, true}, rows)
		case walgTimeline:
			fmt.Fprintf(w, "[wal-verify] timeline check status: %s\n", r.Timeline.Status)
			fmt.Fprintln(w, "[wal-verify] timeline check details:")
			fmt.Fprintf(w, "Highest timeline found in storage: %d\n", r.Timeline.Details.Highest)
			fmt.Fprintf(w, "Current cluster timeline: %d\n", r.Timeline.Details.Current)
		}
	}
}

// writeASCIITable draws go-pretty's default table, as wal-g prints its
// reports: right[i] aligns column i to the right.
func writeASCIITable(w io.Writer, headings []string, right []bool, rows [][]string) {
	widths := make([]int, len(headings))
	for i, h := range headings {
		widths[i] = utf8.RuneCountInString(h)
	}
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	rule := func() {
		for _, n := range widths {
			b.WriteString("+" + strings.Repeat("-", n+2))
		}
		b.WriteString("+\n")
	}
	line := func(cells []string, align bool) {
		for i, c := range cells {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if align && right[i] {
				b.WriteString("| " + pad + c + " ")
			} else {
				b.WriteString("| " + c + pad + " ")
			}
		}
		b.WriteString("|\n")
	}
	rule()
	line(headings, false)
	rule()
	for _, r := range rows {
		line(r, true)
	}
	rule()
	_, _ = io.WriteString(w, b.String())
}

// printWALGVerify prints wal-g's report of checks and exits 1 on a
// FAILURE (wal-g exits 0 whatever the status: the one difference).
func printWALGVerify(w io.Writer, checks []string, r verify.Result, a *verify.Archive, srv *verify.Server, asJSON bool) error {
	current := ""
	if srv != nil {
		current = srv.Current
	}
	rep := walgVerify(checks, r, a, current)
	if asJSON {
		if err := json.NewEncoder(w).Encode(rep); err != nil {
			return err
		}
	} else {
		rep.print(w)
	}
	if rep.failed() {
		var failed []string
		for _, c := range checks {
			if (c == walgIntegrity && rep.Integrity.Status == walgStatusFailure) || (c == walgTimeline && rep.Timeline.Status == walgStatusFailure) {
				failed = append(failed, c)
			}
		}
		return &ExitError{Code: 1, Err: fmt.Errorf("wal-verify %s: FAILURE; see the report above", strings.Join(failed, " and "))}
	}
	return nil
}

// usageErr makes err, if any, a usage error.
func usageErr(err error) error {
	if err == nil {
		return nil
	}
	return usagef(err)
}
