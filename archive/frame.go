package archive

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/tusk-backup/tusk/compress"
)

// ErrCorrupt marks an archived object that fails verification: a bad header,
// a broken compressed stream, or content whose size or checksum differs
// from what was recorded at push time.
var ErrCorrupt = errors.New("archived object is corrupt")

// Every WAL object starts with a small header that records the codec and the
// size and SHA-256 of the uncompressed content, then the compressed stream:
//
//	magic "TUSKWAL1" | codec length (1 byte) | codec (canonical string)
//	| size (uint64, big endian) | checksum kind (1 byte, 1 = SHA-256) | checksum (32 bytes)
//
// wal-push compares checksums by reading only this header; wal-fetch checks
// the content against it before the file reaches PostgreSQL.
const magic = "TUSKWAL1"

const sumSHA256 = 1

// Header is the decoded object header.
type Header struct {
	Codec compress.Codec
	Size  int64
	Sum   [32]byte
}

// SumHex is the content checksum as lowercase hex, what sha256sum prints.
func (h Header) SumHex() string { return hex.EncodeToString(h.Sum[:]) }

func (h Header) marshal() []byte {
	c := h.Codec.String()
	b := make([]byte, 0, len(magic)+1+len(c)+8+1+32)
	b = append(b, magic...)
	b = append(b, byte(len(c)))
	b = append(b, c...)
	b = binary.BigEndian.AppendUint64(b, uint64(h.Size))
	b = append(b, sumSHA256)
	return append(b, h.Sum[:]...)
}

// readHeader decodes the header at the start of r.
func readHeader(r *bufio.Reader) (Header, error) {
	var h Header
	m := make([]byte, len(magic)+1)
	if _, err := io.ReadFull(r, m); err != nil {
		return h, fmt.Errorf("%w: header: %v", ErrCorrupt, err)
	}
	if !bytes.Equal(m[:len(magic)], []byte(magic)) {
		return h, fmt.Errorf("%w: not a tusk WAL object (bad magic)", ErrCorrupt)
	}
	rest := make([]byte, int(m[len(magic)])+8+1+32)
	if _, err := io.ReadFull(r, rest); err != nil {
		return h, fmt.Errorf("%w: header: %v", ErrCorrupt, err)
	}
	cl := int(m[len(magic)])
	c, err := compress.Parse(string(rest[:cl]))
	if err != nil {
		return h, fmt.Errorf("%w: header: %v", ErrCorrupt, err)
	}
	h.Codec = c
	h.Size = int64(binary.BigEndian.Uint64(rest[cl:]))
	if rest[cl+8] != sumSHA256 {
		return h, fmt.Errorf("%w: unknown checksum kind %d", ErrCorrupt, rest[cl+8])
	}
	copy(h.Sum[:], rest[cl+9:])
	return h, nil
}

// sumFile returns the size and SHA-256 of everything r yields.
func sumFile(r io.Reader) (int64, [32]byte, error) {
	hw := sha256.New()
	n, err := io.Copy(hw, r)
	return n, [32]byte(hw.Sum(nil)), err
}
