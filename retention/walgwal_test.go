package retention

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/archive"
	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/compress"
	"github.com/tusk-backup/tusk/internal/walgtest"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/storage/faulty"
	"github.com/tusk-backup/tusk/storage/local"
	"github.com/tusk-backup/tusk/wal"
)

// TestWALGFile: every object wal-g's wal-push leaves under wal_005/ is
// placed by the WAL file it is about; what is not wal-g's is a stray.
func TestWALGFile(t *testing.T) {
	seg := "000000010000000000000012"
	tests := []struct {
		key   string
		file  string
		group groupKind
		ok    bool
	}{
		{seg + ".lz4", seg, single, true},
		{seg + ".zst", seg, single, true},
		{seg, seg, single, true},
		{seg + ".partial.br", seg + ".partial", single, true},
		{seg + ".00000028.backup.lzma", seg + ".00000028.backup", single, true},
		{"00000002.history.lz4", "00000002.history", single, true},
		{seg + ".json", seg, single, true},
		{"00000002.history.json", "00000002.history", single, true},
		{"00000001000000000000001.json", "000000010000000000000010", byDigit, true},
		{"000000010000000000000010_delta.lz4", "000000010000000000000010", byPosition, true},
		{"000000010000000000000010_delta", "000000010000000000000010", byPosition, true},
		{"000000010000000000000010_delta_part", "", single, false},
		{"000000010000000000000010_delta.lz4.tmp", "", single, false},
		{"README", "", single, false},
		{"0000000100000000000000.json", "", single, false},
		{"00000001000000000000001G.json", "", single, false},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			f, ok := walgFile(archive.WALGPrefix + tt.key)
			if ok != tt.ok || f.name.File != tt.file || f.group != tt.group {
				t.Fatalf("walgFile = %q %v %v, want %q %v %v", f.name.File, f.group, ok, tt.file, tt.group, tt.ok)
			}
		})
	}
}

// TestDeletesGroup: an object about 16 segments goes only when all 16 do:
// not while the kept WAL starts inside the group, nor while a permanent
// backup's range lies inside it; a delta map is placed by position with
// the kept backups' segment size.
func TestDeletesGroup(t *testing.T) {
	name := func(s string) wal.Name {
		n, err := wal.ParseName(s)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	keepFrom := func(first uint32, perm ...uint32) *WALPlan {
		ms := []basebackup.Meta{backup("b", "A", 0, first, first, false)}
		for i, p := range perm {
			ms = append(ms, backup(fmt.Sprint("p", i), "A", 0, p, p, true))
		}
		for i := range ms {
			ms[i].SegSize = 64 << 20
		}
		need, err := NeededWAL(ms, nil)
		if err != nil {
			t.Fatal(err)
		}
		return &WALPlan{need: need, segSizes: segSizes(ms)}
	}
	tests := []struct {
		what string
		w    *WALPlan
		f    walFile
		want bool
	}{
		{"bulk group wholly before", keepFrom(0x20), walFile{name: name("000000010000000000000010"), group: byDigit}, true},
		{"bulk group holding the start", keepFrom(0x1F), walFile{name: name("000000010000000000000010"), group: byDigit}, false},
		{"bulk group holding a permanent range", keepFrom(0x40, 0x15), walFile{name: name("000000010000000000000010"), group: byDigit}, false},
		{"bulk group after", keepFrom(0x20), walFile{name: name("000000010000000000000020"), group: byDigit}, false},
		// 64 MiB segments: 64 per log, so the delta map at log 0 seg
		// 0x30 covers 0x30..0x3F, and the one at seg 0x3F+1 is log 1's.
		{"delta wholly before", keepFrom(0x40), walFile{name: name("000000010000000000000030"), group: byPosition}, true},
		{"delta holding the start", keepFrom(0x3F), walFile{name: name("000000010000000000000030"), group: byPosition}, false},
		{"segment before", keepFrom(0x40), walFile{name: name("00000001000000000000003F")}, true},
		{"history", keepFrom(0x40), walFile{name: name("00000002.history")}, false},
		{"everything", &WALPlan{all: true}, walFile{name: name("00000002.history")}, true},
	}
	for _, tt := range tests {
		t.Run(tt.what, func(t *testing.T) {
			if got := tt.w.deletesFile(tt.f); got != tt.want {
				t.Fatalf("deletesFile = %v, want %v", got, tt.want)
			}
		})
	}
}

// walgWAL stores, as wal-g's wal-push does, segments first..last of
// timeline 1 with their per-file metadata, the bulk metadata and delta
// maps of their groups of 16, a backup history file, timeline 2's history
// file, and two strays; it returns the keys.
func walgWAL(t *testing.T, st storage.Storage, first, last uint32) []string {
	t.Helper()
	var keys []string
	put := func(key, body string) {
		if err := st.Put(t.Context(), key, strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key)
	}
	for i := first; i <= last; i++ {
		s := seg(1, i)
		key, err := walgtest.PutWAL(t.Context(), st, s, strings.NewReader("wal"), walgtest.Options{})
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key)
		put(archive.WALGPrefix+s+".json", `{"`+s+`":{"created_time":"2026-12-01T00:00:00Z","date_fmt":"%Y-%m-%dT%H:%M:%S.%fZ"}}`)
		if i%16 == 0 {
			put(archive.WALGPrefix+s[:23]+".json", "{}")
			put(archive.WALGPrefix+s+"_delta.lz4", "delta")
		}
	}
	for _, f := range []string{seg(1, first) + ".00000028.backup", "00000002.history"} {
		key, err := walgtest.PutWAL(t.Context(), st, f, strings.NewReader("text\n"), walgtest.Options{Compression: "zstd"})
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key)
	}
	put(archive.WALGPrefix+"README", "not wal-g's")
	put(archive.WALGPrefix+seg(1, first)+"_delta_part", "wal-g keeps these locally")
	slices.Sort(keys)
	return keys
}

