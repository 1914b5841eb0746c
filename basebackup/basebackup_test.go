package basebackup

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tusk-backup/tusk/compress"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/storage/local"

	"github.com/tusk-backup/tusk/wal"
)

type file struct {
	name string
	data []byte
	dir  bool
	link string
}

// tarOf builds a tar stream the way the server sends one.
func tarOf(t testing.TB, files []file) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: 0o600, Size: int64(len(f.data)), Typeflag: tar.TypeReg, ModTime: time.Unix(1700000000, 0), Format: tar.FormatUSTAR}
		if len(f.name) > 99 {
			h.Format = tar.FormatPAX // a PAX extension entry before the header
		}
		switch {
		case f.dir:
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o700, 0
		case f.link != "":
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, f.link, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	return b.Bytes()
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		if i%3 == 0 {
			b[i] = byte(r.Uint32())
		}
	}
	return b
}

// push runs the uploader over archives as Stream would, without a server.
func push(t testing.TB, st storage.Storage, partSize int64, archives map[string][]byte, spaces []Tablespace) Meta {
	t.Helper()
	g, gctx := errgroup.WithContext(t.Context())
	g.SetLimit(3)
	u := &uploader{ctx: gctx, g: g, sys: System{SegSize: 16 << 20}, run: newRunID(),
		opts: PushOptions{Store: st, Codec: compress.Default, PartSize: partSize, Concurrency: 2, Log: slog.New(slog.DiscardHandler)},
		meta: Meta{Format: metaFormat, StartTime: time.Now().UTC(), Codec: compress.Default.String()}}
	if err := u.Begin(wal.LSN(0x2000028), 1, spaces); err != nil {
		t.Fatal(err)
	}
	feed := func(b []byte) {
		for len(b) > 0 {
			n := min(len(b), 1000+rand.IntN(70000))
			if err := u.Data(b[:n]); err != nil {
				t.Fatal(err)
			}
			b = b[n:]
		}
	}
	for _, s := range spaces {
		name := "base.tar"
		if s.OID != "" {
			name = s.OID + ".tar"
		}
		if err := u.Archive(name, s.Location); err != nil {
			t.Fatal(err)
		}
		feed(archives[s.OID])
	}
	if err := u.Manifest(); err != nil {
		t.Fatal(err)
	}
	feed([]byte(`{"PostgreSQL-Backup-Manifest-Version": 1}`))
	if err := u.endArchive(); err != nil {
		t.Fatal(err)
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	m := u.meta
	m.Parts = u.parts
	m.EndLSN, m.EndTLI, m.FinishTime = wal.LSN(0x3000000), 1, time.Now().UTC()
	if err := WriteMeta(t.Context(), st, m); err != nil {
		t.Fatal(err)
	}
	return m
}

func newStore(t testing.TB) storage.Storage {
	st, err := local.New(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestSplitAndRestoreRoundTrip(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	big := randomBytes(1, 5<<20+123) // split across parts at a 1 MiB part size
	files := []file{
		{name: "PG_VERSION", data: []byte("15\n")},
		{name: "backup_label", data: []byte("START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n")},
		{name: "base", dir: true},
		{name: "base/1", dir: true},
		{name: "base/1/1259", data: randomBytes(2, 300<<10)},
		{name: "base/1/16384", data: big},
		{name: "base/1/empty", data: nil},
		{name: "pg_wal", dir: true},
		{name: "pg_tblspc", dir: true},
		{name: "pg_tblspc/16400", link: "/old/ts"},
		{name: "global/pg_control", data: randomBytes(3, 8192)},
		{name: "base/1/" + strings.Repeat("long", 30), data: randomBytes(6, 3<<20+5)},
	}
	tsFiles := []file{{name: "PG_15_202209061", dir: true}, {name: "PG_15_202209061/5/16401", data: randomBytes(4, 2<<20)}}
	spaces := []Tablespace{{}, {OID: "16400", Location: "/old/ts"}}
	m := push(t, st, 1<<20, map[string][]byte{"": tarOf(t, files), "16400": tarOf(t, tsFiles)}, spaces)
	if len(m.Parts) < 6 {
		t.Fatalf("%d parts, want the 5 MiB file split over several 1 MiB parts", len(m.Parts))
	}

	got, err := ReadMeta(t.Context(), st, m.Name)
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "pgdata")
	ts := filepath.Join(t.TempDir(), "ts")
	if err := Restore(t.Context(), got, dest, FetchOptions{Store: st, Concurrency: 3, TablespaceMap: map[string]string{"/old/ts": ts}}); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		p := filepath.Join(dest, f.name)
		switch {
		case f.dir:
			if fi, err := os.Stat(p); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
				t.Errorf("%s: %v %v", f.name, fi, err)
			}
		case f.link != "":
			if l, err := os.Readlink(p); err != nil || l != ts {
				t.Errorf("tablespace link %s -> %q (%v), want %s", f.name, l, err, ts)
			}
		default:
			b, err := os.ReadFile(p)
			if err != nil || !bytes.Equal(b, f.data) {
				t.Errorf("%s differs after restore (%v)", f.name, err)
			}
			if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
				t.Errorf("%s mode %v", f.name, fi.Mode().Perm())
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(ts, "PG_15_202209061/5/16401")); err != nil || !bytes.Equal(b, tsFiles[1].data) {
		t.Errorf("tablespace file differs (%v)", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "backup_manifest")); !strings.Contains(string(b), "Manifest-Version") {
		t.Error("backup_manifest not restored")
	}

	// A non-empty destination is refused and left alone.
	if err := Restore(t.Context(), got, dest, FetchOptions{Store: st, TablespaceMap: map[string]string{"/old/ts": t.TempDir() + "/x"}}); err == nil || !strings.Contains(err.Error(), "is not empty") {
		t.Fatalf("restore into a non-empty folder: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dest, "PG_VERSION")); err != nil {
		t.Fatal("refused restore touched the folder")
	}
}

func TestRestoreRefusesDamage(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	build := func(t *testing.T, files []file) (storage.Storage, Meta) {
		st := newStore(t)
		return st, push(t, st, 1<<20, map[string][]byte{"": tarOf(t, files)}, []Tablespace{{}})
	}
	good := []file{{name: "PG_VERSION", data: []byte("15\n")}, {name: "base/1/1", data: randomBytes(5, 3<<20)}}
	cases := []struct {
		name   string
		files  []file
		damage func(st storage.Storage, m *Meta)
		want   string
	}{
		{"path traversal", []file{{name: "../evil", data: []byte("x")}}, nil, "outside the restore folder"},
		{"absolute path", []file{{name: "/etc/evil", data: []byte("x")}}, nil, "outside the restore folder"},
		{"symlink out", []file{{name: "base/link", link: "../../../etc"}}, nil, "points outside"},
		{"absolute symlink", []file{{name: "base/link", link: "/etc"}}, nil, "points outside"},
		{"through tablespace link", []file{{name: "pg_tblspc/1/x", data: []byte("x")}}, nil, "outside the restore folder"},
		{"flipped byte", good, func(st storage.Storage, m *Meta) {
			rewrite(t, st, m.Parts[1].Key, func(b []byte) []byte { b[len(b)/2] ^= 1; return b })
		}, "corrupt"},
		{"truncated part", good, func(st storage.Storage, m *Meta) {
			rewrite(t, st, m.Parts[0].Key, func(b []byte) []byte { return b[:len(b)-10] })
		}, "corrupt"},
		{"missing part", good, func(st storage.Storage, m *Meta) { st.Delete(ctx, m.Parts[0].Key) }, "missing from the repository"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, m := build(t, c.files)
			if c.damage != nil {
				c.damage(st, &m)
			}
			parent := t.TempDir()
			outside := filepath.Join(parent, "evil")
			dest := filepath.Join(parent, "pgdata")
			err := Restore(ctx, m, dest, FetchOptions{Store: st, Concurrency: 2})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one containing %q", err, c.want)
			}
			if _, err := os.Lstat(outside); err == nil {
				t.Fatal("something was written outside the restore folder")
			}
			if _, err := os.Stat(dest); err == nil {
				t.Fatal("a failed restore left the folder it made")
			}
		})
	}
}

