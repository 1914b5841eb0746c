package basebackup_test

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sync/errgroup"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/compress"
	"github.com/tusk-backup/tusk/internal/testenv"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/storage/local"
	"github.com/tusk-backup/tusk/verify"
	"github.com/tusk-backup/tusk/wal"
)

// TestIntegrationPushAcrossTimelineSwitch: a backup of a standby whose
// upstream is promoted while the backup runs ends on the new timeline, and
// backup-push waits for exactly the WAL files that verify checks and a
// restore reads: the new timeline's history file, the old timeline's
// segments before the switch, and the new timeline's from the segment
// holding the switch point on.
//
// The standby is a cascading one (primary -> upstream -> standby): a server
// that is itself promoted during its backup fails it ("the standby was
// promoted during online backup"), so a backup ends on a later timeline
// only when its server follows a promotion upstream.
//
// The backup is held mid-stream by a storage whose Put of the first part
// blocks until the standby has followed the switch; every wait is on a
// condition.
func TestIntegrationPushAcrossTimelineSwitch(t *testing.T) {
	bin := testenv.BuildTusk(t)
	repoDir := testenv.ServerTempDir(t)
	repo := []string{"TUSK_REPO=file://" + repoDir}
	primary := testenv.StartPostgres(t, testenv.PostgresOptions{})
	primary.SQL(t, "CREATE TABLE marks (n int)")
	upstream := standbyOf(t, primary, testenv.PostgresOptions{})
	standby := standbyOf(t, upstream, testenv.PostgresOptions{
		ArchiveCommand: bin + " wal-push %p", Env: repo, Conf: map[string]string{"archive_mode": "always"},
	})
	sees := func(n int) func() bool {
		return func() bool {
			out, err := standby.TrySQL(t.Context(), fmt.Sprintf("SELECT count(*) FROM marks WHERE n = %d", n))
			return err == nil && out == "1"
		}
	}

	// The standby archives only WAL it streamed, not what pg_basebackup
	// gave it: a checkpoint in a later segment lets the backup start there.
	primary.SQL(t, "SELECT pg_switch_wal()")
	primary.SQL(t, "CHECKPOINT")
	primary.SQL(t, "INSERT INTO marks VALUES (10)")
	waitFor(t, t.Context(), "the standby replays the primary's checkpoint", sees(10))

	inner, err := local.New(repoDir)
	if err != nil {
		t.Fatal(err)
	}
	st := &heldStore{Storage: inner, partPut: make(chan struct{}), release: make(chan struct{})}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	conn, err := pgconn.Connect(ctx, standby.ConnString()+" replication=database")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	sys, err := basebackup.Identify(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if !sys.InRecovery || sys.Timeline != 1 {
		t.Fatalf("the standby: %+v, want in recovery on timeline 1", sys)
	}

	var g errgroup.Group
	t.Cleanup(func() { cancel(); g.Wait() }) // before the servers stop
	var m basebackup.Meta
	var nudged string
	var nudgeErrs []error
	g.Go(func() (err error) {
		defer st.unblock() // a failed Push must not leave the test waiting
		m, err = basebackup.Push(ctx, conn, sys, basebackup.PushOptions{
			Store: st, Codec: compress.Default, PartSize: 1 << 20, Concurrency: 1,
			Progress: func(p basebackup.Progress) {
				// The standby cannot switch WAL itself, so the new primary
				// does, as archive_timeout would: once per file waited for
				// completes every segment the backup needs.
				if p.WaitingWAL != "" && p.WaitingWAL != nudged {
					nudged = p.WaitingWAL
					if _, err := upstream.TrySQL(ctx, "SELECT pg_switch_wal()"); err != nil {
						nudgeErrs = append(nudgeErrs, err)
					}
					if _, err := upstream.TrySQL(ctx, "INSERT INTO marks VALUES (0)"); err != nil {
						nudgeErrs = append(nudgeErrs, err)
					}
				}
			},
		})
		return err
	})
	// The backup has started on timeline 1 and is held at its first part.
	select {
	case <-st.partPut:
	case <-ctx.Done():
		cancel()
		t.Fatalf("backup-push never stored a part: %v", g.Wait())
	}
	// Timeline 1 moves to a later segment before the switch, so the
	// backup spans segments of both timelines.
	primary.SQL(t, "SELECT pg_switch_wal()")
	primary.SQL(t, "INSERT INTO marks VALUES (1)")
	waitFor(t, ctx, "the standby replays the primary's row", sees(1))
	// The upstream is promoted to timeline 2; the standby follows.
	if got := upstream.SQL(t, "SELECT pg_promote()"); got != "t" {
		t.Fatalf("pg_promote() = %s", got)
	}
	upstream.SQL(t, "INSERT INTO marks VALUES (2)")
	waitFor(t, ctx, "the standby follows timeline 2", sees(2))
	// And the backup's end lies past the segment holding the switch.
	upstream.SQL(t, "SELECT pg_switch_wal()")
	upstream.SQL(t, "INSERT INTO marks VALUES (3)")
	waitFor(t, ctx, "the standby replays timeline 2's next segment", sees(3))
	// A standby's backup ends at its minimum recovery point, which a
	// restartpoint moves to what it replayed, on timeline 2.
	waitFor(t, ctx, "the standby's minimum recovery point reaches timeline 2", func() bool {
		if _, err := standby.TrySQL(ctx, "CHECKPOINT"); err != nil {
			return false
		}
		out, err := standby.TrySQL(ctx, "SELECT min_recovery_end_timeline FROM pg_control_recovery()")
		return err == nil && out == "2"
	})
	st.unblock()
	if err := g.Wait(); err != nil {
		t.Fatalf("backup-push: %v", err)
	}
	for _, err := range nudgeErrs {
		t.Errorf("switch WAL on the new primary: %v", err)
	}
	if m.StartTLI != 1 || m.EndTLI != 2 {
		t.Fatalf("the backup runs from timeline %d (%s) to %d (%s), want 1 to 2", m.StartTLI, m.StartWAL, m.EndTLI, m.EndWAL)
	}

	// What verify checks (and a restore reads) ...
	want, err := verify.BackupWAL(t.Context(), inner, m)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the backup needs %v", want)
	var onOld, onNew int
	for _, f := range want[1:] {
		switch {
		case strings.HasPrefix(f, "00000001"):
			onOld++
		case strings.HasPrefix(f, "00000002"):
			onNew++
		}
	}
	if want[0] != "00000002.history" || onOld < 1 || onNew < 2 || onOld+onNew != len(want)-1 {
		t.Fatalf("verify.BackupWAL = %v: want timeline 2's history file, then segments of timeline 1 and at least two of timeline 2", want)
	}
	// ... is what backup-push waited for, no more, no less, and all of it
	// is in the repository.
	if got := st.waitedFor(); !slices.Equal(got, want) {
		t.Errorf("backup-push checked the archive for %v, want %v", got, want)
	}
	for _, f := range want {
		n, _ := wal.ParseName(f)
		if _, err := inner.Stat(t.Context(), n.Key()); err != nil {
			t.Errorf("%s, which the backup needs, after backup-push: %v", f, err)
		}
	}
}

// standbyOf starts a streaming standby of src (pg_basebackup -R).
func standbyOf(t *testing.T, src *testenv.Postgres, opts testenv.PostgresOptions) *testenv.Postgres {
	t.Helper()
	p := testenv.NewPostgres(t, opts)
	cmd := p.RunAsOwner(t.Context(), filepath.Join(p.BinDir, "pg_basebackup"), "--pgdata", p.DataDir,
		"--host", src.SocketDir, "--port", strconv.Itoa(src.Port), "--username", src.User,
		"--write-recovery-conf", "--wal-method", "stream", "--checkpoint", "fast", "--no-sync")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pg_basebackup: %v\n%s", err, out)
	}
	p.Configure(t, nil)
	p.Start(t)
	waitFor(t, t.Context(), "the standby streams", func() bool {
		out, err := p.TrySQL(t.Context(), "SELECT status FROM pg_stat_wal_receiver")
		return err == nil && out == "streaming"
	})
	return p
}

// waitFor polls cond until it holds, failing the test when ctx ends or a
// minute passes.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting until %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// heldStore holds the first Put of a backup part until release is closed,
// which holds the server's stream mid-backup, and records the WAL objects
// Stat is asked for (what backup-push waits for), first asked first.
type heldStore struct {
	storage.Storage
	partPut, release chan struct{}
	putOnce, relOnce sync.Once

	mu     sync.Mutex
	waited []string
}

func (s *heldStore) Put(ctx context.Context, key string, r io.Reader) error {
	if strings.HasPrefix(key, "backups/") && strings.Contains(key, "/base.") {
		s.putOnce.Do(func() { close(s.partPut) })
		select {
		case <-s.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return s.Storage.Put(ctx, key, r)
}

func (s *heldStore) Stat(ctx context.Context, key string) (storage.Object, error) {
	if n, ok := wal.NameOf(key); ok {
		s.mu.Lock()
		if !slices.Contains(s.waited, n.File) {
			s.waited = append(s.waited, n.File)
		}
		s.mu.Unlock()
	}
	return s.Storage.Stat(ctx, key)
}

func (s *heldStore) unblock() { s.relOnce.Do(func() { close(s.release) }) }

func (s *heldStore) waitedFor() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.waited)
}
