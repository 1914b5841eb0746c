package compress

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"testing/iotest"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// testCodecs covers every method and each band of levels; methodCodecs has
// one codec per method, for the tests whose subject is the format (and that
// are slow under the race detector).
var (
	testCodecs = []string{
		"none", "zstd:1", "zstd", "zstd:7", "zstd:19",
		"s2", "s2:better", "s2:best", "gzip:1", "gzip", "lz4",
	}
	methodCodecs = []string{"none", "zstd", "s2", "gzip", "lz4"}
)

func mustParse(t testing.TB, s string) Codec {
	t.Helper()
	c, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// randomBytes returns n incompressible bytes.
func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// compressible returns n bytes shaped a little like WAL: records with rising
// counters, repeated tuple text and runs of zeros.
func compressible(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 2))
	words := []string{"pgbench_accounts", "aid", "bid", "abalance", "filler", "UPDATE", "INSERT", "heap", "btree", "commit"}
	var b bytes.Buffer
	b.Grow(n + 256)
	for lsn := uint64(0); b.Len() < n; lsn++ {
		var rec [24]byte
		binary.LittleEndian.PutUint64(rec[0:], lsn*64)
		binary.LittleEndian.PutUint32(rec[8:], uint32(r.IntN(1000)))
		binary.LittleEndian.PutUint32(rec[12:], uint32(lsn))
		b.Write(rec[:])
		for range r.IntN(4) {
			b.WriteString(words[r.IntN(len(words))])
			b.WriteByte(' ')
		}
		if r.IntN(16) == 0 {
			b.Write(make([]byte, r.IntN(512)))
		}
	}
	return b.Bytes()[:n]
}

// closeRecorder is a buffer that notices being closed.
type closeRecorder struct {
	bytes.Buffer
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

func compressBytes(t testing.TB, c Codec, data []byte) []byte {
	t.Helper()
	var dst closeRecorder
	w, err := c.NewWriter(&dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if dst.closed {
		t.Fatalf("%s writer Close closed the underlying writer", c)
	}
	return dst.Bytes()
}

func decompressBytes(c Codec, comp []byte) ([]byte, error) {
	r, err := c.NewReader(bytes.NewReader(comp))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	inputs := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"1B", []byte{42}},
		{"1MiB-random", randomBytes(1<<20, 1)},
		{"16MiB-compressible", compressible(16<<20, 2)},
	}
	for _, name := range testCodecs {
		c := mustParse(t, name)
		for _, in := range inputs {
			t.Run(name+"/"+in.name, func(t *testing.T) {
				t.Parallel()
				if len(in.data) > 1<<20 && (testing.Short() || !slices.Contains(methodCodecs, name)) {
					t.Skip("large input: for one codec per method, not in -short mode")
				}
				comp := compressBytes(t, c, in.data)
				src := &closeRecorder{}
				src.Write(comp)
				r, err := c.NewReader(src)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(r)
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				if !bytes.Equal(got, in.data) {
					t.Fatalf("round trip of %d bytes gave %d different bytes", len(in.data), len(got))
				}
				if err := r.Close(); err != nil {
					t.Fatalf("reader close: %v", err)
				}
				if src.closed {
					t.Fatal("reader Close closed the underlying reader")
				}
				if len(in.data) > 0 && len(in.data) < 1<<21 {
					// Reading one byte at a time, and the io.Reader contract.
					r, err := c.NewReader(iotest.OneByteReader(bytes.NewReader(comp)))
					if err != nil {
						t.Fatal(err)
					}
					defer r.Close()
					if err := iotest.TestReader(r, in.data); err != nil {
						t.Fatal(err)
					}
				}
				if len(in.data) > 1000 && c.Name() != "none" {
					t.Logf("ratio %.2f", float64(len(in.data))/float64(len(comp)))
				}
			})
		}
	}
}

