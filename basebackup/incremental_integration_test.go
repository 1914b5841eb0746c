package basebackup_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/incremental"
	"github.com/tusk-backup/tusk/internal/testenv"
	"github.com/tusk-backup/tusk/wal"
)

// captured is one BASE_BACKUP's base.tar (in a file) and manifest.
type captured struct {
	tarPath  string
	tar      *os.File
	manifest bytes.Buffer
	inMan    bool
	res      basebackup.StreamResult
}

func (c *captured) Begin(wal.LSN, uint32, []basebackup.Tablespace) error { return nil }
func (c *captured) Archive(name, location string) error {
	if name != "base.tar" {
		return fmt.Errorf("unexpected archive %s (tablespaces are not part of the spike)", name)
	}
	return nil
}

func (c *captured) Data(p []byte) error {
	if c.inMan {
		c.manifest.Write(p)
		return nil
	}
	_, err := c.tar.Write(p)
	return err
}
func (c *captured) Manifest() error { c.inMan = true; return nil }
func (c *captured) Progress(int64)  {}

func takeBackup(t *testing.T, ctx context.Context, p *testenv.Postgres, parent []byte, name string) *captured {
	t.Helper()
	conn, err := pgconn.Connect(ctx, p.ConnString()+" replication=database")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	c := &captured{tarPath: filepath.Join(t.TempDir(), name+".tar")}
	if c.tar, err = os.Create(c.tarPath); err != nil {
		t.Fatal(err)
	}
	defer c.tar.Close()
	opts := basebackup.StreamOptions{Label: name, NoWait: true}
	if parent == nil {
		c.res, err = basebackup.Stream(ctx, conn, opts, c)
	} else {
		if err := basebackup.UploadManifest(ctx, conn, bytes.NewReader(parent)); err != nil {
			t.Fatal(err)
		}
		opts.Incremental = true
		c.res, err = basebackup.Stream(ctx, conn, opts, c)
	}
	if err != nil {
		t.Fatalf("backup %s: %v", name, err)
	}
	return c
}

// eachFile calls fn for every regular file of the tar.
func eachFile(t *testing.T, path string, fn func(h *tar.Header, r io.Reader) error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := fn(h, tr); err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
	}
}

// TestIntegrationIncrementalSpike takes a full backup of PostgreSQL 17 and
// 18, changes tables (rows updated and added, a table dropped, one
// truncated by VACUUM, one created), takes an incremental backup with
// UPLOAD_MANIFEST and BASE_BACKUP ( INCREMENTAL ), then a fresh full backup,
// and composes full + incremental with incremental.Composer: the relation
// files match the fresh backup's byte for byte, and the composed directory
// starts as a cluster whose tables hold what the server's do.
func TestIntegrationIncrementalSpike(t *testing.T) {
	for _, v := range []int{17, 18} {
		t.Run(fmt.Sprint(v), func(t *testing.T) {
			t.Parallel()
			spike(t, v)
		})
	}
}

