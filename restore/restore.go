// Package restore owns a restore end to end: it chooses the backup that
// serves a recovery target (Choose, a pure function over backup metadata),
// unpacks it through basebackup, writes the recovery configuration, and,
// when asked, starts PostgreSQL on the restored directory and follows its
// log (Replay, a pure state machine over log lines) until recovery stops,
// reporting where (Outcome). It prints nothing: progress goes to a callback.
package restore

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/walg"
)

// Options configure Run.
type Options struct {
	Store       storage.Storage
	Concurrency int    // parts downloaded at once
	Name        string // a backup name or Latest
	Dest        string // the data directory to restore into: empty or missing
	Target      Target
	// RestoreCommand is written into postgresql.auto.conf.
	RestoreCommand  string
	Standby         bool
	PrimaryConninfo string
	// TablespaceMap maps a tablespace's original location to where it is
	// restored; unmapped tablespaces return to their original location.
	TablespaceMap map[string]string
	// TablespacesUnder, if set, restores every tablespace into a folder
	// named after its OID under it instead.
	TablespacesUnder string
	// Owner is the user to own the restored files and run the server when
	// tusk runs as root ("": the owner of Dest or its parent, else postgres).
	Owner string
	// Server, if set, has Run start PostgreSQL on Dest and drive recovery
	// to the target; without it Run only sets recovery up.
	Server *ServerOptions
	// NoSync skips making the restore durable (basebackup.FetchOptions):
	// for throwaway restores.
	NoSync bool
	Log    *slog.Logger
	// Progress, if set, is called as the restore goes on, never twice at
	// once; it should return quickly.
	Progress func(Progress)
}

// Phase is how far a restore has come.
type Phase int

const (
	Chosen    Phase = iota // the backup is chosen: Backup
	Unpacking              // parts are being restored: Done, Total bytes
	Restored               // files and recovery settings are in place: Backup, Elapsed
	Started                // PostgreSQL was started: Server
	Replaying              // a WAL segment was restored: Segments, LastSegment, Elapsed
)

// Progress is one report from Run.
type Progress struct {
	Phase       Phase
	Backup      basebackup.Meta
	Done, Total int64
	Elapsed     time.Duration // since the phase began: the restore or the replay
	Server      *Server
	Segments    int
	LastSegment string
}

// Result is what Run did, as far as it came.
type Result struct {
	Backup   basebackup.Meta // "" Name: no backup was chosen
	Dest     string
	Restored bool          // the files and recovery settings are in place
	Restore  time.Duration // unpacking and writing the settings
	// Server is the PostgreSQL that Run started (Options.Server), to stop
	// when done; nil if none was started.
	Server   *Server
	Recovery *Outcome // where recovery stopped (Options.Server)
}

// Run restores backup o.Name (or the Latest that serves o.Target) into
// o.Dest, writes the recovery settings, and with o.Server starts
// PostgreSQL and waits until recovery reaches its end: promoted, paused, or
// shut down as the target's action says. It returns what it did so far
// even with an error; a server it started may still run (Result.Server).
func Run(ctx context.Context, o Options) (Result, error) {
	var mu sync.Mutex // unpacking reports from several goroutines
	progress := func(p Progress) {
		if o.Progress != nil {
			mu.Lock()
			defer mu.Unlock()
			o.Progress(p)
		}
	}
	res := Result{Dest: o.Dest}
	m, err := Find(ctx, o.Store, o.Name, o.Target)
	if err != nil {
		return res, err
	}
	res.Backup = m
	progress(Progress{Phase: Chosen, Backup: m})
	mapping := map[string]string{}
	for from, to := range o.TablespaceMap {
		mapping[from] = to
	}
	if o.TablespacesUnder != "" {
		for _, s := range m.Tablespaces {
			mapping[filepath.Clean(s.Location)] = filepath.Join(o.TablespacesUnder, s.OID)
		}
	}
	own, err := resolveOwner(o.Owner, o.Dest, false)
	if err != nil {
		return res, err
	}
	var srv *Server
	if o.Server != nil {
		if srv, err = newServer(*o.Server, o.Owner, m, o.Dest); err != nil {
			return res, err
		}
	}

	readChain, restoreChain := basebackup.ReadChain, basebackup.RestoreChain
	if walg.IsWALG(m) {
		readChain, restoreChain = walg.ReadChain, walg.RestoreChain
	}
	chain, err := readChain(ctx, o.Store, m)
	if err != nil {
		return res, err
	}
	start := time.Now()
	rec := Recovery{RestoreCommand: o.RestoreCommand, Target: o.Target, Standby: o.Standby, PrimaryConninfo: o.PrimaryConninfo}
	err = restoreChain(ctx, chain, o.Dest, basebackup.FetchOptions{
		Store:         o.Store,
		Concurrency:   o.Concurrency,
		TablespaceMap: mapping,
		Log:           o.Log,
		NoSync:        o.NoSync,
		Progress: func(done, total int64) {
			progress(Progress{Phase: Unpacking, Backup: m, Done: done, Total: total, Elapsed: time.Since(start)})
		},
		// The owner and the recovery settings go in before the restore is
		// made durable and sealed, so that a restore killed at any moment
		// is either whole, settings included, or cannot start.
		BeforeSeal: func(dest string) error {
			if own != nil {
				if err := giveTree(own, dest, m); err != nil {
					return err
				}
			}
			if err := rec.Write(dest); err != nil {
				return err
			}
			if own != nil {
				for _, f := range []string{"postgresql.auto.conf", "recovery.signal", "standby.signal"} {
					os.Lchown(filepath.Join(dest, f), own.uid, own.gid) // the signal not written is missing: fine
				}
			}
			return nil
		},
	})
	if err != nil {
		return res, err
	}
	res.Restored, res.Restore = true, time.Since(start)
	progress(Progress{Phase: Restored, Backup: m, Elapsed: res.Restore})
	if srv == nil {
		return res, nil
	}

	res.Server = srv
	if o.Server.Isolated {
		hba := "# written by tusk restore-drill: the server listens only on its private socket folder\nlocal all all trust\n"
		if err := os.WriteFile(filepath.Join(o.Dest, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
			return res, err
		}
		if own != nil {
			os.Lchown(filepath.Join(o.Dest, "pg_hba.conf"), own.uid, own.gid)
		}
	}
	if err := srv.prepare(o.Dest); err != nil {
		return res, err
	}
	res.Recovery, err = srv.recover(ctx, o.Target, progress)
	return res, err
}
