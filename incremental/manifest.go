package incremental

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/tusk-backup/tusk/wal"
)

// ErrManifest marks a backup manifest that cannot be used: not JSON, an
// unknown version, a bad field, or a checksum that does not match its text.
var ErrManifest = errors.New("bad backup manifest")

// Manifest is PostgreSQL's backup_manifest: version 1 (PostgreSQL 13 to
// 16) or 2 (17 and later, which adds System-Identifier).
type Manifest struct {
	Version   int
	SystemID  uint64 // System-Identifier; 0 in a version 1 manifest
	Files     []ManifestFile
	WALRanges []WALRange
	// Checksum is the recorded Manifest-Checksum (hex SHA-256 of the text
	// before it), which ParseManifest has checked.
	Checksum string
}

// ManifestFile is one file of a manifest. In an incremental backup's
// manifest, a relation file sent incrementally is listed under its
// INCREMENTAL.<name> (see Split), with that file's size and checksum.
type ManifestFile struct {
	Path         string // relative to the data directory, decoded from Encoded-Path when need be
	Size         int64
	LastModified string // as the server wrote it: "2024-09-26 10:00:00 GMT"
	Algorithm    string // Checksum-Algorithm: "CRC32C", "SHA256", ...; "" when none
	Checksum     string // hex, as in the manifest
}

// WALRange is one entry of WAL-Ranges: the WAL the backup needs.
type WALRange struct {
	Timeline   uint32
	Start, End wal.LSN
}

type jsonManifest struct {
	Version  *int        `json:"PostgreSQL-Backup-Manifest-Version"`
	SystemID json.Number `json:"System-Identifier"`
	Files    []struct {
		Path         *string `json:"Path"`
		EncodedPath  *string `json:"Encoded-Path"`
		Size         *int64  `json:"Size"`
		LastModified string  `json:"Last-Modified"`
		Algorithm    string  `json:"Checksum-Algorithm"`
		Checksum     string  `json:"Checksum"`
	} `json:"Files"`
	WALRanges []struct {
		Timeline *uint32 `json:"Timeline"`
		Start    wal.LSN `json:"Start-LSN"`
		End      wal.LSN `json:"End-LSN"`
	} `json:"WAL-Ranges"`
	Checksum string `json:"Manifest-Checksum"`
}

// ParseManifest reads a backup manifest and checks its Manifest-Checksum,
// which covers the text up to and including the newline before the line
// that holds it (as PostgreSQL's parse_manifest.c reads it).
func ParseManifest(b []byte) (*Manifest, error) {
	var jm jsonManifest
	if err := json.Unmarshal(b, &jm); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrManifest, err)
	}
	if jm.Version == nil {
		return nil, fmt.Errorf("%w: no PostgreSQL-Backup-Manifest-Version", ErrManifest)
	}
	m := &Manifest{Version: *jm.Version, Checksum: jm.Checksum}
	switch m.Version {
	case 1:
	case 2:
		if jm.SystemID == "" {
			return nil, fmt.Errorf("%w: a version 2 manifest without System-Identifier", ErrManifest)
		}
		id, err := strconv.ParseUint(jm.SystemID.String(), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: System-Identifier %s", ErrManifest, jm.SystemID)
		}
		m.SystemID = id
	default:
		return nil, fmt.Errorf("%w: version %d (tusk reads versions 1 and 2)", ErrManifest, m.Version)
	}
	if err := checkManifestSum(b, jm.Checksum); err != nil {
		return nil, err
	}
	m.Files = make([]ManifestFile, len(jm.Files))
	for i, f := range jm.Files {
		var mf ManifestFile
		switch {
		case f.Path != nil && f.EncodedPath == nil:
			mf.Path = *f.Path
		case f.EncodedPath != nil && f.Path == nil:
			p, err := hex.DecodeString(*f.EncodedPath)
			if err != nil {
				return nil, fmt.Errorf("%w: Encoded-Path %q is not hex", ErrManifest, *f.EncodedPath)
			}
			mf.Path = string(p)
		default:
			return nil, fmt.Errorf("%w: file %d has neither or both of Path and Encoded-Path", ErrManifest, i)
		}
		if f.Size == nil || *f.Size < 0 {
			return nil, fmt.Errorf("%w: file %s has no size", ErrManifest, mf.Path)
		}
		mf.Size, mf.LastModified, mf.Algorithm, mf.Checksum = *f.Size, f.LastModified, f.Algorithm, f.Checksum
		m.Files[i] = mf
	}
	for _, r := range jm.WALRanges {
		if r.Timeline == nil {
			return nil, fmt.Errorf("%w: a WAL range without a timeline", ErrManifest)
		}
		m.WALRanges = append(m.WALRanges, WALRange{Timeline: *r.Timeline, Start: r.Start, End: r.End})
	}
	return m, nil
}

