package restore

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReplayLogs feeds real server logs of backup-fetch --recover runs on
// PostgreSQL 14 to 18 (testdata/recovery/VERSION-TARGET-ACTION.log, with the
// restore_command's own lines among them, as the server writes them) through
// Replay, as recover does: the state once the end is reached (or the log
// ends, for a server that is gone), where and why recovery stopped, and that
// the lines a server writes later (a shutdown, a killed archiver) change no
// finished state.
func TestReplayLogs(t *testing.T) {
	t.Parallel()
	cases := []struct {
		file     string
		state    string
		stopLSN  string
		reason   string // StopReason's start
		lastXact string
		timeline string
		segments int
		// reachedAt is the line at which Reached turns true; "" if never.
		reachedAt string
	}{
		{"14-name-promote", Promoted, "0/5E17C10", `recovery stopping at restore point "matrix"`, "2026-12-01 21:48:15.711384+00", "3", 2, "database system is ready to accept connections"},
		{"14-time-promote", Promoted, "0/5F7D3E0", "recovery stopping before commit of transaction 3646", "2026-12-01 22:20:41.768136+00", "2", 2, "database system is ready to accept connections"},
		{"15-archive-end-promote", Promoted, "0/572D6F8", "", "2026-12-01 22:02:05.616362+00", "2", 3, "database system is ready to accept connections"},
		{"15-immediate-promote", Promoted, "0/3000100", "recovery stopping after reaching consistency", "", "2", 3, "database system is ready to accept connections"},
		{"15-lsn-promote", Promoted, "0/75D3EF8", `recovery stopping after WAL location (LSN) "0/75D3EF8"`, "2026-12-01 21:48:05.573012+00", "2", 3, "database system is ready to accept connections"},
		{"15-xid-promote", Promoted, "0/7948E08", "recovery stopping after commit of transaction 4081", "2026-12-01 22:16:59.957893+00", "3", 3, "database system is ready to accept connections"},
		{"15-time-promote", Promoted, "0/C7A8718", "recovery stopping before commit of transaction 1944", "2026-12-01 21:51:59.043469+00", "2", 4, "database system is ready to accept connections"},
		{"15-name-pause", Paused, "", `recovery stopping at restore point "rp"`, "", "", 2, "pausing at the end of recovery"},
		{"15-name-shutdown", ShutDown, "", `recovery stopping at restore point "rp"`, "", "", 2, ""},
		{"15-time-unreached", ShutDown, "0/4002190", "", "2026-12-01 22:29:46.683493+00", "", 2, ""},
		{"16-immediate-promote", Promoted, "0/3000100", "recovery stopping after reaching consistency", "", "2", 3, "database system is ready to accept connections"},
		{"16-name-promote", Promoted, "0/5B93300", `recovery stopping at restore point "matrix"`, "2026-12-01 22:20:24.967354+00", "3", 2, "database system is ready to accept connections"},
		{"16-time-promote", Promoted, "0/5A546C0", "recovery stopping before commit of transaction 2039", "2026-12-01 22:20:24.533691+00", "2", 2, "database system is ready to accept connections"},
		{"16-name-pause", Paused, "", `recovery stopping at restore point "rp"`, "", "", 2, "pausing at the end of recovery"},
		{"16-name-shutdown", ShutDown, "", `recovery stopping at restore point "rp"`, "", "", 2, ""},
		{"16-time-unreached", ShutDown, "0/4002190", "", "2026-12-01 22:29:56.239176+00", "", 2, ""},
		{"17-immediate-promote", Promoted, "0/3000120", "recovery stopping after reaching consistency", "", "2", 3, "database system is ready to accept connections"},
		{"17-name-promote", Promoted, "0/5CCF408", `recovery stopping at restore point "matrix"`, "2026-12-01 21:53:36.592181+00", "3", 2, "database system is ready to accept connections"},
		{"17-time-promote", Promoted, "0/5DD78A8", "recovery stopping before commit of transaction 2854", "2026-12-01 22:20:25.732361+00", "2", 2, "database system is ready to accept connections"},
		{"17-name-pause", Paused, "", `recovery stopping at restore point "rp"`, "", "", 2, "pausing at the end of recovery"},
		{"17-name-shutdown", ShutDown, "", `recovery stopping at restore point "rp"`, "", "", 2, ""},
		{"17-time-unreached", ShutDown, "0/4001D28", "", "2026-12-01 22:30:07.419616+00", "", 2, ""},
		{"18-immediate-promote", Promoted, "0/3000120", "recovery stopping after reaching consistency", "", "2", 3, "database system is ready to accept connections"},
		{"18-name-promote", Promoted, "0/5E28D48", `recovery stopping at restore point "matrix"`, "2026-12-01 21:54:22.758461+00", "3", 2, "database system is ready to accept connections"},
		{"18-time-promote", Promoted, "0/5C6A2F0", "recovery stopping before commit of transaction 2405", "2026-12-01 21:47:50.925237+00", "2", 2, "database system is ready to accept connections"},
		{"18-name-pause", Paused, "", `recovery stopping at restore point "rp"`, "", "", 2, "pausing at the end of recovery"},
		{"18-name-shutdown", ShutDown, "", `recovery stopping at restore point "rp"`, "", "", 2, ""},
		{"18-time-unreached", ShutDown, "0/4002180", "", "2026-12-01 22:30:18.164376+00", "", 2, ""},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			t.Parallel()
			lines := readLog(t, c.file)
			var r Replay
			reachedAt, restored := "", 0
			for _, s := range lines {
				if r.Feed(s) {
					restored++
				}
				if r.Reached() && reachedAt == "" {
					reachedAt = s
					got := r // what recover reports: it stops reading here
					if got.State != c.state || got.StopLSN != c.stopLSN || !strings.HasPrefix(got.StopReason, c.reason) ||
						(c.reason == "" && got.StopReason != "") || got.LastXactTime != c.lastXact || got.Timeline != c.timeline ||
						got.Segments != c.segments || got.Fatal != "" || got.Standby {
						t.Errorf("at the end of recovery: %+v\nwant state %q, stop LSN %q, reason %q..., last transaction %q, timeline %q, %d segments",
							got, c.state, c.stopLSN, c.reason, c.lastXact, c.timeline, c.segments)
					}
				}
			}
			if !strings.HasSuffix(reachedAt, c.reachedAt) || (c.reachedAt == "") != (reachedAt == "") {
				t.Errorf("recovery ended at line %q, want one ending in %q", reachedAt, c.reachedAt)
			}
			if restored != r.Segments {
				t.Errorf("Feed reported %d restored segments, Segments is %d", restored, r.Segments)
			}
			if r.State != c.state {
				t.Errorf("after the whole log the state is %q, want %q", r.State, c.state)
			}
			if c.reachedAt == "" && (r.StopLSN != c.stopLSN || r.Segments != c.segments || r.LastXactTime != c.lastXact || !strings.HasPrefix(r.StopReason, c.reason)) {
				t.Errorf("the server is gone: %+v", r)
			}
		})
	}
}

