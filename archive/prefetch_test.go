package archive

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tusk-backup/tusk/storage/faulty"
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
