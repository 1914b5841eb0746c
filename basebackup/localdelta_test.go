package basebackup

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tusk-backup/tusk/compress"
	"github.com/tusk-backup/tusk/incremental"
	"github.com/tusk-backup/tusk/wal"
)

// testPage is a page with LSN lsn and pd_upper upper, the rest filled
// with fill.
func testPage(lsn wal.LSN, upper uint16, fill byte) []byte {
	p := bytes.Repeat([]byte{fill}, pageSize)
	binary.LittleEndian.PutUint32(p[0:], uint32(uint64(lsn)>>32))
	binary.LittleEndian.PutUint32(p[4:], uint32(lsn))
	binary.LittleEndian.PutUint16(p[14:], upper)
	return p
}

func TestPageNeeded(t *testing.T) {
	t.Parallel()
	from := wal.LSN(0x1_0000_2000)
	for _, c := range []struct {
		name string
		page []byte
		want bool
	}{
		{"older", testPage(from-1, 8000, 1), false},
		{"at the start", testPage(from, 8000, 1), true},
		{"newer", testPage(from+1, 8000, 1), true},
		{"newer by xlogid", testPage(0x2_0000_0000, 8000, 1), true},
		{"older by xlogid, larger xrecoff", testPage(0x0_ffff_ffff, 8000, 1), false},
		{"all zeros", make([]byte, pageSize), true},
		{"new page (pd_upper 0)", testPage(0, 0, 0), true},
	} {
		if got := pageNeeded(c.page, from); got != c.want {
			t.Errorf("%s: pageNeeded = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestStoreWhole(t *testing.T) {
	t.Parallel()
	const blk = pageSize
	for _, c := range []struct {
		name     string
		fork     string
		inParent bool
		size     int64
		changed  int
		want     bool
	}{
		{"main, few changed", "", true, 100 * blk, 10, false},
		{"nothing changed", "", true, 100 * blk, 0, false},
		{"90% changed", "", true, 100 * blk, 90, false},
		{"91% changed", "", true, 100 * blk, 91, true},
		{"free space map", "fsm", true, 100 * blk, 0, true},
		{"visibility map", "vm", true, 100 * blk, 1, false},
		{"init fork", "init", true, 2 * blk, 0, false},
		{"not in the parent", "", false, 100 * blk, 0, true},
		{"empty", "", true, 0, 0, true},
		{"not whole blocks", "", true, 100*blk + 5, 0, true},
		{"beyond a segment", "", true, (incremental.SegmentBlocks + 1) * blk, 0, true},
	} {
		if got := storeWhole(c.fork, c.inParent, c.size, c.changed); got != c.want {
			t.Errorf("%s: storeWhole = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestIncrementalLabel(t *testing.T) {
	t.Parallel()
	label := "START WAL LOCATION: 0/6000028 (file 000000010000000000000006)\nCHECKPOINT LOCATION: 0/6000060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2026-12-02 01:00:00 UTC\nLABEL: tusk\nSTART TIMELINE: 1\n"
	got := incrementalLabel(label, wal.LSN(0x1_0A000028), 2)
	want := label + "INCREMENTAL FROM LSN: 1/A000028\nINCREMENTAL FROM TLI: 2\n"
	if got != want {
		t.Errorf("label:\n%s\nwant:\n%s", got, want)
	}
	if got := incrementalLabel(strings.TrimSuffix(label, "\n"), 0x28, 1); got != label+"INCREMENTAL FROM LSN: 0/28\nINCREMENTAL FROM TLI: 1\n" {
		t.Errorf("label without a final newline:\n%s", got)
	}
}

func TestOnHistory(t *testing.T) {
	t.Parallel()
	anc := wal.Ancestry{{Timeline: 1, End: 0x5000000}, {Timeline: 2, End: 0x9000000}}
	for _, c := range []struct {
		name      string
		parentTLI uint32
		from      wal.LSN
		tli       uint32
		ok        bool
	}{
		{"same timeline", 3, 0xA000000, 3, true},
		{"on an ancestor, before it ended", 1, 0x4000000, 3, true},
		{"on an ancestor, after it ended", 1, 0x6000000, 3, false},
		{"on the parent timeline, at its end", 2, 0x9000000, 3, false},
		{"another branch", 4, 0x4000000, 3, false},
	} {
		if err := onHistory(c.parentTLI, c.from, c.tli, anc); (err == nil) != c.ok {
			t.Errorf("%s: onHistory = %v, want ok %v", c.name, err, c.ok)
		}
	}
}

// TestCopyRel: a relation file the parent holds is stored as an
// INCREMENTAL file with the pages changed since the parent's start (and the
// new ones), truncation length the file's; the free space map, a file the
// parent does not hold and one mostly changed are stored whole.
func TestCopyRel(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	u, g, _ := newUploader(t.Context(), System{SystemID: "1", Version: 150000, SegSize: 16 << 20}, &PushOptions{Store: st, Codec: compress.Default, PartSize: 1 << 20})
	u.meta.Name = "base_000000010000000000000002_20261202T000000Z"
	dir := t.TempDir()
	from := wal.LSN(0x3000000)
	old, changed := func(i int) []byte { return testPage(from-100, 8000, byte(i)) }, func(i int) []byte { return testPage(from+wal.LSN(i), 8000, byte(i)) }
	write := func(name string, pages ...[]byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, bytes.Join(pages, nil), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rel := write("16384", old(0), changed(1), old(2), old(3), changed(4), changed(5), make([]byte, pageSize), old(7))
	fsm := write("16384_fsm", old(0), old(1))
	fresh := write("16390", old(0))
	most := write("16391", changed(0), changed(1))
	b := &localBackup{u: u, delta: &deltaParent{from: from, tli: 1, files: map[string]bool{
		"base/5/16384": true, "base/5/16384_fsm": true, "base/5/16391": true}}}
	l := b.newLane("base", func() int { return 1 })
	for _, e := range []localEntry{
		{name: "base/5/16384", abs: rel, kind: tar.TypeReg, mode: 0o600, checked: true},
		{name: "base/5/16384_fsm", abs: fsm, kind: tar.TypeReg, mode: 0o600, checked: true},
		{name: "base/5/16390", abs: fresh, kind: tar.TypeReg, mode: 0o600, checked: true},
		{name: "base/5/16391", abs: most, kind: tar.TypeReg, mode: 0o600, checked: true},
	} {
		if err := b.copyRel(t.Context(), l, "", e); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.close(); err != nil {
		t.Fatal(err)
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	stored := map[string][]byte{}
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
			if stored[h.Name], err = io.ReadAll(tr); err != nil {
				return err
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(stored))
	for n := range stored {
		names = append(names, n)
	}
	slices.Sort(names)
	if want := []string{"base/5/16384_fsm", "base/5/16390", "base/5/16391", "base/5/INCREMENTAL.16384"}; !slices.Equal(names, want) {
		t.Fatalf("stored %v, want %v", names, want)
	}
	inc := stored["base/5/INCREMENTAL.16384"]
	r, err := incremental.NewReader(bytes.NewReader(inc), int64(len(inc)))
	if err != nil {
		t.Fatal(err)
	}
	if h := r.Header; !slices.Equal(h.Blocks, []uint32{1, 4, 5, 6}) || h.TruncationBlockLength != 8 {
		t.Errorf("INCREMENTAL.16384 holds blocks %v, truncation length %d; want [1 4 5 6], 8", h.Blocks, h.TruncationBlockLength)
	}
	src, _ := os.ReadFile(rel)
	for {
		blk, data, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, src[int(blk)*pageSize:int(blk+1)*pageSize]) {
			t.Errorf("block %d is not the file's", blk)
		}
	}
	for _, f := range b.files {
		if f.Path == "base/5/INCREMENTAL.16384" && (f.Size != int64(len(inc)) || f.Checksum != crcHex(crc32.Checksum(inc, castagnoli))) {
			t.Errorf("manifest entry %+v does not match the %d bytes stored", f, len(inc))
		}
	}
	for name, path := range map[string]string{"base/5/16384_fsm": fsm, "base/5/16390": fresh, "base/5/16391": most} {
		if want, _ := os.ReadFile(path); !bytes.Equal(stored[name], want) {
			t.Errorf("%s is not stored whole", name)
		}
	}
}
