package verify

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tusk-backup/tusk/archive"
	"github.com/tusk-backup/tusk/compress"
	"github.com/tusk-backup/tusk/internal/walgtest"
	"github.com/tusk-backup/tusk/storage/local"
	"github.com/tusk-backup/tusk/wal"
)

// TestReadWALG: tusk's layout and wal-g's read as one archive.
func TestReadWALG(t *testing.T) {
	const segSize = 1 << 20
	st, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a := &archive.Archive{Store: st, Codec: compress.Default, Log: slog.New(slog.DiscardHandler)}
	seg := func(tli uint32, pos uint64) (string, []byte) {
		n := wal.SegmentAt(tli, pos, segSize)
		b := make([]byte, segSize)
		copy(b[4096:], bytes.Repeat([]byte(n.File), 1000))
		copy(b, archive.LongPageHeader(n, segSize, 7000000000000000001))
		return n.File, b
	}
	// wal-g archived timeline 1 up to segment 4 (lz4), then the switch to
	// timeline 2 (zstd); tusk took over on timeline 2 from segment 6, and
	// segment 6 is in both.
	for pos := uint64(1); pos <= 4; pos++ {
		f, b := seg(1, pos)
		if _, err := walgtest.PutWAL(t.Context(), st, f, bytes.NewReader(b), walgtest.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	history := "1\t0/400000\tno recovery target specified\n"
	if _, err := walgtest.PutWAL(t.Context(), st, "00000002.history", strings.NewReader(history), walgtest.Options{Compression: "zstd"}); err != nil {
		t.Fatal(err)
	}
	for _, pos := range []uint64{4, 5, 6} {
		f, b := seg(2, pos)
		if _, err := walgtest.PutWAL(t.Context(), st, f, bytes.NewReader(b), walgtest.Options{Compression: "zstd"}); err != nil {
			t.Fatal(err)
		}
	}
	src := t.TempDir()
	for _, pos := range []uint64{6, 7, 8} {
		f, b := seg(2, pos)
		p := filepath.Join(src, f)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Push(t.Context(), p, archive.PushOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ar, err := Read(t.Context(), st, segSize, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ar.Timelines) != 2 || ar.WALG != 8 || len(ar.UnreadableWAL) != 0 {
		t.Fatalf("timelines %d, wal-g files %d, unreadable %v", len(ar.Timelines), ar.WALG, ar.UnreadableWAL)
	}
	t1, t2 := ar.Timelines[0], ar.Timelines[1]
	if t1.Segments != 4 || t2.Segments != 5 || t2.Parent != 1 || t2.Switch != "0/400000" || len(t2.Gaps) != 0 {
		t.Fatalf("timeline 1: %+v; timeline 2: %+v", t1, t2)
	}
	r := ar.Check(nil, nil)
	if !r.OK || r.To != wal.SegmentAt(2, 8, segSize).File || len(r.Path) != 2 {
		t.Fatalf("check: %+v", r)
	}
	if err := Content(t.Context(), &r, ContentOptions{Store: st, Concurrency: 2}); err != nil || !r.OK || r.Read != r.Checked {
		t.Fatalf("content: %+v, %v", r, err)
	}

	// A damaged wal-g segment is named by its own key.
	damaged := archive.WALGPrefix + wal.SegmentAt(1, 2, segSize).File + ".lz4"
	rc, err := st.Get(t.Context(), damaged)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if err := st.Put(t.Context(), damaged, bytes.NewReader(b[:len(b)-5])); err != nil {
		t.Fatal(err)
	}
	r = ar.Check(nil, nil)
	if err := Content(t.Context(), &r, ContentOptions{Store: st, Concurrency: 2}); err != nil || r.OK || len(r.Corrupt) != 1 || r.Corrupt[0].Object != damaged {
		t.Fatalf("content with a cut wal-g segment: %+v, %v", r, err)
	}
	if err := st.Put(t.Context(), damaged, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}

	// An object tusk cannot read is a problem, not a segment; wal-g's
	// metadata is another object.
	lzo := archive.WALGPrefix + wal.SegmentAt(2, 9, segSize).File + ".lzo"
	if err := st.Put(t.Context(), lzo, strings.NewReader("lzo")); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(t.Context(), archive.WALGPrefix+wal.SegmentAt(2, 9, segSize).File+".json", strings.NewReader("{}")); err != nil {
		t.Fatal(err)
	}
	ar, err = Read(t.Context(), st, segSize, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ar.UnreadableWAL) != 1 || ar.UnreadableWAL[0] != lzo || ar.Others != 1 {
		t.Fatalf("unreadable %v, others %d", ar.UnreadableWAL, ar.Others)
	}
	if r := ar.Check(nil, nil); r.OK || len(r.Problems) != 1 || !strings.Contains(r.Problems[0], lzo) {
		t.Fatalf("check with an .lzo: %+v", r)
	}
}
