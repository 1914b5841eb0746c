package basebackup

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"

	"github.com/tusk-backup/tusk/incremental"
	"github.com/tusk-backup/tusk/wal"
)

// crcHex is how a backup manifest writes a CRC32C: its 4 bytes in memory
// order (little-endian), in hex.
func crcHex(crc uint32) string {
	var le [4]byte
	binary.LittleEndian.PutUint32(le[:], crc)
	return hex.EncodeToString(le[:])
}

// localManifest is the backup manifest of a local-mode backup, as
// BASE_BACKUP would write it: version 1 up to PostgreSQL 16, version 2 with
// the System-Identifier from 17; every file stored with its size, mtime and
// CRC32C; the WAL from start to end on timeline tli.
func localManifest(version int, systemID string, files []incremental.ManifestFile, start, end wal.LSN, tli uint32) (*incremental.Manifest, error) {
	m := &incremental.Manifest{Version: 1, Files: slices.Clone(files),
		WALRanges: []incremental.WALRange{{Timeline: tli, Start: start, End: end}}}
	if version >= 170000 {
		id, err := strconv.ParseUint(systemID, 10, 64)
		if err != nil {
			return nil, err
		}
		m.Version, m.SystemID = 2, id
	}
	slices.SortFunc(m.Files, func(a, b incremental.ManifestFile) int { return strings.Compare(a.Path, b.Path) })
	return m, nil
}

// writeManifest stores the backup's manifest as its manifest part.
func (b *localBackup) writeManifest(start, end wal.LSN, tli uint32) error {
	b.mu.Lock()
	files := b.files
	b.mu.Unlock()
	m, err := localManifest(b.sys.Version, b.sys.SystemID, files, start, end, tli)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := m.Write(&buf); err != nil {
		return err
	}
	pw, err := b.u.newPart("manifest", 0, b.u.partPrefix()+"backup_manifest"+b.u.opts.Codec.Ext(), false)
	if err != nil {
		return err
	}
	if _, err := pw.Write(buf.Bytes()); err != nil {
		pw.abort(err)
		return err
	}
	p, err := pw.finish()
	if err != nil {
		return err
	}
	b.u.meta.Manifest = p
	return nil
}
