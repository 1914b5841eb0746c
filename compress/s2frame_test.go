package compress

import (
	"bytes"
	"errors"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/s2"
)

// s2Input is compressible and incompressible data in turns, so that both
// kinds of chunk are written.
func s2Input(n int) []byte {
	rng := rand.New(rand.NewPCG(7, 11))
	b := make([]byte, n)
	for i := 0; i < n; i += 1 << 16 {
		end := min(n, i+1<<16)
		if (i>>16)%3 == 0 {
			for j := i; j < end; j++ {
				b[j] = byte(rng.Uint32())
			}
			continue
		}
		for j := i; j < end; j++ {
			b[j] = "tusk keeps PostgreSQL recoverable "[j%34]
		}
	}
	return b
}

// TestS2FramerReadBySnappyReader checks the framer's streams with s2's own
// reader, which checks every chunk's CRC, and their index with s2.Index,
// against s2's own writer's index of the same input.
func TestS2FramerReadBySnappyReader(t *testing.T) {
	data := s2Input(5<<20 + 12345)
	for _, level := range []int{s2Fast, s2Better, s2Best} {
		for _, n := range []int{0, 1, 100, s2BlockSize - 1, s2BlockSize, s2BlockSize + 1, 3 * s2BlockSize, len(data)} {
			in := data[:n]
			var got bytes.Buffer
			f := newS2Framer(&got, level)
			// Writes of uneven sizes, and some whole blocks with their CRC.
			for off, i := 0, 0; off < n; i++ {
				k := min(n-off, []int{7, 1 << 18, s2BlockSize, 3*s2BlockSize + 5}[i%4])
				var err error
				if k <= s2BlockSize && i%4 == 2 {
					_, err = f.WriteChecksummed(in[off:off+k], crc32.Checksum(in[off:off+k], castagnoli))
				} else {
					_, err = f.Write(in[off : off+k])
				}
				if err != nil {
					t.Fatal(err)
				}
				off += k
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			out, err := io.ReadAll(s2.NewReader(bytes.NewReader(got.Bytes())))
			if err != nil {
				t.Fatalf("level %d, %d bytes: s2's reader: %v", level, n, err)
			}
			if !bytes.Equal(out, in) {
				t.Fatalf("level %d, %d bytes: s2's reader read other bytes", level, n)
			}
			var idx s2.Index
			if err := idx.LoadStream(bytes.NewReader(got.Bytes())); err != nil {
				t.Fatalf("level %d, %d bytes: index: %v", level, n, err)
			}
			if idx.TotalUncompressed != int64(n) || idx.TotalCompressed != int64(got.Len()-len(tailIndex(t, got.Bytes()))) {
				t.Fatalf("level %d, %d bytes: index totals %d and %d", level, n, idx.TotalUncompressed, idx.TotalCompressed)
			}
			// Every offset the index gives is where a chunk starts that
			// decodes to the input from that offset on.
			for _, at := range []int64{0, 1, int64(n) / 2, max(0, int64(n)-1)} {
				if at >= int64(n) {
					continue
				}
				c, u, err := idx.Find(at)
				if err != nil {
					t.Fatalf("level %d, %d bytes: find %d: %v", level, n, at, err)
				}
				r := s2.NewReader(io.MultiReader(bytes.NewReader([]byte(s2StreamID)), bytes.NewReader(got.Bytes()[c:])))
				head := make([]byte, min(int64(n)-u, 4096))
				if _, err := io.ReadFull(r, head); err != nil || !bytes.Equal(head, in[u:u+int64(len(head))]) {
					t.Fatalf("level %d, %d bytes: index entry (%d, %d) does not start a block of the input (%v)", level, n, c, u, err)
				}
			}
		}
	}
}

// tailIndex returns the index chunk that ends stream b.
func tailIndex(t *testing.T, b []byte) []byte {
	t.Helper()
	n := int(b[len(b)-len(s2.S2IndexTrailer)-4]) | int(b[len(b)-len(s2.S2IndexTrailer)-3])<<8 | int(b[len(b)-len(s2.S2IndexTrailer)-2])<<16
	if n > len(b) {
		t.Fatalf("index size %d in a %d-byte stream", n, len(b))
	}
	return b[len(b)-n:]
}

// TestS2FramerIndexAsS2Writer compares the index with the one s2's own
// writer makes of the same blocks.
func TestS2FramerIndexAsS2Writer(t *testing.T) {
	data := s2Input(7<<20 + 999)
	var ours, theirs bytes.Buffer
	f := newS2Framer(&ours, s2Fast)
	w := s2.NewWriter(&theirs, s2.WriterConcurrency(1), s2.WriterAddIndex(), s2.WriterBlockSize(s2BlockSize))
	for off := 0; off < len(data); off += s2BlockSize {
		b := data[off:min(len(data), off+s2BlockSize)]
		if _, err := f.Write(b); err != nil {
			t.Fatal(err)
		}
		if err := w.EncodeBuffer(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var a, b s2.Index
	if err := a.LoadStream(bytes.NewReader(ours.Bytes())); err != nil {
		t.Fatal(err)
	}
	if err := b.LoadStream(bytes.NewReader(theirs.Bytes())); err != nil {
		t.Fatal(err)
	}
	if a.TotalUncompressed != b.TotalUncompressed {
		t.Fatalf("uncompressed total %d, s2's writer %d", a.TotalUncompressed, b.TotalUncompressed)
	}
	for at := int64(0); at < int64(len(data)); at += 1 << 19 {
		_, ua, _ := a.Find(at)
		_, ub, _ := b.Find(at)
		if ua != ub {
			t.Fatalf("offset %d: block at %d, s2's writer's at %d", at, ua, ub)
		}
	}
}

// TestS2FramerWrongCRC shows the given CRC is the one stored: a wrong one
// makes a stream that s2's reader refuses, and NewReader reports corrupt.
func TestS2FramerWrongCRC(t *testing.T) {
	data := s2Input(1 << 20)
	var b bytes.Buffer
	f := newS2Framer(&b, s2Fast)
	if _, err := f.WriteChecksummed(data, crc32.Checksum(data, castagnoli)^1); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(s2.NewReader(bytes.NewReader(b.Bytes()))); !errors.Is(err, s2.ErrCRC) {
		t.Fatalf("s2's reader: %v, want a CRC error", err)
	}
	r, _ := Codec{method: methodS2}.NewReader(bytes.NewReader(b.Bytes()))
	if _, err := io.ReadAll(r); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("NewReader: %v, want ErrCorrupt", err)
	}
}

// TestChecksummedWriterEveryCodec: every writer takes WriteChecksummed and
// round-trips what it was given.
func TestChecksummedWriterEveryCodec(t *testing.T) {
	data := s2Input(2<<20 + 3)
	for _, name := range []string{"none", "s2", "s2:better", "zstd", "gzip", "lz4"} {
		c, err := Parse(name)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		w, err := c.NewWriter(&b)
		if err != nil {
			t.Fatal(err)
		}
		cw, ok := w.(ChecksummedWriter)
		if !ok {
			t.Fatalf("%s: writer is not a ChecksummedWriter", name)
		}
		for off := 0; off < len(data); off += 1 << 20 {
			p := data[off:min(len(data), off+1<<20)]
			if _, err := cw.WriteChecksummed(p, crc32.Checksum(p, castagnoli)); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		r, err := c.NewReader(&b)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: read back %d bytes, %v", name, len(got), err)
		}
	}
}
