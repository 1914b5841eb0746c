package basebackup

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tusk-backup/tusk/incremental"
	"github.com/tusk-backup/tusk/wal"
)

// TestLocalManifest: the manifest local mode writes is version 1 up to
// PostgreSQL 16 and 2, with the system identifier, from 17, lists the
// files in path order and parses back with its checksum.
func TestLocalManifest(t *testing.T) {
	t.Parallel()
	files := []incremental.ManifestFile{
		{Path: "global/pg_control", Size: 8192, LastModified: "2026-12-02 00:00:00 GMT", Algorithm: "CRC32C", Checksum: crcHex(0x01020304)},
		{Path: "backup_label", Size: 10, LastModified: "2026-12-02 00:00:01 GMT", Algorithm: "CRC32C", Checksum: crcHex(7)},
	}
	if got := crcHex(0x01020304); got != "04030201" {
		t.Fatalf("crcHex = %s, want the little-endian bytes 04030201", got)
	}
	for _, c := range []struct {
		version int
		want    int
		id      uint64
	}{{150004, 1, 0}, {160000, 1, 0}, {170002, 2, 7000000000000000001}, {180000, 2, 7000000000000000001}} {
		m, err := localManifest(c.version, "7000000000000000001", files, wal.LSN(0x2000028), wal.LSN(0x2000100), 1)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := m.Write(&b); err != nil {
			t.Fatal(err)
		}
		back, err := incremental.ParseManifest(b.Bytes())
		if err != nil {
			t.Fatalf("server %d: %v\n%s", c.version, err, b.String())
		}
		if back.Version != c.want || back.SystemID != c.id || len(back.Files) != 2 || back.Files[0].Path != "backup_label" ||
			len(back.WALRanges) != 1 || back.WALRanges[0] != (incremental.WALRange{Timeline: 1, Start: 0x2000028, End: 0x2000100}) {
			t.Errorf("server %d: manifest %+v", c.version, back)
		}
	}
}

func TestCheckLabel(t *testing.T) {
	t.Parallel()
	label := "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nCHECKPOINT LOCATION: 0/2000060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2026-12-02 00:00:00 UTC\nLABEL: tusk\nSTART TIMELINE: 1\n"
	if err := checkLabel(label, 0x2000028, 1); err != nil {
		t.Errorf("the backup's own label: %v", err)
	}
	for _, c := range []struct {
		start wal.LSN
		tli   uint32
	}{{0x2000029, 1}, {0x2000028, 2}} {
		if err := checkLabel(label, c.start, c.tli); err == nil || !strings.Contains(err.Error(), "backup_label") {
			t.Errorf("label of 0/2000028 on 1 taken for %s on %d: %v", c.start, c.tli, err)
		}
	}
}
