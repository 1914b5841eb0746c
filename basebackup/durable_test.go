package basebackup

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// sealFixture is a small backup with a tablespace and a file split across
// 1 MiB parts.
func sealFixture(t *testing.T) (m Meta, opts FetchOptions, control []byte) {
	t.Helper()
	st := newStore(t)
	control = randomBytes(3, 8192)
	files := []file{
		{name: "PG_VERSION", data: []byte("15\n")},
		{name: "backup_label", data: []byte("START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n")},
		{name: "base", dir: true},
		{name: "base/1", dir: true},
		{name: "base/1/16384", data: randomBytes(1, 3<<20+77)},
		{name: "pg_tblspc", dir: true},
		{name: "pg_tblspc/16400", link: "/old/ts"},
		{name: "global", dir: true},
		{name: "global/pg_control", data: control},
	}
	tsFiles := []file{{name: "PG_15_202209061", dir: true}, {name: "PG_15_202209061/5/16401", data: randomBytes(4, 1<<20)}}
	spaces := []Tablespace{{}, {OID: "16400", Location: "/old/ts"}}
	m = push(t, st, 1<<20, map[string][]byte{"": tarOf(t, files), "16400": tarOf(t, tsFiles)}, spaces)
	return m, FetchOptions{Store: st, Concurrency: 3, TablespaceMap: map[string]string{"/old/ts": filepath.Join(t.TempDir(), "ts")}}, control
}

// TestRestoreSealsLast: until every file, the backup manifest and what
// BeforeSeal writes are in place, the folder holds no global/pg_control
// (PostgreSQL cannot start from it) and is marked unfinished, in the data
// directory and the tablespace folder; once Restore returns, pg_control is
// the backup's and the marks are gone. With NoSync or without.
func TestRestoreSealsLast(t *testing.T) {
	t.Parallel()
	for _, noSync := range []bool{false, true} {
		t.Run(map[bool]string{false: "durable", true: "no-sync"}[noSync], func(t *testing.T) {
			t.Parallel()
			m, opts, control := sealFixture(t)
			ts := opts.TablespaceMap["/old/ts"]
			dest := filepath.Join(t.TempDir(), "pgdata")
			opts.NoSync = noSync
			called := false
			opts.BeforeSeal = func(d string) error {
				called = true
				if d != dest {
					t.Errorf("BeforeSeal(%s), want %s", d, dest)
				}
				for _, f := range []string{"backup_manifest", "base/1/16384", "backup_label", heldControl, unfinishedMarker} {
					if _, err := os.Stat(filepath.Join(dest, f)); err != nil {
						t.Errorf("before the seal: %v", err)
					}
				}
				if _, err := os.Stat(filepath.Join(dest, controlFile)); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s is in place before the restore is sealed (%v)", controlFile, err)
				}
				for _, dir := range []string{dest, ts} {
					if err := CheckDest(dir, "folder"); !errors.Is(err, ErrUnfinished) || !strings.Contains(err.Error(), "holds an unfinished restore") || !strings.Contains(err.Error(), "remove it") {
						t.Errorf("CheckDest(%s) mid-restore = %v, want ErrUnfinished saying to remove it", dir, err)
					}
				}
				b, _ := os.ReadFile(filepath.Join(ts, unfinishedMarker))
				if !strings.Contains(string(b), dest+"\n") || !strings.Contains(string(b), ts+"\n") {
					t.Errorf("the marker does not name the folders to remove:\n%s", b)
				}
				return os.WriteFile(filepath.Join(d, "recovery.signal"), nil, 0o600)
			}
			if err := Restore(t.Context(), m, dest, opts); err != nil {
				t.Fatal(err)
			}
			if !called {
				t.Fatal("BeforeSeal was not called")
			}
			if b, err := os.ReadFile(filepath.Join(dest, controlFile)); err != nil || !bytes.Equal(b, control) {
				t.Errorf("%s after the restore: %v", controlFile, err)
			}
			for _, p := range []string{filepath.Join(dest, heldControl), filepath.Join(dest, unfinishedMarker), filepath.Join(ts, unfinishedMarker)} {
				if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s left after the restore (%v)", p, err)
				}
			}
			if _, err := os.Stat(filepath.Join(dest, "recovery.signal")); err != nil {
				t.Errorf("what BeforeSeal wrote is gone: %v", err)
			}
			if fi, err := os.Stat(filepath.Join(dest, "base/1/16384")); err != nil || fi.Size() != 3<<20+77 {
				t.Errorf("the split file after the restore: %v %v", fi, err)
			}
		})
	}
}

