package archive

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/tusk-backup/tusk/storage/faulty"
)

// pgWAL makes a pg_wal-like folder with n segments, all marked .ready.
func (e env) pgWAL(t *testing.T, n int) (walDir string, names []string) {
	t.Helper()
	walDir = filepath.Join(e.dir, "pg_wal")
	os.MkdirAll(filepath.Join(walDir, "archive_status"), 0o700)
	for i := range n {
		name := fmt.Sprintf("0000000100000000000000%02X", i+1)
		e.walFile(t, filepath.Join("pg_wal", name), uint64(i), 256<<10)
		os.WriteFile(filepath.Join(walDir, "archive_status", name+".ready"), nil, 0o600)
		names = append(names, name)
	}
	return walDir, names
}

// archiver calls PushAhead for each segment in order, as PostgreSQL does,
// renaming .ready to .done after each success.
func (e env) archiver(t *testing.T, walDir string, names []string, ahead AheadOptions) (fast int) {
	t.Helper()
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(walDir, "archive_status", n+".ready")); err != nil {
			fast++ // marked done by a push-ahead: PostgreSQL does not call wal-push
			continue
		}
		puts := e.store.Calls(faulty.Put)
		res, err := e.a.PushAhead(t.Context(), filepath.Join(walDir, n), PushOptions{PreventOverwrite: true}, ahead)
		if err != nil {
			t.Fatalf("push %s: %v", n, err)
		}
		if res.Name.File != n {
			t.Fatalf("push %s returned the result for %s", n, res.Name.File)
		}
		if e.store.Calls(faulty.Put) == puts {
			fast++
		}
		os.Rename(filepath.Join(walDir, "archive_status", n+".ready"), filepath.Join(walDir, "archive_status", n+".done"))
	}
	return fast
}

func (e env) checkArchived(t *testing.T, walDir string, names []string) {
	t.Helper()
	for _, n := range names {
		dest := filepath.Join(t.TempDir(), n)
		if _, err := e.a.Fetch(t.Context(), n, dest); err != nil {
			t.Fatalf("fetch %s: %v", n, err)
		}
		got, _ := os.ReadFile(dest)
		want, _ := os.ReadFile(filepath.Join(walDir, n))
		if string(got) != string(want) {
			t.Fatalf("%s differs in the archive", n)
		}
	}
}

func TestPushAhead(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "s2")
	walDir, names := e.pgWAL(t, 20)
	ahead := AheadOptions{Max: 8, Concurrency: 3}
	fast := e.archiver(t, walDir, names, ahead)
	// Calls for segments 1, 10 and 19 upload (themselves plus 8 ahead); the
	// other 17 are marked done and never called.
	if fast != 17 {
		t.Fatalf("%d of 20 segments needed no call, want 17", fast)
	}
	if e.store.Calls(faulty.Put) != 20 {
		t.Fatalf("%d uploads for 20 segments", e.store.Calls(faulty.Put))
	}
	e.checkArchived(t, walDir, names)
	if ready, _ := filepath.Glob(filepath.Join(walDir, "archive_status", "*.ready")); len(ready) != 0 {
		t.Fatalf("%d files still marked ready", len(ready))
	}
}

func TestPushAheadFailuresAreNotMarkedDone(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "s2")
	walDir, names := e.pgWAL(t, 6)
	ahead := AheadOptions{Max: 8, Concurrency: 2}
	// Uploads of segments 3 and 5 fail.
	e.store.Inject(faulty.Fault{Op: faulty.Put, Prefix: "wal/0000000100000000/000000010000000000000003", Err: errors.New("injected")})
	e.store.Inject(faulty.Fault{Op: faulty.Put, Prefix: "wal/0000000100000000/000000010000000000000005", Times: 1, Err: errors.New("injected")})
	if _, err := e.a.PushAhead(t.Context(), filepath.Join(walDir, names[0]), PushOptions{}, ahead); err != nil {
		t.Fatalf("the called-for segment failed because a push-ahead failed: %v", err)
	}
	for i, n := range names[1:] {
		_, err := os.Stat(filepath.Join(walDir, "archive_status", n+".done"))
		if want := n != names[2] && n != names[4]; (err == nil) != want {
			t.Errorf("segment %d: marked done = %v, want %v", i+2, err == nil, want)
		}
	}
	// The archiver's own call for segment 3 fails while storage fails: exit non-zero.
	os.Rename(filepath.Join(walDir, "archive_status", names[0]+".ready"), filepath.Join(walDir, "archive_status", names[0]+".done"))
	if _, err := e.a.PushAhead(t.Context(), filepath.Join(walDir, names[2]), PushOptions{}, ahead); err == nil {
		t.Fatal("push of a segment whose upload fails returned success")
	}
	e.store.Clear()
	e.archiver(t, walDir, names[1:], ahead)
	e.checkArchived(t, walDir, names)
}

