package retention

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/storage/faulty"
	"github.com/tusk-backup/tusk/storage/local"
)

// fill stores n backups with three parts each and WAL segments 1..4n.
func fill(t *testing.T, st storage.Storage, n int) {
	t.Helper()
	ctx := t.Context()
	for i := range n {
		m := backup(fmt.Sprintf("base_%02d", i), "A", i, uint32(4*i+1), uint32(4*i+2), false)
		m.Format = 1
		for p := 1; p <= 3; p++ {
			key := fmt.Sprintf("%sbase.%d.tar.s2", basebackup.DataPrefix(m.Name), p)
			if err := st.Put(ctx, key, strings.NewReader("part")); err != nil {
				t.Fatal(err)
			}
			m.Parts = append(m.Parts, basebackup.Part{Key: key, Archive: "base", Seq: p})
		}
		if err := basebackup.WriteMeta(ctx, st, m); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 4*n; i++ {
		if err := st.Put(ctx, fmt.Sprintf("wal/0000000100000000/%s", seg(1, uint32(i))), strings.NewReader("wal")); err != nil {
			t.Fatal(err)
		}
	}
}

// checkListed fails unless every listed backup has all its parts.
func checkListed(t *testing.T, st storage.Storage) []basebackup.Meta {
	t.Helper()
	ms, err := basebackup.List(t.Context(), st, func(key string, err error) { t.Errorf("%s: %v", key, err) })
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		for _, p := range m.Parts {
			if _, err := st.Stat(t.Context(), p.Key); err != nil {
				t.Fatalf("listed backup %s misses part %s: %v", m.Name, p.Key, err)
			}
		}
	}
	return ms
}

func retainAndCollect(t *testing.T, st storage.Storage) error {
	inv, err := Read(t.Context(), st, ReadOptions{WAL: true})
	if err != nil {
		return err
	}
	p, err := Retain(inv, RetainOptions{Keep: 2, Now: time.Now()})
	if err != nil {
		return err
	}
	if _, err := Execute(t.Context(), st, p, nil); err != nil {
		return err
	}
	inv, err = Read(t.Context(), st, ReadOptions{WAL: true})
	if err != nil {
		return err
	}
	if p, err = Garbage(inv, GarbageOptions{LeftoverAge: 0, Now: time.Now(), WAL: true, Leftovers: true}); err != nil {
		return err
	}
	_, err = Execute(t.Context(), st, p, nil)
	return err
}

// TestExecuteInterrupted fails every Delete and Put in turn: after each
// failure no listed backup misses a part, and a second run ends with exactly
// the two newest backups, their WAL onward, and nothing else.
func TestExecuteInterrupted(t *testing.T) {
	boom := errors.New("injected")
	for _, op := range []faulty.Op{faulty.Delete, faulty.Put} {
		for skip := 0; ; skip++ {
			dir := t.TempDir()
			base, err := local.New(dir)
			if err != nil {
				t.Fatal(err)
			}
			fill(t, base, 5)
			st := faulty.New(base)
			st.Inject(faulty.Fault{Op: op, Skip: skip, Times: 1, Err: boom})
			err = retainAndCollect(t, st)
			checkListed(t, st)
			st.Clear()
			if err := retainAndCollect(t, st); err != nil {
				t.Fatalf("%s fault %d: second run: %v", op, skip, err)
			}
			ms := checkListed(t, st)
			if len(ms) != 2 || ms[0].Name != "base_03" || ms[1].Name != "base_04" {
				t.Fatalf("%s fault %d: left %v", op, skip, ms)
			}
			var keys []string
			base.List(t.Context(), "", func(o storage.Object) error { keys = append(keys, o.Key); return nil })
			// 2 metadata + 6 parts + WAL 13..20.
			if len(keys) != 16 || keys[0] != "backups/base_03.json" || keys[8] != "wal/0000000100000000/"+seg(1, 13) {
				t.Fatalf("%s fault %d: repository holds %v", op, skip, keys)
			}
			if err == nil {
				t.Logf("%s: %d calls covered", op, skip)
				break // the fault came after the last call: every call was covered
			}
		}
	}
}

// TestExecuteSparesBackupMarkedMeanwhile: a backup marked permanent after the
// plan was made is not deleted.
func TestExecuteSparesBackupMarkedMeanwhile(t *testing.T) {
	st, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fill(t, st, 3)
	inv, err := Read(t.Context(), st, ReadOptions{WAL: true})
	if err != nil {
		t.Fatal(err)
	}
	p, err := Retain(inv, RetainOptions{Keep: 1, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	m, err := basebackup.ReadMeta(t.Context(), st, "base_00")
	if err != nil {
		t.Fatal(err)
	}
	m.Permanent = true
	if err := basebackup.WriteMeta(t.Context(), st, m); err != nil {
		t.Fatal(err)
	}
	r, err := Execute(t.Context(), st, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	ms := checkListed(t, st)
	if len(ms) != 2 || ms[0].Name != "base_00" || len(r.Skipped) != 1 || len(r.Backups) != 1 {
		t.Fatalf("left %v, report %+v", ms, r)
	}
	if r.WALDeleted != 0 {
		t.Fatalf("deleted %d WAL objects planned without the spared backup", r.WALDeleted)
	}
}
