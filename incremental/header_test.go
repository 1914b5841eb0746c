package incremental

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
)

// block returns a block filled with a byte derived from tag.
func block(tag int) []byte { return bytes.Repeat([]byte{byte(tag*7 + 1)}, BlockSize) }

// incFile builds an incremental file holding blocks (number -> tag).
func incFile(t *testing.T, tbl uint32, unpadded bool, blocks ...uint32) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := NewWriter(&b, Header{Blocks: blocks, TruncationBlockLength: tbl, Unpadded: unpadded})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range blocks {
		if _, err := w.Write(block(int(n))); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestHeaderRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		tbl      uint32
		blocks   []uint32
		unpadded bool
		size     int64 // expected file size
		length   uint32
	}{
		{"no blocks, no padding", 5, nil, false, 12, 5},
		{"one block padded", 3, []uint32{1}, false, 2 * BlockSize, 3},
		{"block beyond the truncation length", 2, []uint32{0, 7}, false, 3 * BlockSize, 8},
		{"unpadded development layout", 4, []uint32{0, 2}, true, 12 + 8 + 2*BlockSize, 4},
		{"header of two blocks", 3000, seq(2100), false, 2*BlockSize + 2100*BlockSize, 3000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := incFile(t, tc.tbl, tc.unpadded, tc.blocks...)
			if int64(len(f)) != tc.size {
				t.Fatalf("file size %d, want %d", len(f), tc.size)
			}
			r, err := NewReader(bytes.NewReader(f), int64(len(f)))
			if err != nil {
				t.Fatal(err)
			}
			if r.Unpadded != tc.unpadded || r.TruncationBlockLength != tc.tbl || len(r.Blocks) != len(tc.blocks) || r.Length() != tc.length {
				t.Fatalf("header %+v length %d", r.Header, r.Length())
			}
			for i := 0; ; i++ {
				n, data, err := r.Next()
				if err == io.EOF {
					if i != len(tc.blocks) {
						t.Fatalf("%d blocks read, want %d", i, len(tc.blocks))
					}
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if n != tc.blocks[i] || !bytes.Equal(data, block(int(n))) {
					t.Fatalf("block %d: number %d or content wrong", i, n)
				}
			}
			if !tc.unpadded {
				// The streaming reader (no size) reads the released layout.
				h, err := ReadHeader(bytes.NewReader(f))
				if err != nil || h.Size() != int64(len(f))-int64(len(tc.blocks))*BlockSize {
					t.Fatalf("ReadHeader: %+v, %v", h, err)
				}
			}
		})
	}
}

func seq(n int) []uint32 {
	s := make([]uint32, n)
	for i := range s {
		s[i] = uint32(i)
	}
	return s
}

func TestHeaderCorrupt(t *testing.T) {
	t.Parallel()
	good := incFile(t, 4, false, 1, 3)
	raw := func(words ...uint32) []byte {
		b := make([]byte, 4*len(words))
		for i, w := range words {
			binary.LittleEndian.PutUint32(b[4*i:], w)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		data []byte
		size int64 // -1: ReadHeader
		want string
	}{
		{"empty", nil, -1, "ends within its header"},
		{"bad magic", raw(0xdeadbeef, 0, 0), -1, "magic number 0xdeadbeef"},
		{"big-endian magic", raw(0x0d1faed3, 0, 0), -1, "magic number"},
		{"impossible block count", raw(Magic, SegmentBlocks+1, 0), -1, "block count 131073 exceeds"},
		{"impossible truncation length", raw(Magic, 0, SegmentBlocks+1), -1, "truncation block length"},
		{"block numbers cut", raw(Magic, 3, 4, 1), -1, "ends within its block numbers"},
		{"no padding", raw(Magic, 1, 4, 1), -1, "ends within its header's padding"},
		{"block numbers out of order", raw(Magic, 2, 4, 3, 1), -1, "out of order"},
		{"duplicate block", raw(Magic, 2, 4, 3, 3), -1, "out of order"},
		{"block number beyond a segment", raw(Magic, 1, 4, SegmentBlocks), -1, "beyond the 131072 blocks"},
		{"truncated blocks, size known", good[:len(good)-1], int64(len(good) - 1), "but a header of 2 blocks makes"},
		{"extra bytes, size known", append(append([]byte{}, good...), 0), int64(len(good) + 1), "but a header of 2 blocks makes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var err error
			if tc.size < 0 {
				_, err = ReadHeader(bytes.NewReader(tc.data))
			} else {
				_, err = ReadHeaderSized(bytes.NewReader(tc.data), tc.size)
			}
			if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want ErrFormat with %q", err, tc.want)
			}
		})
	}
	t.Run("truncated block", func(t *testing.T) {
		t.Parallel()
		r, err := NewReader(bytes.NewReader(good[:len(good)-10]), -1)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
		if _, _, err := r.Next(); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "ends within block 3") {
			t.Fatalf("error %v", err)
		}
	})
}

func TestNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, path string
		inc      bool
	}{
		{"base/5/INCREMENTAL.16384", "base/5/16384", true},
		{"base/5/INCREMENTAL.16384.1", "base/5/16384.1", true},
		{"INCREMENTAL.x", "x", true},
		{"base/5/16384", "base/5/16384", false},
		{"base/5/INCREMENTAL.", "base/5/INCREMENTAL.", false},
		{"INCREMENTAL.d/file", "INCREMENTAL.d/file", false},
	} {
		p, inc := Split(tc.in)
		if p != tc.path || inc != tc.inc {
			t.Errorf("Split(%q) = %q, %v", tc.in, p, inc)
		}
		if inc && Name(p) != tc.in {
			t.Errorf("Name(%q) = %q", p, Name(p))
		}
	}
}
