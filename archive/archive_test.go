package archive

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/compress"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/storage/faulty"
	"github.com/tusk-backup/tusk/storage/local"
	"github.com/tusk-backup/tusk/wal"
)

type env struct {
	dir   string
	store *faulty.Store
	a     *Archive
}

func newEnv(t *testing.T, codec string) env {
	t.Helper()
	st, err := local.New(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := compress.Parse(codec)
	if err != nil {
		t.Fatal(err)
	}
	fs := faulty.New(st)
	return env{dir: t.TempDir(), store: fs, a: &Archive{Store: fs, Codec: c, Log: slog.New(slog.DiscardHandler)}}
}

// walFile writes a WAL-like file (compressible with some noise) and returns its path.
func (e env) walFile(t *testing.T, name string, seed uint64, size int) string {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, seed))
	n, _ := wal.ParseName(filepath.Base(name))
	segment := n.Kind == wal.Segment || n.Kind == wal.Partial
	if segment {
		size = max(size, 1<<20) // wal-push accepts only whole segments
	}
	b := make([]byte, size)
	for i := range b {
		if i%7 == 0 {
			b[i] = byte(r.Uint32())
		}
	}
	if segment {
		copy(b, LongPageHeader(n, uint32(size), 7000000000000000001))
	}
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// segmentOf returns a 1 MiB segment named name filled with fill after its
// header.
func segmentOf(t *testing.T, name string, fill byte) []byte {
	t.Helper()
	n, err := wal.ParseName(name)
	if err != nil {
		t.Fatal(err)
	}
	b := bytes.Repeat([]byte{fill}, 1<<20)
	copy(b, LongPageHeader(n, 1<<20, 7000000000000000001))
	return b
}

func TestPushFetchRoundTrip(t *testing.T) {
	t.Parallel()
	for _, codec := range compress.Names() {
		t.Run(codec, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, codec)
			ctx := t.Context()
			for _, name := range []string{"000000010000000000000042", "00000002.history", "000000010000000000000043.partial", "000000010000000000000002.00000028.backup"} {
				size := 1 << 20
				if name == "00000002.history" {
					size = 41
				}
				p := e.walFile(t, name, 1, size)
				res, err := e.a.Push(ctx, p, PushOptions{PreventOverwrite: true})
				if err != nil {
					t.Fatalf("push %s: %v", name, err)
				}
				if res.AlreadyArchived || res.Size != int64(size) {
					t.Fatalf("push result %+v", res)
				}
				dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
				if _, err := e.a.Fetch(ctx, name, dest); err != nil {
					t.Fatalf("fetch %s: %v", name, err)
				}
				want, _ := os.ReadFile(p)
				got, _ := os.ReadFile(dest)
				if !bytes.Equal(got, want) {
					t.Fatalf("fetched %s differs from the pushed file", name)
				}
				if fi, _ := os.Stat(dest); fi.Mode().Perm() != 0o600 {
					t.Fatalf("fetched file mode %v", fi.Mode().Perm())
				}
			}
		})
	}
}

