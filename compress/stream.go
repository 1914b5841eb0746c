package compress

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz/lzma"
)

// tuning holds the knobs the benchmarks compare. NewWriter and NewReader use
// defaultTuning; see BENCHMARKS.md for the figures behind each choice.
type tuning struct {
	// pool reuses zstd encoders and decoders through a sync.Pool. It applies
	// only with zstdDecoderConcurrency 1 and zstdLowmem as in defaultTuning,
	// the options the pooled decoders are made with.
	pool bool
	// zstdDecoderConcurrency > 1 decodes blocks ahead in goroutines.
	zstdDecoderConcurrency int
	zstdLowmem             bool
	// s2Concurrency and lz4Concurrency are goroutines per writer.
	s2Concurrency  int
	lz4Concurrency int
	// s2IgnoreCRC skips s2's per-chunk checksums (NewReaderNoChunkCRC).
	s2IgnoreCRC bool
}

var defaultTuning = tuning{
	pool:                   true,
	zstdDecoderConcurrency: 1,
	zstdLowmem:             true,
	s2Concurrency:          1,
	lz4Concurrency:         1,
}

var (
	errWriterClosed = errors.New("compress: write after close")
	errReaderClosed = errors.New("compress: read after close")
)

// NewWriter returns a writer that compresses into w. Close flushes the data
// and finishes the stream but does not close w; the stream is complete only
// once Close has returned nil. Every codec but none writes a stream its reader
// can tell from a truncated one, even for empty input (see NewReader).
//
// Each writer compresses on the calling goroutine: callers compress several
// objects at once for parallelism. Close every writer, also after an error.
func (c Codec) NewWriter(w io.Writer) (io.WriteCloser, error) {
	return c.newWriter(w, defaultTuning)
}

func (c Codec) newWriter(w io.Writer, t tuning) (io.WriteCloser, error) {
	switch c.method {
	case methodNone:
		return &writer{w: w, close: func() error { return nil }}, nil
	case methodZstd:
		return newZstdWriter(w, zstdLevel(c.level), t.pool)
	case methodS2:
		if t.s2Concurrency == 1 {
			enc := newS2Framer(w, c.level)
			return &writer{w: enc, close: enc.Close}, nil
		}
		opts := []s2.WriterOption{s2.WriterConcurrency(t.s2Concurrency), s2.WriterAddIndex(), s2.WriterBlockSize(s2BlockSize)}
		switch c.level {
		case s2Better:
			opts = append(opts, s2.WriterBetterCompression())
		case s2Best:
			opts = append(opts, s2.WriterBestCompression())
		}
		enc := &s2Writer{Writer: s2.NewWriter(w, opts...)}
		return &writer{w: enc, close: enc.Close}, nil
	case methodGzip:
		enc, err := gzip.NewWriterLevel(w, c.level)
		if err != nil {
			return nil, fmt.Errorf("new %s writer: %w", c, err)
		}
		return &writer{w: enc, close: enc.Close}, nil
	case methodLZ4:
		enc := lz4.NewWriter(w)
		if err := enc.Apply(lz4.ConcurrencyOption(t.lz4Concurrency)); err != nil {
			return nil, fmt.Errorf("new %s writer: %w", c, err)
		}
		return &writer{w: enc, close: enc.Close}, nil
	}
	return nil, fmt.Errorf("new %s writer: %w", c.Name(), ErrUnsupported)
}

// writer makes Close idempotent and Write after Close an error.
type writer struct {
	w      io.Writer
	close  func() error
	closed bool
}

func (w *writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errWriterClosed
	}
	return w.w.Write(p)
}

// WriteChecksummed passes crc on to a codec that stores CRC-32Cs.
func (w *writer) WriteChecksummed(p []byte, crc uint32) (int, error) {
	if w.closed {
		return 0, errWriterClosed
	}
	if cw, ok := w.w.(ChecksummedWriter); ok {
		return cw.WriteChecksummed(p, crc)
	}
	return w.w.Write(p)
}

func (w *writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	return w.close()
}

// s2Writer is s2's own writer, which the benchmarks measure with
// concurrency above 1 (NewWriter uses s2Framer). It makes an empty stream a
// valid one: s2 writes its stream identifier with the first data, but the
// index at Close even without data, and a stream that starts with the index
// is not valid. A padding chunk, which readers skip, brings the identifier
// first.
type s2Writer struct {
	*s2.Writer
	wrote bool
}

func (w *s2Writer) Write(p []byte) (int, error) {
	w.wrote = w.wrote || len(p) > 0
	return w.Writer.Write(p)
}

// s2BlockSize is the s2 block size (s2.Writer's default).
const s2BlockSize = 1 << 20

func (w *s2Writer) Close() error {
	if !w.wrote {
		if err := w.Writer.AddSkippableBlock(s2ChunkTypePadding, []byte{0}); err != nil {
			_ = w.Writer.Close()
			return err
		}
	}
	return w.Writer.Close()
}

