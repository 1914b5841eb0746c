package basebackup

import (
	"archive/tar"
	"bytes"
	"fmt"
	"path"
	"strconv"
	"strings"
)

// archiveWriter cuts one of the server's tar archives into parts as its
// bytes arrive, in the receiving goroutine. Entries pass through unchanged;
// only their placement is decided here: a part is closed at an entry
// boundary once it holds PartSize bytes, and a file too large for what is
// left of a part is written as pieces, each with its own header carrying
// TUSK.offset and TUSK.size PAX records. Every part is a complete tar stream.
type archiveWriter struct {
	u    *uploader
	name string
	seq  int
	part *partWriter
	// nextSeq, if set, numbers the parts: several writers of one archive
	// (local mode's readers) share one sequence.
	nextSeq func() int
	// sums (local mode) has the parts compute CRC-32Cs as they copy: the
	// content's of each entry is then entryCRC (see partWriter).
	sums bool

	state  splitState
	block  [blockSize]byte // the header block being collected
	blen   int
	hdr    []byte // the entry's header blocks so far (extension entries first)
	extBuf int64  // bytes of an extension entry's content still to collect

	left    int64 // content bytes (whole entries: and padding) still to come
	pad     int64 // input padding after the content of a split entry
	pieces  bool  // the entry is written as pieces
	entry   tar.Header
	off     int64 // offset in the file of the next content byte
	inPiece int64 // bytes left in the current piece
	pieceN  int64 // length of the current piece
	body    int64 // content bytes of a whole entry still to come

	// With sums: the CRC-32C of the entry's content so far, and whether all
	// of it has passed.
	entryCRC  uint32
	entryDone bool
}

type splitState int

const (
	stHeader  splitState = iota // collecting a header block
	stExt                       // collecting an extension entry's content
	stContent                   // passing an entry's content through
	stSkip                      // dropping the input padding of a split entry
	stEnd                       // after the end-of-archive marker
)

const blockSize = 512

// minPiece is the smallest piece a split file is cut into.
const minPiece = 1 << 20

func (aw *archiveWriter) feed(p []byte) error {
	for len(p) > 0 {
		switch aw.state {
		case stEnd:
			return nil
		case stHeader:
			n := copy(aw.block[aw.blen:], p)
			aw.blen += n
			p = p[n:]
			if aw.blen < blockSize {
				return nil
			}
			aw.blen = 0
			if err := aw.headerBlock(); err != nil {
				return err
			}
		case stExt:
			n := int(min(int64(len(p)), aw.extBuf))
			aw.hdr = append(aw.hdr, p[:n]...)
			aw.extBuf -= int64(n)
			p = p[n:]
			if aw.extBuf == 0 {
				aw.state = stHeader
			}
		case stContent:
			if !aw.pieces {
				n := min(int64(len(p)), aw.left)
				c := min(n, aw.body) // content, then padding
				if c > 0 {
					if _, err := aw.part.writeContent(p[:c]); err != nil {
						return err
					}
					if aw.body -= c; aw.body == 0 {
						aw.entryCRC, _ = aw.part.takeContent()
						aw.entryDone = true
					}
				}
				if _, err := aw.part.Write(p[c:n]); err != nil {
					return err
				}
				aw.left -= n
				p = p[n:]
				if aw.left == 0 {
					aw.state = stHeader
				}
				continue
			}
			n := min(int64(len(p)), aw.inPiece)
			if _, err := aw.part.writeContent(p[:n]); err != nil {
				return err
			}
			aw.inPiece -= n
			aw.left -= n
			aw.off += n
			p = p[n:]
			if aw.inPiece > 0 {
				continue
			}
			crc, k := aw.part.takeContent()
			aw.entryCRC = crc32cCombine(aw.entryCRC, crc, k)
			aw.entryDone = aw.left == 0
			if err := aw.zeros(padding(aw.pieceN)); err != nil {
				return err
			}
			switch {
			case aw.left > 0:
				if err := aw.startPiece(); err != nil {
					return err
				}
			case aw.pad > 0:
				aw.state = stSkip
			default:
				aw.state = stHeader
			}
		case stSkip:
			n := min(int64(len(p)), aw.pad)
			aw.pad -= n
			p = p[n:]
			if aw.pad == 0 {
				aw.state = stHeader
			}
		}
	}
	return nil
}

func padding(n int64) int64 { return (blockSize - n%blockSize) % blockSize }

func (aw *archiveWriter) zeros(n int64) error {
	var z [blockSize]byte
	for n > 0 {
		m := min(n, blockSize)
		if _, err := aw.part.Write(z[:m]); err != nil {
			return err
		}
		n -= m
	}
	return nil
}

// headerBlock handles one complete 512-byte header block.
func (aw *archiveWriter) headerBlock() error {
	b := aw.block[:]
	if len(aw.hdr) == 0 && bytes.Count(b, []byte{0}) == blockSize {
		aw.state = stEnd // end-of-archive marker
		return nil
	}
	aw.hdr = append(aw.hdr, b...)
	size, err := parseSize(b[124:136])
	if err != nil {
		return fmt.Errorf("the server's tar stream: %w", err)
	}
	switch b[156] {
	case tar.TypeXHeader, tar.TypeXGlobalHeader, tar.TypeGNULongName, tar.TypeGNULongLink:
		// Extension entries belong to the entry after them.
		aw.extBuf = size + padding(size)
		if aw.extBuf > 1<<20 {
			return fmt.Errorf("the server's tar stream has a %d-byte extension header", size)
		}
		if aw.extBuf > 0 {
			aw.state = stExt
		}
		return nil
	}
	// The whole header is here; let the standard library read it.
	h, err := tar.NewReader(bytes.NewReader(aw.hdr)).Next()
	if err != nil {
		return fmt.Errorf("the server's tar stream: %w", err)
	}
	raw := aw.hdr
	aw.hdr = nil
	return aw.begin(h, raw)
}