func TestWriterClose(t *testing.T) {
	t.Parallel()
	for _, name := range testCodecs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := mustParse(t, name)
			var dst closeRecorder
			w, err := c.NewWriter(&dst)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write([]byte("hello")); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if dst.closed {
				t.Fatal("Close closed the underlying writer")
			}
			n := dst.Len()
			if err := w.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			if _, err := w.Write([]byte("more")); err == nil {
				t.Fatal("Write after Close succeeded")
			}
			if dst.Len() != n {
				t.Fatal("second Close or Write after Close wrote more bytes")
			}
			got, err := decompressBytes(c, dst.Bytes())
			if err != nil || string(got) != "hello" {
				t.Fatalf("read back %q, %v", got, err)
			}

			r, err := c.NewReader(bytes.NewReader(dst.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			if err := r.Close(); err != nil {
				t.Fatalf("second reader Close: %v", err)
			}
			if c.Name() != "none" {
				if _, err := r.Read(make([]byte, 8)); err == nil || err == io.EOF {
					t.Fatalf("Read after Close returned %v", err)
				}
			}
		})
	}
}

// detects tells whether a codec must notice damage to its stream.
func detects(c Codec) bool { return c.Name() != "none" }

// TestTruncated cuts streams at many lengths (see cutPoints): each must fail,
// never return short data as success. TestTruncatedAtBlocks adds the block
// boundaries of multi-block streams.
func TestTruncated(t *testing.T) {
	t.Parallel()
	inputs := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"8KiB", compressible(8<<10, 3)},
		// Some of it incompressible, so that blocks are stored raw.
		{"3MiB", append(compressible(2<<20, 4), randomBytes(1<<20, 5)...)},
	}
	for _, name := range methodCodecs {
		c := mustParse(t, name)
		if !detects(c) {
			continue
		}
		for _, in := range inputs {
			t.Run(name+"/"+in.name, func(t *testing.T) {
				t.Parallel()
				if testing.Short() && len(in.data) > 1<<20 {
					t.Skip("large input in -short mode")
				}
				comp := compressBytes(t, c, in.data)
				for _, n := range cutPoints(comp) {
					got, err := decompressBytes(c, comp[:n])
					if err == nil {
						t.Fatalf("stream of %d bytes cut to %d: read %d of %d bytes and no error",
							len(comp), n, len(got), len(in.data))
					}
					if !errors.Is(err, ErrCorrupt) {
						t.Fatalf("cut to %d: error %v does not wrap ErrCorrupt", n, err)
					}
				}
			})
		}
	}
}

// cutPoints returns the lengths to cut comp to: see positions; for a large
// stream also every 262139th and the last 64.
func cutPoints(comp []byte) []int {
	if len(comp) <= 16<<10 {
		return positions(len(comp))
	}
	cuts := positions(0)
	for n := 0; n < len(comp); n += 262139 {
		cuts = append(cuts, n)
	}
	for n := len(comp) - 64; n < len(comp); n++ {
		cuts = append(cuts, n)
	}
	return cuts
}

// TestTruncatedAtBlocks cuts multi-block streams exactly between blocks,
// where nothing but an end marker or length can tell that more should follow.
func TestTruncatedAtBlocks(t *testing.T) {
	t.Parallel()
	data := append(compressible(768<<10, 11), randomBytes(256<<10, 12)...)
	tests := []struct {
		codec  string
		write  func(t *testing.T, data []byte) []byte
		blocks func(comp []byte) ([]int, error)
	}{
		{"zstd", func(t *testing.T, data []byte) []byte { return compressBytes(t, mustParse(t, "zstd"), data) }, zstdBlocks},
		{"lz4", func(t *testing.T, data []byte) []byte {
			// tusk writes 4 MiB blocks, as wal-g does; the reader is the same
			// for any size, so smaller ones make more boundaries.
			var buf bytes.Buffer
			zw := lz4.NewWriter(&buf)
			if err := zw.Apply(lz4.BlockSizeOption(lz4.Block64Kb)); err != nil {
				t.Fatal(err)
			}
			if _, err := zw.Write(data); err != nil {
				t.Fatal(err)
			}
			if err := zw.Close(); err != nil {
				t.Fatal(err)
			}
			return buf.Bytes()
		}, lz4Blocks},
		{"s2", func(t *testing.T, data []byte) []byte {
			return compressBytes(t, mustParse(t, "s2"), append(bytes.Clone(data), data...))
		}, s2Chunks},
	}
	for _, tt := range tests {
		t.Run(tt.codec, func(t *testing.T) {
			t.Parallel()
			c := mustParse(t, tt.codec)
			comp := tt.write(t, data)
			cuts, err := tt.blocks(comp)
			if err != nil {
				t.Fatal(err)
			}
			if len(cuts) < 3 {
				t.Fatalf("only %d block boundaries", len(cuts))
			}
			if _, err := decompressBytes(c, comp); err != nil {
				t.Fatalf("whole stream: %v", err)
			}
			for _, n := range cuts {
				got, err := decompressBytes(c, comp[:n])
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("cut at the block boundary %d of %d: read %d bytes, error %v; want ErrCorrupt", n, len(comp), len(got), err)
				}
			}
			t.Logf("%d block boundaries", len(cuts))
		})
	}
}