func rewrite(t *testing.T, st storage.Storage, key string, f func([]byte) []byte) {
	t.Helper()
	rc, err := st.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.ReadFrom(rc)
	rc.Close()
	if err := st.Put(context.Background(), key, bytes.NewReader(f(b.Bytes()))); err != nil {
		t.Fatal(err)
	}
}

func TestCheckNameAndLSN(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "../x", "a/b", "x..y", "-x", strings.Repeat("a", 200)} {
		if CheckName(bad) == nil {
			t.Errorf("CheckName(%q) accepted", bad)
		}
	}
	if err := CheckName("base_000000010000000000000002_20261122T030000Z"); err != nil {
		t.Error(err)
	}
	l, err := wal.ParseLSN("16/B374D848")
	if err != nil || l.String() != "16/B374D848" || l.SegmentName(1, 16<<20) != "0000000100000016000000B3" {
		t.Errorf("ParseLSN: %v %v %s", l, err, l.SegmentName(1, 16<<20))
	}
	// pg_lsn's own rule: 1 to 8 hexadecimal digits on each side.
	for _, bad := range []string{"x/1", "1", "/1", "1/", "123456789/0", "000000001/0", "0/123456789", "+1/1", "1/-1", "1/1/1", " 1/1", "0x1/1"} {
		if _, err := wal.ParseLSN(bad); err == nil {
			t.Errorf("ParseLSN accepted %q", bad)
		}
	}
	for _, good := range []string{"0/0", "FFFFFFFF/FFFFFFFF", "00000001/0000000a"} {
		if _, err := wal.ParseLSN(good); err != nil {
			t.Errorf("ParseLSN(%q): %v", good, err)
		}
	}
	if !errors.Is(func() error { _, err := ReadMeta(t.Context(), newStore(t), "nope"); return err }(), ErrNoBackup) {
		t.Error("ReadMeta of a missing backup is not ErrNoBackup")
	}
}

