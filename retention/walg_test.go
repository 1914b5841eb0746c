package retention

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/compress"
	"github.com/tusk-backup/tusk/internal/walgtest"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/storage/faulty"
	"github.com/tusk-backup/tusk/storage/local"
	"github.com/tusk-backup/tusk/walg"
)

// walgRepo writes, with the generator, wal-g backups of a small data
// directory of cluster "7": for each spec, a full backup ("") or a delta
// on the backup of the given index. It returns their names.
func walgRepo(t *testing.T, st storage.Storage, parents ...int) []string {
	t.Helper()
	data := t.TempDir()
	pg := make([]byte, 8192)
	binary.LittleEndian.PutUint32(pg[4:], 0x10)
	binary.LittleEndian.PutUint16(pg[12:], 28)
	binary.LittleEndian.PutUint16(pg[14:], 8000)
	binary.LittleEndian.PutUint16(pg[16:], 8192)
	binary.LittleEndian.PutUint16(pg[18:], 8192|4)
	for p, b := range map[string][]byte{"PG_VERSION": []byte("15\n"), "global/pg_control": make([]byte, 8192), "base/5/1000": pg} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(data, p)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(data, p), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	codec, _ := compress.Parse("lz4")
	var names []string
	for i, parent := range parents {
		lsn := uint64(i+1) << 24
		o := walgtest.BackupOptions{DataDir: data, Timeline: 1, StartLSN: lsn, PgVersion: 150010, SystemID: 7, Codec: codec,
			Stop: func(context.Context) (walgtest.Stopped, error) {
				return walgtest.Stopped{Label: "label\n", FinishLSN: lsn + 0x100}, nil
			}}
		if parent >= 0 {
			o.Parent = names[parent]
		}
		name, err := walgtest.PushBackup(t.Context(), st, o)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
		// The next backup finishes later: metadata times are in
		// microseconds.
		time.Sleep(2 * time.Millisecond)
	}
	return names
}

// tuskBackup stores a full tusk backup of cluster "7" that finished at
// finish, with one part.
func tuskBackup(t *testing.T, st storage.Storage, name string, finish time.Time, wal uint32) {
	t.Helper()
	m := backup(name, "7", 0, wal, wal, false)
	m.Format, m.FinishTime = 1, finish
	key := basebackup.DataPrefix(m.Name) + "base.1.tar.s2"
	if err := st.Put(t.Context(), key, strings.NewReader("part")); err != nil {
		t.Fatal(err)
	}
	m.Parts = []basebackup.Part{{Key: key, Archive: "base", Seq: 1}}
	m.Manifest = basebackup.Part{Key: basebackup.DataPrefix(m.Name) + "backup_manifest.s2", Archive: "manifest"}
	if err := basebackup.WriteMeta(t.Context(), st, m); err != nil {
		t.Fatal(err)
	}
}

// listedWALG fails unless every wal-g backup listed restores, its chain
// with it; it returns their names.
func listedWALG(t *testing.T, st storage.Storage) []string {
	t.Helper()
	ms, err := walg.List(t.Context(), st, func(key string, err error) { t.Errorf("%s: %v", key, err) })
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range ms {
		chain, err := walg.ReadChain(t.Context(), st, m)
		if err != nil {
			t.Fatalf("listed wal-g backup %s: %v", m.Name, err)
		}
		if err := walg.RestoreChain(t.Context(), chain, filepath.Join(t.TempDir(), "r"), basebackup.FetchOptions{Store: st, NoSync: true}); err != nil {
			t.Fatalf("listed wal-g backup %s does not restore: %v", m.Name, err)
		}
		out = append(out, m.Name)
	}
	return out
}

