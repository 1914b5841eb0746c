package restore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRecoveryWrite: the settings PostgreSQL reads for each kind of target,
// quoted as postgresql.auto.conf wants, and exactly one signal file, whatever
// signal the backup carried.
func TestRecoveryWrite(t *testing.T) {
	t.Parallel()
	tm := time.Date(2026, 11, 22, 3, 0, 0, 500000000, time.UTC)
	cases := []struct {
		name    string
		r       Recovery
		want    []string // lines in postgresql.auto.conf
		notWant []string
		signal  string
	}{
		{"end of archive", Recovery{RestoreCommand: "tusk wal-fetch %f %p"},
			[]string{"restore_command = 'tusk wal-fetch %f %p'"}, []string{"recovery_target", "primary_conninfo"}, "recovery.signal"},
		{"time, exclusive, promote", Recovery{RestoreCommand: "x", Target: Target{Time: tm, Exclusive: true, Action: "promote"}},
			[]string{"recovery_target_time = '2026-11-22 03:00:00.5+00:00'", "recovery_target_inclusive = 'off'", "recovery_target_action = 'promote'"}, nil, "recovery.signal"},
		{"lsn", Recovery{RestoreCommand: "x", Target: Target{LSN: 0x3000060, Timeline: "current"}},
			[]string{"recovery_target_lsn = '0/3000060'", "recovery_target_timeline = 'current'"}, []string{"recovery_target_inclusive"}, "recovery.signal"},
		{"xid", Recovery{RestoreCommand: "x", Target: Target{XID: "1234", Action: "shutdown"}},
			[]string{"recovery_target_xid = '1234'", "recovery_target_action = 'shutdown'"}, nil, "recovery.signal"},
		{"restore point with a quote", Recovery{RestoreCommand: "x", Target: Target{Name: "it's", Exclusive: true}},
			[]string{"recovery_target_name = 'it''s'"}, []string{"recovery_target_inclusive"}, "recovery.signal"},
		{"immediate", Recovery{RestoreCommand: "x", Target: Target{Immediate: true}},
			[]string{"recovery_target = 'immediate'"}, nil, "recovery.signal"},
		{"timeline without a target", Recovery{RestoreCommand: "x", Target: Target{Timeline: "2", Action: "promote"}},
			[]string{"recovery_target_timeline = '2'"}, []string{"recovery_target_action"}, "recovery.signal"},
		{"standby", Recovery{RestoreCommand: "x", Standby: true, PrimaryConninfo: "host=primary"},
			[]string{"primary_conninfo = 'host=primary'"}, nil, "standby.signal"},
		{"conninfo without standby", Recovery{RestoreCommand: "x", PrimaryConninfo: "host=primary"},
			nil, []string{"primary_conninfo"}, "recovery.signal"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dest := t.TempDir()
			conf := filepath.Join(dest, "postgresql.auto.conf")
			if err := os.WriteFile(conf, []byte("work_mem = '8MB'\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			// The backup came from a standby: its signal is replaced.
			if err := os.WriteFile(filepath.Join(dest, "standby.signal"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := c.r.Write(dest); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(conf)
			if err != nil {
				t.Fatal(err)
			}
			got := string(b)
			if !strings.HasPrefix(got, "work_mem = '8MB'\n") {
				t.Errorf("the settings already there were not kept:\n%s", got)
			}
			for _, w := range c.want {
				if !strings.Contains(got, "\n"+w+"\n") {
					t.Errorf("postgresql.auto.conf lacks %q:\n%s", w, got)
				}
			}
			for _, w := range c.notWant {
				if strings.Contains(got, w) {
					t.Errorf("postgresql.auto.conf has %q:\n%s", w, got)
				}
			}
			for _, s := range []string{"recovery.signal", "standby.signal"} {
				_, err := os.Stat(filepath.Join(dest, s))
				if exists := err == nil; exists != (s == c.signal) {
					t.Errorf("%s exists: %v, want %v", s, exists, s == c.signal)
				}
			}
		})
	}
}
