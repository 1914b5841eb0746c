package basebackup

import (
	"archive/tar"
	"bytes"
	"hash/crc32"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tusk-backup/tusk/compress"
)

// TestArchiveWriterSums drives an archiveWriter with sums as a local-mode
// lane does, files whole and split over parts, written in uneven pieces:
// each file's content CRC-32C must be the file's, and every part, whose s2
// blocks carry the CRCs the parts computed as they copied, must read back
// (s2 checks every block's) to the tar stream that was written.
func TestArchiveWriterSums(t *testing.T) {
	t.Parallel()
	for _, codec := range []string{"s2", "zstd"} {
		c, err := compress.Parse(codec)
		if err != nil {
			t.Fatal(err)
		}
		st := newStore(t)
		g, gctx := errgroup.WithContext(t.Context())
		u := &uploader{ctx: gctx, g: g, run: newRunID(),
			opts: PushOptions{Store: st, Codec: c, PartSize: 1 << 20, Concurrency: 2, Log: slog.New(slog.DiscardHandler)},
			meta: Meta{Name: "base_000000010000000000000002"}}
		var seq atomic.Int64
		aw := &archiveWriter{u: u, name: "base.tar", nextSeq: func() int { return int(seq.Add(1)) }, sums: true}
		var sent bytes.Buffer
		tw := tar.NewWriter(io.MultiWriter(&sent, writerFunc(func(p []byte) (int, error) { return len(p), aw.feed(p) })))
		r := rand.New(rand.NewPCG(3, 4))
		for i, size := range []int{0, 1, 511, 512, 100 << 10, 3<<20 + 7, 5, 2 << 20, 0, 70000} {
			data := randomBytes(uint64(i+10), size)
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "base/1/" + string(rune('a'+i)), Size: int64(size), Mode: 0o600, ModTime: time.Unix(1700000000, 0)}); err != nil {
				t.Fatal(err)
			}
			for p := data; len(p) > 0; {
				n := min(len(p), 1+r.IntN(300<<10))
				if _, err := tw.Write(p[:n]); err != nil {
					t.Fatal(err)
				}
				p = p[n:]
			}
			crc, ok := aw.contentCRC()
			if want := crc32.Checksum(data, castagnoli); !ok || crc != want {
				t.Fatalf("%s, file of %d bytes: content CRC %08x (%v), want %08x", codec, size, crc, ok, want)
			}
			if i == 3 {
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "base/2/", Mode: 0o700, ModTime: time.Unix(1700000000, 0)}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := aw.finish(); err != nil {
			t.Fatal(err)
		}
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
		if len(u.parts) < 4 {
			t.Fatalf("%s: %d parts, want the larger files split", codec, len(u.parts))
		}
		// Read every part, and the entries' contents, back.
		got := map[string][]byte{}
		slices.SortFunc(u.parts, func(a, b Part) int { return a.Seq - b.Seq })
		for _, p := range u.parts {
			rc, err := st.Get(t.Context(), p.Key)
			if err != nil {
				t.Fatal(err)
			}
			zr, err := c.NewReader(rc)
			if err != nil {
				t.Fatal(err)
			}
			tr := tar.NewReader(zr)
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("%s: part %s: %v", codec, p.Key, err)
				}
				b, err := io.ReadAll(tr)
				if err != nil {
					t.Fatalf("%s: part %s: %v", codec, p.Key, err)
				}
				got[h.Name] = append(got[h.Name], b...)
			}
			zr.Close()
			rc.Close()
		}
		want := tar.NewReader(&sent)
		for {
			h, err := want.Next()
			if err == io.EOF {
				break
			}
			b, _ := io.ReadAll(want)
			if !bytes.Equal(got[h.Name], b) {
				t.Fatalf("%s: %s reads back as %d bytes, written %d", codec, h.Name, len(got[h.Name]), len(b))
			}
		}
	}
}