func TestOverwriteProtection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "s2")
	ctx := t.Context()
	p := e.walFile(t, "000000010000000000000001", 1, 1<<20)
	if _, err := e.a.Push(ctx, p, PushOptions{PreventOverwrite: true}); err != nil {
		t.Fatal(err)
	}
	gets := e.store.Calls(faulty.Get)
	res, err := e.a.Push(ctx, p, PushOptions{PreventOverwrite: true})
	if err != nil || !res.AlreadyArchived {
		t.Fatalf("identical re-push = %+v, %v; want success, already archived", res, err)
	}
	if e.store.Calls(faulty.Get) != gets+1 {
		t.Fatal("identical re-push should read the header once")
	}

	other := filepath.Join(t.TempDir(), "000000010000000000000001")
	os.WriteFile(other, segmentOf(t, "000000010000000000000001", 1), 0o600)
	_, err = e.a.Push(ctx, other, PushOptions{PreventOverwrite: true})
	var ow *OverwriteError
	if !errors.As(err, &ow) || !strings.Contains(err.Error(), "wal/0000000100000000/000000010000000000000001 is already archived with different content") {
		t.Fatalf("different content: err = %v, want an OverwriteError naming the key", err)
	}
	if ow.Stored == ow.Incoming || !strings.HasPrefix(ow.Stored, "xxh3-128:") || len(ow.Stored) != len("xxh3-128:")+32 || !strings.Contains(err.Error(), ow.Stored) || !strings.Contains(err.Error(), ow.Incoming) {
		t.Fatalf("error does not name both checksums: %v", err)
	}
	// Allowed overwrite replaces the segment.
	if _, err := e.a.Push(ctx, other, PushOptions{PreventOverwrite: false}); err != nil {
		t.Fatalf("overwrite allowed: %v", err)
	}
	dest := filepath.Join(t.TempDir(), "x")
	if _, err := e.a.Fetch(ctx, "000000010000000000000001", dest); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, segmentOf(t, "000000010000000000000001", 1)) {
		t.Fatal("overwrite did not replace the content")
	}

	// History files are protected even when overwriting segments is allowed.
	h := e.walFile(t, "00000002.history", 1, 30)
	if _, err := e.a.Push(ctx, h, PushOptions{}); err != nil {
		t.Fatal(err)
	}
	h2 := filepath.Join(t.TempDir(), "00000002.history")
	os.WriteFile(h2, []byte("1\t0/3000000\tno recovery target specified\n"), 0o600)
	if _, err := e.a.Push(ctx, h2, PushOptions{PreventOverwrite: false}); !errors.As(err, &ow) {
		t.Fatalf("history overwrite: err = %v, want OverwriteError", err)
	}
}

// Objects archived before XXH3 carry SHA-256; they still fetch, verify and
// take part in overwrite checks, compared like with like.
func TestSHA256ObjectsStillRead(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "zstd")
	ctx := t.Context()
	p := e.walFile(t, "000000010000000000000007", 3, 1<<20)
	content, _ := os.ReadFile(p)
	n, _ := wal.ParseName("000000010000000000000007")
	hdr := Header{Codec: e.a.Codec, Size: int64(len(content)), SumKind: SumSHA256, Sum: sha256.Sum256(content)}
	if _, err := e.a.upload(ctx, n.Key(), hdr, bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	if _, err := e.a.Fetch(ctx, n.File, dest); err != nil {
		t.Fatalf("fetch a SHA-256 object: %v", err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, content) {
		t.Fatal("fetched SHA-256 object differs")
	}
	if res, err := e.a.Push(ctx, p, PushOptions{PreventOverwrite: true}); err != nil || !res.AlreadyArchived {
		t.Fatalf("identical re-push over a SHA-256 object = %+v, %v; want already archived", res, err)
	}
	other := filepath.Join(t.TempDir(), n.File)
	os.WriteFile(other, segmentOf(t, n.File, 2), 0o600)
	_, err := e.a.Push(ctx, other, PushOptions{PreventOverwrite: true})
	var ow *OverwriteError
	if !errors.As(err, &ow) || !strings.HasPrefix(ow.Stored, "sha256:") || !strings.HasPrefix(ow.Incoming, "sha256:") || ow.Stored == ow.Incoming {
		t.Fatalf("different content over a SHA-256 object: %v; want an OverwriteError with two sha256 checksums", err)
	}

	// A flipped byte in the content is caught by the SHA-256 check.
	hdr.Sum[0] ^= 1
	if _, err := e.a.upload(ctx, n.Key(), hdr, bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.Fetch(ctx, n.File, filepath.Join(t.TempDir(), "x")); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("fetch with a wrong SHA-256: %v; want ErrCorrupt naming sha256", err)
	}
}

func TestPushBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "s2")
	ctx := t.Context()
	os.Mkdir(filepath.Join(e.dir, "000000010000000000000009"), 0o700)
	cases := map[string]string{
		filepath.Join(e.dir, "not-a-wal-file"):           `"not-a-wal-file" is not a WAL file name`,
		filepath.Join(e.dir, "000000010000000000000008"): "no such file or directory",
		filepath.Join(e.dir, "000000010000000000000009"): "is not a regular file",
	}
	for path, want := range cases {
		if _, err := e.a.Push(ctx, path, PushOptions{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Push(%s) = %v, want an error containing %q", path, err, want)
		}
	}
	n := 0
	e.store.List(ctx, "", func(storage.Object) error { n++; return nil })
	if n != 0 {
		t.Fatalf("bad input stored %d objects", n)
	}
}

