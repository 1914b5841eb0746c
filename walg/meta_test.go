package walg

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/wal"
)

func TestIsName(t *testing.T) {
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{"base_000000010000000000000002", true},
		{"base_000000010000000000000004_D_000000010000000000000002", true},
		{"base_000000010000000000000004_D_000000010000000000000002_000000A8", true},
		{"base_000000010000000000000002_000000A8", true},
		{"base_00000001000000000000000", false},
		{"base_000000010000000000000002_", false},
		{"base_000000010000000000000002_D_0000000100000000000002", false},
		{"base_00000001000000000000000a", false},
		{"base_000000010000000000000002_20261122T030000Z", false}, // tusk's
		{"../base_000000010000000000000002", false},
	} {
		if got := IsName(c.name); got != c.ok {
			t.Errorf("IsName(%q) = %v, want %v", c.name, got, c.ok)
		}
	}
}

// Written by wal-g 43fb039f's backup-push (PostgreSQL 15, one tablespace).
const (
	fullSentinel  = `{"LSN":33554472,"PgVersion":150018,"FinishLSN":33554688,"SystemIdentifier":7714562627524091016,"UncompressedSize":26262849,"CompressedSize":4549318,"DataCatalogSize":26377411,"Spec":{"16384":{"loc":"/tmp/wgB/ts","link":"pg_tblspc/16384"},"base_prefix":"/tmp/wgB/data","tablespaces":["16384"]},"ChkpNum":null,"Version":2,"StartTime":"2026-12-02T04:43:02.993816Z","FinishTime":"2026-12-02T04:43:04.261585Z","DateFmt":"%Y-%m-%dT%H:%M:%S.%fZ","Hostname":"vm","DataDir":"/tmp/wgB/data","IsPermanent":false}`
	deltaSentinel = `{"LSN":67108904,"DeltaLSN":33554472,"DeltaFrom":"base_000000010000000000000002","DeltaFullName":"base_000000010000000000000002","DeltaCount":1,"PgVersion":150018,"FinishLSN":67109120,"SystemIdentifier":7714562627524091016,"UncompressedSize":452721,"CompressedSize":82329,"DataCatalogSize":26556455,"Spec":{"16384":{"loc":"/tmp/wgB/ts","link":"pg_tblspc/16384"},"base_prefix":"/tmp/wgB/data","tablespaces":["16384"]},"ChkpNum":null,"Version":2,"StartTime":"2026-12-02T04:43:04.341279Z","FinishTime":"2026-12-02T04:43:05.418086Z","DateFmt":"%Y-%m-%dT%H:%M:%S.%fZ","Hostname":"vm","DataDir":"/tmp/wgB/data","IsPermanent":false}`
	deltaMetadata = `{"start_time":"2026-12-02T04:43:04.341279Z","finish_time":"2026-12-02T04:43:05.418086Z","date_fmt":"%Y-%m-%dT%H:%M:%S.%fZ","hostname":"vm","data_dir":"/tmp/wgB/data","pg_version":150018,"start_lsn":67108904,"finish_lsn":67109120,"is_permanent":true,"system_identifier":7714562627524091016,"uncompressed_size":452721,"compressed_size":82329}`
)

func TestSentinelToMeta(t *testing.T) {
	const full, delta = "base_000000010000000000000002", "base_000000010000000000000004_D_000000010000000000000002"
	s, files, err := parseSentinel(full, []byte(fullSentinel))
	if err != nil || files != nil {
		t.Fatal(err, files)
	}
	m := toMeta(full, s, nil, nil)
	if m.StartLSN != 0x2000028 || m.EndLSN != 0x2000100 || m.StartWAL != "000000010000000000000002" || m.EndWAL != "000000010000000000000002" ||
		m.StartTLI != 1 || m.SystemID != "7714562627524091016" || m.PGVersion != 150018 || m.Incremental() || m.DataSize != 26262849 ||
		!m.FinishTime.Equal(time.Date(2026, 12, 2, 4, 43, 4, 261585000, time.UTC)) || len(m.Tablespaces) != 1 ||
		m.Tablespaces[0].OID != "16384" || m.Tablespaces[0].Location != "/tmp/wgB/ts" || !IsWALG(m) {
		t.Errorf("full backup: %+v", m)
	}
	s, _, err = parseSentinel(delta, []byte(deltaSentinel))
	if err != nil {
		t.Fatal(err)
	}
	var md Metadata
	if err := json.Unmarshal([]byte(deltaMetadata), &md); err != nil {
		t.Fatal(err)
	}
	m = toMeta(delta, s, &md, nil)
	if m.Parent != full || m.ChainFull != full || m.ChainDepth != 1 || !m.Permanent || m.StartLSN != wal.LSN(67108904) {
		t.Errorf("delta: %+v", m)
	}
	// The spec round-trips as wal-g writes it.
	b, err := json.Marshal(s.Spec)
	if err != nil || string(b) != `{"16384":{"loc":"/tmp/wgB/ts","link":"pg_tblspc/16384"},"base_prefix":"/tmp/wgB/data","tablespaces":["16384"]}` {
		t.Errorf("spec: %s %v", b, err)
	}
}

