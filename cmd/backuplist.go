package cmd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/wal"
	"github.com/tusk-backup/tusk/walg"
)

func newBackupListCmd(root *rootOpts) *cobra.Command {
	var asJSON, detail, pretty bool
	c := &cobra.Command{
		Use:   "backup-list",
		Short: "List the repository's backups, oldest first",
		Long: `backup-list prints one line per finished backup, oldest first by finish time,
in wal-g's columns: backup_name, modified (when it finished, RFC 3339),
wal_file_name (its first WAL segment) and storage_name; then tusk's own:
timeline, data size, stored size, how long it took, is_permanent (true or
false), whether it is a full or an incremental backup, the backup an
incremental was taken against, and what its whole chain (the full backup and
every incremental up to it, all of which a restore reads) stores. --detail
puts wal-g's detail columns after wal-g's first four: start_time,
finish_time, hostname, data_dir, pg_version, start_lsn, finish_lsn and
is_permanent. --pretty draws a table with wal-g's headings and times.
--json prints an array with wal-g's fields (backup_name, time, wal_file_name,
storage_name, start_time, finish_time, date_fmt, hostname, data_dir,
pg_version, start_lsn and finish_lsn as numbers, is_permanent,
system_identifier, uncompressed_size, compressed_size), then tusk's whole
metadata and chain_stored_size. The last column, origin, says whose layout a
backup is in: tusk's own, or wal-g's (basebackups_005/ on the same prefix,
restorable by backup-fetch). With no backups, it prints nothing (--json:
[]).`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			cfg, log, st, err := root.loadRepo(c)
			if err != nil {
				return err
			}
			ctx := c.Context()
			ms, err := listBackups(ctx, st, log)
			if err != nil {
				return describeStorageErr(diagnose(ctx, st, err), cfg)
			}
			entries := listEntries(ms)
			if asJSON {
				enc := json.NewEncoder(root.stdout)
				if pretty {
					enc.SetIndent("", "    ")
				}
				return enc.Encode(entries)
			}
			if len(ms) == 0 {
				log.Info("no backups found", "repo", cfg.Repo.URL)
				return nil
			}
			rows := listRows(entries, detail)
			if pretty {
				return printPrettyTable(root.stdout, rows)
			}
			return printTabbed(root.stdout, rows)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print every backup's metadata as a JSON array")
	c.Flags().BoolVar(&detail, "detail", false, "add wal-g's detail columns: start and finish time, host, data directory, version, LSNs")
	c.Flags().BoolVar(&pretty, "pretty", false, "draw a table (with --json: indent)")
	return c
}

// listEntry is one backup as backup-list --json prints it: the metadata,
// and what a restore of it reads.
type listEntry struct {
	basebackup.Meta
	// ChainStoredSize is the bytes stored by the backup and every backup it
	// needs (its parents, up to the full backup).
	ChainStoredSize int64 `json:"chain_stored_size"`
	// ChainError says why the chain cannot be restored (a parent is
	// missing); empty when it can.
	ChainError string `json:"chain_error,omitempty"`
}

func listEntries(ms []basebackup.Meta) []listEntry {
	out := make([]listEntry, 0, len(ms))
	for _, m := range ms {
		e := listEntry{Meta: m}
		chain, err := basebackup.ChainOf(ms, m)
		if err != nil {
			e.ChainError = err.Error()
		}
		for _, b := range chain {
			e.ChainStoredSize += b.StoredSize
		}
		out = append(out, e)
	}
	return out
}

// walgStorageName is what wal-g's backup-list calls tusk's one storage.
const walgStorageName = "default"

// walgDateFmt is wal-g's date_fmt of its metadata (MetadataDatetimeFormat).
const walgDateFmt = "%Y-%m-%dT%H:%M:%S.%fZ"

// walgListJSON are wal-g's fields of backup-list --detail --json
// (internal.BackupTime, then postgres.ExtendedMetadataDto: the fields of a
// wal-g backup's metadata.json, walg.Metadata), in its order.
type walgListJSON struct {
	BackupName  string    `json:"backup_name"`
	Time        time.Time `json:"time"`
	WALFileName string    `json:"wal_file_name"`
	StorageName string    `json:"storage_name"`
	walg.Metadata
}

func walgFields(e listEntry) walgListJSON {
	m := e.Meta
	w := walgListJSON{
		BackupName: m.Name, Time: m.FinishTime, WALFileName: m.StartWAL, StorageName: walgStorageName,
		Metadata: walg.Metadata{
			StartTime: m.StartTime, FinishTime: m.FinishTime, DateFmt: walgDateFmt,
			PgVersion: m.PGVersion, StartLSN: uint64(m.StartLSN), FinishLSN: uint64(m.EndLSN),
			IsPermanent: m.Permanent, UncompressedSize: m.DataSize, CompressedSize: m.StoredSize,
		},
	}
	if id, err := strconv.ParseUint(m.SystemID, 10, 64); err == nil {
		w.SystemIdentifier = &id
	}
	return w
}

// MarshalJSON writes wal-g's fields first, then tusk's metadata without
// the fields wal-g's already give (start_lsn and system_identifier, which
// wal-g writes as numbers; start_time, finish_time, pg_version), then
// chain_stored_size and chain_error.
func (e listEntry) MarshalJSON() ([]byte, error) {
	head, err := json.Marshal(walgFields(e))
	if err != nil {
		return nil, err
	}
	type plain listEntry // without this method
	tail, err := json.Marshal(plain(e))
	if err != nil {
		return nil, err
	}
	dup := map[string]bool{}
	for _, k := range jsonKeys(head) {
		dup[k] = true
	}
	var b bytes.Buffer
	b.Write(head[:len(head)-1])
	dec := json.NewDecoder(bytes.NewReader(tail))
	if _, err := dec.Token(); err != nil { // {
		return nil, err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		k, _ := tok.(string)
		if dup[k] {
			continue
		}
		kb, _ := json.Marshal(k)
		b.WriteByte(',')
		b.Write(kb)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// jsonKeys are the keys of a JSON object, in order.
func jsonKeys(obj []byte) []string {
	var keys []string
	dec := json.NewDecoder(bytes.NewReader(obj))
	if _, err := dec.Token(); err != nil {
		return nil
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return keys
		}
		if k, ok := tok.(string); ok {
			keys = append(keys, k)
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return keys
		}
	}
	return keys
}

// listColumn is one column of backup-list's table: its name (the plain
// table's heading), wal-g's heading (--pretty) and its values.
type listColumn struct {
	name, pretty string
	value        func(e listEntry) string
	prettyValue  func(e listEntry) string // nil: value
}

func walgTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func walgPrettyTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC850)
}