// TestRestoreFailedBeforeSeal: a restore that fails at its last step still
// removes everything it wrote, markers included.
func TestRestoreFailedBeforeSeal(t *testing.T) {
	t.Parallel()
	m, opts, _ := sealFixture(t)
	ts := opts.TablespaceMap["/old/ts"]
	dest := filepath.Join(t.TempDir(), "pgdata")
	boom := errors.New("boom")
	opts.BeforeSeal = func(string) error { return boom }
	if err := Restore(t.Context(), m, dest, opts); !errors.Is(err, boom) {
		t.Fatalf("Restore = %v, want BeforeSeal's error", err)
	}
	for _, dir := range []string{dest, ts} {
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the failed restore left %s (%v)", dir, err)
		}
	}
}

// TestCheckDest: what a restore accepts as its destination, and what it
// says of a folder a killed restore left.
func TestCheckDest(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mk := func(name string, files ...string) string {
		p := filepath.Join(dir, name)
		os.MkdirAll(p, 0o700)
		for _, f := range files {
			os.WriteFile(filepath.Join(p, f), nil, 0o600)
		}
		return p
	}
	cases := []struct {
		name, dir string
		want      string // "" for no error
		unfin     bool
	}{
		{"missing", filepath.Join(dir, "new"), "", false},
		{"empty", mk("empty"), "", false},
		{"parent missing", filepath.Join(dir, "no", "such"), "its parent folder", false},
		{"not empty", mk("full", "PG_VERSION"), "is not empty", false},
		{"unfinished", mk("killed", "PG_VERSION", unfinishedMarker), "holds an unfinished restore", true},
		{"unfinished, only the marker", mk("killed-early", unfinishedMarker), "holds an unfinished restore", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := CheckDest(c.dir, "restore folder")
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("CheckDest = %v, want nil", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("CheckDest = %v, want %q", err, c.want)
			case errors.Is(err, ErrUnfinished) != c.unfin:
				t.Fatalf("CheckDest = %v: ErrUnfinished %v, want %v", err, errors.Is(err, ErrUnfinished), c.unfin)
			}
		})
	}
}

// TestHeld: only the data directory's pg_control is held back, whatever
// the spelling of its tar name; a tablespace's file of that name is not.
func TestHeld(t *testing.T) {
	t.Parallel()
	cases := []struct {
		archive, name string
		held          bool
	}{
		{"base", "global/pg_control", true},
		{"base", "./global/pg_control", true},
		{"base", "global/pg_control.old", false},
		{"base", "global/1262", false},
		{"16400", "global/pg_control", false},
	}
	for _, c := range cases {
		got := held(c.archive, c.name, "/d/x")
		if (got != "/d/x") != c.held {
			t.Errorf("held(%s, %s) = %s, held %v, want %v", c.archive, c.name, got, got != "/d/x", c.held)
		}
	}
	d := &restoreDest{dest: "/d", spaces: map[string]string{"16400": "/ts"}}
	for p, want := range map[string]string{controlFile: "/d/" + heldControl, "global/1262": "/d/global/1262", "pg_tblspc/16400/global/pg_control": "/ts/global/pg_control"} {
		if got, err := d.composedPath(p); err != nil || got != want {
			t.Errorf("composedPath(%s) = %s, %v; want %s", p, got, err, want)
		}
	}
}

// TestSyncTrees: the folders' file systems are synced once each; a folder
// that is gone is the destination's error.
func TestSyncTrees(t *testing.T) {
	t.Parallel()
	a, b := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(a, "f"), []byte("x"), 0o600)
	if err := syncTrees([]string{a, b, a}); err != nil {
		t.Fatal(err)
	}
	gone := filepath.Join(b, "gone")
	var de *DestError
	if err := syncTrees([]string{a, gone}); !errors.As(err, &de) || de.Dir != gone {
		t.Fatalf("syncTrees of a missing folder = %v, want a DestError naming it", err)
	}
	if got := (&restoreDest{dest: "/d", roots: map[string]string{"base": "/d", "2": "/b", "1": "/a"}}).rootList(); !slices.Equal(got, []string{"/d", "/a", "/b"}) {
		t.Errorf("rootList = %v", got)
	}
}

// TestRestoreWithoutControlFile: a backup whose parts hold no pg_control is
// incomplete, said in its own name, and nothing is left behind.
func TestRestoreWithoutControlFile(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	files := []file{{name: "PG_VERSION", data: []byte("15\n")}, {name: "backup_label", data: []byte("START WAL LOCATION: 0/2000028\n")}}
	m := push(t, st, 1<<20, map[string][]byte{"": tarOf(t, files)}, []Tablespace{{}})
	dest := filepath.Join(t.TempDir(), "pgdata")
	err := Restore(t.Context(), m, dest, FetchOptions{Store: st})
	if err == nil || !strings.Contains(err.Error(), "its parts hold no global/pg_control,") {
		t.Fatalf("Restore = %v, want it incomplete for want of global/pg_control", err)
	}
	if _, err := os.Stat(dest); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the failed restore left %s (%v)", dest, err)
	}
}
