package cmd

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/wal"
)

func sampleEntries() []listEntry {
	start := time.Date(2026, 12, 2, 4, 49, 12, 468065000, time.UTC)
	ms := []basebackup.Meta{
		{Format: 1, Name: "base_000000010000000000000002_20261202T044912Z", SystemID: "7714564196941011399", PGVersion: 150018,
			StartLSN: 0x2000028, EndLSN: 0x2000100, StartTLI: 1, EndTLI: 1, StartWAL: "000000010000000000000002",
			StartTime: start, FinishTime: start.Add(1157981 * time.Microsecond), DataSize: 23182684, StoredSize: 4332603, Codec: "lz4"},
		{Format: 1, Name: "base_000000010000000000000003_20261202T044913Z", SystemID: "7714564196941011399", PGVersion: 150018,
			StartLSN: 0x3000028, EndLSN: 0x3000100, StartTLI: 1, EndTLI: 1, StartWAL: "000000010000000000000003",
			StartTime: start.Add(time.Second), FinishTime: start.Add(2 * time.Second), DataSize: 100, StoredSize: 50, Codec: "lz4",
			Permanent: true, Parent: "base_000000010000000000000002_20261202T044912Z", ChainFull: "base_000000010000000000000002_20261202T044912Z", ChainDepth: 1},
	}
	return listEntries(ms)
}

// TestBackupListTable: wal-g's columns first, each cell one word, RFC 3339
// times, true/false once per line (what scripts written for wal-g's
// backup-list cut, awk and grep).
func TestBackupListTable(t *testing.T) {
	t.Parallel()
	for _, detail := range []bool{false, true} {
		var b bytes.Buffer
		if err := printTabbed(&b, listRows(sampleEntries(), detail)); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(b.String()), "\n")
		if len(lines) != 3 {
			t.Fatalf("detail %v: %d lines:\n%s", detail, len(lines), b.String())
		}
		head := strings.Fields(lines[0])
		want := []string{"backup_name", "modified", "wal_file_name", "storage_name"}
		if detail {
			want = append(want, "start_time", "finish_time", "hostname", "data_dir", "pg_version", "start_lsn", "finish_lsn", "is_permanent")
		}
		if !reflect.DeepEqual(head[:len(want)], want) {
			t.Fatalf("detail %v: heading %v, want wal-g's %v first", detail, head, want)
		}
		for i, l := range lines[1:] {
			f := strings.Fields(l)
			if len(f) != len(head) {
				t.Fatalf("detail %v: row %q has %d words, heading %d", detail, l, len(f), len(head))
			}
			if f[1] != sampleEntries()[i].FinishTime.Format(time.RFC3339) || f[2] != sampleEntries()[i].StartWAL || f[3] != "default" {
				t.Errorf("detail %v: row %q", detail, l)
			}
			n := strings.Count(" "+l+" ", " true ") + strings.Count(" "+l+" ", " false ")
			if n != 1 || !strings.Contains(l, map[bool]string{true: " true ", false: " false "}[i == 1]) {
				t.Errorf("detail %v: row %q: want exactly one true/false, is_permanent", detail, l)
			}
			if detail && (f[9] != []string{"0/2000028", "0/3000028"}[i] || f[8] != "150018") {
				t.Errorf("detail row %q: start_lsn %s, pg_version %s", l, f[9], f[8])
			}
		}
	}
}

func TestBackupListPretty(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := printPrettyTable(&b, listRows(sampleEntries(), true)); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[0], "+---+") || !strings.HasPrefix(lines[1], "| # | BACKUP NAME ") ||
		!strings.Contains(lines[1], "| MODIFIED ") || !strings.Contains(lines[1], "| PERMANENT |") ||
		!strings.HasPrefix(lines[3], "| 0 | base_") || !strings.Contains(lines[3], "| Wednesday, 02-Dec-26 04:49:13 UTC |") {
		t.Fatalf("pretty table:\n%s", b.String())
	}
	for _, l := range lines {
		if len(l) != len(lines[0]) {
			t.Fatalf("ragged pretty table:\n%s", b.String())
		}
	}
}

// TestBackupListJSON: wal-g's fields, with its names, types and order, then
// tusk's; and the document reads back into the entries.
func TestBackupListJSON(t *testing.T) {
	t.Parallel()
	entries := sampleEntries()
	b, err := json.Marshal(entries)
	if err != nil {
		t.Fatal(err)
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	keys := jsonKeys(raw[0])
	want := []string{"backup_name", "time", "wal_file_name", "storage_name", "start_time", "finish_time", "date_fmt", "hostname",
		"data_dir", "pg_version", "start_lsn", "finish_lsn", "is_permanent", "system_identifier", "uncompressed_size", "compressed_size"}
	if !reflect.DeepEqual(keys[:len(want)], want) {
		t.Fatalf("keys %v, want wal-g's %v first", keys, want)
	}
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k] {
			t.Fatalf("key %s twice in %s", k, raw[0])
		}
		seen[k] = true
	}
	for _, k := range []string{"name", "end_lsn", "codec", "chain_stored_size"} {
		if !seen[k] {
			t.Errorf("tusk's %s is missing from %s", k, raw[0])
		}
	}
	var first map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw[1]))
	dec.UseNumber()
	if err := dec.Decode(&first); err != nil {
		t.Fatal(err)
	}
	if first["start_lsn"] != json.Number("50331688") || first["finish_lsn"] != json.Number("50331904") ||
		first["system_identifier"] != json.Number("7714564196941011399") || first["is_permanent"] != true ||
		first["time"] != "2026-12-02T04:49:14.468065Z" || first["storage_name"] != "default" || first["uncompressed_size"] != json.Number("100") {
		t.Fatalf("wal-g's fields: %v", first)
	}
	var back []listEntry
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, entries) {
		t.Fatalf("read back:\n%+v\nwant\n%+v", back, entries)
	}
	if back[0].StartLSN != wal.LSN(0x2000028) {
		t.Fatal(back[0].StartLSN)
	}
}