// parseSize reads a tar numeric field: octal, or base-256 for large values.
func parseSize(f []byte) (int64, error) {
	if len(f) > 0 && f[0]&0x80 != 0 {
		var n int64
		for i, c := range f {
			if i == 0 {
				c &= 0x7f
			}
			n = n<<8 | int64(c)
		}
		return n, nil
	}
	s := string(bytes.Trim(f, " \x00"))
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 8, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size field %q", s)
	}
	return n, nil
}

// begin places the entry whose header blocks are raw.
func (aw *archiveWriter) begin(h *tar.Header, raw []byte) error {
	partSize := aw.u.opts.PartSize
	if aw.part == nil || aw.part.raw >= partSize {
		if err := aw.rotate(); err != nil {
			return err
		}
	}
	size := h.Size
	aw.entryCRC, aw.entryDone = 0, size == 0
	room := partSize - aw.part.raw
	if h.Typeflag != tar.TypeReg || size <= room || size < max(partSize/8, minPiece) || incrementalFile(h.Name) {
		// Whole: it fits, or is small enough to overflow the part a little,
		// or it is an incremental file, which a restore reads from its
		// header on and so must arrive in one piece (at most a relation
		// segment, 1 GiB, and its header).
		if _, err := aw.part.Write(raw); err != nil {
			return err
		}
		aw.pieces = false
		aw.body = size
		if h.Typeflag != tar.TypeReg {
			aw.body = 0 // not a file's content
		}
		aw.left = size + padding(size)
		if aw.left > 0 {
			aw.state = stContent
		} else {
			aw.state = stHeader
		}
		return nil
	}
	aw.pieces = true
	aw.entry = *h
	aw.left, aw.off, aw.pad = size, 0, padding(size)
	return aw.startPiece()
}

// incrementalFile reports whether a tar entry is one of PostgreSQL 17's
// INCREMENTAL.<relation file> files: the changed blocks of that file.
func incrementalFile(name string) bool {
	return strings.HasPrefix(path.Base(name), "INCREMENTAL.")
}

// startPiece writes the header of the next piece of a split file, in a new
// part when what is left of this one is too small.
func (aw *archiveWriter) startPiece() error {
	partSize := aw.u.opts.PartSize
	room := partSize - aw.part.raw
	if room < minPiece {
		if err := aw.rotate(); err != nil {
			return err
		}
		room = partSize
	}
	n := min(aw.left, room)
	ph := aw.entry
	ph.Size = n
	ph.Format = tar.FormatPAX
	ph.PAXRecords = map[string]string{paxOffset: strconv.FormatInt(aw.off, 10), paxSize: strconv.FormatInt(aw.entry.Size, 10)}
	var hb bytes.Buffer
	if err := tar.NewWriter(&hb).WriteHeader(&ph); err != nil {
		return fmt.Errorf("write a piece header for %s: %w", ph.Name, err)
	}
	if _, err := aw.part.Write(hb.Bytes()); err != nil {
		return err
	}
	aw.inPiece, aw.pieceN = n, n
	aw.state = stContent
	return nil
}

// rotate closes the current part and opens the next.
func (aw *archiveWriter) rotate() error {
	if err := aw.closePart(); err != nil {
		return err
	}
	if aw.nextSeq != nil {
		aw.seq = aw.nextSeq()
	} else {
		aw.seq++
	}
	key := fmt.Sprintf("%s%s.%05d.tar%s", aw.u.partPrefix(), aw.name, aw.seq, aw.u.opts.Codec.Ext())
	p, err := aw.u.newPart(aw.name, aw.seq, key, aw.sums)
	if err != nil {
		return err
	}
	aw.part = p
	return nil
}

// closePart ends the current part with the end-of-archive marker and
// finishes it.
func (aw *archiveWriter) closePart() error {
	if aw.part == nil {
		return nil
	}
	p := aw.part
	aw.part = nil
	var end [2 * blockSize]byte
	if _, err := p.Write(end[:]); err != nil {
		p.abort(err)
		return fmt.Errorf("write part: %w", err)
	}
	_, err := p.finish()
	return err
}

// finish ends the archive: its stream must have ended between entries.
func (aw *archiveWriter) finish() error {
	if aw.state != stEnd && (aw.state != stHeader || aw.blen != 0 || len(aw.hdr) != 0) {
		err := fmt.Errorf("the server's tar stream for %s ended in the middle of an entry", aw.name)
		aw.abort(err)
		return err
	}
	if aw.part == nil { // an empty archive still gets one part
		if err := aw.rotate(); err != nil {
			return err
		}
	}
	return aw.closePart()
}

// contentCRC returns the CRC-32C of the content of the entry written last,
// once all of it has passed; ok is false without sums or before that.
func (aw *archiveWriter) contentCRC() (crc uint32, ok bool) {
	return aw.entryCRC, aw.sums && aw.entryDone
}

func (aw *archiveWriter) abort(err error) {
	if aw.part != nil {
		aw.part.abort(err)
		aw.part = nil
	}
}
