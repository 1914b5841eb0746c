package wal

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// LSN is a WAL position.
type LSN uint64

// ParseLSN reads PostgreSQL's %X/%X notation.
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("LSN %q is not of the form 16/B374D848", s)
	}
	// pg_lsn takes 1 to 8 hexadecimal digits on each side (no sign, no 0x).
	if hi == "" || lo == "" || len(hi) > 8 || len(lo) > 8 || strings.Trim(hi+lo, "0123456789abcdefABCDEF") != "" {
		return 0, fmt.Errorf("LSN %q is not of the form 16/B374D848", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("LSN %q is not of the form 16/B374D848", s)
	}
	return LSN(h<<32 | l), nil
}

func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint64(l)>>32, uint32(l)) }

// MarshalJSON writes l in PostgreSQL's notation, as a string.
func (l LSN) MarshalJSON() ([]byte, error) { return json.Marshal(l.String()) }

// UnmarshalJSON reads PostgreSQL's notation.
func (l *LSN) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := ParseLSN(s)
	*l = v
	return err
}

// SegmentName is the name of the WAL segment holding l on timeline tli.
func (l LSN) SegmentName(tli uint32, segSize uint64) string {
	return SegmentAt(tli, l.Pos(segSize), segSize).File
}

// Pos is the position of the segment holding l.
func (l LSN) Pos(segSize uint64) uint64 { return uint64(l) / segSize }