// orDash keeps a table's cells one word each, so that cut -d ' ' and awk
// count columns as in wal-g.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return strings.ReplaceAll(s, " ", "")
}

var (
	walgColumns = []listColumn{
		{"backup_name", "Backup name", func(e listEntry) string { return e.Name }, nil},
		{"modified", "Modified", func(e listEntry) string { return walgTime(e.FinishTime) }, func(e listEntry) string { return walgPrettyTime(e.FinishTime) }},
		{"wal_file_name", "WAL file name", func(e listEntry) string { return e.StartWAL }, nil},
		{"storage_name", "Storage name", func(listEntry) string { return walgStorageName }, nil},
	}
	walgDetailColumns = []listColumn{
		{"start_time", "Start time", func(e listEntry) string { return walgTime(e.StartTime) }, func(e listEntry) string { return walgPrettyTime(e.StartTime) }},
		{"finish_time", "Finish time", func(e listEntry) string { return walgTime(e.FinishTime) }, func(e listEntry) string { return walgPrettyTime(e.FinishTime) }},
		{"hostname", "Hostname", func(listEntry) string { return "-" }, nil},
		{"data_dir", "Datadir", func(listEntry) string { return "-" }, nil},
		{"pg_version", "PG version", func(e listEntry) string { return strconv.Itoa(e.PGVersion) }, nil},
		{"start_lsn", "Start LSN", func(e listEntry) string { return e.StartLSN.String() }, nil},
		{"finish_lsn", "Finish LSN", func(e listEntry) string { return e.EndLSN.String() }, nil},
		{"is_permanent", "Permanent", func(e listEntry) string { return strconv.FormatBool(e.Permanent) }, nil},
	}
	// tuskColumns follow wal-g's; only is_permanent is true or false, so
	// that grep -o -e true -e false finds one word per line, as in wal-g.
	tuskColumns = []listColumn{
		{"timeline", "Timeline", func(e listEntry) string { return strconv.FormatUint(uint64(e.StartTLI), 10) }, nil},
		{"data_size", "Data size", func(e listEntry) string { return orDash(bytesString(e.DataSize)) }, nil},
		{"stored_size", "Stored size", func(e listEntry) string { return orDash(bytesString(e.StoredSize)) }, nil},
		{"duration", "Duration", func(e listEntry) string { return e.Duration().Round(100 * time.Millisecond).String() }, nil},
		{"type", "Type", func(e listEntry) string { return e.Kind() }, nil},
		{"parent", "Parent", func(e listEntry) string { return orDash(e.Parent) }, nil},
		{"chain_stored_size", "Chain stored size", func(e listEntry) string {
			if e.ChainError != "" {
				return "broken(parent-missing)"
			}
			return orDash(bytesString(e.ChainStoredSize))
		}, nil},
		{"origin", "Origin", func(e listEntry) string { return e.OriginName() }, nil},
	}
	tuskPermanentColumn = listColumn{"is_permanent", "Permanent", func(e listEntry) string { return strconv.FormatBool(e.Permanent) }, nil}
)

