package basebackup

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestRestoreDirect restores a backup with files above and below
// directMin, whole and split, and compares every byte.
func TestRestoreDirect(t *testing.T) {
	st := newStore(t)
	files := []file{{name: "PG_VERSION", data: []byte("15\n")}, {name: "global", dir: true}, {name: "global/pg_control", data: randomBytes(1, 8192)},
		{name: "base", dir: true}, {name: "base/5", dir: true},
		{name: "base/5/16397", data: randomBytes(2, 9<<20)}, {name: "base/5/16398", data: randomBytes(3, 3<<20+777)},
		{name: "base/5/16399", data: randomBytes(4, 100<<10)},
		{name: "backup_label", data: []byte("START WAL LOCATION: 0/2000028\n")}}
	m := push(t, st, 4<<20, map[string][]byte{"": tarOf(t, files)}, []Tablespace{{}})
	dest := filepath.Join(t.TempDir(), "pgdata")
	if err := Restore(t.Context(), m, dest, FetchOptions{Store: st, Concurrency: 3}); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f.dir {
			continue
		}
		got, err := os.ReadFile(filepath.Join(dest, f.name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, f.data) {
			t.Errorf("%s: restored %d bytes that differ from the %d backed up", f.name, len(got), len(f.data))
		}
	}
}
