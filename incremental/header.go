// Package incremental reads and writes PostgreSQL 17's incremental backup
// files (INCREMENTAL.<name>), reads and writes backup manifests, and
// composes a chain of backups (newest first, down to a full one) into one
// data directory, as pg_combinebackup does, in one pass over each backup's
// files with bounded memory.
//
// It imports none of tusk's packages but wal: the restore streams files
// into a Composer; where they come from is the caller's business.
package incremental

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// BlockSize is PostgreSQL's BLCKSZ: the size of a relation block, and the
// unit of an incremental file. PostgreSQL can be built with another block
// size; such servers are not supported.
const BlockSize = 8192

// SegmentBlocks is PostgreSQL's RELSEG_SIZE with the default block and
// segment sizes (1 GiB / 8 KiB): the most blocks a relation segment file, and
// so an incremental file, can hold. pg_combinebackup refuses block counts and
// truncation lengths beyond it.
const SegmentBlocks = 131072

// Magic is the first four bytes of an incremental file, little-endian
// (INCREMENTAL_MAGIC in PostgreSQL's basebackup_incremental.h).
const Magic = 0xd3ae1f0d

// Prefix starts the name of an incremental file: the server sends relation
// file base/5/16384 as base/5/INCREMENTAL.16384 when it sends only the
// blocks changed since the parent backup.
const Prefix = "INCREMENTAL."

// ErrFormat marks an incremental file that is not one: a bad magic number,
// an impossible block count or length, block numbers out of order, or a
// file shorter or longer than its header says.
var ErrFormat = errors.New("not a valid incremental file")

// Header is an incremental file's header.
//
// The file is, in little-endian uint32s: the magic number, the block count,
// the truncation block length, then one relative block number per block
// (ascending). When the count is not zero, zero bytes pad the header to a
// multiple of BlockSize (PostgreSQL 17.0 and later; the unpadded layout was
// only ever in development builds). Then come the blocks, BlockSize bytes
// each, in the order of their numbers.
type Header struct {
	// Blocks are the numbers, relative to the segment file, of the blocks
	// the file holds, ascending.
	Blocks []uint32
	// TruncationBlockLength is the length in blocks of the file that the
	// restored file keeps from older backups: blocks below it that are not
	// in Blocks come from the parent backup, blocks at or beyond it only
	// from this file.
	TruncationBlockLength uint32
	// Unpadded is the development layout: no padding after the block
	// numbers. Only ReadHeaderSized detects it.
	Unpadded bool
}

// Length is the restored file's length in blocks: the truncation block
// length, or one past the highest block held if that is more (pg_combinebackup's
// find_reconstructed_block_length).
func (h Header) Length() uint32 {
	n := h.TruncationBlockLength
	if k := len(h.Blocks); k > 0 && h.Blocks[k-1] >= n {
		n = h.Blocks[k-1] + 1
	}
	return n
}

// Size is the length in bytes of the header, with its padding.
func (h Header) Size() int64 { return headerSize(len(h.Blocks), !h.Unpadded) }

// FileSize is the length in bytes of the whole incremental file.
func (h Header) FileSize() int64 { return h.Size() + int64(len(h.Blocks))*BlockSize }

func headerSize(blocks int, padded bool) int64 {
	n := int64(12 + 4*blocks)
	if padded && blocks > 0 && n%BlockSize != 0 {
		n += BlockSize - n%BlockSize
	}
	return n
}

// Split takes a name as in a backup's tar or manifest and returns the path
// of the file it restores and whether it is an incremental file:
// base/5/INCREMENTAL.16384 gives base/5/16384, true; base/5/16384 gives
// itself, false.
func Split(name string) (path string, incremental bool) {
	dir, file := "", name
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		dir, file = name[:i+1], name[i+1:]
	}
	if !strings.HasPrefix(file, Prefix) || len(file) == len(Prefix) {
		return name, false
	}
	return dir + file[len(Prefix):], true
}

// Name is the name under which a backup holds path incrementally:
// base/5/16384 gives base/5/INCREMENTAL.16384.
func Name(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		return path[:i+1] + Prefix + path[i+1:]
	}
	return Prefix + path
}

// ReadHeader reads an incremental file's header and its padding from r,
// which is then at the first block. It assumes the layout of PostgreSQL 17.0
// and later (padded); a truncated header is ErrFormat.
func ReadHeader(r io.Reader) (Header, error) {
	return readHeader(r, -1)
}

// ReadHeaderSized is ReadHeader for a file whose size is known (from its
// tar header): it checks that the size is exactly what the header implies,
// and it tells the padded layout from the unpadded one by that size.
func ReadHeaderSized(r io.Reader, size int64) (Header, error) {
	if size < 0 {
		return Header{}, fmt.Errorf("%w: negative size %d", ErrFormat, size)
	}
	return readHeader(r, size)
}