// TestNameClaim: two runs that compute the same name never both record a
// backup. A run refuses a name whose backup_started.json exists, and a run
// whose name was taken over while it ran fails its final check; each run's
// parts live in a folder of its own, so neither overwrote the other's.
func TestNameClaim(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := newStore(t)
	newRun := func() *uploader {
		g, gctx := errgroup.WithContext(ctx)
		return &uploader{ctx: gctx, g: g, sys: System{SegSize: 16 << 20}, run: newRunID(),
			opts: PushOptions{Store: st, Codec: compress.Default, PartSize: 1 << 20, Concurrency: 1, Log: slog.New(slog.DiscardHandler)},
			meta: Meta{Format: metaFormat, StartTime: time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC), Codec: compress.Default.String()}}
	}
	a, b := newRun(), newRun()
	if err := a.Begin(wal.LSN(0x2000028), 1, nil); err != nil {
		t.Fatal(err)
	}
	// A later run in the same second at the same segment takes the next name.
	if err := b.Begin(wal.LSN(0x2000028), 1, nil); err != nil || b.meta.Name != a.meta.Name+"_2" {
		t.Fatalf("a second run in the same second: %v, name %s (first %s)", err, b.meta.Name, a.meta.Name)
	}
	if a.partPrefix() == b.partPrefix() {
		t.Fatal("two runs write their parts into the same folder")
	}
	b.meta.Name = a.meta.Name // as if both had picked the name at once
	m := a.meta
	m.Manifest = Part{Key: a.partPrefix() + "backup_manifest.s2", Archive: "manifest", Size: 1}
	if err := st.Put(ctx, m.Manifest.Key, strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if err := checkStored(ctx, st, m, a.run); err != nil {
		t.Fatalf("the run that holds the name fails its final check: %v", err)
	}
	// b began at the same moment as a (both passed the check before either
	// wrote) and wrote backup_started.json last: a has lost the name.
	started, _ := json.Marshal(started{Name: m.Name, Run: b.run})
	if err := st.Put(ctx, StartedKey(m.Name), bytes.NewReader(started)); err != nil {
		t.Fatal(err)
	}
	if err := checkStored(ctx, st, m, a.run); err == nil || !strings.Contains(err.Error(), "took the name") {
		t.Fatalf("a run that lost its name passes its final check: %v", err)
	}
	if err := checkStored(ctx, st, m, b.run); err != nil {
		t.Fatalf("the run that holds the name fails its final check: %v", err)
	}
}

// TestIncrementalFilesStayWhole: an INCREMENTAL.<file> larger than a part
// is stored as one tar entry (a restore reads it from its header on), while
// an ordinary file of the same size is split into pieces.
func TestIncrementalFilesStayWhole(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	files := []file{
		{name: "base/1/INCREMENTAL.16384", data: randomBytes(7, 3<<20+100)},
		{name: "base/1/16385", data: randomBytes(8, 3<<20+100)},
	}
	m := push(t, st, 1<<20, map[string][]byte{"": tarOf(t, files)}, []Tablespace{{}})
	pieces := map[string]int{}
	for _, p := range m.Parts {
		if p.Archive != "base" {
			continue
		}
		if err := fetchPart(t.Context(), st, p, func(r io.Reader) error {
			tr := tar.NewReader(r)
			for {
				h, err := tr.Next()
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return err
				}
				pieces[h.Name]++
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	if pieces["base/1/INCREMENTAL.16384"] != 1 {
		t.Errorf("INCREMENTAL.16384 is stored as %d entries, want 1", pieces["base/1/INCREMENTAL.16384"])
	}
	if pieces["base/1/16385"] < 2 {
		t.Errorf("16385 is stored as %d entries, want it split", pieces["base/1/16385"])
	}
}
