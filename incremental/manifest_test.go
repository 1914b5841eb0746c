package incremental

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestManifestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, version := range []int{1, 2} {
		m := &Manifest{
			Version: version,
			Files: []ManifestFile{
				{Path: "backup_label", Size: 227, LastModified: "2026-12-01 23:00:00 GMT", Algorithm: "CRC32C", Checksum: "0a1b2c3d"},
				{Path: "base/5/INCREMENTAL.16384", Size: 16384, LastModified: "2026-12-01 23:00:01 GMT", Algorithm: "CRC32C", Checksum: "deadbeef"},
				{Path: "odd \"name\"\t\x01", Size: 0, LastModified: "2026-12-01 23:00:02 GMT"},
				{Path: "not-utf8-\xff", Size: 3, LastModified: "2026-12-01 23:00:03 GMT", Algorithm: "CRC32C", Checksum: "00000000"},
			},
			WALRanges: []WALRange{{Timeline: 1, Start: 0x2000028, End: 0x2000120}},
		}
		if version == 2 {
			m.SystemID = 7449131254237708321
		}
		var b bytes.Buffer
		if err := m.Write(&b); err != nil {
			t.Fatal(err)
		}
		got, err := ParseManifest(b.Bytes())
		if err != nil {
			t.Fatalf("version %d: %v\n%s", version, err, b.String())
		}
		got.Checksum = ""
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("version %d: got %+v\nwant %+v", version, got, m)
		}
		if version == 1 && strings.Contains(b.String(), "System-Identifier") {
			t.Fatal("a version 1 manifest names its system")
		}
		if !strings.Contains(b.String(), `"Encoded-Path": "6e6f742d757466382dff"`) {
			t.Fatalf("a name that is not UTF-8 is not hex-encoded:\n%s", b.String())
		}
	}
}

// pg17Manifest is the shape of a manifest PostgreSQL 17 writes (its
// checksum computed for this text).
const pg17Manifest = `{ "PostgreSQL-Backup-Manifest-Version": 2,
"System-Identifier": 7449131254237708321,
"Files": [
{ "Path": "backup_label", "Size": 270, "Last-Modified": "2026-12-01 23:56:02 GMT", "Checksum-Algorithm": "CRC32C", "Checksum": "8f2a1c4d" },
{ "Path": "base/5/INCREMENTAL.16384", "Size": 16384, "Last-Modified": "2026-12-01 23:50:00 GMT", "Checksum-Algorithm": "CRC32C", "Checksum": "11223344" }
],
"WAL-Ranges": [
{ "Timeline": 1, "Start-LSN": "0/4000028", "End-LSN": "0/4000120" }
],
`

func TestParseManifest(t *testing.T) {
	t.Parallel()
	var good bytes.Buffer
	m := &Manifest{Version: 2, SystemID: 7449131254237708321, Files: []ManifestFile{
		{Path: "backup_label", Size: 270, LastModified: "2026-12-01 23:56:02 GMT", Algorithm: "CRC32C", Checksum: "8f2a1c4d"},
		{Path: "base/5/INCREMENTAL.16384", Size: 16384, LastModified: "2026-12-01 23:50:00 GMT", Algorithm: "CRC32C", Checksum: "11223344"},
	}, WALRanges: []WALRange{{Timeline: 1, Start: 0x4000028, End: 0x4000120}}}
	if err := m.Write(&good); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(good.String(), pg17Manifest) {
		t.Fatalf("Write's layout differs from PostgreSQL's:\n%s", good.String())
	}
	for _, tc := range []struct {
		name string
		text string
		want string
	}{
		{"not JSON", "{", "unexpected end"},
		{"no version", `{"Files": []}` + "\n\n", "no PostgreSQL-Backup-Manifest-Version"},
		{"version 3", `{"PostgreSQL-Backup-Manifest-Version": 3}`, "version 3"},
		{"version 2 without system", `{"PostgreSQL-Backup-Manifest-Version": 2}`, "without System-Identifier"},
		{"no checksum", `{"PostgreSQL-Backup-Manifest-Version": 1}`, "no Manifest-Checksum"},
		{"no final newline", strings.TrimSuffix(good.String(), "\n"), "does not end with a newline"},
		{"checksum wrong", strings.Replace(good.String(), `"Size": 270`, `"Size": 271`, 1), "its checksum is"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseManifest([]byte(tc.text))
			if !errors.Is(err, ErrManifest) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want ErrManifest with %q", err, tc.want)
			}
		})
	}
}
