package basebackup

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tusk-backup/tusk/wal"
)

func TestBaseBackupCommand(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		opts StreamOptions
		want string
	}{
		{"15", StreamOptions{Version: 150004, Label: "tusk", NoWait: true},
			"BASE_BACKUP (LABEL 'tusk', PROGRESS, CHECKPOINT 'fast', MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C', WAIT false)"},
		{"18 spread, waiting", StreamOptions{Version: 180004, Label: "it's", Spread: true},
			"BASE_BACKUP (LABEL 'it''s', PROGRESS, CHECKPOINT 'spread', MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C', WAIT true)"},
		{"unknown version is 15's", StreamOptions{Label: "tusk", NoWait: true},
			"BASE_BACKUP (LABEL 'tusk', PROGRESS, CHECKPOINT 'fast', MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C', WAIT false)"},
		{"14", StreamOptions{Version: 140023, Label: "tusk", NoWait: true},
			"BASE_BACKUP LABEL 'tusk' PROGRESS FAST NOWAIT MANIFEST 'yes' MANIFEST_CHECKSUMS 'CRC32C'"},
		{"14 spread, waiting", StreamOptions{Version: 140023, Label: "it's", Spread: true},
			"BASE_BACKUP LABEL 'it''s' PROGRESS MANIFEST 'yes' MANIFEST_CHECKSUMS 'CRC32C'"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if got := baseBackupCommand(c.opts); got != c.want {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
		})
	}
}

// recorder is a Handler that writes down its events.
type recorder struct{ events []string }

func (r *recorder) Begin(start wal.LSN, tli uint32, spaces []Tablespace) error {
	r.events = append(r.events, fmt.Sprintf("begin %s %d %v", start, tli, spaces))
	return nil
}
func (r *recorder) Archive(name, location string) error {
	r.events = append(r.events, "archive "+name+" "+location)
	return nil
}
func (r *recorder) Data(p []byte) error {
	r.events = append(r.events, "data "+string(p))
	return nil
}
func (r *recorder) Manifest() error {
	r.events = append(r.events, "manifest")
	return nil
}
func (r *recorder) Progress(sent int64) { r.events = append(r.events, fmt.Sprint("progress ", sent)) }

// TestReceiveBackup: PostgreSQL 15's tagged stream and 14's one COPY per
// tablespace (the data directory last, as 14 sends it) and one for the
// manifest come out as the same events.
func TestReceiveBackup(t *testing.T) {
	t.Parallel()
	row := func(vals ...string) *pgproto3.DataRow {
		r := &pgproto3.DataRow{}
		for _, v := range vals {
			if v == "NULL" {
				r.Values = append(r.Values, nil)
			} else {
				r.Values = append(r.Values, []byte(v))
			}
		}
		return r
	}
	tagged := func(tag byte, rest string) *pgproto3.CopyData {
		return &pgproto3.CopyData{Data: append([]byte{tag}, rest...)}
	}
	progress := make([]byte, 8)
	binary.BigEndian.PutUint64(progress, 6)
	done := &pgproto3.CommandComplete{CommandTag: []byte("SELECT")}
	start := []pgproto3.BackendMessage{&pgproto3.RowDescription{}, row("0/2000028", "1"), done}
	end := []pgproto3.BackendMessage{&pgproto3.RowDescription{}, row("0/3000100", "1"), done, &pgproto3.ReadyForQuery{TxStatus: 'I'}}

	v15 := slices.Concat(start, []pgproto3.BackendMessage{
		&pgproto3.RowDescription{}, row("NULL", "NULL", "2"), row("16384", "/ts", "1"), done,
		&pgproto3.CopyOutResponse{},
		tagged('n', "base.tar\x00\x00"), tagged('d', "abc"), tagged('p', string(progress)),
		tagged('n', "16384.tar\x00/ts\x00"), tagged('d', "xyz"),
		tagged('m', ""), tagged('d', "{}"),
		&pgproto3.CopyDone{},
	}, end)
	v14 := slices.Concat(start, []pgproto3.BackendMessage{
		&pgproto3.RowDescription{}, row("16384", "/ts", "1"), row("NULL", "NULL", "2"), done,
		&pgproto3.CopyOutResponse{}, &pgproto3.CopyData{Data: []byte("xyz")}, &pgproto3.CopyDone{},
		&pgproto3.CopyOutResponse{}, &pgproto3.CopyData{Data: []byte("abc")}, &pgproto3.CopyDone{},
		&pgproto3.CopyOutResponse{}, &pgproto3.CopyData{Data: []byte("{}")}, &pgproto3.CopyDone{},
	}, end)

	cases := []struct {
		name   string
		msgs   []pgproto3.BackendMessage
		legacy bool
		want   []string
	}{
		{"15", v15, false, []string{
			"begin 0/2000028 1 [{  2} {16384 /ts 1}]",
			"archive base.tar ", "data abc", "progress 6",
			"archive 16384.tar /ts", "data xyz",
			"manifest", "data {}",
		}},
		{"14", v14, true, []string{
			"begin 0/2000028 1 [{16384 /ts 1} {  2}]",
			"archive 16384.tar /ts", "data xyz", "progress 3",
			"archive base.tar ", "data abc", "progress 6",
			"manifest", "data {}", "progress 8",
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			msgs := c.msgs
			receive := func(context.Context) (pgproto3.BackendMessage, error) {
				if len(msgs) == 0 {
					return nil, io.ErrUnexpectedEOF
				}
				m := msgs[0]
				msgs = msgs[1:]
				return m, nil
			}
			var r recorder
			res, err := receiveBackup(t.Context(), receive, c.legacy, &r)
			if err != nil {
				t.Fatal(err)
			}
			want := StreamResult{Start: 0x2000028, End: 0x3000100, StartTLI: 1, EndTLI: 1}
			if res != want {
				t.Errorf("result %+v, want %+v", res, want)
			}
			if !slices.Equal(r.events, c.want) {
				t.Errorf("events\n%q\nwant\n%q", r.events, c.want)
			}
		})
	}

	// A 14 stream with more COPYs than tablespaces and a manifest is refused.
	extra := slices.Concat(v14[:len(v14)-4], []pgproto3.BackendMessage{&pgproto3.CopyOutResponse{}}, end)
	receive := func(context.Context) (pgproto3.BackendMessage, error) {
		m := extra[0]
		extra = extra[1:]
		return m, nil
	}
	if _, err := receiveBackup(t.Context(), receive, true, &recorder{}); err == nil {
		t.Error("a fourth COPY after two tablespaces and the manifest was accepted")
	}
}
