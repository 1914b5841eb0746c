package basebackup

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMetaIntegrity: metadata carries its own checksum, and metadata that
// cannot describe a restorable backup is refused, so neither backup-fetch nor
// verify ever takes a damaged or empty parts list at its word.
func TestMetaIntegrity(t *testing.T) {
	t.Parallel()
	good := func() Meta {
		name := "base_000000010000000000000002_20261201T030000Z"
		return Meta{Format: metaFormat, Name: name, SystemID: "7000000000000000001", StartTime: time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC),
			Tablespaces: []Tablespace{{OID: "16400", Location: "/ts"}, {}},
			Parts: []Part{
				{Key: DataPrefix(name) + "r/16400.00001.tar.s2", Archive: "16400", Seq: 1, Size: 10, Checksum: "xxh3-128:00000000000000000000000000000001"},
				{Key: DataPrefix(name) + "r/base.00001.tar.s2", Archive: "base", Seq: 1, Size: 10, Checksum: "xxh3-128:00000000000000000000000000000002"},
				{Key: DataPrefix(name) + "r/base.00002.tar.s2", Archive: "base", Seq: 2, Size: 10, Checksum: "xxh3-128:00000000000000000000000000000003"},
			},
			Manifest: Part{Key: DataPrefix(name) + "r/backup_manifest.s2", Archive: "manifest", Size: 5}}
	}
	cases := []struct {
		name  string
		edit  func(m *Meta)
		bytes func(b []byte) []byte // edits the stored object
		want  string                // "" for readable
	}{
		{"as written", nil, nil, ""},
		{"written before checksums", nil, func(b []byte) []byte {
			i := bytes.LastIndex(b, []byte(metaSumField))
			return append(b[:i], "\n}\n"...)
		}, ""},
		{"a changed value", nil, func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"permanent": false`), []byte(`"permanent": true`), 1)
		}, "does not match its checksum"},
		{"a changed part checksum", nil, func(b []byte) []byte {
			return bytes.Replace(b, []byte("00000000000000000000000000000002"), []byte("00000000000000000000000000000009"), 1)
		}, "does not match its checksum"},
		{"a mangled checksum", nil, func(b []byte) []byte {
			i := bytes.LastIndex(b, []byte(metaSumField+"xxh3-128:"))
			return append(append(b[:i:i], metaSumField+"md5:"...), b[i+len(metaSumField+"xxh3-128:"):]...)
		}, "a checksum field tusk did not write"},
		{"no parts", func(m *Meta) { m.Parts, m.Tablespaces = nil, nil }, nil, "lists no part of the data directory"},
		{"no manifest", func(m *Meta) { m.Manifest = Part{} }, nil, "lists no backup manifest"},
		{"a missing part number", func(m *Meta) { m.Parts = append(m.Parts[:1], m.Parts[2]) }, nil, "lists the parts [2] of archive base, not 1 to 1"},
		{"a tablespace without parts", func(m *Meta) { m.Parts = m.Parts[1:] }, nil, "lists no part of tablespace 16400"},
		{"another backup's name", func(m *Meta) { m.Name = "base_000000010000000000000009_20261201T030000Z" }, nil, "names backup"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := newStore(t)
			m := good()
			stored := m.Name
			if c.edit != nil {
				c.edit(&m)
			}
			// WriteMeta stores under m.Name; store under the name asked for.
			m2 := m
			m2.Name = stored
			if err := WriteMeta(t.Context(), st, m2); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(st.(interface{ Root() string }).Root(), filepath.FromSlash(MetaKey(stored)))
			b, _ := os.ReadFile(path)
			if m.Name != stored {
				b = bytes.Replace(b, []byte(stored), []byte(m.Name), 1)
				i := bytes.LastIndex(b, []byte(metaSumField)) // no checksum: the name check must catch it
				b = append(b[:i:i], "\n}\n"...)
			}
			if c.bytes != nil {
				b = c.bytes(b)
			}
			os.WriteFile(path, b, 0o600)
			got, err := ReadMeta(t.Context(), st, stored)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want == "" && got.Name != stored:
				t.Fatalf("read %+v", got)
			case c.want != "" && (!errors.Is(err, ErrBadMeta) || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("err = %v, want ErrBadMeta saying %q", err, c.want)
			}
		})
	}
}