// s2ChunkTypePadding is the framing format's padding chunk (section 4.4).
const s2ChunkTypePadding = 0xfe

// zstdEncoders pools encoders by level. With concurrency 1 an encoder owns no
// goroutine, so one the pool drops needs no Close.
var zstdEncoders [5]sync.Pool

func zstdEncoderOptions(level zstd.EncoderLevel) []zstd.EOption {
	return []zstd.EOption{zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(1)}
}

func newZstdWriter(w io.Writer, level zstd.EncoderLevel, pool bool) (io.WriteCloser, error) {
	if !pool {
		enc, err := zstd.NewWriter(w, zstdEncoderOptions(level)...)
		if err != nil {
			return nil, fmt.Errorf("new zstd writer: %w", err)
		}
		return &writer{w: enc, close: enc.Close}, nil
	}
	enc, _ := zstdEncoders[level].Get().(*zstd.Encoder)
	if enc == nil {
		var err error
		if enc, err = zstd.NewWriter(w, zstdEncoderOptions(level)...); err != nil {
			return nil, fmt.Errorf("new zstd writer: %w", err)
		}
	} else {
		enc.Reset(w)
	}
	return &writer{w: enc, close: func() error {
		if err := enc.Close(); err != nil {
			return err // a failed encoder is dropped, not pooled
		}
		enc.Reset(nil)
		zstdEncoders[level].Put(enc)
		return nil
	}}, nil
}

// NewReader returns a reader of the data compressed in r. Close releases the
// decoder but does not close r. NewReader does not read r: errors, including
// those of the stream's header, come from Read.
//
// A Read error that the compressed bytes caused wraps ErrCorrupt; an error of
// r is returned wrapped, without ErrCorrupt. Truncation is detected, and
// reported before the final io.EOF, by:
//   - zstd: the frame's last-block flag and its content checksum (xxhash64);
//   - gzip: the trailer's CRC-32 and length;
//   - lz4: the frame's end mark and content checksum (xxhash32);
//   - s2: the stream format has no end marker, so a stream cut at a chunk
//     boundary would end silently. tusk's writer ends every stream with an s2
//     index chunk holding the uncompressed length, and this reader requires it:
//     an s2 stream without a final index (e.g. one from another tool) fails;
//   - brotli (wal-g's .br): the last meta-block's ISLAST bit;
//   - lzma (wal-g's .lzma, classic LZMA as github.com/ulikunitz/xz/lzma
//     writes it): the end-of-stream marker, or the size in the header;
//     LZMA has no checksum, so a flipped bit may decode to other bytes:
//     wal-fetch checks a segment's length and page header;
//   - every codec but none: an empty stream, as no writer produces one.
//
// A flipped bit is caught by the same checksums (s2 has one per chunk). The
// none codec detects nothing: callers verify a checksum of the content anyway.
func (c Codec) NewReader(r io.Reader) (io.ReadCloser, error) {
	return c.newReader(r, defaultTuning)
}

// NewReaderNoChunkCRC is NewReader for callers that check a checksum of the
// whole decompressed content themselves, as wal-fetch does: it skips s2's
// per-chunk CRC-32C, a fifth of s2's decoding time (measured on a 16 MiB
// WAL segment: 3.2 GB/s instead of 2.6). Corrupt data then surfaces as a
// decoding error or as the caller's checksum mismatch, and truncation is
// still detected. Other codecs keep their checks.
func (c Codec) NewReaderNoChunkCRC(r io.Reader) (io.ReadCloser, error) {
	t := defaultTuning
	t.s2IgnoreCRC = true
	return c.newReader(r, t)
}

func (c Codec) newReader(r io.Reader, t tuning) (io.ReadCloser, error) {
	if c.method == methodNone {
		return io.NopCloser(r), nil
	}
	rd := &reader{codec: c, src: &source{r: r}, release: func() {}}
	switch c.method {
	case methodZstd:
		dec, release, err := newZstdDecoder(rd.src, t)
		if err != nil {
			return nil, fmt.Errorf("new zstd reader: %w", err)
		}
		rd.dec, rd.release = dec, release
	case methodS2:
		rd.s2 = &s2End{}
		opts := []s2.ReaderOption{s2.ReaderSkippableCB(s2.ChunkTypeIndex, func(idx io.Reader) error {
			return rd.s2.index(idx, rd.out)
		})}
		if t.s2IgnoreCRC {
			opts = append(opts, s2.ReaderIgnoreCRC())
		}
		rd.dec = s2.NewReader(rd.src, opts...)
	case methodGzip:
		rd.open = func() (io.Reader, error) {
			dec, err := gzip.NewReader(rd.src)
			if err != nil {
				return nil, err
			}
			rd.release = func() { _ = dec.Close() } // gzip's Close only reports the last error
			return dec, nil
		}
	case methodLZ4:
		rd.dec = lz4.NewReader(rd.src)
	case methodBrotli:
		rd.dec = brotli.NewReader(rd.src)
	case methodLZMA:
		rd.open = func() (io.Reader, error) {
			// lzma reads the 13-byte header when made. wal-g's writer
			// (lzma.NewWriter's defaults) ends the stream with an end
			// marker, so a cut stream is an unexpected EOF.
			return lzma.NewReader(rd.src)
		}
	default:
		return nil, fmt.Errorf("new %s reader: %w", c.Name(), ErrUnsupported)
	}
	return rd, nil
}

