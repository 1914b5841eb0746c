package walg_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
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

// page is a heap page with a valid header at lsn, filled with fill.
func page(lsn uint64, fill byte) []byte {
	p := bytes.Repeat([]byte{fill}, 8192)
	le := binary.LittleEndian
	le.PutUint32(p[0:], uint32(lsn>>32))
	le.PutUint32(p[4:], uint32(lsn))
	le.PutUint16(p[8:], 0)  // checksum
	le.PutUint16(p[10:], 0) // flags
	le.PutUint16(p[12:], 28)
	le.PutUint16(p[14:], 8000)
	le.PutUint16(p[16:], 8192)
	le.PutUint16(p[18:], 8192|4)
	return p
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// tree reads every regular file under dir (following pg_tblspc's links
// into the tablespaces) by its path, leaving out names.
func tree(t *testing.T, dir string, leave ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(root, prefix string)
	walk = func(root, prefix string) {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			rel = filepath.ToSlash(filepath.Join(prefix, rel))
			for _, l := range leave {
				if rel == l || strings.HasPrefix(rel, l+"/") {
					if d.IsDir() {
						return filepath.SkipDir
					}
					return nil
				}
			}
			switch {
			case d.Type()&fs.ModeSymlink != 0:
				target, err := os.Readlink(p)
				if err != nil {
					return err
				}
				walk(target, rel)
			case d.Type().IsRegular():
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				out[rel] = string(b)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	walk(dir, "")
	return out
}

func same(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("%s: %s missing", what, k)
		} else if g != v {
			t.Errorf("%s: %s differs (%d bytes, want %d)", what, k, len(g), len(v))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: %s restored, and is not in the backup", what, k)
		}
	}
}

type fixture struct {
	st          storage.Storage
	data, space string
}

func (f fixture) push(t *testing.T, lsn uint64, codec, parent string) string {
	t.Helper()
	c, err := compress.Parse(codec)
	if err != nil {
		t.Fatal(err)
	}
	name, err := walgtest.PushBackup(t.Context(), f.st, walgtest.BackupOptions{
		DataDir: f.data, Timeline: 1, StartLSN: lsn, PgVersion: 150010, SystemID: 7, Codec: c, Parent: parent,
		TarSizeThreshold: 20000, // several parts
		Stop: func(context.Context) (walgtest.Stopped, error) {
			return walgtest.Stopped{Label: "START WAL LOCATION: " + name(lsn) + "\n", TablespaceMap: "16400 " + f.space + "\n", FinishLSN: lsn + 0x100}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return name
}

func name(lsn uint64) string { return time.Unix(int64(lsn), 0).UTC().Format(time.RFC3339) }

func restore(t *testing.T, st storage.Storage, backup string, mapping map[string]string) (string, error) {
	t.Helper()
	return restoreWith(t, st, backup, basebackup.FetchOptions{Store: st, Concurrency: 3, TablespaceMap: mapping})
}

func restoreWith(t *testing.T, st storage.Storage, backup string, opts basebackup.FetchOptions) (string, error) {
	t.Helper()
	m, err := walg.ReadMeta(t.Context(), st, backup)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := walg.ReadChain(t.Context(), st, m)
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "restored")
	return dest, walg.RestoreChain(t.Context(), chain, dest, opts)
}

// TestRestoreChain restores a full backup and a delta on it, written by
// the generator as wal-g writes them, and compares each with the data
// directory it was taken from.
func TestRestoreChain(t *testing.T) {
	st, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := fixture{st: st, data: filepath.Join(t.TempDir(), "data"), space: filepath.Join(t.TempDir(), "space")}
	write(t, filepath.Join(f.data, "PG_VERSION"), []byte("15\n"))
	write(t, filepath.Join(f.data, "global/pg_control"), bytes.Repeat([]byte{1}, 8192))
	write(t, filepath.Join(f.data, "global/1262"), page(0x10, 2))
	write(t, filepath.Join(f.data, "base/5/1000"), slicesConcat(page(0x10, 3), page(0x20, 4), page(0x30, 5)))
	write(t, filepath.Join(f.data, "base/5/1001"), page(0x10, 6))
	write(t, filepath.Join(f.data, "base/5/1003"), slicesConcat(page(0x10, 7), page(0x10, 8)))
	write(t, filepath.Join(f.data, "base/5/pg_internal.init"), []byte("cache"))
	write(t, filepath.Join(f.data, "postmaster.pid"), []byte("123"))
	write(t, filepath.Join(f.data, "pg_wal/000000010000000000000001"), []byte("wal"))
	write(t, filepath.Join(f.space, "PG_15_202209061/5/2000"), slicesConcat(page(0x10, 9), page(0x10, 10)))
	if err := os.MkdirAll(filepath.Join(f.data, "pg_tblspc"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(f.space, filepath.Join(f.data, "pg_tblspc/16400")); err != nil {
		t.Fatal(err)
	}
	leave := []string{"postmaster.pid", "pg_wal/000000010000000000000001", "backup_label", "tablespace_map"}
	atFull := tree(t, f.data, leave...)
	full := f.push(t, 0x1000000, "lz4", "")

	// Changes after the full backup: a changed page and a new one, a page
	// the delta must not hold, a file rewritten whole, one removed, one
	// added, a tablespace page changed; 1001 stays as it was (skipped).
	later := time.Now().Add(time.Hour)
	write(t, filepath.Join(f.data, "base/5/1000"), slicesConcat(page(0x10, 3), page(0x2000000, 44), page(0x30, 5), page(0x2000010, 55)))
	write(t, filepath.Join(f.data, "base/5/1003"), []byte("not paged any more"))
	write(t, filepath.Join(f.data, "base/5/1004"), page(0x2000000, 11))
	write(t, filepath.Join(f.space, "PG_15_202209061/5/2000"), slicesConcat(page(0x2000000, 12)))
	os.Remove(filepath.Join(f.data, "base/5/pg_internal.init"))
	for _, p := range []string{"base/5/1000", "base/5/1003", "base/5/1004"} {
		os.Chtimes(filepath.Join(f.data, p), later, later)
	}
	os.Chtimes(filepath.Join(f.space, "PG_15_202209061/5/2000"), later, later)
	atDelta := tree(t, f.data, leave...)
	delta := f.push(t, 0x3000000, "zstd", full)
	if want := "base_000000010000000000000003_D_000000010000000000000001"; delta != want {
		t.Fatalf("delta named %s, want %s", delta, want)
	}

	ms, err := walg.List(t.Context(), st, func(key string, err error) { t.Errorf("%s: %v", key, err) })
	if err != nil || len(ms) != 2 || ms[0].Name != full || ms[1].Name != delta || ms[1].Parent != full || ms[1].ChainDepth != 1 {
		t.Fatalf("List: %v %+v", err, ms)
	}

	mapped := filepath.Join(t.TempDir(), "space-restored")
	for _, c := range []struct {
		backup string
		want   map[string]string
	}{{full, atFull}, {delta, atDelta}} {
		dest, err := restore(t, st, c.backup, map[string]string{f.space: mapped})
		if err != nil {
			t.Fatalf("restore %s: %v", c.backup, err)
		}
		got := tree(t, dest, "backup_label")
		same(t, c.backup, got, c.want)
		if link, _ := os.Readlink(filepath.Join(dest, "pg_tblspc/16400")); link != mapped {
			t.Errorf("%s: pg_tblspc/16400 points to %q, want %s", c.backup, link, mapped)
		}
		if _, err := os.Stat(filepath.Join(dest, "tablespace_map")); err == nil {
			t.Errorf("%s: tablespace_map restored with the tablespace mapped elsewhere", c.backup)
		}
		if _, err := os.Stat(filepath.Join(dest, "pg_wal")); err != nil {
			t.Errorf("%s: no pg_wal: %v", c.backup, err)
		}
		os.RemoveAll(mapped)
	}

	for _, b := range []string{full, delta} {
		if problems := verifyProblems(t, st, b); len(problems) != 0 {
			t.Errorf("verify %s: %v", b, problems)
		}
	}

	// Until the very end PostgreSQL could not start from the folder: no
	// global/pg_control, and tusk's marker says the restore is unfinished.
	var sealed bool
	dest, err := restoreWith(t, st, delta, basebackup.FetchOptions{Store: st, TablespaceMap: map[string]string{f.space: mapped},
		BeforeSeal: func(dest string) error {
			if _, err := os.Stat(filepath.Join(dest, "global/pg_control")); err == nil {
				t.Errorf("global/pg_control is in place before the restore is sealed")
			}
			if _, err := os.Stat(filepath.Join(dest, "tusk-restore-unfinished")); err != nil {
				t.Errorf("no unfinished marker before the restore is sealed: %v", err)
			}
			sealed = true
			return nil
		}})
	if err != nil || !sealed {
		t.Fatalf("restore %s: %v (sealed %v)", delta, err, sealed)
	}
	if b, err := os.ReadFile(filepath.Join(dest, "global/pg_control")); err != nil || !bytes.Equal(b, bytes.Repeat([]byte{1}, 8192)) {
		t.Errorf("global/pg_control after the seal: %v", err)
	}
	if err := basebackup.CheckDest(dest, "restore folder"); err == nil || strings.Contains(err.Error(), "unfinished") {
		t.Errorf("a finished restore: CheckDest says %v, want not empty", err)
	}
	os.RemoveAll(mapped)

	// A damaged part: the restore fails mid-way and removes what it wrote.
	dm, err := walg.ReadMeta(t.Context(), st, delta)
	if err != nil {
		t.Fatal(err)
	}
	damaged := dm.Parts[len(dm.Parts)-1].Key // pg_control.tar.zst, unpacked last
	if err := st.Put(t.Context(), damaged, strings.NewReader("not zstd")); err != nil {
		t.Fatal(err)
	}
	if dest, err := restore(t, st, delta, map[string]string{f.space: mapped}); !errors.Is(err, basebackup.ErrCorrupt) || !strings.Contains(err.Error(), damaged) {
		t.Errorf("restore with %s damaged: %v", damaged, err)
	} else if _, serr := os.Stat(dest); serr == nil {
		t.Errorf("a failed restore left %s", dest)
	} else if _, serr := os.Stat(mapped); serr == nil {
		t.Errorf("a failed restore left the tablespace folder %s", mapped)
	}

	if problems := verifyProblems(t, st, delta); len(problems) != 1 || problems[0].Object != damaged {
		t.Errorf("verify %s with %s damaged: %v", delta, damaged, problems)
	}

	// A part missing: the restore fails and leaves nothing behind.
	m, err := walg.ReadMeta(t.Context(), st, full)
	if err != nil {
		t.Fatal(err)
	}
	var part string
	for _, p := range m.Parts {
		if p.Archive == "base" {
			part = p.Key
		}
	}
	if err := st.Delete(t.Context(), part); err != nil {
		t.Fatal(err)
	}
	dest, err = restore(t, st, delta, map[string]string{f.space: mapped})
	if !errors.Is(err, basebackup.ErrCorrupt) || !strings.Contains(err.Error(), part) {
		t.Errorf("restore with %s missing: %v", part, err)
	}
	if _, serr := os.Stat(dest); serr == nil {
		t.Errorf("a failed restore left %s", dest)
	}
	if problems := verifyProblems(t, st, full); len(problems) != 1 || problems[0].Object != part {
		t.Errorf("verify %s with %s missing: %v", full, part, problems)
	}
}

func verifyProblems(t *testing.T, st storage.Storage, backup string) []basebackup.Problem {
	t.Helper()
	m, err := walg.ReadMeta(t.Context(), st, backup)
	if err != nil {
		t.Fatal(err)
	}
	problems, err := walg.Verify(t.Context(), m, basebackup.VerifyOptions{Store: st, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	return problems
}

func slicesConcat(ps ...[]byte) []byte { return bytes.Join(ps, nil) }

// editFiles rewrites backup name's files_metadata.json through edit.
func editFiles(t *testing.T, st storage.Storage, name string, edit func(files map[string]any)) {
	t.Helper()
	key := walg.DataPrefix(name) + "files_metadata.json"
	rc, err := st.Get(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	var fm map[string]any
	err = json.NewDecoder(rc).Decode(&fm)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	edit(fm["Files"].(map[string]any))
	b, _ := json.Marshal(fm)
	if err := st.Put(t.Context(), key, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
}

// TestRestoreChainRefusesHoles: a file a delta skipped must come from its
// parent; wal-g would restore without it.
func TestRestoreChainRefusesHoles(t *testing.T) {
	st, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := fixture{st: st, data: filepath.Join(t.TempDir(), "data"), space: filepath.Join(t.TempDir(), "space")}
	write(t, filepath.Join(f.data, "global/pg_control"), bytes.Repeat([]byte{1}, 8192))
	write(t, filepath.Join(f.data, "base/5/1000"), page(0x10, 3))
	full := f.push(t, 0x1000000, "none", "")
	delta := f.push(t, 0x2000000, "none", full)
	if _, err := restore(t, st, delta, nil); err != nil {
		t.Fatalf("restore %s: %v", delta, err)
	}
	skipped := map[string]any{"IsIncremented": false, "IsSkipped": true, "MTime": "2026-12-02T04:43:02Z", "UpdatesCount": 0}
	editFiles(t, st, delta, func(files map[string]any) { files["/base/5/9999"] = skipped })
	dest, err := restore(t, st, delta, nil)
	if !errors.Is(err, basebackup.ErrCorrupt) || !strings.Contains(err.Error(), "lack /base/5/9999") {
		t.Errorf("a skipped file its parent does not hold: %v", err)
	}
	if _, serr := os.Stat(dest); serr == nil {
		t.Errorf("a failed restore left %s", dest)
	}

	// A middle delta must list what the delta on it skipped (where
	// wal-g's GetBaseFilesToUnwrap panics).
	top := f.push(t, 0x3000000, "none", delta)
	editFiles(t, st, top, func(files map[string]any) { files["/base/5/8888"] = skipped })
	if _, err := restore(t, st, top, nil); !errors.Is(err, basebackup.ErrCorrupt) || !strings.Contains(err.Error(), "does not list") {
		t.Errorf("a skipped file the middle delta does not list: %v", err)
	}
}

// TestRestoreDownloadFailure: a partition whose download breaks off is the
// transfer's failure, not a corrupt partition; a cut or flipped one is
// corrupt. Either way nothing is left behind.
func TestRestoreDownloadFailure(t *testing.T) {
	base, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := fixture{st: base, data: filepath.Join(t.TempDir(), "data")}
	write(t, filepath.Join(f.data, "global/pg_control"), bytes.Repeat([]byte{1}, 8192))
	write(t, filepath.Join(f.data, "base/5/1000"), slicesConcat(page(0x10, 3), page(0x20, 4), page(0x30, 5)))
	full := f.push(t, 0x1000000, "zstd", "")
	part := walg.DataPrefix(full) + "tar_partitions/part_001.tar.zst"
	broken := errors.New("connection reset by peer")
	for _, c := range []struct {
		what    string
		fault   faulty.Fault
		corrupt bool
	}{
		{"broken off", faulty.Fault{Op: faulty.Get, Prefix: part, TruncateAt: 100, ReadErr: broken}, false},
		{"cut", faulty.Fault{Op: faulty.Get, Prefix: part, TruncateAt: 100}, true},
		{"flipped", faulty.Fault{Op: faulty.Get, Prefix: part, FlipAt: 60}, true},
	} {
		st := faulty.New(base)
		st.Inject(c.fault)
		dest, err := restore(t, st, full, nil)
		if c.corrupt != errors.Is(err, basebackup.ErrCorrupt) || !strings.Contains(err.Error(), part) || (!c.corrupt && !errors.Is(err, broken)) {
			t.Errorf("%s: %v", c.what, err)
		}
		if _, serr := os.Stat(dest); serr == nil {
			t.Errorf("%s: a failed restore left %s", c.what, dest)
		}
		m, rerr := walg.ReadMeta(t.Context(), st, full)
		if rerr != nil {
			t.Fatal(rerr)
		}
		problems, verr := walg.Verify(t.Context(), m, basebackup.VerifyOptions{Store: st})
		if c.corrupt && (verr != nil || len(problems) != 1 || problems[0].Object != part) {
			t.Errorf("%s: verify: %v %v", c.what, problems, verr)
		}
		if !c.corrupt && !errors.Is(verr, broken) {
			t.Errorf("%s: verify: %v %v, want the download's error", c.what, problems, verr)
		}
	}
}

// TestRestoreRemoteMode: a backup as wal-g's backup-push without a data
// directory (remote mode, streaming_base_backup.go) writes it, laid out as
// wal-g 43fb039f wrote one on PostgreSQL 15: BASE_BACKUP's entry names (no
// leading slash), the tablespace's archive first under pg_tblspc/OID/,
// backup_label and tablespace_map in the data directory's partition,
// pg_control.tar holding global/pg_control, files metadata without
// TarFileSets and no backup_label.tar.
func TestRestoreRemoteMode(t *testing.T) {
	st, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const name = "base_000000010000000000000002"
	mtime := time.Date(2026, 12, 2, 5, 23, 0, 0, time.UTC)
	files := map[string]string{
		"pg_tblspc/16400/PG_15_202209061/5/2000": string(page(0x10, 9)),
		"backup_label":                           "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n",
		"tablespace_map":                         "16400 /tmp/old-space\n",
		"PG_VERSION":                             "15\n",
		"base/5/1000":                            string(slicesConcat(page(0x10, 3), page(0x20, 4))),
		"global/pg_control":                      string(bytes.Repeat([]byte{1}, 8192)),
	}
	part := func(key string, entries ...string) {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for _, e := range entries {
			if strings.HasSuffix(e, "/") {
				tw.WriteHeader(&tar.Header{Name: e, Typeflag: tar.TypeDir, Mode: 0o700, ModTime: mtime})
				continue
			}
			tw.WriteHeader(&tar.Header{Name: e, Typeflag: tar.TypeReg, Mode: 0o600, Size: int64(len(files[e])), ModTime: mtime})
			tw.Write([]byte(files[e]))
		}
		tw.Close()
		if err := st.Put(t.Context(), walg.DataPrefix(name)+"tar_partitions/"+key, &b); err != nil {
			t.Fatal(err)
		}
	}
	part("part_001.tar", "pg_tblspc/16400/PG_15_202209061/", "pg_tblspc/16400/PG_15_202209061/5/", "pg_tblspc/16400/PG_15_202209061/5/2000")
	part("part_002.tar", "backup_label", "tablespace_map", "base/", "base/5/", "base/5/1000", "PG_VERSION", "global/")
	part("pg_control.tar", "global/pg_control")
	fm := map[string]any{"Files": map[string]any{}}
	for f := range files {
		fm["Files"].(map[string]any)[f] = map[string]any{"IsIncremented": false, "IsSkipped": false, "MTime": mtime, "UpdatesCount": 0}
	}
	b, _ := json.Marshal(fm)
	for key, body := range map[string]string{
		walg.DataPrefix(name) + "files_metadata.json": string(b),
		walg.DataPrefix(name) + "metadata.json":       `{"start_time":"2026-12-02T05:23:15.225701Z","finish_time":"2026-12-02T05:23:16.514438Z","date_fmt":"%Y-%m-%dT%H:%M:%S.%fZ","hostname":"vm","data_dir":"/tmp/data","pg_version":150018,"start_lsn":33554472,"finish_lsn":33554688,"is_permanent":false,"system_identifier":7714562627524091016,"uncompressed_size":1,"compressed_size":1}`,
		walg.SentinelKey(name):                        `{"LSN":33554472,"PgVersion":150018,"FinishLSN":33554688,"SystemIdentifier":7714562627524091016,"UncompressedSize":1,"CompressedSize":1,"Spec":{"16400":{"loc":"/tmp/old-space","link":"pg_tblspc/16400"},"base_prefix":"/tmp/data","tablespaces":["16400"]},"ChkpNum":null,"Version":2,"StartTime":"2026-12-02T05:23:15.225701Z","FinishTime":"2026-12-02T05:23:16.514438Z","DateFmt":"%Y-%m-%dT%H:%M:%S.%fZ","Hostname":"vm","DataDir":"/tmp/data","IsPermanent":false}`,
	} {
		if err := st.Put(t.Context(), key, strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	mapped := filepath.Join(t.TempDir(), "space")
	dest, err := restore(t, st, name, map[string]string{"/tmp/old-space": mapped})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for f, body := range files {
		if f != "tablespace_map" { // left out: the tablespace is mapped elsewhere
			want[f] = body
		}
	}
	same(t, name, tree(t, dest), want)
	if problems := verifyProblems(t, st, name); len(problems) != 0 {
		t.Errorf("verify: %v", problems)
	}
}

// TestRestoreEncrypted restores a backup whose partitions wal-g's libsodium
// key encrypted (its sentinel and metadata stay plain, as wal-g leaves
// them), through a store that decrypts wal-g's class; without the key the
// backup is still listed, and its partitions are ciphertext.
func TestRestoreEncrypted(t *testing.T) {
	st, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	enc, err := walgtest.Encrypted(st, walgtest.Options{LibsodiumKey: strings.Repeat("k", 32)})
	if err != nil {
		t.Fatal(err)
	}
	f := fixture{st: enc, data: filepath.Join(t.TempDir(), "data"), space: filepath.Join(t.TempDir(), "space")}
	marker := bytes.Repeat([]byte("secret row "), 800)
	write(t, filepath.Join(f.data, "PG_VERSION"), []byte("15\n"))
	write(t, filepath.Join(f.data, "global/pg_control"), bytes.Repeat([]byte{1}, 8192))
	write(t, filepath.Join(f.data, "base/5/1000"), slicesConcat(page(0x10, 3), marker[:8192]))
	if err := os.MkdirAll(filepath.Join(f.data, "pg_tblspc"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(f.space, 0o700); err != nil {
		t.Fatal(err)
	}
	want := tree(t, f.data, "backup_label", "tablespace_map")
	full := f.push(t, 0x1000000, "none", "")

	if ms, err := walg.List(t.Context(), st, func(key string, err error) { t.Errorf("%s: %v", key, err) }); err != nil || len(ms) != 1 || ms[0].Name != full {
		t.Fatalf("List without the key: %v %+v", err, ms)
	}
	err = st.List(t.Context(), "basebackups_005/"+full+"/tar_partitions/", func(o storage.Object) error {
		r, err := st.Get(t.Context(), o.Key)
		if err != nil {
			return err
		}
		defer r.Close()
		b, err := io.ReadAll(r)
		if bytes.Contains(b, []byte("secret row")) {
			t.Errorf("%s holds the table's bytes in plain text", o.Key)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	dest, err := restore(t, enc, full, nil)
	if err != nil {
		t.Fatalf("restore with the key: %v", err)
	}
	same(t, full, tree(t, dest, "backup_label", "tablespace_map"), want)
	if _, err := restore(t, st, full, nil); err == nil {
		t.Fatal("restore without the key succeeded")
	}
}
