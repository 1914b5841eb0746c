package archive_test

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tusk-backup/tusk/archive"
	"github.com/tusk-backup/tusk/internal/walgtest"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/storage/local"
	"github.com/tusk-backup/tusk/wal"
)

const walgKey = "a libsodium key, as WALG_LIBSODIUM_KEY"

// segment returns a 1 MiB segment (the smallest wal_segment_size) named
// file, WAL-like: compressible, with noise.
func segment(file string, seed uint64) []byte {
	n, _ := wal.ParseName(file)
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, 1<<20)
	for i := range b {
		if i%7 == 0 {
			b[i] = byte(r.Uint32())
		}
	}
	copy(b, archive.LongPageHeader(n, 1<<20, 7000000000000000001))
	return b
}

func newWALGRepo(t *testing.T) (storage.Storage, string) {
	t.Helper()
	st, err := local.New(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	return st, t.TempDir()
}

func putWALG(t *testing.T, st storage.Storage, file string, content []byte, o walgtest.Options) string {
	t.Helper()
	key, err := walgtest.PutWAL(t.Context(), st, file, bytes.NewReader(content), o)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func reader(t *testing.T, st storage.Storage, o walgtest.Options) *archive.Archive {
	t.Helper()
	if o.LibsodiumKey != "" {
		var err error
		if st, err = walgtest.Encrypted(st, o); err != nil {
			t.Fatal(err)
		}
	}
	return &archive.Archive{Store: st, Log: slog.New(slog.DiscardHandler), WALGHint: " (hint)"}
}

func fetch(t *testing.T, a *archive.Archive, file, dir string) ([]byte, archive.FetchResult, error) {
	t.Helper()
	dest := filepath.Join(dir, file)
	os.Remove(dest)
	res, err := a.Fetch(t.Context(), file, dest)
	if err != nil {
		if _, serr := os.Stat(dest); serr == nil {
			t.Fatalf("fetch %s failed (%v) and left %s", file, err, dest)
		}
		return nil, res, err
	}
	b, err := os.ReadFile(dest)
	if err != nil {
		t.Fatal(err)
	}
	return b, res, nil
}

// TestFetchWALG: every codec wal-g writes, plain and encrypted, for a
// segment, a history file and a backup history file.
func TestFetchWALG(t *testing.T) {
	t.Parallel()
	seg := segment("000000010000000000000003", 3)
	history := []byte("1\t0/3000000\tno recovery target specified\n")
	backup := []byte("START WAL LOCATION: 0/3000028 (file 000000010000000000000003)\nSTOP WAL LOCATION: 0/3000100 (file 000000010000000000000003)\n")
	for _, m := range []string{"lz4", "zstd", "brotli", "lzma", "none"} {
		for _, key := range []string{"", walgKey} {
			o := walgtest.Options{Compression: m, LibsodiumKey: key}
			t.Run(m+"/encrypted="+map[bool]string{true: "yes", false: "no"}[key != ""], func(t *testing.T) {
				t.Parallel()
				st, dir := newWALGRepo(t)
				a := reader(t, st, o)
				for _, f := range []struct {
					file    string
					content []byte
				}{
					{"000000010000000000000003", seg},
					{"000000010000000000000003.partial", seg},
					{"00000002.history", history},
					{"000000010000000000000003.00000028.backup", backup},
				} {
					key := putWALG(t, st, f.file, f.content, o)
					got, res, err := fetch(t, a, f.file, dir)
					if err != nil || !bytes.Equal(got, f.content) {
						t.Fatalf("%s: fetched %d of %d bytes: %v", f.file, len(got), len(f.content), err)
					}
					if res.Key != key || res.Size != int64(len(f.content)) {
						t.Errorf("%s: result %+v, want key %s", f.file, res, key)
					}
					var buf bytes.Buffer
					if _, err := a.Check(t.Context(), f.file, &buf); err != nil || !bytes.Equal(buf.Bytes(), f.content) {
						t.Fatalf("%s: Check: %v", f.file, err)
					}
				}
				h, err := a.History(t.Context(), 2)
				if err != nil || len(h) != 1 || h[0].Timeline != 1 {
					t.Fatalf("History = %v, %v", h, err)
				}
				size, ok, err := a.SegmentSize(t.Context())
				if err != nil || !ok || size != 1<<20 {
					t.Fatalf("SegmentSize = %d, %v, %v", size, ok, err)
				}
				if _, _, err := fetch(t, a, "000000010000000000000004", dir); !errors.Is(err, storage.ErrNotFound) {
					t.Fatalf("a missing segment: %v, want ErrNotFound", err)
				}
			})
		}
	}
}

// TestFetchWALGSideBySide: tusk's own layout first, wal-g's for the rest.
func TestFetchWALGSideBySide(t *testing.T) {
	t.Parallel()
	st, dir := newWALGRepo(t)
	a := reader(t, st, walgtest.Options{})
	a.Store = st
	file := "000000010000000000000005"
	src := filepath.Join(t.TempDir(), file)
	mine := segment(file, 1)
	if err := os.WriteFile(src, mine, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Push(t.Context(), src, archive.PushOptions{}); err != nil {
		t.Fatal(err)
	}
	putWALG(t, st, file, segment(file, 2), walgtest.Options{})
	got, res, err := fetch(t, a, file, dir)
	if err != nil || !bytes.Equal(got, mine) || res.Key != wal.SegmentAt(1, 5, 1<<20).Key() {
		t.Fatalf("fetched %s (%v): tusk's own copy wanted", res.Key, err)
	}
	// wal-g's probing order when several codecs hold one file.
	other := "000000010000000000000006"
	want := segment(other, 3)
	putWALG(t, st, other, segment(other, 4), walgtest.Options{Compression: "zstd"})
	putWALG(t, st, other, want, walgtest.Options{Compression: "lz4"})
	if got, res, err := fetch(t, a, other, dir); err != nil || !bytes.Equal(got, want) || !strings.HasSuffix(res.Key, ".lz4") {
		t.Fatalf("fetched %s (%v): the .lz4 wanted, as wal-g tries it first", res.Key, err)
	}
}

func put(t *testing.T, st storage.Storage, key string, b []byte) {
	t.Helper()
	if err := st.Put(t.Context(), key, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
}

// TestFetchWALGUnreadable: what tusk cannot read is never "not found".
func TestFetchWALGUnreadable(t *testing.T) {
	t.Parallel()
	file := "000000010000000000000007"
	seg := segment(file, 7)
	tests := []struct {
		name  string
		setup func(t *testing.T, st storage.Storage)
		want  error
		says  string
	}{
		{"lzo", func(t *testing.T, st storage.Storage) { put(t, st, "wal_005/"+file+".lzo", []byte("LZO")) }, archive.ErrUnreadable, "lzo, which tusk does not decode"},
		{"unknown extension", func(t *testing.T, st storage.Storage) { put(t, st, "wal_005/"+file+".xz", []byte("x")) }, archive.ErrUnreadable, "extension tusk does not know"},
		{"encrypted lz4, no key", func(t *testing.T, st storage.Storage) {
			putWALG(t, st, file, seg, walgtest.Options{LibsodiumKey: walgKey})
		}, archive.ErrUnreadable, "does not start as lz4 streams do (hint)"},
		{"encrypted none, no key", func(t *testing.T, st storage.Storage) {
			putWALG(t, st, file, seg, walgtest.Options{Compression: "none", LibsodiumKey: walgKey})
		}, archive.ErrUnreadable, "does not start with a WAL page header (hint)"},
		{"short segment", func(t *testing.T, st storage.Storage) {
			putWALG(t, st, file, seg[:len(seg)-8192], walgtest.Options{Compression: "zstd"})
		}, archive.ErrCorrupt, "1040384 bytes long"},
		{"cut lz4", func(t *testing.T, st storage.Storage) {
			key := putWALG(t, st, file, seg, walgtest.Options{})
			b := read(t, st, key)
			put(t, st, key, b[:len(b)-9])
		}, archive.ErrCorrupt, ""},
		{"wrong segment", func(t *testing.T, st storage.Storage) {
			putWALG(t, st, file, segment("000000010000000000000008", 1), walgtest.Options{})
		}, archive.ErrCorrupt, "not at"},
		// Only other files' objects: the segment is missing.
		{"others only", func(t *testing.T, st storage.Storage) {
			putWALG(t, st, file+".partial", seg, walgtest.Options{})
			put(t, st, "wal_005/"+file+".json", []byte("{}"))
			put(t, st, "wal_005/"+file+"_delta.lz4", []byte("x"))
		}, storage.ErrNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st, dir := newWALGRepo(t)
			tt.setup(t, st)
			a := reader(t, st, walgtest.Options{})
			_, _, err := fetch(t, a, file, dir)
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			if !errors.Is(tt.want, storage.ErrNotFound) && errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("error %v is also not found", err)
			}
			if !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("error %q does not say %q", err, tt.says)
			}
		})
	}
}

func read(t *testing.T, st storage.Storage, key string) []byte {
	t.Helper()
	rc, err := st.Get(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFetchWALGNoFinal: wal-g's reader takes an encrypted stream that ends
// after a full message as whole, and so does tusk, but a segment must
// still be exactly its size: a stream cut at a message boundary fails.
func TestFetchWALGNoFinal(t *testing.T) {
	t.Parallel()
	file := "000000010000000000000009"
	seg := segment(file, 9)
	o := walgtest.Options{Compression: "none", LibsodiumKey: walgKey}
	st, dir := newWALGRepo(t)
	key := putWALG(t, st, file, seg, o)
	b := read(t, st, key)
	const final, message = 17, 8192 + 17
	put(t, st, key, b[:len(b)-final]) // the empty FINAL message dropped
	a := reader(t, st, o)
	if got, _, err := fetch(t, a, file, dir); err != nil || !bytes.Equal(got, seg) {
		t.Fatalf("without FINAL: %d bytes, %v", len(got), err)
	}
	put(t, st, key, b[:len(b)-final-message]) // and one message more
	if _, _, err := fetch(t, a, file, dir); !errors.Is(err, archive.ErrCorrupt) {
		t.Fatalf("cut at a message boundary: %v, want ErrCorrupt", err)
	}
}

func TestWALGKeyOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key       string
		file      string
		known, ok bool
	}{
		{"wal_005/000000010000000000000001.lz4", "000000010000000000000001", true, true},
		{"wal_005/000000010000000000000001", "000000010000000000000001", true, true},
		{"wal_005/00000002.history.zst", "00000002.history", true, true},
		{"wal_005/000000010000000000000001.partial.br", "000000010000000000000001.partial", true, true},
		{"wal_005/000000010000000000000001.00000028.backup.lzma", "000000010000000000000001.00000028.backup", true, true},
		{"wal_005/000000010000000000000001.lzo", "000000010000000000000001", false, true},
		{"wal_005/000000010000000000000001.json", "", false, false},
		{"wal_005/000000010000000000000001_delta.lz4", "", false, false},
		{"wal/000000010000000000000001", "", false, false},
	}
	for _, tt := range tests {
		n, known, ok := archive.WALGKeyOf(tt.key)
		if n.File != tt.file || known != tt.known || ok != tt.ok {
			t.Errorf("WALGKeyOf(%s) = %q, %v, %v; want %q, %v, %v", tt.key, n.File, known, ok, tt.file, tt.known, tt.ok)
		}
	}
}

// TestStatWALG: Stat finds a file in either layout, as wal-fetch would.
func TestStatWALG(t *testing.T) {
	t.Parallel()
	st, _ := newWALGRepo(t)
	file := "00000001000000000000000A"
	n, _ := wal.ParseName(file)
	if _, err := archive.Stat(t.Context(), st, n); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("an empty repository: %v", err)
	}
	key := putWALG(t, st, file, segment(file, 10), walgtest.Options{Compression: "brotli"})
	if o, err := archive.Stat(t.Context(), st, n); err != nil || o.Key != key {
		t.Fatalf("Stat = %+v, %v; want %s", o, err, key)
	}
	lzo, _ := wal.ParseName("00000001000000000000000B")
	put(t, st, "wal_005/00000001000000000000000B.lzo", []byte("x"))
	if _, err := archive.Stat(t.Context(), st, lzo); !errors.Is(err, archive.ErrUnreadable) {
		t.Fatalf("an .lzo only: %v, want ErrUnreadable", err)
	}
}

