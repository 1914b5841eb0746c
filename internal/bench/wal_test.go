package bench

import (
	"slices"
	"testing"

	"github.com/tusk-backup/tusk/wal"
)

func TestSegmentRange(t *testing.T) {
	tests := []struct {
		first, last string
		want        []string
		wantErr     bool
	}{
		{first: "000000010000000000000002", last: "000000010000000000000002",
			want: []string{"000000010000000000000002"}},
		{first: "0000000100000000000000FE", last: "000000010000000100000001",
			want: []string{"0000000100000000000000FE", "0000000100000000000000FF", "000000010000000100000000", "000000010000000100000001"}},
		{first: "000000010000000000000003", last: "000000010000000000000002", wantErr: true},
		{first: "000000010000000000000002", last: "000000020000000000000003", wantErr: true},
		{first: "000000010000000000000100", last: "000000010000000100000001", wantErr: true},
		{first: "00000001000000000000002", last: "000000010000000000000002", wantErr: true},
		{first: "00000001000000000000000g", last: "000000010000000000000002", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.first+"-"+tt.last, func(t *testing.T) {
			got, err := wal.Range(tt.first, tt.last, segmentSize)
			if (err != nil) != tt.wantErr {
				t.Fatalf("segmentRange: err = %v, want error %v", err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("segmentRange = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSegmentStartLSN(t *testing.T) {
	tests := map[string]string{
		"000000010000000000000000": "0/0",
		"000000010000000000000002": "0/2000000",
		"00000001000000000000004B": "0/4B000000",
		"0000000100000003000000FF": "3/FF000000",
	}
	for name, want := range tests {
		s, err := wal.ParseSegment(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Start(segmentSize).String(); got != want {
			t.Errorf("%s.startLSN() = %s, want %s", name, got, want)
		}
	}
}

func TestBackupStart(t *testing.T) {
	label := `START WAL LOCATION: 0/2000028 (file 000000010000000000000002)
CHECKPOINT LOCATION: 0/2000060
BACKUP METHOD: streamed
BACKUP FROM: primary
START TIME: 2026-01-01 00:00:00 UTC
LABEL: pg_basebackup base backup
START TIMELINE: 1
`
	lsn, file, err := backupStart(label)
	if err != nil {
		t.Fatal(err)
	}
	if lsn != "0/2000028" || file != "000000010000000000000002" {
		t.Errorf("backupStart = %q, %q; want 0/2000028, 000000010000000000000002", lsn, file)
	}
	for _, bad := range []string{"", "LABEL: x\n", "START WAL LOCATION: 0/2000028 (file nope)\n"} {
		if _, _, err := backupStart(bad); err == nil {
			t.Errorf("backupStart(%q): no error", bad)
		}
	}
}

func TestExpandCommand(t *testing.T) {
	tests := []struct{ template, want string }{
		{"true", "true"},
		{"cp %p /repo/%f", "cp pg_wal/000000010000000000000002 /repo/000000010000000000000002"},
		{"echo 100%% %x %", "echo 100% %x %"},
		{"%f%p", "000000010000000000000002pg_wal/000000010000000000000002"},
	}
	for _, tt := range tests {
		if got := expandCommand(tt.template, "pg_wal/000000010000000000000002", "000000010000000000000002"); got != tt.want {
			t.Errorf("expandCommand(%q) = %q, want %q", tt.template, got, tt.want)
		}
	}
}
