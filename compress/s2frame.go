package compress

import (
	"encoding/binary"
	"hash/crc32"
	"io"

	"github.com/klauspost/compress/s2"
)

// ChecksummedWriter is implemented by every writer NewWriter returns.
// WriteChecksummed writes p as Write does, and is told p's CRC-32C
// (Castagnoli, as hash/crc32 computes it): a caller that has it already,
// having computed it as it copied p, spares the s2 writer, which stores one
// per block, computing it again. Other codecs ignore crc. A crc that is not
// p's makes a stream that fails to read, so pass only a CRC of exactly p.
type ChecksummedWriter interface {
	io.Writer
	WriteChecksummed(p []byte, crc uint32) (int, error)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// s2Framer writes s2's framing format (the snappy framing format with s2
// blocks) one block at a time on the calling goroutine: a stream identifier,
// then one chunk per block of at most s2BlockSize bytes, each with the
// masked CRC-32C of its uncompressed bytes, and at Close an index chunk in
// the format of s2's WriterAddIndex, which s2.Index loads and NewReader
// requires. It does what s2.NewWriter with concurrency 1, WriterAddIndex
// and WriterBlockSize(s2BlockSize) does, plus taking a block's CRC from the
// caller (WriteChecksummed).
type s2Framer struct {
	w      io.Writer
	encode func(dst, src []byte) []byte
	buf    []byte // data not yet encoded: less than a block
	enc    []byte // the encoded block, reused
	hdr    [8]byte
	err    error // sticky
	// written and in are the compressed and uncompressed lengths so far;
	// index holds each block's offsets in both.
	written, in int64
	index       []s2IndexEntry
}

type s2IndexEntry struct{ compressed, uncompressed int64 }

func newS2Framer(w io.Writer, level int) *s2Framer {
	f := &s2Framer{w: w, encode: s2.Encode}
	switch level {
	case s2Better:
		f.encode = s2.EncodeBetter
	case s2Best:
		f.encode = s2.EncodeBest
	}
	return f
}

// s2StreamID is the framing format's stream identifier chunk for s2.
const s2StreamID = "\xff\x06\x00\x00S2sTwO"

func (f *s2Framer) Write(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	n := len(p)
	if len(f.buf) > 0 {
		k := min(len(p), s2BlockSize-len(f.buf))
		f.buf = append(f.buf, p[:k]...)
		p = p[k:]
		if len(f.buf) < s2BlockSize {
			return n, nil
		}
		if err := f.block(f.buf, crc32.Checksum(f.buf, castagnoli)); err != nil {
			return 0, err
		}
		f.buf = f.buf[:0]
	}
	// Whole blocks straight from p, without copying them first.
	for len(p) >= s2BlockSize {
		b := p[:s2BlockSize]
		if err := f.block(b, crc32.Checksum(b, castagnoli)); err != nil {
			return 0, err
		}
		p = p[s2BlockSize:]
	}
	if len(p) > 0 {
		if f.buf == nil {
			f.buf = make([]byte, 0, s2BlockSize)
		}
		f.buf = append(f.buf, p...)
	}
	return n, nil
}

// WriteChecksummed writes p, whose CRC-32C is crc. Data buffered from
// earlier Writes goes first as a block of its own; p is then one block if
// it fits in one, else it is written as Write writes it.
func (f *s2Framer) WriteChecksummed(p []byte, crc uint32) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	if len(p) > s2BlockSize {
		return f.Write(p)
	}
	if err := f.flush(); err != nil {
		return 0, err
	}
	if len(p) > 0 {
		if err := f.block(p, crc); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (f *s2Framer) flush() error {
	if len(f.buf) == 0 {
		return nil
	}
	err := f.block(f.buf, crc32.Checksum(f.buf, castagnoli))
	f.buf = f.buf[:0]
	return err
}

// block writes p, at most s2BlockSize bytes, as one chunk: compressed, or
// as it is when compressing would not save a thirty-second of it (what s2's
// own writer does: such data decodes faster as a copy).
func (f *s2Framer) block(p []byte, crc uint32) error {
	if f.written == 0 {
		if err := f.put([]byte(s2StreamID)); err != nil {
			return err
		}
	}
	f.index = append(f.index, s2IndexEntry{f.written, f.in})
	if cap(f.enc) == 0 {
		f.enc = make([]byte, s2.MaxEncodedLen(s2BlockSize))
	}
	f.enc = f.encode(f.enc[:cap(f.enc)], p)
	kind, body := byte(0x00), f.enc // compressed data
	if len(f.enc) >= len(p)-len(p)>>5 {
		kind, body = 0x01, p // uncompressed data
	}
	n := 4 + len(body)
	masked := crc>>15 | crc<<17 + 0xa282ead8
	f.hdr = [8]byte{kind, byte(n), byte(n >> 8), byte(n >> 16)}
	binary.LittleEndian.PutUint32(f.hdr[4:], masked)
	if err := f.put(f.hdr[:]); err != nil {
		return err
	}
	if err := f.put(body); err != nil {
		return err
	}
	f.in += int64(len(p))
	return nil
}

func (f *s2Framer) put(b []byte) error {
	n, err := f.w.Write(b)
	f.written += int64(n)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		f.err = err
	}
	return err
}

// Close writes what is buffered and the index. It does not close w.
func (f *s2Framer) Close() error {
	if f.err != nil {
		return f.err
	}
	if err := f.flush(); err != nil {
		return err
	}
	if f.written == 0 {
		// The stream identifier comes first even in an empty stream.
		if err := f.put([]byte(s2StreamID)); err != nil {
			return err
		}
	}
	if err := f.put(s2Index(f.index, f.written, f.in)); err != nil {
		return err
	}
	f.err = errWriterClosed
	return nil
}

// s2Index encodes an index chunk of blocks at the offsets in entries, in a
// stream of compressed and uncompressed bytes before the index (s2's index
// format, as s2.Index.Load reads it: every offset stored as a difference
// from a prediction). Blocks less than 1 MiB after the last indexed one
// are left out, and at most 1<<16 are kept, as s2's writer does.
func s2Index(entries []s2IndexEntry, compressed, uncompressed int64) []byte {
	const (
		minDist    = 1 << 20
		maxEntries = 1 << 16
		est        = int64(s2BlockSize) // the index's estimated block size
	)
	var kept []s2IndexEntry
	for _, e := range entries {
		if len(kept) > 0 && e.uncompressed < kept[len(kept)-1].uncompressed+minDist {
			continue
		}
		if len(kept) == maxEntries {
			break
		}
		kept = append(kept, e)
	}
	b := []byte{s2.ChunkTypeIndex, 0, 0, 0}
	b = append(b, s2.S2IndexHeader...)
	b = binary.AppendVarint(b, uncompressed)
	b = binary.AppendVarint(b, compressed)
	b = binary.AppendVarint(b, est)
	b = binary.AppendVarint(b, int64(len(kept)))
	b = append(b, 1) // the uncompressed offsets are stored
	for i, e := range kept {
		d := e.uncompressed
		if i > 0 {
			d -= kept[i-1].uncompressed + est
		}
		b = binary.AppendVarint(b, d)
	}
	predict := est / 2
	for i, e := range kept {
		d := e.compressed
		if i > 0 {
			d -= kept[i-1].compressed + predict
			predict += d / 2
		}
		b = binary.AppendVarint(b, d)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(b)+4+len(s2.S2IndexTrailer)))
	b = append(b, s2.S2IndexTrailer...)
	n := len(b) - 4
	b[1], b[2], b[3] = byte(n), byte(n>>8), byte(n>>16)
	return b
}
