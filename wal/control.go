package wal

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
)

// TimelineOf reads the timeline of the latest checkpoint
// (checkPointCopy.ThisTimeLineID) from dataDir/global/pg_control, as
// pg_controldata prints "Latest checkpoint's TimeLineID": the timeline the
// cluster was on when it last checkpointed (or shut down).
func TimelineOf(dataDir string) (uint32, error) {
	if _, err := SystemIDOf(dataDir); err != nil { // the sentences for a missing or unreadable file
		return 0, err
	}
	f, err := os.Open(filepath.Join(dataDir, "global", "pg_control"))
	if err != nil {
		return 0, fmt.Errorf("cannot read %s/global/pg_control: %w", dataDir, err)
	}
	defer f.Close()
	b := make([]byte, 60)
	if _, err := f.ReadAt(b, 0); err != nil {
		return 0, fmt.Errorf("cannot read %s/global/pg_control: %w", dataDir, err)
	}
	// Before PostgreSQL 11 (pg_control_version 1100) the checkpoint copy
	// sat 8 bytes later.
	off := 48
	if binary.LittleEndian.Uint32(b[8:12]) < 1100 {
		off = 56
	}
	tli := binary.LittleEndian.Uint32(b[off : off+4])
	if tli == 0 {
		return 0, fmt.Errorf("%s/global/pg_control records timeline 0, which no cluster has: is it a pg_control file?", dataDir)
	}
	return tli, nil
}
