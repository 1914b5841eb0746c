package wal

import (
	"errors"
	"slices"
	"testing"
)

func TestBackupWAL(t *testing.T) {
	t.Parallel()
	errMissing := errors.New("missing")
	histories := map[uint32]Ancestry{
		2: {{1, 0x6000100}},                 // 1 ended in segment 6
		3: {{1, 0x6000100}, {2, 0x8000000}}, // 2 ended at the start of segment 8
		4: {{1, 0x4000028}},                 // 1 ended in segment 4
	}
	tests := []struct {
		name       string
		start, end string
		segSize    uint64
		want       []string // nil: an error
		asked      []uint32 // history files read
	}{
		{"one timeline", "000000010000000000000004", "000000010000000000000006", 0,
			[]string{"000000010000000000000004", "000000010000000000000005", "000000010000000000000006"}, nil},
		{"one segment", "000000020000000000000009", "000000020000000000000009", 16 << 20,
			[]string{"000000020000000000000009"}, nil},
		{"a switch during the backup", "000000010000000000000004", "000000020000000000000008", 16 << 20,
			[]string{"00000002.history", "000000010000000000000004", "000000010000000000000005",
				"000000020000000000000006", "000000020000000000000007", "000000020000000000000008"}, []uint32{2}},
		{"two switches", "000000010000000000000005", "000000030000000000000009", 0,
			[]string{"00000003.history", "000000010000000000000005", "000000020000000000000006",
				"000000020000000000000007", "000000030000000000000008", "000000030000000000000009"}, []uint32{3}},
		// The start segment holds the switch point: recovery reads it from
		// the new timeline (timeline 1's copy is only a .partial).
		{"a switch in the start segment", "000000010000000000000004", "000000040000000000000005", 0,
			[]string{"00000004.history", "000000040000000000000004", "000000040000000000000005"}, []uint32{4}},
		{"the history is missing", "000000010000000000000004", "000000050000000000000005", 0, nil, []uint32{5}},
		{"backwards", "000000010000000000000006", "000000020000000000000005", 0, nil, nil},
		{"to an older timeline", "000000020000000000000004", "000000010000000000000005", 0, nil, nil},
		{"past a log's segments", "000000010000000000000100", "000000020000000100000001", 0, nil, nil},
		{"not a segment", "00000002.history", "000000020000000000000005", 0, nil, nil},
		{"end not a segment", "000000010000000000000004", "000000020000000000000005.partial", 0, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var asked []uint32
			got, err := BackupWAL(tt.start, tt.end, tt.segSize, func(tli uint32) (Ancestry, error) {
				asked = append(asked, tli)
				h, ok := histories[tli]
				if !ok {
					return nil, errMissing
				}
				return h, nil
			})
			if (err == nil) != (tt.want != nil) || !slices.Equal(got, tt.want) || !slices.Equal(asked, tt.asked) {
				t.Errorf("BackupWAL = %v, %v (histories read %v); want %v (read %v)", got, err, asked, tt.want, tt.asked)
			}
			if tt.name == "the history is missing" && !errors.Is(err, errMissing) {
				t.Errorf("the history's error is not returned as it is: %v", err)
			}
		})
	}
}
