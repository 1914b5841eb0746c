package basebackup

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tusk-backup/tusk/compress"
)

// referenceChecksum is pg_checksum_page written as PostgreSQL writes it
// (checksum_impl.h): the loop pageChecksum must agree with.
func referenceChecksum(p []byte, blkno uint32) uint16 {
	sums := checksumBaseOffsets
	for i := 0; i < pageSize/(4*nSums); i++ {
		for j := 0; j < nSums; j++ {
			v := binary.LittleEndian.Uint32(p[(i*nSums+j)*4:])
			if i == 0 && j == 2 {
				v &^= 0xFFFF
			}
			sums[j] = checksumComp(sums[j], v)
		}
	}
	for range 2 {
		for j := range sums {
			sums[j] = checksumComp(sums[j], 0)
		}
	}
	var result uint32
	for _, s := range sums {
		result ^= s
	}
	result ^= blkno
	return uint16(result%65535 + 1)
}

// TestPageChecksumReference checks pageChecksum against the reference
// loop on random pages, a page of ones and one whose every word differs
// only in pd_checksum's bytes (which must not count).
func TestPageChecksumReference(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	p := make([]byte, pageSize)
	for n := range 200 {
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		blk := rng.Uint32()
		want := referenceChecksum(p, blk)
		if got := pageChecksum(p, blk); got != want {
			t.Fatalf("random page %d: checksum %#04x, the reference %#04x", n, got, want)
		}
		if got := scalarChecksum(p, blk); got != want {
			t.Fatalf("random page %d: scalar checksum %#04x, the reference %#04x", n, got, want)
		}
	}
	for i := range p {
		p[i] = 0xFF
	}
	if got, want := pageChecksum(p, 5), referenceChecksum(p, 5); got != want {
		t.Fatalf("page of ones: checksum %#04x, the reference %#04x", got, want)
	}
	before := pageChecksum(p, 5)
	p[8], p[9] = 0x12, 0x34
	if got := pageChecksum(p, 5); got != before {
		t.Fatalf("pd_checksum's bytes changed the checksum: %#04x, then %#04x", before, got)
	}
	p[10] ^= 1
	if got := pageChecksum(p, 5); got == before {
		t.Fatalf("byte 10 (pd_flags) did not change the checksum")
	}
}

func BenchmarkPageChecksum(b *testing.B) {
	p := make([]byte, pageSize)
	for i := range p {
		p[i] = byte(i * 7)
	}
	b.Run("tusk", func(b *testing.B) {
		b.SetBytes(pageSize)
		for b.Loop() {
			pageChecksum(p, 3)
		}
	})
	b.Run("scalar", func(b *testing.B) {
		b.SetBytes(pageSize)
		for b.Loop() {
			scalarChecksum(p, 3)
		}
	})
	b.Run("reference", func(b *testing.B) {
		b.SetBytes(pageSize)
		for b.Loop() {
			referenceChecksum(p, 3)
		}
	})
}

// testdata/pg_class.2pages is blocks 0 and 1 of pg_class (base/1/1259) of a
// PostgreSQL 15 cluster made by initdb --data-checksums: pages whose
// pd_checksum the server wrote.
func TestPageChecksum(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("testdata", "pg_class.2pages"))
	if err != nil {
		t.Fatal(err)
	}
	for blk := range uint32(2) {
		p := b[blk*pageSize : (blk+1)*pageSize]
		want := binary.LittleEndian.Uint16(p[8:])
		if got := pageChecksum(p, blk); got != want {
			t.Errorf("block %d: checksum %#04x, the server wrote %#04x", blk, got, want)
		}
		if pageChecksum(p, blk+1) == want {
			t.Errorf("block %d: the checksum does not depend on the block number", blk)
		}
		if v := checkPage(p, blk, 1<<62); v != pageGood {
			t.Errorf("block %d: verdict %d, want good", blk, v)
		}
		// A flipped byte in the data fails; so does the same page at
		// another block (a page written to the wrong place).
		bad := slices.Clone(p)
		bad[4000] ^= 0x40
		if v := checkPage(bad, blk, 1<<62); v != pageBad {
			t.Errorf("block %d with a flipped byte: verdict %d, want bad", blk, v)
		}
		if v := checkPage(p, blk+7, 1<<62); v != pageBad {
			t.Errorf("block %d checked as block %d: verdict %d, want bad", blk, blk+7, v)
		}
		// A page changed after the backup started is not checked: its LSN
		// is at or after the start.
		lsn := uint64(binary.LittleEndian.Uint32(p[0:]))<<32 | uint64(binary.LittleEndian.Uint32(p[4:]))
		if v := checkPage(bad, blk, lsn); v != pageSkipped {
			t.Errorf("block %d, backup started at its LSN: verdict %d, want skipped", blk, v)
		}
	}
	if v := checkPage(make([]byte, pageSize), 3, 1<<62); v != pageSkipped {
		t.Errorf("a new page: verdict %d, want skipped", v)
	}
}