// TestRetainAgesOutWALG: once tusk's own backups are newer, delete retain
// FULL 2 deletes the wal-g backups of the same cluster, a delta before its
// parent, and every one of their objects; interrupted at any call, the next
// run finishes it, and no listed wal-g backup ever lacks an object.
func TestRetainAgesOutWALG(t *testing.T) {
	boom := errors.New("injected")
	for _, op := range []faulty.Op{faulty.Delete, faulty.Put} {
		for skip := 0; ; skip++ {
			base, err := local.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			wg := walgRepo(t, base, -1, 0, -1)
			tuskBackup(t, base, "base_t0", time.Now().Add(time.Hour), 0x10)
			tuskBackup(t, base, "base_t1", time.Now().Add(2*time.Hour), 0x11)
			st := faulty.New(base)
			st.Inject(faulty.Fault{Op: op, Skip: skip, Times: 1, Err: boom})
			run := func() error {
				inv, err := Read(t.Context(), st)
				if err != nil {
					return err
				}
				p, err := Retain(inv, RetainOptions{Keep: 2, Full: true, Now: time.Now()})
				if err != nil {
					return err
				}
				if got := deleted(p); !slices.Equal(got, wg) {
					t.Fatalf("retain FULL 2 deletes %v, want the wal-g backups %v", got, wg)
				}
				_, err = Execute(t.Context(), st, p, nil)
				return err
			}
			err = run()
			listedWALG(t, st)
			st.Clear()
			if err != nil {
				inv, rerr := Read(t.Context(), st)
				if rerr != nil {
					t.Fatal(rerr)
				}
				p, perr := Retain(inv, RetainOptions{Keep: 2, Full: true, Now: time.Now()})
				if perr != nil {
					t.Fatal(perr)
				}
				if _, err := Execute(t.Context(), st, p, nil); err != nil {
					t.Fatalf("%s fault %d: second run: %v", op, skip, err)
				}
			}
			if left := listedWALG(t, st); len(left) != 0 {
				t.Fatalf("%s fault %d: wal-g backups left: %v", op, skip, left)
			}
			var keys []string
			base.List(t.Context(), "", func(o storage.Object) error { keys = append(keys, o.Key); return nil })
			for _, k := range keys {
				if strings.HasPrefix(k, walg.Prefix) || strings.HasSuffix(k, ".deleting") {
					t.Fatalf("%s fault %d: %s left", op, skip, k)
				}
			}
			if ms := checkListed(t, base); len(ms) != 2 {
				t.Fatalf("%s fault %d: tusk backups left: %v", op, skip, ms)
			}
			if err == nil {
				t.Logf("%s: %d calls covered", op, skip)
				break
			}
		}
	}
}

// TestRetainKeepsWALGParent: retain 1 keeps the newest backup, a wal-g
// delta, and so its wal-g full backup, and deletes an older tusk backup
// between them; Execute spares the parent.
func TestRetainKeepsWALGParent(t *testing.T) {
	st, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	full := walgRepo(t, st, -1)[0]
	tuskBackup(t, st, "base_t0", time.Now(), 0x3)
	time.Sleep(2 * time.Millisecond)
	codec, _ := compress.Parse("zstd")
	data := t.TempDir()
	if err := os.MkdirAll(filepath.Join(data, "global"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "global/pg_control"), make([]byte, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	delta, err := walgtest.PushBackup(t.Context(), st, walgtest.BackupOptions{DataDir: data, Timeline: 1, StartLSN: 5 << 24, PgVersion: 150010, SystemID: 7,
		Codec: codec, Parent: full, Stop: func(context.Context) (walgtest.Stopped, error) {
			return walgtest.Stopped{Label: "label\n", FinishLSN: 5<<24 + 0x100}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	inv, err := Read(t.Context(), st)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(inv.Backups); !slices.Equal(got, []string{full, "base_t0", delta}) {
		t.Fatalf("inventory %v", got)
	}
	p, err := Retain(inv, RetainOptions{Keep: 1, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if got := deleted(p); !slices.Equal(got, []string{"base_t0"}) {
		t.Fatalf("retain 1 deletes %v, want only the tusk backup", got)
	}
	if _, err := Execute(t.Context(), st, p, nil); err != nil {
		t.Fatal(err)
	}
	if left := listedWALG(t, st); !slices.Equal(left, []string{full, delta}) {
		t.Fatalf("wal-g backups left: %v", left)
	}
}

// TestMarkRefusesWALG: backup-mark says a wal-g backup is wal-g's to mark,
// and writes nothing.
func TestMarkRefusesWALG(t *testing.T) {
	st, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	name := walgRepo(t, st, -1)[0]
	var before []string
	st.List(t.Context(), "", func(o storage.Object) error { before = append(before, o.Key); return nil })
	_, err = Mark(t.Context(), st, name, true, MarkOptions{})
	if err == nil || !strings.Contains(err.Error(), "wal-g backup-mark") {
		t.Fatalf("Mark of a wal-g backup: %v", err)
	}
	var after []string
	st.List(t.Context(), "", func(o storage.Object) error { after = append(after, o.Key); return nil })
	if !slices.Equal(before, after) {
		t.Fatalf("Mark wrote into the repository: %v, then %v", before, after)
	}
}