// Two archivers at once on one pg_wal (an operator's manual wal-push during
// the archiver's, or two hosts after a split brain of the state folder)
// never corrupt anything: every segment ends up archived and identical.
func TestPushAheadConcurrentArchivers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "s2")
	walDir, names := e.pgWAL(t, 24)
	ahead := AheadOptions{Max: 6, Concurrency: 3}
	errs := make(chan error, 2)
	for w := range 2 {
		go func() {
			for i := range names {
				n := names[(i+w*7)%len(names)]
				if _, err := e.a.PushAhead(t.Context(), filepath.Join(walDir, n), PushOptions{PreventOverwrite: true}, ahead); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent archiver: %v", err)
		}
	}
	e.checkArchived(t, walDir, names)
}

// TestPushAheadRecords: with records instead of renames, PostgreSQL's
// archive_status is left alone, so the archiver calls for every segment (and
// pg_stat_archiver counts each one); a call for a segment pushed ahead
// answers from its record without touching the repository, and uploads
// still happen once per segment.
func TestPushAheadRecords(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "s2")
	walDir, names := e.pgWAL(t, 20)
	records := filepath.Join(t.TempDir(), "pushed")
	ahead := AheadOptions{Max: 8, Concurrency: 3, RecordDir: records}
	calls := 0
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(walDir, "archive_status", n+".ready")); err != nil {
			t.Fatalf("%s is no longer .ready before the archiver's call: push-ahead renamed it", n)
		}
		stats, puts := e.store.Calls(faulty.Stat)+e.store.Calls(faulty.Get), e.store.Calls(faulty.Put)
		_, recorded := os.Stat(filepath.Join(records, n))
		res, err := e.a.PushAhead(t.Context(), filepath.Join(walDir, n), PushOptions{PreventOverwrite: true}, ahead)
		if err != nil || res.Name.File != n {
			t.Fatalf("push %s: %+v, %v", n, res, err)
		}
		if recorded == nil && (e.store.Calls(faulty.Stat)+e.store.Calls(faulty.Get) != stats || e.store.Calls(faulty.Put) != puts || !res.AlreadyArchived) {
			t.Fatalf("the call for %s, pushed ahead, went to the repository", n)
		}
		calls++
		os.Rename(filepath.Join(walDir, "archive_status", n+".ready"), filepath.Join(walDir, "archive_status", n+".done"))
	}
	if calls != 20 || e.store.Calls(faulty.Put) != 20 {
		t.Fatalf("%d calls and %d uploads for 20 segments, want 20 and 20", calls, e.store.Calls(faulty.Put))
	}
	e.checkArchived(t, walDir, names)
	// Records of files the archiver has called for are pruned.
	e.a.PushAhead(t.Context(), filepath.Join(walDir, names[19]), PushOptions{PreventOverwrite: true}, ahead)
	if left, _ := os.ReadDir(records); len(left) != 0 {
		t.Fatalf("%d records left after every segment was archived", len(left))
	}

	// A record that does not match the file is not trusted: the file is
	// pushed, and a different content in the repository is refused.
	name := names[3]
	if err := writeRecord(records, name, 1<<20, "xxh3-128:00000000000000000000000000000000"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(walDir, "archive_status", name+".ready"), nil, 0o600)
	other := segmentOf(t, name, 9)
	os.WriteFile(filepath.Join(walDir, name), other, 0o600)
	_, err := e.a.PushAhead(t.Context(), filepath.Join(walDir, name), PushOptions{PreventOverwrite: true}, ahead)
	var ow *OverwriteError
	if !errors.As(err, &ow) {
		t.Fatalf("a stale record answered for different content: %v", err)
	}
}