// TestPrefetchWALG: the prefetcher spools wal-g's segments as wal-fetch
// reads them, verified.
func TestPrefetchWALG(t *testing.T) {
	t.Parallel()
	st, _ := newWALGRepo(t)
	o := walgtest.Options{Compression: "zstd", LibsodiumKey: walgKey}
	var want [][]byte
	for pos := uint64(0x20); pos <= 0x23; pos++ {
		file := wal.SegmentAt(1, pos, wal.DefaultSegSize).File
		seg := segment(file, pos)
		want = append(want, seg)
		putWALG(t, st, file, seg, o)
	}
	spool := t.TempDir()
	a := reader(t, st, o)
	after := wal.SegmentAt(1, 0x1F, wal.DefaultSegSize).File
	if err := a.Prefetch(t.Context(), after, archive.PrefetchOptions{SpoolDir: spool, Count: 5, Concurrency: 2}); err != nil {
		t.Fatal(err)
	}
	for i, seg := range want {
		file := wal.SegmentAt(1, 0x20+uint64(i), wal.DefaultSegSize).File
		got, err := os.ReadFile(filepath.Join(spool, file))
		if err != nil || !bytes.Equal(got, seg) {
			t.Fatalf("spooled %s: %d bytes, %v", file, len(got), err)
		}
	}
}