// keysUnder lists st's keys under prefix.
func keysUnder(t *testing.T, st storage.Storage, prefix string) []string {
	t.Helper()
	var out []string
	if err := st.List(t.Context(), prefix, func(o storage.Object) error { out = append(out, o.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkWALOfListed fails unless every listed backup, tusk's or wal-g's,
// finds every segment from its start through last in one layout or the
// other.
func checkWALOfListed(t *testing.T, st storage.Storage, last uint32) {
	t.Helper()
	inv, err := Read(t.Context(), st)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range inv.Backups {
		first, _ := wal.ParseSegment(m.StartWAL)
		for i := first.Seg; i <= last; i++ {
			n, _ := wal.ParseSegment(seg(1, i))
			if _, err := archive.Stat(t.Context(), st, n); err != nil {
				t.Fatalf("listed backup %s: segment %s: %v", m.Name, n.File, err)
			}
		}
	}
}

// TestRetainAgesOutWALGWAL: once tusk's backups are newer, retain FULL 2
// deletes the wal-g backups and, of wal-g's WAL, what lies before the
// oldest kept backup's start: segments, their metadata, the backup history
// file, and the bulk metadata and delta maps whose 16 segments all go. The
// history file, the group holding the kept start, and strays stay, as
// tusk's own WAL from the start does. A dry run names exactly what
// --confirm deletes. Interrupted at any Delete, no listed backup ever
// misses WAL it needs, and the next run finishes.
func TestRetainAgesOutWALGWAL(t *testing.T) {
	boom := errors.New("injected")
	const last = 0x24
	setup := func(t *testing.T) (*local.Store, []string) {
		base, err := local.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		walgRepo(t, base, -1, 0, -1) // starting at segments 1, 2, 3
		all := walgWAL(t, base, 1, last)
		tuskBackup(t, base, "base_t0", time.Now().Add(time.Hour), 0x22)
		tuskBackup(t, base, "base_t1", time.Now().Add(2*time.Hour), 0x23)
		for i := uint32(0x22); i <= last; i++ {
			n, _ := wal.ParseSegment(seg(1, i))
			if err := base.Put(t.Context(), n.Key(), strings.NewReader("wal")); err != nil {
				t.Fatal(err)
			}
		}
		return base, all
	}
	plan := func(t *testing.T, st storage.Storage) Plan {
		inv, err := Read(t.Context(), st)
		if err != nil {
			t.Fatal(err)
		}
		p, err := Retain(inv, RetainOptions{Keep: 2, Full: true, Now: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.CountWAL(t.Context(), st); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var wantLeft []string
	{
		base, all := setup(t)
		for _, k := range all {
			f, ok := walgFile(k)
			stays := !ok || f.name.Kind == wal.History || f.group != single && f.name.Seg == 0x20 ||
				f.group == single && f.name.Seg >= 0x22
			if stays {
				wantLeft = append(wantLeft, k)
			}
		}
		p := plan(t, base)
		var named []string
		if err := p.WAL.Objects(t.Context(), base, func(o storage.Object) error { named = append(named, o.Key); return nil }); err != nil {
			t.Fatal(err)
		}
		if _, err := Execute(t.Context(), base, p, nil); err != nil {
			t.Fatal(err)
		}
		left := keysUnder(t, base, archive.WALGPrefix)
		if !slices.Equal(left, wantLeft) {
			t.Fatalf("wal_005/ holds %v, want %v", left, wantLeft)
		}
		var gone []string
		for _, k := range all {
			if !slices.Contains(left, k) {
				gone = append(gone, k)
			}
		}
		if !slices.Equal(named, gone) {
			t.Fatalf("the dry run names %v, Execute deleted %v", named, gone)
		}
		if p.WAL.Delete != len(gone) || p.WAL.Strays != 2 {
			t.Fatalf("CountWAL: delete %d strays %d, want %d and 2", p.WAL.Delete, p.WAL.Strays, len(gone))
		}
		if got := keysUnder(t, base, wal.Prefix); len(got) != 3 {
			t.Fatalf("tusk's WAL: %v", got)
		}
	}
	for skip := 0; ; skip++ {
		base, _ := setup(t)
		st := faulty.New(base)
		st.Inject(faulty.Fault{Op: faulty.Delete, Skip: skip, Times: 1, Err: boom})
		p := plan(t, st)
		_, err := Execute(t.Context(), st, p, nil)
		checkWALOfListed(t, st, last)
		st.Clear()
		if err != nil {
			if _, err := Execute(t.Context(), st, plan(t, st), nil); err != nil {
				t.Fatalf("fault %d: second run: %v", skip, err)
			}
		}
		if left := keysUnder(t, base, archive.WALGPrefix); !slices.Equal(left, wantLeft) {
			t.Fatalf("fault %d: wal_005/ holds %v", skip, left)
		}
		if err == nil {
			t.Logf("%d calls covered", skip)
			break
		}
	}
}

// TestEverythingDeletesWALGWAL: delete everything deletes wal-g's WAL too,
// history files included; strays stay.
func TestEverythingDeletesWALGWAL(t *testing.T) {
	st, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	walgRepo(t, st, -1)
	walgWAL(t, st, 1, 0x11)
	inv, err := Read(t.Context(), st)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Everything(inv, EverythingOptions{Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Execute(t.Context(), st, p, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{archive.WALGPrefix + seg(1, 1) + "_delta_part", archive.WALGPrefix + "README"}
	if left := keysUnder(t, st, ""); !slices.Equal(left, want) {
		t.Fatalf("left %v, want the strays %v", left, want)
	}
}

// TestNewWALGBackupKeepsItsWAL: a wal-g backup that finishes after the plan
// was made (a wal-g backup-push still in use on the prefix) keeps the WAL
// from its start: here all the plan deleted.
func TestNewWALGBackupKeepsItsWAL(t *testing.T) {
	st, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	walgWAL(t, st, 1, 0x8)
	tuskBackup(t, st, "base_t0", time.Now(), 0x8)
	inv, err := Read(t.Context(), st)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Garbage(inv, GarbageOptions{Now: time.Now(), WAL: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CountWAL(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	if p.WAL.Delete == 0 {
		t.Fatal("the plan deletes no WAL")
	}
	walgRepo(t, st, -1) // starts at segment 1
	r, err := Execute(t.Context(), st, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := uint32(1); i <= 8; i++ {
		n, _ := wal.ParseSegment(seg(1, i))
		if _, err := archive.Stat(t.Context(), st, n); err != nil {
			t.Fatalf("segment %d: %v (report %+v)", i, err, r)
		}
	}
	if r.WALDeleted != 0 || r.WALKeptForNew != p.WAL.Delete {
		t.Fatalf("report %+v, plan deleted %d", r, p.WAL.Delete)
	}
}

// TestPermanentWALGBackupKeepsItsWAL: a permanent wal-g backup stays, and
// so does its own WAL in wal_005/ (start through end) and every object
// about a group of 16 segments holding it; the WAL between it and the kept
// tusk backup goes.
func TestPermanentWALGBackupKeepsItsWAL(t *testing.T) {
	st, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	if err := os.MkdirAll(filepath.Join(data, "global"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "global/pg_control"), make([]byte, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	codec, _ := compress.Parse("lz4")
	perm, err := walgtest.PushBackup(t.Context(), st, walgtest.BackupOptions{DataDir: data, Timeline: 1, StartLSN: 0x12 << 24, PgVersion: 150010,
		SystemID: 7, Codec: codec, Permanent: true, Stop: func(context.Context) (walgtest.Stopped, error) {
			return walgtest.Stopped{Label: "label\n", FinishLSN: 0x13<<24 + 0x100}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	walgWAL(t, st, 1, 0x24)
	tuskBackup(t, st, "base_t0", time.Now().Add(time.Hour), 0x22)
	inv, err := Read(t.Context(), st)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Retain(inv, RetainOptions{Keep: 1, Full: true, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if got := deleted(p); len(got) != 0 {
		t.Fatalf("retain FULL 1 deletes %v, want nothing (%s is permanent)", got, perm)
	}
	if _, err := Execute(t.Context(), st, p, nil); err != nil {
		t.Fatal(err)
	}
	for i := uint32(1); i <= 0x24; i++ {
		n, _ := wal.ParseSegment(seg(1, i))
		_, err := archive.Stat(t.Context(), st, n)
		if kept := i == 0x12 || i == 0x13 || i >= 0x22; kept != (err == nil) {
			t.Fatalf("segment %X: %v, want kept %v", i, err, kept)
		}
	}
	for k, kept := range map[string]bool{
		seg(1, 0x10)[:23] + ".json":        true, // bulk metadata of 0x10..0x1F
		seg(1, 0x10) + "_delta.lz4":        true,
		seg(1, 0x12) + ".json":             true,
		seg(1, 0x14) + ".json":             false,
		seg(1, 1) + ".00000028.backup.zst": false,
		"00000002.history.zst":             true,
	} {
		if _, err := st.Stat(t.Context(), archive.WALGPrefix+k); kept != (err == nil) {
			t.Errorf("%s: %v, want kept %v", k, err, kept)
		}
	}
}