func TestParseRelFile(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		ok   bool
		want relFile
	}{
		{"16384", true, relFile{node: "16384"}},
		{"16384.2", true, relFile{node: "16384", seg: 2}},
		{"16384_fsm", true, relFile{node: "16384", fork: "fsm"}},
		{"16384_vm.1", true, relFile{node: "16384", fork: "vm", seg: 1}},
		{"16384_init", true, relFile{node: "16384", fork: "init"}},
		{"16384_foo", false, relFile{}},
		{"16384.", false, relFile{}},
		{"16384.0", false, relFile{}},
		{"16384.x", false, relFile{}},
		{"t3_16384", false, relFile{}},
		{"PG_VERSION", false, relFile{}},
		{"pg_filenode.map", false, relFile{}},
		{"", false, relFile{}},
	} {
		got, ok := parseRelFile(c.name)
		if ok != c.ok || ok && got != c.want {
			t.Errorf("parseRelFile(%q) = %+v, %v; want %+v, %v", c.name, got, ok, c.want, c.ok)
		}
	}
}

func TestExclusions(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"postmaster.pid": true, "postmaster.opts": true, "backup_label": true, "backup_label.old": true,
		"tablespace_map": true, "backup_manifest": true, "pg_internal.init": true, "pg_internal.init.123": true,
		"postgresql.auto.conf.tmp": true, "current_logfiles.tmp": true, "pgsql_tmp": true, "pgsql_tmp123.4": true,
		"postgresql.conf": false, "postgresql.auto.conf": false, "16384": false, "PG_VERSION": false, "current_logfiles": false,
	} {
		if got := excludedName(name); got != want {
			t.Errorf("excludedName(%q) = %v, want %v", name, got, want)
		}
	}
	for rel, want := range map[string]bool{
		"pg_wal": true, "pg_replslot": true, "pg_stat_tmp": true, "pg_dynshmem": true, "pg_notify": true,
		"pg_serial": true, "pg_snapshots": true, "pg_subtrans": true,
		"pg_xact": false, "pg_multixact": false, "base": false, "pg_stat": false, "base/pg_replslot": false,
	} {
		if got := contentsExcluded(rel); got != want {
			t.Errorf("contentsExcluded(%q) = %v, want %v", rel, got, want)
		}
	}
	skips := dbDirSkips([]string{"100", "100_fsm", "200", "200.1", "200_fsm", "200_vm", "200_init", "t4_300", "t4_300_fsm", "PG_VERSION", "pg_filenode.map"})
	if got, want := slices.Sorted(maps.Keys(skips)), []string{"200", "200.1", "200_fsm", "200_vm", "t4_300", "t4_300_fsm"}; !slices.Equal(got, want) {
		t.Errorf("dbDirSkips = %v, want %v", got, want)
	}
}