// listTable is backup-list's table: the columns' names, wal-g's headings,
// and each backup's plain and pretty cells.
type listTable struct {
	names, headings []string
	cells, pretty   [][]string
}

func listRows(entries []listEntry, detail bool) listTable {
	cols := append([]listColumn{}, walgColumns...)
	if detail {
		cols = append(cols, walgDetailColumns...)
	} else {
		cols = append(cols, tuskPermanentColumn)
	}
	cols = append(cols, tuskColumns...)
	var t listTable
	for _, c := range cols {
		t.names = append(t.names, c.name)
		t.headings = append(t.headings, strings.ToUpper(c.pretty))
	}
	for _, e := range entries {
		var row, prow []string
		for _, c := range cols {
			v := c.value(e)
			row = append(row, v)
			if c.prettyValue != nil {
				v = c.prettyValue(e)
			}
			prow = append(prow, v)
		}
		t.cells = append(t.cells, row)
		t.pretty = append(t.pretty, prow)
	}
	return t
}

// printTabbed is wal-g's plain table: columns padded with spaces, one
// space at least between them.
func printTabbed(w io.Writer, t listTable) error {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	fmt.Fprintln(tw, strings.Join(t.names, "\t"))
	for _, r := range t.cells {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// printPrettyTable is wal-g's --pretty table (go-pretty's default style):
// a numbered row per backup inside +---+ rules.
func printPrettyTable(w io.Writer, t listTable) error {
	headings := append([]string{"#"}, t.headings...)
	rows := make([][]string, len(t.pretty))
	for i, r := range t.pretty {
		rows[i] = append([]string{strconv.Itoa(i)}, r...)
	}
	writeASCIITable(w, headings, make([]bool, len(headings)), rows)
	return nil
}

// UnmarshalJSON reads what MarshalJSON writes.
func (e *listEntry) UnmarshalJSON(b []byte) error {
	var w walgListJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	fields := map[string]json.RawMessage{}
	if err := json.Unmarshal(b, &fields); err != nil {
		return err
	}
	lsn, err := json.Marshal(wal.LSN(w.StartLSN))
	if err != nil {
		return err
	}
	fields["start_lsn"] = lsn
	if w.SystemIdentifier != nil {
		fields["system_identifier"], _ = json.Marshal(strconv.FormatUint(*w.SystemIdentifier, 10))
	} else {
		delete(fields, "system_identifier")
	}
	tusk, err := json.Marshal(fields)
	if err != nil {
		return err
	}
	type plain listEntry
	var p plain
	if err := json.Unmarshal(tusk, &p); err != nil {
		return err
	}
	*e = listEntry(p)
	return nil
}
