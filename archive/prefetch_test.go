package archive

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/storage/faulty"
	"github.com/tusk-backup/tusk/wal"
)

func spoolNames(t *testing.T, dir string) []string {
	t.Helper()
	des, _ := os.ReadDir(dir)
	var out []string
	for _, de := range des {
		if de.Name() != spoolLock {
			out = append(out, de.Name())
		}
	}
	return out
}

func TestPrefetch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "s2")
	ctx := t.Context()
	walDir, names := e.pgWAL(t, 8)
	for _, n := range names {
		if _, err := e.a.Push(ctx, filepath.Join(walDir, n), PushOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	spool := filepath.Join(t.TempDir(), "spool")
	// Segment 5 is corrupt in the repository: it must never reach the spool.
	e.store.Inject(faulty.Fault{Op: faulty.Get, Prefix: "wal/0000000100000000/000000010000000000000005", FlipAt: 300})
	if err := e.a.Prefetch(ctx, names[0], PrefetchOptions{SpoolDir: spool, Count: 10, Concurrency: 3}); err != nil {
		t.Fatal(err)
	}
	want := []string{names[1], names[2], names[3], names[5], names[6], names[7]}
	if got := spoolNames(t, spool); !slices.Equal(got, want) {
		t.Fatalf("spool holds %q, want %q (no corrupt segment 5, nothing past the archive's end)", got, want)
	}
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	ok, err := e.a.FromSpool(spool, names[1], dest)
	if !ok || err != nil {
		t.Fatalf("FromSpool = %v, %v", ok, err)
	}
	got, _ := os.ReadFile(dest)
	orig, _ := os.ReadFile(filepath.Join(walDir, names[1]))
	if string(got) != string(orig) {
		t.Fatal("prefetched segment differs from the original")
	}
	if ok, _ := e.a.FromSpool(spool, names[4], dest); ok {
		t.Fatal("FromSpool served a segment that was never prefetched")
	}
	// Moving on to segment 7 drops the spool files before it.
	e.store.Clear()
	if err := e.a.Prefetch(ctx, names[6], PrefetchOptions{SpoolDir: spool, Count: 2, Concurrency: 1}); err != nil {
		t.Fatal(err)
	}
	if got := spoolNames(t, spool); !slices.Equal(got, []string{names[6], names[7]}) {
		t.Fatalf("after moving on the spool holds %q", got)
	}
}

func TestPrefetchIsExclusive(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "s2")
	spool := filepath.Join(t.TempDir(), "spool")
	os.MkdirAll(spool, 0o700)
	f, _ := os.OpenFile(filepath.Join(spool, spoolLock), os.O_RDWR|os.O_CREATE, 0o600)
	defer f.Close()
	if Locked(spool) {
		t.Fatal("an unlocked spool reads as locked")
	}
	lockFile(t, f)
	if !Locked(spool) {
		t.Fatal("a locked spool reads as unlocked")
	}
	err := e.a.Prefetch(t.Context(), "000000010000000000000001", PrefetchOptions{SpoolDir: spool, Count: 2})
	if !errors.Is(err, ErrPrefetchBusy) {
		t.Fatalf("Prefetch on a locked spool = %v, want ErrPrefetchBusy", err)
	}
}