func TestParseSentinelRefuses(t *testing.T) {
	for _, c := range []struct{ what, json string }{
		{"not JSON", `{`},
		{"no LSN", `{"FinishLSN":1,"PgVersion":150000}`},
		{"no FinishLSN", `{"LSN":1,"PgVersion":150000}`},
		{"a delta without its LSN", `{"LSN":2,"FinishLSN":3,"DeltaFrom":"base_000000010000000000000002"}`},
		{"a parent that is no name", `{"LSN":2,"FinishLSN":3,"DeltaFrom":"x","DeltaLSN":1,"DeltaFullName":"x","DeltaCount":1}`},
		{"a spec without base_prefix", `{"LSN":2,"FinishLSN":3,"Spec":{"tablespaces":[]}}`},
	} {
		if _, _, err := parseSentinel("base_000000010000000000000002", []byte(c.json)); err == nil {
			t.Errorf("%s: accepted", c.what)
		}
	}
	// wal-g before files_metadata.json kept Files in the sentinel, and
	// named DeltaLSN DeltaFromLSN.
	s, files, err := parseSentinel("base_000000010000000000000004_D_000000010000000000000002",
		[]byte(`{"LSN":67108904,"DeltaFromLSN":33554472,"DeltaFrom":"base_000000010000000000000002","DeltaFullName":"base_000000010000000000000002","DeltaCount":1,"FinishLSN":67109120,"Files":{"/base/1/1":{"IsIncremented":true,"IsSkipped":false,"MTime":"2026-12-02T04:43:02Z"}}}`))
	if err != nil || *s.DeltaLSN != 33554472 || files == nil || !files.Files["/base/1/1"].IsIncremented {
		t.Errorf("old sentinel: %+v %+v %v", s, files, err)
	}
}

func TestIsPartKey(t *testing.T) {
	for key, want := range map[string]bool{
		"basebackups_005/base_000000010000000000000002/tar_partitions/part_001.tar.lz4": true,
		"basebackups_005/base_000000010000000000000002/tar_partitions/pg_control.tar":   true,
		"basebackups_005/base_000000010000000000000002_backup_stop_sentinel.json":       false,
		"basebackups_005/base_000000010000000000000002/metadata.json":                   false,
		"basebackups_005/base_000000010000000000000002/tar_partitions/":                 false,
		"wal_005/000000010000000000000002.lz4":                                          false,
	} {
		if got := IsPartKey(key); got != want {
			t.Errorf("IsPartKey(%s) = %v, want %v", key, got, want)
		}
	}
}

func TestSegSizeOf(t *testing.T) {
	for _, c := range []struct {
		seg  string
		lsn  uint64
		want uint64
	}{
		{"000000010000000000000002", 0x2000028, 16 << 20},
		{"000000010000000000000002", 0x200028, 1 << 20},
		{"00000001000000000000000A", 0xA0000028, 256 << 20},
		{"000000010000000100000003", 0x1_0C000028, 64 << 20},
		{"000000010000000000000001", 0, 16 << 20}, // agrees with no size: the default
	} {
		if got := segSizeOf(c.seg, c.lsn); got != c.want {
			t.Errorf("segSizeOf(%s, %X) = %d, want %d", c.seg, c.lsn, got, c.want)
		}
	}
}
