package archive

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/zeebo/xxh3"

	"github.com/tusk-backup/tusk/compress"
)

// ErrCorrupt marks an archived object that fails verification: a bad header,
// a broken compressed stream, or content whose size or checksum differs
// from what was recorded at push time.
var ErrCorrupt = errors.New("archived object is corrupt")

// Every WAL object starts with a small header that records the codec and the
// size and checksum of the uncompressed content, then the compressed stream:
//
//	magic "TUSKWAL1" | codec length (1 byte) | codec (canonical string)
//	| size (uint64, big endian) | checksum kind (1 byte) | checksum (32 bytes)
//
// wal-push compares checksums by reading only this header; wal-fetch checks
// the content against it before the file reaches PostgreSQL.
const magic = "TUSKWAL1"

// SumKind names the content checksum's algorithm.
type SumKind byte

const (
	// SumSHA256 is SHA-256, what the first objects carried; still read.
	SumSHA256 SumKind = 1
	// SumXXH3 is XXH3-128 (in the first 16 of the 32 bytes), what new
	// objects carry. Both catch any accidental damage; XXH3 hashes a 16 MiB
	// segment in about 0.2 ms where SHA-256 takes 10 ms even with the CPU's
	// SHA instructions, and wal-push and wal-fetch both hash every segment
	// (BENCHMARKS.md, wal-push). Nothing here needs a cryptographic hash:
	// the checksum guards against corruption and mix-ups, not forgery.
	SumXXH3 SumKind = 2
)

// String returns the algorithm's name as messages show it.
func (k SumKind) String() string {
	switch k {
	case SumSHA256:
		return "sha256"
	case SumXXH3:
		return "xxh3-128"
	}
	return fmt.Sprintf("checksum kind %d", byte(k))
}

// size is the checksum's length in bytes.
func (k SumKind) size() int {
	if k == SumXXH3 {
		return 16
	}
	return 32
}

// Header is the decoded object header.
type Header struct {
	Codec   compress.Codec
	Size    int64
	SumKind SumKind
	Sum     [32]byte
}

// SumHex is the content checksum as lowercase hex, without padding.
func (h Header) SumHex() string { return hex.EncodeToString(h.Sum[:h.SumKind.size()]) }

// SumString is the checksum with its algorithm, e.g. "xxh3-128:12ab…".
func (h Header) SumString() string { return h.SumKind.String() + ":" + h.SumHex() }

func (h Header) marshal() []byte {
	c := h.Codec.String()
	b := make([]byte, 0, len(magic)+1+len(c)+8+1+32)
	b = append(b, magic...)
	b = append(b, byte(len(c)))
	b = append(b, c...)
	b = binary.BigEndian.AppendUint64(b, uint64(h.Size))
	b = append(b, byte(h.SumKind))
	return append(b, h.Sum[:]...)
}

// HeaderLen is the length of the object header b starts with, 0 if b does
// not start with a whole one. In an age-mode repository (package crypt)
// the header is what a WAL object shows without its identity, so that
// wal-push's overwrite check works on a host that only writes.
func HeaderLen(b []byte) int {
	if len(b) < len(magic)+1 || !bytes.Equal(b[:len(magic)], []byte(magic)) {
		return 0
	}
	n := len(magic) + 1 + int(b[len(magic)]) + 8 + 1 + 32
	if len(b) < n {
		return 0
	}
	return n
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
	h.SumKind = SumKind(rest[cl+8])
	if h.SumKind != SumSHA256 && h.SumKind != SumXXH3 {
		return h, fmt.Errorf("%w: unknown checksum kind %d", ErrCorrupt, rest[cl+8])
	}
	copy(h.Sum[:], rest[cl+9:])
	return h, nil
}

// contentHash computes a content checksum of one kind.
type contentHash interface {
	io.Writer
	sum() [32]byte
}

func newContentHash(kind SumKind) contentHash {
	if kind == SumSHA256 {
		return &sha256Hash{sha256.New()}
	}
	return &xxh3Hash{xxh3.New()}
}

type sha256Hash struct{ hash.Hash }

func (h *sha256Hash) sum() [32]byte { return [32]byte(h.Sum(nil)) }

type xxh3Hash struct{ *xxh3.Hasher }

func (h *xxh3Hash) sum() [32]byte {
	var out [32]byte
	b := h.Sum128().Bytes()
	copy(out[:], b[:])
	return out
}

// sumFile returns the size and checksum of kind of everything r yields.
func sumFile(r io.Reader, kind SumKind) (int64, [32]byte, error) {
	h := newContentHash(kind)
	n, err := io.Copy(h, r)
	return n, h.sum(), err
}