// TestListTree lists a made-up data directory and tablespace as a local
// backup reads them.
func TestListTree(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ts := t.TempDir()
	files := []string{
		"PG_VERSION", "postgresql.conf", "postmaster.pid", "postmaster.opts", "backup_label.old",
		"global/pg_control", "global/1262", "global/pg_internal.init",
		"base/1/100", "base/1/100_fsm", "base/1/200", "base/1/200_init", "base/1/t3_400", "base/1/pg_internal.init",
		"base/pgsql_tmp/pgsql_tmp1.0",
		"pg_wal/000000010000000000000001", "pg_wal/archive_status/000000010000000000000001.done",
		"pg_replslot/s/state", "pg_stat_tmp/x", "pg_subtrans/0000", "pg_xact/0000", "pg_stat/pgstat.stat",
	}
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"PG_15_202209061/5/16400", "PG_15_202209061/5/16401_init", "PG_15_202209061/5/16401", "PG_14_202107181/5/1"} {
		p := filepath.Join(ts, filepath.FromSlash(f))
		os.MkdirAll(filepath.Dir(p), 0o700)
		os.WriteFile(p, []byte("y"), 0o600)
	}
	os.MkdirAll(filepath.Join(dir, "pg_tblspc"), 0o700)
	if err := os.Symlink(ts, filepath.Join(dir, "pg_tblspc", "16399")); err != nil {
		t.Fatal(err)
	}
	l, err := listTree(dir, true, "", 150000)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range l.entries {
		s := string(e.kind) + " " + e.name
		if e.checked {
			s += " checked"
		}
		got = append(got, s)
	}
	slices.Sort(got)
	want := []string{
		"0 PG_VERSION", "0 base/1/100 checked", "0 base/1/100_fsm checked", "0 base/1/200_init checked",
		"0 global/1262 checked", "0 pg_stat/pgstat.stat", "0 pg_xact/0000", "0 postgresql.conf",
		"2 pg_tblspc/16399",
		"5 base", "5 base/1", "5 global", "5 pg_replslot", "5 pg_stat", "5 pg_stat_tmp", "5 pg_subtrans",
		"5 pg_tblspc", "5 pg_wal", "5 pg_wal/archive_status", "5 pg_xact",
	}
	if !slices.Equal(got, want) {
		t.Errorf("data directory entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if l.spaces["16399"] != ts {
		t.Errorf("tablespaces %v, want 16399 at %s", l.spaces, ts)
	}
	vdir, err := versionDirOf(ts, 15)
	if err != nil || vdir != "PG_15_202209061" {
		t.Fatalf("versionDirOf = %q, %v", vdir, err)
	}
	l, err = listTree(ts, false, vdir, 150000)
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	for _, e := range l.entries {
		got = append(got, string(e.kind)+" "+e.name)
	}
	slices.Sort(got)
	want = []string{"0 PG_15_202209061/5/16400", "0 PG_15_202209061/5/16401_init", "5 PG_15_202209061", "5 PG_15_202209061/5"}
	if !slices.Equal(got, want) {
		t.Errorf("tablespace entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestChooseMode(t *testing.T) {
	t.Parallel()
	notHere := os.ErrNotExist
	for _, c := range []struct {
		want, dataDir string
		local         error
		native        bool
		mode          string
		fails         bool
	}{
		{"auto", "/d", nil, false, ModeLocal, false},
		{"auto", "", notHere, false, ModeRemote, false},
		{"auto", "/d", notHere, false, ModeRemote, false},
		{"auto", "/d", nil, true, ModeRemote, false},
		{"remote", "/d", nil, false, ModeRemote, false},
		{"local", "/d", nil, false, ModeLocal, false},
		{"local", "", notHere, false, "", true},
		{"local", "/d", notHere, false, "", true},
		{"local", "/d", nil, true, ModeLocal, false},
	} {
		mode, _, err := ChooseMode(c.want, c.dataDir, c.local, c.native)
		if mode != c.mode || (err != nil) != c.fails {
			t.Errorf("ChooseMode(%q, %q, %v, %v) = %q, %v; want %q (fails: %v)", c.want, c.dataDir, c.local, c.native, mode, err, c.mode, c.fails)
		}
	}
}

// TestCopyFileShrinksAndVanishes: a file that shrinks after it is opened
// is stored at its size at open, the rest zeros, with the manifest's CRC32C
// of what is stored; one gone before it is opened is left out.
func TestCopyFileShrinksAndVanishes(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	u, g, _ := newUploader(t.Context(), System{SystemID: "1", Version: 150000, SegSize: 16 << 20}, &PushOptions{Store: st, Codec: compress.Default, PartSize: 1 << 20})
	u.meta.Name = "base_000000010000000000000002_20261202T000000Z"
	dir := t.TempDir()
	data := randomBytes(3, 3*pageSize+100)
	shrinking := filepath.Join(dir, "16384")
	if err := os.WriteFile(shrinking, data, 0o600); err != nil {
		t.Fatal(err)
	}
	b := &localBackup{u: u, opened: func(name string) {
		if name == shrinking {
			// A truncation while the file is read: its size was taken at
			// the open, the bytes are gone.
			os.Truncate(name, pageSize+10)
		}
	}}
	l := b.newLane("base", func() int { return 1 })
	for _, e := range []localEntry{
		{name: "base/5/16384", abs: shrinking, kind: tar.TypeReg, mode: 0o600},
		{name: "base/5/16385", abs: filepath.Join(dir, "gone"), kind: tar.TypeReg, mode: 0o600},
	} {
		if err := b.copyFile(t.Context(), l, "", e); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.close(); err != nil {
		t.Fatal(err)
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	want := append(slices.Clone(data[:pageSize+10]), make([]byte, len(data)-pageSize-10)...)
	if len(b.files) != 1 || b.files[0].Path != "base/5/16384" || b.files[0].Size != int64(len(data)) ||
		b.files[0].Checksum != crcHex(crc32.Checksum(want, castagnoli)) {
		t.Fatalf("manifest files %+v, want base/5/16384 only, %d bytes with the CRC32C of what is left and zeros", b.files, len(data))
	}
	if len(u.parts) != 1 {
		t.Fatalf("%d parts, want 1", len(u.parts))
	}
	var got []byte
	err := fetchPart(t.Context(), st, u.parts[0], func(r io.Reader) error {
		tr := tar.NewReader(r)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if h.Name != "base/5/16384" {
				t.Errorf("the part holds %s", h.Name)
			}
			if got, err = io.ReadAll(tr); err != nil {
				return err
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("stored %d bytes, not what was there at the read, then zeros to the size at open", len(got))
	}
}
