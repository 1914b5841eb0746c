package restore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tusk-backup/tusk/wal"
)

// Target is where point-in-time recovery stops. At most one of Time, LSN,
// XID, Name and Immediate is set; none means the end of the archive.
type Target struct {
	Time      time.Time
	LSN       wal.LSN
	XID       string
	Name      string
	Immediate bool
	Action    string // pause, promote or shutdown; "" is PostgreSQL's default (pause)
	Timeline  string // "latest", "current" or a number; "" is PostgreSQL's default (latest)
	Exclusive bool   // stop just before the target instead of just after
}

// IsSet reports whether t names a stopping point.
func (t Target) IsSet() bool {
	return !t.Time.IsZero() || t.LSN != 0 || t.XID != "" || t.Name != "" || t.Immediate
}

// Describe says in words where recovery stops.
func (t Target) Describe() string {
	switch {
	case !t.Time.IsZero():
		return "time " + t.Time.Format(time.RFC3339Nano)
	case t.LSN != 0:
		return "LSN " + t.LSN.String()
	case t.XID != "":
		return "transaction " + t.XID
	case t.Name != "":
		return "restore point " + t.Name
	case t.Immediate:
		return "the end of the backup (immediate)"
	}
	return "the end of the archive"
}

// Recovery is the recovery configuration a restore writes into the data
// directory: restore_command, the target and the mode.
type Recovery struct {
	RestoreCommand  string
	Target          Target
	Standby         bool
	PrimaryConninfo string
}

// Write appends the recovery settings to dest/postgresql.auto.conf and
// creates recovery.signal (or standby.signal).
func (r Recovery) Write(dest string) error {
	var b strings.Builder
	b.WriteString("\n# Added by tusk backup-fetch on " + time.Now().UTC().Format(time.RFC3339) + "\n")
	set := func(k, v string) { fmt.Fprintf(&b, "%s = '%s'\n", k, strings.ReplaceAll(v, "'", "''")) }
	set("restore_command", r.RestoreCommand)
	t := r.Target
	switch {
	case !t.Time.IsZero():
		set("recovery_target_time", t.Time.Format("2006-01-02 15:04:05.999999-07:00"))
	case t.LSN != 0:
		set("recovery_target_lsn", t.LSN.String())
	case t.XID != "":
		set("recovery_target_xid", t.XID)
	case t.Name != "":
		set("recovery_target_name", t.Name)
	case t.Immediate:
		set("recovery_target", "immediate")
	}
	if t.IsSet() {
		if t.Action != "" {
			set("recovery_target_action", t.Action)
		}
		if t.Exclusive && !t.Immediate && t.Name == "" {
			set("recovery_target_inclusive", "off")
		}
	}
	if t.Timeline != "" {
		set("recovery_target_timeline", t.Timeline)
	}
	if r.Standby && r.PrimaryConninfo != "" {
		set("primary_conninfo", r.PrimaryConninfo)
	}
	f, err := os.OpenFile(filepath.Join(dest, "postgresql.auto.conf"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("write recovery settings: %w", err)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return fmt.Errorf("write recovery settings: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write recovery settings: %w", err)
	}
	// A backup taken from a standby carries its standby.signal; the mode is
	// ours to choose.
	for _, f := range []string{"recovery.signal", "standby.signal"} {
		if err := os.Remove(filepath.Join(dest, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove the backup's %s: %w", f, err)
		}
	}
	signal := "recovery.signal"
	if r.Standby {
		signal = "standby.signal"
	}
	if err := os.WriteFile(filepath.Join(dest, signal), nil, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", signal, err)
	}
	return nil
}
