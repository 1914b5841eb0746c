package archive

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/tusk-backup/tusk/wal"
)

// The first page of every WAL segment starts with a long page header
// (XLogLongPageHeaderData in PostgreSQL's xlog_internal.h), in the server's
// byte order, which is little-endian on every platform tusk is built for:
//
//	 0 xlp_magic       uint16  0xD1xx (0xD0xx before 12), per major version
//	 2 xlp_info        uint16  XLP_LONG_HEADER (0x0002) set
//	 4 xlp_tli         uint32  timeline of the page
//	 8 xlp_pageaddr    uint64  LSN of the page: where the segment starts
//	16 xlp_rem_len     uint32
//	24 xlp_sysid       uint64  the cluster's system identifier
//	32 xlp_seg_size    uint32  wal_segment_size
//	36 xlp_xlog_blcksz uint32  wal_block_size
const (
	longHeaderSize = 40
	xlpLongHeader  = 0x0002
)

// ErrNotSegment is returned (wrapped) by CheckSegment for a file that is not
// a whole WAL segment as PostgreSQL writes one.
var ErrNotSegment = errors.New("not a whole WAL segment")

// SegmentInfo is what a segment's first page header says.
type SegmentInfo struct {
	SystemID uint64
	SegSize  uint32
}

// CheckSegment reads the long page header of segment (or .partial) file n,
// size bytes long, and checks that it is a whole segment PostgreSQL wrote
// under that name: its header is a long header, its size is the segment size
// the header records (a power of two from 1 MiB to 1 GiB), and it starts at
// the LSN the name says on the name's timeline or an earlier one (the first
// segment of a new timeline begins with its parent's pages). wantSysID, if
// not zero, is the system identifier it must carry.
func CheckSegment(r io.ReaderAt, size int64, n wal.Name, wantSysID uint64) (SegmentInfo, error) {
	bad := func(format string, a ...any) (SegmentInfo, error) {
		return SegmentInfo{}, fmt.Errorf("%s %s: %w", n.Kind, n.File, fmt.Errorf("%w: "+format, append([]any{ErrNotSegment}, a...)...))
	}
	if size < 1<<20 {
		return bad("it is %d bytes long, and a segment is at least 1 MiB (wal_segment_size)", size)
	}
	var h [longHeaderSize]byte
	if _, err := r.ReadAt(h[:], 0); err != nil {
		return SegmentInfo{}, fmt.Errorf("read %s %s: %w", n.Kind, n.File, err)
	}
	le := binary.LittleEndian
	magic, info, tli := le.Uint16(h[0:]), le.Uint16(h[2:]), le.Uint32(h[4:])
	pageAddr, sysID := le.Uint64(h[8:]), le.Uint64(h[24:])
	segSize, blockSize := le.Uint32(h[32:]), le.Uint32(h[36:])
	switch {
	case magic>>8 != 0xD0 && magic>>8 != 0xD1:
		return bad("it does not start with a WAL page header (magic %#04x)", magic)
	case info&xlpLongHeader == 0:
		return bad("its first page has no long header")
	case segSize < 1<<20 || segSize > 1<<30 || segSize&(segSize-1) != 0:
		return bad("its header gives the segment size %d, which PostgreSQL never uses", segSize)
	case blockSize < 1<<10 || blockSize > 64<<10 || blockSize&(blockSize-1) != 0:
		return bad("its header gives the WAL block size %d, which PostgreSQL never uses", blockSize)
	case int64(segSize) != size:
		return bad("it is %d bytes long, but its header gives the segment size %d (is it cut short?)", size, segSize)
	case tli == 0 || tli > n.Timeline:
		return bad("its first page is on timeline %d, after its name's timeline %d", tli, n.Timeline)
	case wal.LSN(pageAddr) != n.Start(uint64(segSize)):
		return bad("it starts at LSN %s, not at %s where its name puts it", wal.LSN(pageAddr), n.Start(uint64(segSize)))
	case wantSysID != 0 && sysID != wantSysID:
		return bad("it belongs to the cluster with system identifier %d, not to this one (%d)", sysID, wantSysID)
	}
	return SegmentInfo{SystemID: sysID, SegSize: segSize}, nil
}

// LongPageHeader returns the first bytes of segment n as PostgreSQL 15
// writes them. Tests use it to make segments that CheckSegment accepts.
func LongPageHeader(n wal.Name, segSize uint32, sysID uint64) []byte {
	h := make([]byte, longHeaderSize)
	le := binary.LittleEndian
	le.PutUint16(h[0:], 0xD110)
	le.PutUint16(h[2:], xlpLongHeader)
	le.PutUint32(h[4:], n.Timeline)
	le.PutUint64(h[8:], uint64(n.Start(uint64(segSize))))
	le.PutUint64(h[24:], sysID)
	le.PutUint32(h[32:], segSize)
	le.PutUint32(h[36:], 8192)
	return h
}
