package archive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/tusk-backup/tusk/wal"
)

// TestCheckSegment: wal-push archives under a segment's name only a whole
// segment PostgreSQL wrote under that name.
func TestCheckSegment(t *testing.T) {
	t.Parallel()
	const sysID = 7000000000000000001
	seg := func(name string, size int, edit func(h []byte)) (wal.Name, []byte) {
		n, err := wal.ParseName(name)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, size)
		h := LongPageHeader(n, 16<<20, sysID)
		if edit != nil {
			edit(h)
		}
		copy(b, h)
		return n, b
	}
	le := binary.LittleEndian
	cases := []struct {
		name    string
		file    string
		size    int
		edit    func(h []byte)
		wantSys uint64
		want    string // "" for accepted
	}{
		{"whole segment", "000000010000000000000042", 16 << 20, nil, sysID, ""},
		{"high segment", "00000003000000A2000000FF", 16 << 20, nil, 0, ""},
		{"partial", "000000010000000000000042.partial", 16 << 20, nil, 0, ""},
		{"first of a new timeline starts with its parent's page", "000000020000000000000042", 16 << 20,
			func(h []byte) { le.PutUint32(h[4:], 1) }, 0, ""},
		{"empty", "000000010000000000000042", 0, nil, 0, "it is 0 bytes long"},
		{"100 bytes", "000000010000000000000042", 100, nil, 0, "it is 100 bytes long, and a segment is at least 1 MiB"},
		{"cut short", "000000010000000000000042", 8 << 20, nil, 0, "is it cut short?"},
		{"zeros", "000000010000000000000042", 16 << 20, func(h []byte) { clear(h) }, 0, "does not start with a WAL page header"},
		{"short header", "000000010000000000000042", 16 << 20, func(h []byte) { le.PutUint16(h[2:], 0) }, 0, "no long header"},
		{"odd segment size", "000000010000000000000042", 16 << 20, func(h []byte) { le.PutUint32(h[32:], 3<<20) }, 0, "segment size 3145728, which PostgreSQL never uses"},
		{"another segment's content", "000000010000000000000043", 16 << 20,
			func(h []byte) { le.PutUint64(h[8:], 0x42<<24) }, 0, "it starts at LSN 0/42000000, not at 0/43000000"},
		{"later timeline than its name", "000000010000000000000042", 16 << 20, func(h []byte) { le.PutUint32(h[4:], 2) }, 0, "on timeline 2"},
		{"another cluster", "000000010000000000000042", 16 << 20, nil, 42, "system identifier 7000000000000000001, not to this one (42)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n, b := seg(c.file, c.size, c.edit)
			if c.size < len(b) {
				b = b[:c.size]
			}
			info, err := CheckSegment(bytes.NewReader(b), int64(len(b)), n, c.wantSys)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want == "" && (info.SystemID != sysID || info.SegSize != 16<<20):
				t.Fatalf("info = %+v", info)
			case c.want != "" && (err == nil || !errors.Is(err, ErrNotSegment) || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("err = %v, want ErrNotSegment saying %q", err, c.want)
			case c.want != "" && !strings.Contains(err.Error(), n.File):
				t.Fatalf("%v does not name the file", err)
			}
		})
	}
}