// zstdBlocks returns the offsets where each block of a one-frame zstd stream
// starts, and the offset of its checksum (RFC 8878, section 3.1.1).
func zstdBlocks(b []byte) ([]int, error) {
	if len(b) < 6 || binary.LittleEndian.Uint32(b) != 0xFD2FB528 {
		return nil, errors.New("not a zstd frame")
	}
	fhd := b[4]
	single := fhd&0x20 != 0
	off := 5
	if !single {
		off++ // window descriptor
	}
	off += []int{0, 1, 2, 4}[fhd&3] // dictionary ID
	fcs := []int{0, 2, 4, 8}[fhd>>6]
	if fhd>>6 == 0 && single {
		fcs = 1
	}
	off += fcs
	var starts []int
	for {
		if off+3 > len(b) {
			return nil, errors.New("zstd frame ends inside a block header")
		}
		starts = append(starts, off)
		h := int(b[off]) | int(b[off+1])<<8 | int(b[off+2])<<16
		last, typ, size := h&1 == 1, (h>>1)&3, h>>3
		if typ == 1 { // RLE: one byte repeated size times
			size = 1
		}
		off += 3 + size
		if last {
			return append(starts, off), nil
		}
	}
}

// lz4Blocks returns the offsets where each block of an lz4 frame starts, and
// the offset of its end mark.
func lz4Blocks(b []byte) ([]int, error) {
	if len(b) < 7 || binary.LittleEndian.Uint32(b) != 0x184D2204 {
		return nil, errors.New("not an lz4 frame")
	}
	flg := b[4]
	off := 6 // magic, FLG, BD
	if flg&0x08 != 0 {
		off += 8 // content size
	}
	if flg&0x01 != 0 {
		off += 4 // dictionary ID
	}
	off++ // header checksum
	var starts []int
	for {
		if off+4 > len(b) {
			return nil, errors.New("lz4 frame ends inside a block header")
		}
		starts = append(starts, off)
		size := int(binary.LittleEndian.Uint32(b[off:]) &^ (1 << 31))
		if size == 0 {
			return starts, nil // the end mark
		}
		off += 4 + size
		if flg&0x10 != 0 {
			off += 4 // block checksum
		}
	}
}

// s2Chunks returns the offsets where each chunk of an s2 stream starts.
func s2Chunks(b []byte) ([]int, error) {
	var starts []int
	for off := 0; off < len(b); {
		if off+4 > len(b) {
			return nil, errors.New("s2 stream ends inside a chunk header")
		}
		starts = append(starts, off)
		off += 4 + (int(b[off+1]) | int(b[off+2])<<8 | int(b[off+3])<<16)
	}
	return starts, nil
}

// positions returns the offsets in a stream of n bytes to damage: all of the
// first and last 64, where headers and trailers are, and every 29th between.
// (lz4 and s2 readers allocate their block buffer anew after an error, 4 MiB
// for lz4, which makes every offset of a few KiB slow under the race
// detector.)
func positions(n int) []int {
	var p []int
	for i := 0; i < n; i++ {
		if i < 64 || i >= n-64 || i%29 == 0 {
			p = append(p, i)
		}
	}
	return p
}

