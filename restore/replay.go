package restore

import (
	"regexp"
	"strings"
)

// Recovery states, as PostgreSQL's log shows them.
const (
	Promoted = "promoted"
	Paused   = "paused"
	ShutDown = "shut down"
	Failed   = "failed"
)

var (
	reRestored = regexp.MustCompile(`restored log file "([0-9A-F]{24})" from archive`)
	reStopping = regexp.MustCompile(`LOG:  (recovery stopping .*)$`)
	reRedoDone = regexp.MustCompile(`redo done at ([0-9A-F]+/[0-9A-F]+)`)
	reLastXact = regexp.MustCompile(`last completed transaction was at log time (.*)$`)
	reTimeline = regexp.MustCompile(`selected new timeline ID: (\d+)`)
	reFatal    = regexp.MustCompile(`(FATAL|PANIC):  (.*)$`)
	rePaused   = regexp.MustCompile(`pausing at the end of recovery|recovery has paused`)
	reReady    = regexp.MustCompile(`database system is ready to accept connections`)
	reShutdown = regexp.MustCompile(`database system is shut down|shutdown at recovery target`)
)

// Replay is what a recovering server's log has said so far: a state machine
// over its lines, fed one at a time (Feed), with no clock and no server.
type Replay struct {
	State        string // Promoted, Paused, ShutDown, or "" while replaying
	StopLSN      string // where redo ended ("redo done at")
	StopReason   string // PostgreSQL's "recovery stopping ..." sentence
	LastXactTime string // the last replayed commit's time, as logged
	Timeline     string // the new timeline after a promotion
	Segments     int    // WAL segments restored from the archive
	LastSegment  string // the last of them
	// Fatal is the first FATAL or PANIC message that is about recovery
	// (not a client refused while the server starts).
	Fatal string
	// Standby is set once the server entered standby mode, which never ends.
	Standby bool
}

// Feed reads one log line (without its newline) and reports whether it
// restored a WAL segment.
func (r *Replay) Feed(s string) (restored bool) {
	switch {
	case reRestored.MatchString(s):
		r.Segments++
		r.LastSegment = reRestored.FindStringSubmatch(s)[1]
		return true
	case reStopping.MatchString(s):
		r.StopReason = reStopping.FindStringSubmatch(s)[1]
	case reRedoDone.MatchString(s):
		r.StopLSN = reRedoDone.FindStringSubmatch(s)[1]
	case reLastXact.MatchString(s):
		r.LastXactTime = reLastXact.FindStringSubmatch(s)[1]
	case reTimeline.MatchString(s):
		r.Timeline = reTimeline.FindStringSubmatch(s)[1]
	case strings.Contains(s, "entering standby mode"):
		r.Standby = true
	case reFatal.MatchString(s) && r.Fatal == "":
		msg := reFatal.FindStringSubmatch(s)[2]
		if !strings.Contains(msg, "the database system is starting up") && !strings.Contains(msg, "terminating connection") {
			r.Fatal = msg
		}
	case rePaused.MatchString(s):
		r.State = Paused
	case reReady.MatchString(s) && r.Timeline != "":
		r.State = Promoted
	case reShutdown.MatchString(s):
		if r.State == "" {
			r.State = ShutDown
		}
	}
	return false
}

// Reached reports whether recovery has reached its end with the server
// running: paused at the target or promoted.
func (r *Replay) Reached() bool { return r.State == Paused || r.State == Promoted }

// Ended judges a server that is gone, its log read to the end: ok when it
// shut down at target t as asked, else why recovery did not reach t.
func (r *Replay) Ended(t Target) (ok bool, reason string) {
	if r.State == ShutDown && t.IsSet() && t.Action == "shutdown" && r.Fatal == "" {
		return true, ""
	}
	if r.Fatal != "" {
		return false, r.Fatal
	}
	return false, "the server stopped"
}