// TestReplayEnded: once the server is gone, a shutdown at the target is
// the end asked for only when the target's action was shutdown; else the
// reason is PostgreSQL's FATAL message, or that the server stopped.
func TestReplayEnded(t *testing.T) {
	t.Parallel()
	feed := func(file string) *Replay {
		var r Replay
		for _, s := range readLog(t, file) {
			r.Feed(s)
		}
		return &r
	}
	cases := []struct {
		file   string
		target Target
		ok     bool
		reason string
	}{
		{"15-name-shutdown", Target{Name: "rp", Action: "shutdown"}, true, ""},
		{"18-name-shutdown", Target{Name: "rp", Action: "shutdown"}, true, ""},
		{"18-name-shutdown", Target{Name: "rp"}, false, "the server stopped"},
		{"18-name-shutdown", Target{Action: "shutdown"}, false, "the server stopped"}, // no target: shutdown is not asked for
		{"15-time-unreached", Target{Time: parseTime(t, "2026-12-01T23:29:46Z"), Action: "promote"}, false, "recovery ended before configured recovery target was reached"},
		{"18-time-unreached", Target{Time: parseTime(t, "2026-12-01T23:30:18Z"), Action: "shutdown"}, false, "recovery ended before configured recovery target was reached"},
	}
	for _, c := range cases {
		ok, reason := feed(c.file).Ended(c.target)
		if ok != c.ok || reason != c.reason {
			t.Errorf("%s, target %s (action %q): Ended = %v, %q; want %v, %q", c.file, c.target.Describe(), c.target.Action, ok, reason, c.ok, c.reason)
		}
	}
}

// TestReplayLines: single lines whose meaning the logs above do not show.
func TestReplayLines(t *testing.T) {
	t.Parallel()
	const p = "2026-12-01 22:30:21.287 UTC [6011] "
	cases := []struct {
		name  string
		lines []string
		check func(r *Replay) bool
	}{
		// PostgreSQL's words when a standby.signal is present (all versions).
		{"standby", []string{p + "LOG:  entering standby mode"}, func(r *Replay) bool { return r.Standby && !r.Reached() }},
		// A client refused while the server starts is no reason recovery failed.
		{"client refused while starting", []string{p + "FATAL:  the database system is starting up"}, func(r *Replay) bool { return r.Fatal == "" }},
		{"connection terminated", []string{p + "FATAL:  terminating connection due to administrator command"}, func(r *Replay) bool { return r.Fatal == "" }},
		{"first FATAL kept", []string{p + `FATAL:  requested timeline 5 is not a child of this server's history`, p + "FATAL:  later"},
			func(r *Replay) bool { return r.Fatal == "requested timeline 5 is not a child of this server's history" }},
		{"PANIC", []string{p + `PANIC:  could not locate a valid checkpoint record`}, func(r *Replay) bool { return r.Fatal == "could not locate a valid checkpoint record" }},
		// A pause requested by pg_wal_replay_pause() also ends the wait.
		{"paused", []string{p + "LOG:  recovery has paused"}, func(r *Replay) bool { return r.State == Paused && r.Reached() }},
		// Ready for connections without a new timeline is a hot standby's
		// or a crash recovery's, not a promotion.
		{"ready without a new timeline", []string{p + "LOG:  database system is ready to accept connections"}, func(r *Replay) bool { return r.State == "" && !r.Reached() }},
		{"a history file is no segment", []string{p + `LOG:  restored log file "00000002.history" from archive`}, func(r *Replay) bool { return r.Segments == 0 }},
	}
	for _, c := range cases {
		var r Replay
		for _, s := range c.lines {
			r.Feed(s)
		}
		if !c.check(&r) {
			t.Errorf("%s: %+v", c.name, r)
		}
	}
}

func readLog(t *testing.T, name string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "recovery", name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

func parseTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}