// TestBitFlip flips one bit in each of many bytes of a stream in turn
// (positions), one flip at a time: reading must
// fail or give the original data, never different data.
func TestBitFlip(t *testing.T) {
	t.Parallel()
	data := compressible(8<<10, 6)
	for _, name := range methodCodecs {
		c := mustParse(t, name)
		if !detects(c) {
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			comp := compressBytes(t, c, data)
			harmless, pos := 0, positions(len(comp))
			for _, i := range pos {
				bad := bytes.Clone(comp)
				bad[i] ^= 1 << (i % 8)
				got, err := decompressBytes(c, bad)
				switch {
				case err != nil:
					if !errors.Is(err, ErrCorrupt) {
						t.Fatalf("flip at %d: error %v does not wrap ErrCorrupt", i, err)
					}
				case bytes.Equal(got, data):
					harmless++ // e.g. gzip's MTIME and OS header bytes
				default:
					t.Fatalf("flip at byte %d of %d: read %d wrong bytes and no error", i, len(comp), len(got))
				}
			}
			t.Logf("%d of %d flips detected, %d did not change the content", len(pos)-harmless, len(pos), harmless)
		})
	}
}

// failingReader returns its data, then err.
type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestSourceError(t *testing.T) {
	t.Parallel()
	errNetwork := errors.New("connection reset")
	data := randomBytes(256<<10, 7)
	for _, name := range methodCodecs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := mustParse(t, name)
			comp := compressBytes(t, c, data)
			for _, n := range []int{0, 1, len(comp) / 2, len(comp) - 1} {
				r, err := c.NewReader(&failingReader{data: comp[:n], err: errNetwork})
				if err != nil {
					t.Fatal(err)
				}
				_, err = io.Copy(io.Discard, r)
				r.Close()
				if !errors.Is(err, errNetwork) {
					t.Fatalf("source failing after %d bytes: error %v, want the source's", n, err)
				}
				if errors.Is(err, ErrCorrupt) {
					t.Fatalf("source failing after %d bytes: error %v blames the data", n, err)
				}
			}
		})
	}
}

func TestTrailingGarbage(t *testing.T) {
	t.Parallel()
	for _, name := range testCodecs {
		c := mustParse(t, name)
		if !detects(c) {
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			comp := compressBytes(t, c, []byte("content"))
			comp = append(comp, "garbage!"...)
			if got, err := decompressBytes(c, comp); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("stream with trailing garbage: read %q, error %v; want ErrCorrupt", got, err)
			}
		})
	}
}

// TestForeignStreams reads streams written the way wal-g and the stock tools
// write them.
func TestForeignStreams(t *testing.T) {
	t.Parallel()
	data := compressible(1<<20, 8)
	tests := []struct {
		codec string
		write func(w io.Writer) io.WriteCloser
		ok    bool
	}{
		{"lz4", func(w io.Writer) io.WriteCloser { return lz4.NewWriter(w) }, true},
		{"lz4", func(w io.Writer) io.WriteCloser {
			zw := lz4.NewWriter(w)
			if err := zw.Apply(lz4.ChecksumOption(false), lz4.BlockChecksumOption(true), lz4.BlockSizeOption(lz4.Block64Kb)); err != nil {
				t.Fatal(err)
			}
			return zw
		}, true},
		{"zstd", func(w io.Writer) io.WriteCloser {
			zw, err := zstd.NewWriter(w) // concurrent, default level
			if err != nil {
				t.Fatal(err)
			}
			return zw
		}, true},
		{"zstd", func(w io.Writer) io.WriteCloser {
			zw, err := zstd.NewWriter(w, zstd.WithEncoderCRC(false), zstd.WithEncoderLevel(zstd.SpeedBestCompression))
			if err != nil {
				t.Fatal(err)
			}
			return zw
		}, true},
		{"s2", func(w io.Writer) io.WriteCloser { return s2.NewWriter(w, s2.WriterAddIndex()) }, true},
		// Without an index an s2 stream cannot be told from a truncated one.
		{"s2", func(w io.Writer) io.WriteCloser { return s2.NewWriter(w) }, false},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprintf("%s-%d", tt.codec, i), func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			w := tt.write(&buf)
			if _, err := w.Write(data); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			got, err := decompressBytes(mustParse(t, tt.codec), buf.Bytes())
			if tt.ok {
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("read %d bytes, %v", len(got), err)
				}
			} else if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("read %d bytes, error %v; want ErrCorrupt", len(got), err)
			}
		})
	}
}