func TestFetchMissingAndCorrupt(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "zstd")
	ctx := t.Context()
	name := "000000010000000000000005"
	p := e.walFile(t, name, 3, 1<<20)
	if _, err := e.a.Push(ctx, p, PushOptions{}); err != nil {
		t.Fatal(err)
	}
	destDir := t.TempDir()
	dest := filepath.Join(destDir, "RECOVERYXLOG")

	if _, err := e.a.Fetch(ctx, "000000010000000000000006", dest); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("missing: err = %v, want ErrNotFound", err)
	}
	nm, _ := wal.ParseName(name)
	o, _ := e.store.Stat(ctx, nm.Key())
	faults := []faulty.Fault{
		{Op: faulty.Get, FlipAt: o.Size / 2},      // bit rot in the compressed stream
		{Op: faulty.Get, FlipAt: 12},              // damaged header
		{Op: faulty.Get, TruncateAt: o.Size - 10}, // truncated object
		{Op: faulty.Get, TruncateAt: 20},          // truncated header
	}
	for i, f := range faults {
		e.store.Clear()
		e.store.Inject(f)
		_, err := e.a.Fetch(ctx, name, dest)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "wal/0000000100000000/"+name) {
			t.Errorf("fault %d: err = %v, want ErrCorrupt naming the object", i, err)
		}
		if left, _ := os.ReadDir(destDir); len(left) != 0 {
			t.Fatalf("fault %d: a corrupt fetch left %d files in the destination folder", i, len(left))
		}
	}
}

func TestFetchRetriesTransientErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "lz4")
	ctx := t.Context()
	name := "000000010000000000000007"
	p := e.walFile(t, name, 4, 64<<10)
	if _, err := e.a.Push(ctx, p, PushOptions{}); err != nil {
		t.Fatal(err)
	}
	// Retries are the store's: wal-fetch's store is behind storage.Retry.
	e.a.Store = storage.NewRetry(e.store, storage.RetryPolicy{Attempts: 3, Backoff: time.Millisecond}, e.a.Log)
	e.store.Inject(faulty.Fault{Op: faulty.Get, Times: 2, Err: io.ErrUnexpectedEOF})
	dest := filepath.Join(t.TempDir(), "f")
	if _, err := e.a.Fetch(ctx, name, dest); err != nil {
		t.Fatalf("fetch after two transient errors: %v", err)
	}
	e.store.Clear()
	e.store.Inject(faulty.Fault{Op: faulty.Get, Err: io.ErrUnexpectedEOF})
	if _, err := e.a.Fetch(ctx, name, dest+"2"); err == nil || errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("persistent storage error: err = %v, want a non-not-found error", err)
	}
}

func TestFetchBadDestination(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "s2")
	ctx := t.Context()
	name := "000000010000000000000001"
	if _, err := e.a.Push(ctx, e.walFile(t, name, 1, 1024), PushOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cases := map[string]string{
		filepath.Join(dir, "missing", "f"): "destination folder",
		dir:                                "is a folder",
	}
	for dest, want := range cases {
		if _, err := e.a.Fetch(ctx, name, dest); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Fetch to %s = %v, want an error containing %q", dest, err, want)
		}
	}
	if _, err := e.a.Fetch(ctx, "../etc/passwd", filepath.Join(dir, "x")); err == nil {
		t.Error("Fetch accepted a bad name")
	}
}

func TestSegmentSize(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "s2")
	ctx := t.Context()
	if _, ok, err := e.a.SegmentSize(ctx); ok || err != nil {
		t.Fatalf("SegmentSize of an empty archive = %v, %v; want not ok", ok, err)
	}
	walDir, names := e.pgWAL(t, 2)
	for _, n := range names {
		if _, err := e.a.Push(ctx, filepath.Join(walDir, n), PushOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if size, ok, err := e.a.SegmentSize(ctx); !ok || err != nil || size != 1<<20 {
		t.Fatalf("SegmentSize = %d, %v, %v; want the segments' 1 MiB", size, ok, err)
	}
}

// An Archive without a Log (as verify builds one) logs nowhere instead of
// panicking: a push, and a second push that finds the copy, both log.
func TestNilLogDiscards(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "zstd")
	e.a.Log = nil
	p := e.walFile(t, "000000010000000000000001", 1, 1<<20)
	for i := range 2 {
		if _, err := e.a.Push(t.Context(), p, PushOptions{}); err != nil {
			t.Fatalf("push %d: %v", i+1, err)
		}
	}
}