func spike(t *testing.T, version int) {
	p := testenv.StartPostgres(t, testenv.PostgresOptions{Version: version, Conf: map[string]string{
		"summarize_wal": "on", "autovacuum": "off",
	}})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	sql := func(stmts ...string) {
		for _, s := range stmts {
			p.SQL(t, s)
		}
	}
	sql("CREATE TABLE big (id int, pad text)",
		"INSERT INTO big SELECT i, repeat('x', 200) FROM generate_series(1, 30000) i",
		"CREATE TABLE dropme AS SELECT generate_series(1, 1000) AS n",
		"CREATE TABLE shrink (id int, pad text)",
		"CREATE TABLE grow (id int)", "INSERT INTO grow VALUES (1)",
		"CREATE TABLE bulk (id int)", "INSERT INTO bulk SELECT generate_series(1, 300000)",
		"INSERT INTO shrink SELECT i, repeat('y', 500) FROM generate_series(1, 3000) i",
		"CREATE INDEX ON big (id)",
		"VACUUM big", "VACUUM shrink", "CHECKPOINT")
	fullB := takeBackup(t, ctx, p, nil, "full")
	if _, err := incremental.ParseManifest(fullB.manifest.Bytes()); err != nil {
		t.Fatalf("the full backup's manifest: %v", err)
	}

	dropped := p.SQL(t, "SELECT pg_relation_filepath('dropme')")
	sql("UPDATE big SET pad = repeat('z', 200) WHERE id % 1000 = 0",
		"INSERT INTO big SELECT i, repeat('w', 200) FROM generate_series(30001, 31000) i",
		"DROP TABLE dropme",
		"DELETE FROM shrink WHERE id > 100",
		"VACUUM shrink",
		"CREATE TABLE fresh AS SELECT generate_series(1, 500) AS n",
		"INSERT INTO grow SELECT generate_series(2, 200000)",
		// COPY extends a relation many blocks at a time (PostgreSQL 16+)
		// without WAL-logging the blocks it has not used yet.
		"COPY bulk FROM PROGRAM 'seq 300001 330000'",
		"CHECKPOINT")
	incB := takeBackup(t, ctx, p, fullB.manifest.Bytes(), "incr")
	freshB := takeBackup(t, ctx, p, nil, "fresh")
	sums := map[string]string{}
	for _, tbl := range []string{"big", "shrink", "fresh", "grow", "bulk"} {
		sums[tbl] = p.SQL(t, "SELECT count(*) || ' ' || md5(string_agg(t::text, ',' ORDER BY t::text)) FROM "+tbl+" t")
	}
	paths := map[string]string{}
	for _, tbl := range []string{"big", "shrink", "fresh", "grow", "bulk"} {
		paths[tbl] = p.SQL(t, "SELECT pg_relation_filepath('"+tbl+"')")
	}

	// The incremental backup's tar holds INCREMENTAL files our reader takes.
	incMan, err := incremental.ParseManifest(incB.manifest.Bytes())
	if err != nil {
		t.Fatalf("the incremental backup's manifest: %v", err)
	}
	if incMan.Version != 2 || incMan.SystemID == 0 {
		t.Fatalf("manifest version %d, system %d", incMan.Version, incMan.SystemID)
	}
	var incFiles, withBlocks, sizes int
	headers := map[string]incremental.Header{}
	eachFile(t, incB.tarPath, func(h *tar.Header, r io.Reader) error {
		if h.Typeflag != tar.TypeReg {
			return nil
		}
		bare, ok := incremental.Split(h.Name)
		if !ok {
			return nil
		}
		incFiles++
		rd, err := incremental.NewReader(r, h.Size)
		if err != nil {
			return err
		}
		if rd.Unpadded {
			return errors.New("unpadded header")
		}
		if len(rd.Blocks) > 0 {
			withBlocks++
			if rd.Size()%incremental.BlockSize != 0 {
				return fmt.Errorf("header of %d bytes with %d blocks", rd.Size(), len(rd.Blocks))
			}
		} else if rd.Size() != 12 {
			return fmt.Errorf("header of %d bytes without blocks", rd.Size())
		}
		if rd.FileSize() == h.Size {
			sizes++
		}
		headers[bare] = rd.Header
		for {
			if _, _, err := rd.Next(); err == io.EOF {
				return nil
			} else if err != nil {
				return err
			}
		}
	})
	if incFiles == 0 || withBlocks == 0 || sizes != incFiles {
		t.Fatalf("%d INCREMENTAL files, %d with blocks, %d of the size their header implies", incFiles, withBlocks, sizes)
	}
	hb, ok := headers[paths["big"]]
	if !ok || len(hb.Blocks) == 0 {
		t.Fatalf("big (%s) is not incremental with blocks: %+v", paths["big"], hb)
	}
	t.Logf("PostgreSQL %d: %d INCREMENTAL files, %d with blocks; big: %d blocks, truncation length %d, length %d; shrink: %+v",
		version, incFiles, withBlocks, len(hb.Blocks), hb.TruncationBlockLength, hb.Length(), headers[paths["shrink"]])

	// Compose full + incremental into a data directory the server owns.
	r := testenv.NewPostgres(t, testenv.PostgresOptions{Version: version})
	c, err := incremental.NewComposer(r.DataDir, incMan, incremental.ComposeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fullMan, err := incremental.ParseManifest(fullB.manifest.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range []*captured{incB, fullB} {
		if err := c.StartBackup([]string{"incr", "full"}[i], []*incremental.Manifest{incMan, fullMan}[i]); err != nil {
			t.Fatal(err)
		}
		eachFile(t, b.tarPath, func(h *tar.Header, rd io.Reader) error {
			switch h.Typeflag {
			case tar.TypeDir:
				if i == 0 {
					return os.MkdirAll(filepath.Join(r.DataDir, h.Name), 0o700)
				}
				return nil
			case tar.TypeReg:
				bare, inc := incremental.Split(h.Name)
				kind := incremental.Full
				if inc {
					kind = incremental.Incremental
				}
				return c.File(bare, kind, 0, h.Size, rd)
			}
			return fmt.Errorf("tar entry type %q", h.Typeflag)
		})
	}
	res, err := c.Finish()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("composed: %d files rebuilt, zero-filled %+v, %d stale VM pages zeroed", res.Rebuilt, res.ZeroFilled, res.VMPagesZeroed)
	if res.VMPagesZeroed == 0 {
		t.Error("no stale VM page zeroed, though rows of VACUUMed tables changed")
	}
	if _, err := os.Stat(filepath.Join(r.DataDir, dropped)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the dropped table's file %s was written: %v", dropped, err)
	}

	// Relation files match the fresh full backup's.
	fresh := map[string][]byte{}
	eachFile(t, freshB.tarPath, func(h *tar.Header, rd io.Reader) error {
		if h.Typeflag == tar.TypeReg && strings.HasPrefix(h.Name, "base/") {
			b, err := io.ReadAll(rd)
			fresh[h.Name] = b
			return err
		}
		return nil
	})
	var same, differ []string
	for name, want := range fresh {
		got, err := os.ReadFile(filepath.Join(r.DataDir, name))
		if err == nil && bytes.Equal(got, want) {
			same = append(same, name)
		} else {
			differ = append(differ, name)
		}
	}
	for _, tbl := range []string{"big", "shrink", "fresh", "grow", "bulk"} {
		for _, name := range differ {
			if name == paths[tbl] {
				t.Errorf("%s's file %s differs from the fresh full backup's", tbl, name)
			}
		}
	}
	t.Logf("%d files under base/ match the fresh full backup's, %d differ: %v", len(same), len(differ), differ)
	// Blocks that COPY added in bulk and left unused are in no backup; like
	// pg_combinebackup, the composer leaves them zero, as they are on the
	// server.
	for _, z := range res.ZeroFilled {
		if !slices.Contains(same, z.Path) {
			t.Errorf("%s, with %d blocks left zero from block %d, differs from the fresh full backup's", z.Path, z.Blocks, z.First)
		}
	}
	for _, name := range differ {
		// The visibility map: a heap record clears VM bits without a block
		// reference to the VM page, so the WAL summary misses the change,
		// the server sends the VM fork with no blocks, and the full
		// backup's VM page, stale, is zeroed (incremental/vm.go).
		if !strings.HasSuffix(name, "_vm") {
			t.Errorf("%s differs from the fresh full backup's", name)
		}
	}

	// The combined manifest lists every file with its size and CRC32C.
	for _, mf := range res.Manifest.Files {
		b, err := os.ReadFile(filepath.Join(r.DataDir, mf.Path))
		if err != nil {
			t.Fatal(err)
		}
		var le [4]byte
		binary.LittleEndian.PutUint32(le[:], crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
		if int64(len(b)) != mf.Size || mf.Algorithm != "CRC32C" || hex.EncodeToString(le[:]) != mf.Checksum {
			t.Errorf("%s: %d bytes, CRC32C %x; the combined manifest: %d, %s %s", mf.Path, len(b), le, mf.Size, mf.Algorithm, mf.Checksum)
		}
	}

	// And a server started on the result.
	var man bytes.Buffer
	if err := res.Manifest.Write(&man); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.DataDir, "backup_manifest"), man.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	copyWAL(t, p.DataDir, r.DataDir)
	chownLike(t, r.DataDir)
	r.Configure(t, nil)
	r.Start(t)
	for tbl, want := range sums {
		if got := r.SQL(t, "SELECT count(*) || ' ' || md5(string_agg(t::text, ',' ORDER BY t::text)) FROM "+tbl+" t"); got != want {
			t.Errorf("restored %s: %s, the server's: %s", tbl, got, want)
		}
	}
	// An index-only scan trusts the visibility map.
	ios := "SET enable_seqscan = off; SET enable_bitmapscan = off; SELECT count(*) FROM big WHERE id % 1000 = 0 AND id < 30001"
	if got, want := r.SQL(t, ios), p.SQL(t, ios); got != want {
		t.Errorf("index-only scan on the restored cluster: %s rows, the server's: %s", got, want)
	}
	if plan := r.SQL(t, "SET enable_seqscan = off; SET enable_bitmapscan = off; EXPLAIN (COSTS OFF) "+strings.TrimPrefix(ios, "SET enable_seqscan = off; SET enable_bitmapscan = off; ")); !strings.Contains(plan, "Index Only Scan") {
		t.Errorf("the check's plan is not an index-only scan:\n%s", plan)
	}
	if got := r.SQL(t, "SELECT count(*) FROM pg_class WHERE relname = 'dropme'"); got != "0" {
		t.Errorf("dropme is back: %s", got)
	}
}

var segmentRE = regexp.MustCompile(`^[0-9A-F]{24}$`)

// copyWAL copies the source server's WAL segments (the backups did not
// include WAL) into the restored pg_wal.
func copyWAL(t *testing.T, from, to string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(from, "pg_wal"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !segmentRE.MatchString(e.Name()) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, "pg_wal", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, "pg_wal", e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// chownLike gives everything under dir to dir's owner (the server's user,
// when the tests run as root).
func chownLike(t *testing.T, dir string) {
	t.Helper()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || os.Geteuid() != 0 {
		return
	}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, int(st.Uid), int(st.Gid))
	})
	if err != nil {
		t.Fatal(err)
	}
}