// TestPrefetchFollows drives a following prefetcher the way wal-fetch does:
// record the position, take the segment from the spool, move on.
func TestPrefetchFollows(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "s2")
	ctx := t.Context()
	walDir, names := e.pgWAL(t, 10)
	// names[9] stays out of the archive until the end: the archive's end.
	for _, n := range names[:9] {
		if _, err := e.a.Push(ctx, filepath.Join(walDir, n), PushOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	spool := filepath.Join(t.TempDir(), "spool")
	gets := e.store.Calls(faulty.Get)
	f := startFollower(t, e, spool, names[0], 3)
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	waitSpool(t, spool, true, names[1], names[2], names[3])
	for i := 1; i <= 8; i++ {
		// wal-fetch asked for names[i]: the prefetcher keeps the three
		// after it spooled (up to names[8], the archive's end).
		if err := SetPosition(spool, names[i]); err != nil {
			t.Fatal(err)
		}
		waitSpool(t, spool, true, names[i:min(i+4, 9)]...)
		if ok, err := e.a.FromSpool(spool, names[i], dest); !ok || err != nil {
			t.Fatalf("FromSpool(%s) = %v, %v", names[i], ok, err)
		}
		got, _ := os.ReadFile(dest)
		orig, _ := os.ReadFile(filepath.Join(walDir, names[i]))
		if !bytes.Equal(got, orig) {
			t.Fatalf("prefetched %s differs from the original", names[i])
		}
	}
	// Each segment was downloaded once, none again after it left the
	// spool. The missing ones past the archive's end are asked for once per
	// position whose window they are in (1 at names[6], 2 at names[7], 3
	// at names[8]), or fewer when a position passed while the ask was in
	// flight.
	time.Sleep(20 * time.Millisecond)
	if got := e.store.Calls(faulty.Get) - gets; got < 8+1 || got > 8+6 {
		t.Errorf("%d downloads, want 9 to 14 (8 segments once, missing ones up to 6 times)", got)
	}
	select {
	case err := <-f.errc:
		t.Fatalf("the prefetcher ended (%v) while recovery went on", err)
	default:
	}
	f.endRecovery(t)
	if Locked(spool) {
		t.Fatal("the spool is still locked after the prefetcher ended")
	}
}

// TestPrefetchIdle: a following prefetcher whose position does not move
// (a standby that has caught up) ends after Idle, and not before: each move
// restarts the wait.
func TestPrefetchIdle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "s2")
	spool := filepath.Join(t.TempDir(), "spool")
	os.MkdirAll(spool, 0o700)
	const idle = 2 * time.Second // far above the 50 ms between moves, even when a loaded machine stalls an fsync
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		errc <- e.a.Prefetch(t.Context(), "000000010000000000000001", PrefetchOptions{SpoolDir: spool, Count: 2,
			Follow: true, Poll: time.Millisecond, Idle: idle, Done: func() bool { return false }})
	}()
	// Moving every 50 ms for 600 ms keeps it alive. The last move is timed
	// from before SetPosition: the prefetcher may see the new position
	// before SetPosition returns (it still syncs the folder), and its idle
	// time runs from then.
	var moved time.Time
	for i := range 12 {
		time.Sleep(50 * time.Millisecond)
		select {
		case err := <-errc:
			t.Fatalf("ended (%v) after %v while the position moved every 50 ms", err, time.Since(start))
		default:
		}
		moved = time.Now()
		if err := SetPosition(spool, fmt.Sprintf("0000000100000000000000%02X", i+2)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(moved); d < idle {
			t.Fatalf("ended %v after the last move, before Idle (%v)", d, idle)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an idle prefetcher did not end")
	}
}

// TestPrefetchFollowsBackAndAcross: when the position moves back (the
// server restarted recovery from an earlier checkpoint) the segments after
// it are fetched again, though they were fetched once; when it moves to a
// new timeline, the window follows it there.
func TestPrefetchFollowsBackAndAcross(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "s2")
	ctx := t.Context()
	walDir, names := e.pgWAL(t, 6)
	tl2 := []string{"000000020000000000000005", "000000020000000000000006", "000000020000000000000007"}
	for i, n := range tl2 {
		e.walFile(t, filepath.Join("pg_wal", n), uint64(100+i), 256<<10)
	}
	for _, n := range append(slices.Clone(names), tl2...) {
		if _, err := e.a.Push(ctx, filepath.Join(walDir, n), PushOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	spool := filepath.Join(t.TempDir(), "spool")
	f := startFollower(t, e, spool, names[0], 2)
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	take := func(n string) {
		t.Helper()
		if err := SetPosition(spool, n); err != nil {
			t.Fatal(err)
		}
		if ok, err := e.a.FromSpool(spool, n, dest); !ok || err != nil {
			t.Fatalf("FromSpool(%s) = %v, %v", n, ok, err)
		}
	}
	waitSpool(t, spool, false, names[1], names[2])
	take(names[1])
	waitSpool(t, spool, false, names[2], names[3])
	take(names[2])
	waitSpool(t, spool, false, names[3], names[4])
	// Back to names[0]: names[1] and [2] left the spool and come again.
	if err := SetPosition(spool, names[0]); err != nil {
		t.Fatal(err)
	}
	waitSpool(t, spool, false, names[1], names[2])
	// Promotion at names[3]: timeline 2 starts at segment 5.
	if err := SetPosition(spool, "000000020000000000000004"); err != nil {
		t.Fatal(err)
	}
	waitSpool(t, spool, false, tl2[0], tl2[1])
	f.ended.Store(true)
	if err := <-f.errc; err != nil {
		t.Fatal(err)
	}
}

// follower runs a following prefetcher on spool until recovery ends.
type follower struct {
	ended atomic.Bool
	errc  chan error
}

// endRecovery ends the recovery f follows and waits for f to end with it.
func (f *follower) endRecovery(t *testing.T) {
	t.Helper()
	f.ended.Store(true)
	select {
	case err := <-f.errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the prefetcher did not end once recovery had")
	}
}

func startFollower(t *testing.T, e env, spool, after string, count int) *follower {
	t.Helper()
	f := &follower{errc: make(chan error, 1)}
	go func() {
		f.errc <- e.a.Prefetch(t.Context(), after, PrefetchOptions{SpoolDir: spool, Count: count, Concurrency: 2,
			Follow: true, Poll: time.Millisecond, Idle: time.Minute, Done: f.ended.Load})
	}()
	return f
}

// waitSpool waits until the spool's segment files are want (exact) or
// include want.
func waitSpool(t *testing.T, spool string, exact bool, want ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := slices.DeleteFunc(spoolNames(t, spool), func(n string) bool { return n == spoolPosition })
		missing := slices.DeleteFunc(slices.Clone(want), func(n string) bool { return slices.Contains(got, n) })
		if len(missing) == 0 && (!exact || len(got) == len(want)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("spool holds %q, want %q (exactly: %v)", got, want, exact)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPrefetchEndDropsSpool: once recovery has ended, the segments the
// prefetcher spooled past its end are removed, not left behind (every
// restore left up to TUSK_WAL_PREFETCH segments in the spool folder).
func TestPrefetchEndDropsSpool(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "s2")
	walDir, names := e.pgWAL(t, 6)
	for _, n := range names {
		if _, err := e.a.Push(t.Context(), filepath.Join(walDir, n), PushOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	spool := filepath.Join(t.TempDir(), "spool")
	f := startFollower(t, e, spool, names[0], 3)
	waitSpool(t, spool, true, names[1], names[2], names[3])
	f.endRecovery(t)
	des, _ := os.ReadDir(spool)
	for _, de := range des {
		if _, err := wal.ParseSegment(de.Name()); err == nil {
			t.Errorf("segment %s is still in the spool after recovery ended", de.Name())
		}
	}
}