func readHeader(r io.Reader, size int64) (Header, error) {
	var h Header
	var fixed [12]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return h, short(err, "its header")
	}
	if m := binary.LittleEndian.Uint32(fixed[0:]); m != Magic {
		return h, fmt.Errorf("%w: magic number 0x%08x, not 0x%08x", ErrFormat, m, uint32(Magic))
	}
	count := binary.LittleEndian.Uint32(fixed[4:])
	h.TruncationBlockLength = binary.LittleEndian.Uint32(fixed[8:])
	if count > SegmentBlocks {
		return h, fmt.Errorf("%w: block count %d exceeds the %d blocks of a segment", ErrFormat, count, SegmentBlocks)
	}
	if h.TruncationBlockLength > SegmentBlocks {
		return h, fmt.Errorf("%w: truncation block length %d exceeds the %d blocks of a segment", ErrFormat, h.TruncationBlockLength, SegmentBlocks)
	}
	n := int(count)
	if size >= 0 {
		switch size {
		case headerSize(n, true) + int64(n)*BlockSize:
		case headerSize(n, false) + int64(n)*BlockSize:
			h.Unpadded = true
		default:
			return h, fmt.Errorf("%w: %d bytes, but a header of %d blocks makes %d", ErrFormat, size, n, headerSize(n, true)+int64(n)*BlockSize)
		}
	}
	if n > 0 {
		raw := make([]byte, 4*n)
		if _, err := io.ReadFull(r, raw); err != nil {
			return h, short(err, "its block numbers")
		}
		h.Blocks = make([]uint32, n)
		for i := range h.Blocks {
			b := binary.LittleEndian.Uint32(raw[4*i:])
			if b >= SegmentBlocks {
				return h, fmt.Errorf("%w: block number %d is beyond the %d blocks of a segment", ErrFormat, b, SegmentBlocks)
			}
			if i > 0 && b <= h.Blocks[i-1] {
				return h, fmt.Errorf("%w: block numbers out of order (%d after %d)", ErrFormat, b, h.Blocks[i-1])
			}
			h.Blocks[i] = b
		}
	}
	if pad := h.Size() - int64(12+4*n); pad > 0 {
		if _, err := io.CopyN(io.Discard, r, pad); err != nil {
			return h, short(err, "its header's padding")
		}
	}
	return h, nil
}

// short turns a read error into "the file ends within ...".
func short(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: the file ends within %s", ErrFormat, what)
	}
	return err
}

// Reader reads an incremental file: its header, then its blocks in order.
type Reader struct {
	Header
	r    io.Reader
	next int
	buf  []byte
}

// NewReader reads the header of the incremental file in r. size is the
// file's length in bytes, or -1 when it is not known (then the padded layout
// is assumed).
func NewReader(r io.Reader, size int64) (*Reader, error) {
	h, err := readHeader(r, size)
	if err != nil {
		return nil, err
	}
	return &Reader{Header: h, r: r}, nil
}

// Next returns the next block's number and content; the slice is valid
// until the next call. After the last block it returns io.EOF; a file that
// ends early is ErrFormat.
func (r *Reader) Next() (uint32, []byte, error) {
	if r.next >= len(r.Blocks) {
		return 0, nil, io.EOF
	}
	if r.buf == nil {
		r.buf = make([]byte, BlockSize)
	}
	if _, err := io.ReadFull(r.r, r.buf); err != nil {
		return 0, nil, short(err, fmt.Sprintf("block %d (the %d. of %d)", r.Blocks[r.next], r.next+1, len(r.Blocks)))
	}
	b := r.Blocks[r.next]
	r.next++
	return b, r.buf, nil
}

// Writer writes an incremental file: NewWriter writes the header, then
// each Write takes the next block (BlockSize bytes) in the order of the
// header's block numbers, and Close checks that all came.
type Writer struct {
	w       io.Writer
	h       Header
	written int
}

// NewWriter writes h (padded unless h.Unpadded) to w. h.Blocks must be
// ascending and below SegmentBlocks.
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	if len(h.Blocks) > SegmentBlocks || h.TruncationBlockLength > SegmentBlocks {
		return nil, fmt.Errorf("%w: more than %d blocks", ErrFormat, SegmentBlocks)
	}
	buf := make([]byte, h.Size())
	binary.LittleEndian.PutUint32(buf[0:], Magic)
	binary.LittleEndian.PutUint32(buf[4:], uint32(len(h.Blocks)))
	binary.LittleEndian.PutUint32(buf[8:], h.TruncationBlockLength)
	for i, b := range h.Blocks {
		if b >= SegmentBlocks || (i > 0 && b <= h.Blocks[i-1]) {
			return nil, fmt.Errorf("%w: block numbers must ascend below %d", ErrFormat, SegmentBlocks)
		}
		binary.LittleEndian.PutUint32(buf[12+4*i:], b)
	}
	if _, err := w.Write(buf); err != nil {
		return nil, err
	}
	return &Writer{w: w, h: h}, nil
}

// Write writes the next block; p must be BlockSize bytes.
func (w *Writer) Write(p []byte) (int, error) {
	if len(p) != BlockSize {
		return 0, fmt.Errorf("incremental writer: a block is %d bytes, not %d", BlockSize, len(p))
	}
	if w.written >= len(w.h.Blocks) {
		return 0, fmt.Errorf("incremental writer: the header lists %d blocks", len(w.h.Blocks))
	}
	n, err := w.w.Write(p)
	if err == nil {
		w.written++
	}
	return n, err
}

// Close reports whether every block of the header was written. It does not
// close the underlying writer.
func (w *Writer) Close() error {
	if w.written != len(w.h.Blocks) {
		return fmt.Errorf("incremental writer: %d of %d blocks written", w.written, len(w.h.Blocks))
	}
	return nil
}
