package wal

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/storage/local"
)

func TestList(t *testing.T) {
	t.Parallel()
	st, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{
		"wal/0000000100000000/000000010000000000000001",
		"wal/0000000100000000/000000010000000000000002.partial",
		"wal/0000000200000000/000000020000000000000002",
		"wal/0000000200000000/notes.txt",
		"wal/000000020000000000000003", // not in its folder
		"wal/0000000A00000000/0000000A0000000000000001",
		"wal/timelines/00000002.history",
		"backups/b.json",
	}
	for _, k := range keys {
		if err := st.Put(t.Context(), k, bytes.NewReader([]byte("x"))); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		prefix       string
		names, stray []string
	}{
		{Prefix, []string{"000000010000000000000001", "000000010000000000000002.partial", "000000020000000000000002",
			"0000000A0000000000000001", "00000002.history"}, []string{"wal/0000000200000000/notes.txt", "wal/000000020000000000000003"}},
		{TimelinePrefix(2), []string{"000000020000000000000002"}, []string{"wal/0000000200000000/notes.txt", "wal/000000020000000000000003"}},
		{TimelinePrefix(1), []string{"000000010000000000000001", "000000010000000000000002.partial"}, nil},
		{TimelinePrefix(3), nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			var names, stray []string
			err := List(t.Context(), st, tt.prefix, func(o storage.Object, n Name, ok bool) error {
				if ok {
					names = append(names, n.File)
				} else {
					stray = append(stray, o.Key)
				}
				return nil
			})
			if err != nil || !slices.Equal(names, tt.names) || !slices.Equal(stray, tt.stray) {
				t.Errorf("List(%s) = %v strays %v, %v; want %v strays %v", tt.prefix, names, stray, err, tt.names, tt.stray)
			}
		})
	}
	stop := errors.New("stop")
	calls := 0
	err = List(t.Context(), st, Prefix, func(storage.Object, Name, bool) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("fn's error: %v after %d calls", err, calls)
	}
}