// zstdDecoders pools decoders made with concurrency 1, which own no goroutine,
// so one the pool drops needs no Close.
var zstdDecoders sync.Pool

func newZstdDecoder(r io.Reader, t tuning) (*zstd.Decoder, func(), error) {
	pooled := t.pool && t.zstdDecoderConcurrency == 1 && t.zstdLowmem == defaultTuning.zstdLowmem
	if pooled {
		if dec, _ := zstdDecoders.Get().(*zstd.Decoder); dec != nil {
			if err := dec.Reset(r); err == nil {
				return dec, func() { putZstdDecoder(dec) }, nil
			}
			dec.Close()
		}
	}
	dec, err := zstd.NewReader(r,
		zstd.WithDecoderConcurrency(t.zstdDecoderConcurrency),
		zstd.WithDecoderLowmem(t.zstdLowmem))
	if err != nil {
		return nil, nil, err
	}
	if pooled {
		return dec, func() { putZstdDecoder(dec) }, nil
	}
	return dec, dec.Close, nil
}

func putZstdDecoder(dec *zstd.Decoder) {
	// Reset drops the reference to the source; a nil source is accepted and
	// leaves the decoder reusable.
	_ = dec.Reset(nil)
	zstdDecoders.Put(dec)
}

// source counts the compressed bytes and remembers the source's own error,
// which tells a failing source from corrupt data.
type source struct {
	r   io.Reader
	n   int64
	err error
}

func (s *source) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.n += int64(n)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

type reader struct {
	codec Codec
	src   *source
	dec   io.Reader
	// open makes dec on the first Read, for decoders that read a header when
	// made.
	open    func() (io.Reader, error)
	release func()
	s2      *s2End
	out     int64 // bytes returned by Read
	err     error // sticky
}

func (r *reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.dec == nil {
		dec, err := r.open()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			r.err = r.fail(err)
			return 0, r.err
		}
		r.dec = dec
	}
	n, err := r.dec.Read(p)
	r.out += int64(n)
	if n > 0 && r.s2 != nil {
		r.s2.ended = false
	}
	switch {
	case err == nil:
		return n, nil
	case err == io.EOF:
		if r.src.n == 0 {
			err = r.fail(fmt.Errorf("empty stream: %w", io.ErrUnexpectedEOF))
		} else if r.s2 != nil && !r.s2.ended {
			err = r.fail(fmt.Errorf("s2 stream does not end with an index: %w", io.ErrUnexpectedEOF))
		}
	default:
		err = r.fail(err)
	}
	r.err = err
	return n, err
}

// fail returns the error to report for a decoder's error err.
func (r *reader) fail(err error) error {
	if r.src.err != nil {
		return fmt.Errorf("decompress %s: %w", r.codec.Name(), r.src.err)
	}
	return fmt.Errorf("decompress %s: %w: %w", r.codec.Name(), ErrCorrupt, err)
}

func (r *reader) Close() error {
	if r.err == errReaderClosed {
		return nil
	}
	r.err = errReaderClosed
	r.release()
	r.dec = nil
	return nil
}

// s2End checks the index chunk that ends every s2 stream tusk writes.
type s2End struct {
	ended bool  // the last chunk read was an index
	start int64 // uncompressed offset of the stream the index ends
}

// index reads an index chunk's body; out is the uncompressed length read so
// far, all of it returned before the chunk was reached.
func (e *s2End) index(body io.Reader, out int64) error {
	b, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	// Index.Load wants the chunk with its 4-byte header.
	chunk := make([]byte, 0, 4+len(b))
	chunk = append(chunk, s2.ChunkTypeIndex, byte(len(b)), byte(len(b)>>8), byte(len(b)>>16))
	chunk = append(chunk, b...)
	var idx s2.Index
	if _, err := idx.Load(chunk); err != nil {
		return fmt.Errorf("s2 index: %w", err)
	}
	if idx.TotalUncompressed != out-e.start {
		return fmt.Errorf("s2 index says %d bytes, stream had %d: %w",
			idx.TotalUncompressed, out-e.start, s2.ErrCorrupt)
	}
	e.start, e.ended = out, true
	return nil
}