// checkManifestSum checks the manifest's own SHA-256: it covers everything
// up to the second-last newline (the last ends the Manifest-Checksum line).
func checkManifestSum(b []byte, recorded string) error {
	if recorded == "" {
		return fmt.Errorf("%w: no Manifest-Checksum", ErrManifest)
	}
	last := bytes.LastIndexByte(b, '\n')
	if last != len(b)-1 {
		return fmt.Errorf("%w: its last line does not end with a newline", ErrManifest)
	}
	prev := bytes.LastIndexByte(b[:last], '\n')
	if prev < 0 {
		return fmt.Errorf("%w: fewer than 2 lines", ErrManifest)
	}
	sum := sha256.Sum256(b[:prev+1])
	if got := hex.EncodeToString(sum[:]); got != recorded {
		return fmt.Errorf("%w: its checksum is %s, it records %s", ErrManifest, got, recorded)
	}
	return nil
}

// Write writes m as PostgreSQL writes a manifest (the layout of
// pg_combinebackup's write_manifest.c): one line per file and per WAL range,
// then Manifest-Checksum, the SHA-256 of everything before its line. m's
// Checksum field is ignored.
func (m *Manifest) Write(w io.Writer) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "{ \"PostgreSQL-Backup-Manifest-Version\": %d,\n", m.Version)
	if m.Version >= 2 {
		fmt.Fprintf(&b, "\"System-Identifier\": %d,\n", m.SystemID)
	}
	b.WriteString("\"Files\": [")
	for i, f := range m.Files {
		if i == 0 {
			b.WriteString("\n")
		} else {
			b.WriteString(",\n")
		}
		if utf8.ValidString(f.Path) {
			b.WriteString("{ \"Path\": ")
			writeJSONString(&b, f.Path)
			b.WriteString(", ")
		} else {
			fmt.Fprintf(&b, "{ \"Encoded-Path\": \"%s\", ", hex.EncodeToString([]byte(f.Path)))
		}
		fmt.Fprintf(&b, "\"Size\": %d, \"Last-Modified\": ", f.Size)
		writeJSONString(&b, f.LastModified)
		if f.Algorithm != "" {
			b.WriteString(", \"Checksum-Algorithm\": ")
			writeJSONString(&b, f.Algorithm)
			b.WriteString(", \"Checksum\": ")
			writeJSONString(&b, f.Checksum)
		}
		b.WriteString(" }")
	}
	b.WriteString("\n],\n\"WAL-Ranges\": [\n")
	for i, r := range m.WALRanges {
		if i > 0 {
			b.WriteString(",\n")
		}
		fmt.Fprintf(&b, "{ \"Timeline\": %d, \"Start-LSN\": \"%s\", \"End-LSN\": \"%s\" }", r.Timeline, r.Start, r.End)
	}
	b.WriteString("\n],\n")
	sum := sha256.Sum256(b.Bytes())
	fmt.Fprintf(&b, "\"Manifest-Checksum\": \"%s\"}\n", hex.EncodeToString(sum[:]))
	_, err := w.Write(b.Bytes())
	return err
}

// writeJSONString escapes s as PostgreSQL's escape_json does: the named
// escapes, \u00XX for other control characters, everything else as is.
func writeJSONString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		default:
			if c < ' ' {
				fmt.Fprintf(b, `\u%04x`, c)
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('"')
}