// TestTunings round-trips through every tuning the benchmarks compare.
func TestTunings(t *testing.T) {
	t.Parallel()
	data := append(compressible(5<<20, 9), randomBytes(1<<20, 10)...)
	for _, tu := range benchTunings {
		t.Run(tu.name, func(t *testing.T) {
			t.Parallel()
			c := mustParse(t, tu.codec)
			var buf bytes.Buffer
			w, err := c.newWriter(&buf, tu.t)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(data); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			r, err := c.newReader(bytes.NewReader(buf.Bytes()), tu.t)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read %d bytes, %v", len(got), err)
			}
		})
	}
}

// TestWriterOwnsNothingAfterWrite: writes of every size, small ones that the
// codec buffers and whole blocks that s2 encodes where they lie, come back
// intact although the caller overwrites its buffer after each Write.
func TestWriterOwnsNothingAfterWrite(t *testing.T) {
	t.Parallel()
	data := append(compressible(5<<20, 7), randomBytes(1<<20, 8)...)
	sizes := []int{100, 1 << 20, 3, 2<<20 + 5, 1 << 20, 1000, 1<<20 - 1}
	for _, name := range methodCodecs {
		c := mustParse(t, name)
		var dst closeRecorder
		w, err := c.NewWriter(&dst)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 3<<20)
		for off, i := 0, 0; off < len(data); i++ {
			n := min(sizes[i%len(sizes)], len(data)-off)
			copy(buf, data[off:off+n])
			if _, err := w.Write(buf[:n]); err != nil {
				t.Fatal(err)
			}
			for j := range buf[:n] {
				buf[j] = 0xAA // the caller reuses its buffer
			}
			off += n
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		got, err := decompressBytes(c, dst.Bytes())
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: round trip gave %d bytes (%v), want the %d written", name, len(got), err, len(data))
		}
	}
}

// TestNoChunkCRC: the reader without s2's chunk checksums reads what the
// writer wrote and still detects truncation; a flipped bit may then pass
// (the caller checks the content's checksum), which the same flip through
// NewReader does not.
func TestNoChunkCRC(t *testing.T) {
	t.Parallel()
	c := mustParse(t, "s2")
	data := append(compressible(3<<20, 21), randomBytes(1<<20, 22)...)
	comp := compressBytes(t, c, data)
	read := func(comp []byte) ([]byte, error) {
		r, err := c.NewReaderNoChunkCRC(bytes.NewReader(comp))
		if err != nil {
			return nil, err
		}
		defer r.Close()
		return io.ReadAll(r)
	}
	got, err := read(comp)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, err %v; want the %d written", len(got), err, len(data))
	}
	cuts, err := s2Chunks(comp)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range cuts {
		if _, err := read(comp[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("stream cut at chunk boundary %d of %d: err %v, want ErrCorrupt", n, len(comp), err)
		}
	}
	// A bit in the random (stored) part's data: only the chunk CRC sees it.
	bad := bytes.Clone(comp)
	bad[len(bad)-(512<<10)] ^= 1
	if _, err := decompressBytes(c, bad); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("NewReader on a flipped bit: %v, want ErrCorrupt", err)
	}
	if got, err := read(bad); err != nil || bytes.Equal(got, data) {
		t.Fatalf("NewReaderNoChunkCRC on a flipped bit: err %v, content equal %v; want it read, different", err, bytes.Equal(got, data))
	}
}
