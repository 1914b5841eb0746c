package incremental

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/tusk-backup/tusk/wal"
)

// A hand-made chain: backups newest first. Each file is full content or an
// incremental copy (tbl plus blocks, each block's content from its tag).
type tfile struct {
	path   string
	kind   Kind
	data   []byte            // Full
	tbl    uint32            // Incremental
	blocks map[uint32][]byte // Incremental: block number -> content
	raw    []byte            // Incremental, hand-made bytes instead of tbl/blocks
}

type tbackup struct {
	name  string
	start wal.LSN
	files []tfile
	// Faults and variants.
	from     wal.LSN  // the label's INCREMENTAL FROM LSN, instead of the next backup's start
	noFrom   bool     // a full backup's label, even with a backup after it
	omit     []string // paths listed (newest manifest) but not streamed
	piece    int      // stream each file in pieces of this many bytes
	reversed bool     // the pieces of full copies in reverse order
	parallel bool     // files (and pieces of full copies) fed concurrently
}

func full(path string, blocks ...int) tfile {
	var b []byte
	for _, tag := range blocks {
		b = append(b, block(tag)...)
	}
	return tfile{path: path, kind: Full, data: b}
}

// inc makes an incremental copy: blocks given as number:tag pairs.
func inc(path string, tbl uint32, pairs ...int) tfile {
	m := map[uint32][]byte{}
	for i := 0; i < len(pairs); i += 2 {
		m[uint32(pairs[i])] = block(pairs[i+1])
	}
	return tfile{path: path, kind: Incremental, tbl: tbl, blocks: m}
}

func (f tfile) bytes(t *testing.T) []byte {
	if f.kind == Full {
		return f.data
	}
	if f.raw != nil {
		return f.raw
	}
	nums := make([]uint32, 0, len(f.blocks))
	for n := range f.blocks {
		nums = append(nums, n)
	}
	slices.Sort(nums)
	var b bytes.Buffer
	w, err := NewWriter(&b, Header{Blocks: nums, TruncationBlockLength: f.tbl})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nums {
		if _, err := w.Write(f.blocks[n]); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// chain builds backups newest first, each with a backup_label linking it to
// the next (the last is full), starting at LSNs 0/A000028, 0/9000028, ...
func chain(backups ...[]tfile) []tbackup {
	var out []tbackup
	for i, files := range backups {
		out = append(out, tbackup{name: fmt.Sprintf("b%d", len(backups)-1-i), start: wal.LSN(0x1000028 + uint64(len(backups)-i)*0x1000000), files: files})
	}
	return out
}

func labelText(start wal.LSN, from *wal.LSN) []byte {
	s := fmt.Sprintf("START WAL LOCATION: %s (file 000000010000000000000002)\nCHECKPOINT LOCATION: %s\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2026-12-01 23:00:00 UTC\nLABEL: tusk\nSTART TIMELINE: 1\n", start, start+0x60)
	if from != nil {
		s += fmt.Sprintf("INCREMENTAL FROM LSN: %s\nINCREMENTAL FROM TLI: 1\n", *from)
	}
	return []byte(s)
}

// manifestOf is the newest backup's manifest.
func manifestOf(t *testing.T, b tbackup, label []byte) *Manifest {
	m := &Manifest{Version: 2, SystemID: 42, WALRanges: []WALRange{{Timeline: 1, Start: b.start, End: b.start + 0x100}}}
	m.Files = append(m.Files, ManifestFile{Path: "backup_label", Size: int64(len(label)), LastModified: "2026-12-01 23:00:00 GMT", Algorithm: "CRC32C", Checksum: crcHex(crc32.Checksum(label, castagnoli))})
	for _, f := range b.files {
		data := f.bytes(t)
		name := f.path
		if f.kind == Incremental {
			name = Name(f.path)
		}
		m.Files = append(m.Files, ManifestFile{Path: name, Size: int64(len(data)), LastModified: "2026-12-01 23:00:00 GMT", Algorithm: "CRC32C", Checksum: crcHex(crc32.Checksum(data, castagnoli))})
	}
	return m
}

// compose streams the chain into a Composer over a fresh folder.
func compose(t *testing.T, backups []tbackup, opts ComposeOptions) (string, *Result, error) {
	t.Helper()
	dest := t.TempDir()
	labels := make([][]byte, len(backups))
	for i, b := range backups {
		var from *wal.LSN
		if i+1 < len(backups) {
			from = &backups[i+1].start
		}
		if b.from != 0 {
			from = &b.from
		}
		if b.noFrom {
			from = nil
		}
		labels[i] = labelText(b.start, from)
	}
	c, err := NewComposer(dest, manifestOf(t, backups[0], labels[0]), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i, b := range backups {
		var m *Manifest
		if opts.Concurrency == 0 { // and with Concurrency, every rebuilt file is read back
			m = manifestOf(t, b, labels[i])
		}
		if err := c.StartBackup(b.name, m); err != nil {
			return dest, nil, err
		}
		if err := c.File("backup_label", Full, 0, int64(len(labels[i])), bytes.NewReader(labels[i])); err != nil {
			return dest, nil, err
		}
		var g errgroup.Group
		for _, f := range b.files {
			if slices.Contains(b.omit, f.path) {
				continue
			}
			if b.parallel {
				data := f.bytes(t)
				size := int64(len(data))
				if f.kind == Incremental {
					g.Go(func() error {
						for off := int64(0); off < size; off += int64(b.piece) {
							if err := c.File(f.path, f.kind, off, size, bytes.NewReader(data[off:min(size, off+int64(b.piece))])); err != nil {
								return err
							}
						}
						return nil
					})
					continue
				}
				for off := int64(0); off < size; off += int64(b.piece) {
					g.Go(func() error {
						return c.File(f.path, f.kind, off, size, bytes.NewReader(data[off:min(size, off+int64(b.piece))]))
					})
				}
				continue
			}
			data := f.bytes(t)
			size := int64(len(data))
			if b.piece == 0 {
				if err := c.File(f.path, f.kind, 0, size, bytes.NewReader(data)); err != nil {
					return dest, nil, err
				}
				continue
			}
			var offs []int64
			for off := int64(0); off < size; off += int64(b.piece) {
				offs = append(offs, off)
			}
			if b.reversed && f.kind == Full {
				slices.Reverse(offs)
			}
			for _, off := range offs {
				piece := data[off:min(size, off+int64(b.piece))]
				if err := c.File(f.path, f.kind, off, size, bytes.NewReader(piece)); err != nil {
					return dest, nil, err
				}
			}
		}
		if err := g.Wait(); err != nil {
			return dest, nil, err
		}
	}
	res, err := c.Finish()
	return dest, res, err
}

// reference rebuilds path from the chain as reconstruct.c does, in memory.
func reference(t *testing.T, backups []tbackup, path string) ([]byte, bool) {
	find := func(b tbackup) *tfile {
		for i := range b.files {
			if b.files[i].path == path {
				return &b.files[i]
			}
		}
		return nil
	}
	latest := find(backups[0])
	if latest == nil {
		return nil, false
	}
	if latest.kind == Full {
		return latest.data, true
	}
	h, latestBlocks := parseInc(t, latest)
	out := make([]byte, int(h.Length())*BlockSize)
	got := map[uint32]bool{}
	for n, data := range latestBlocks {
		copy(out[int(n)*BlockSize:], data)
		got[n] = true
	}
	for _, b := range backups[1:] {
		f := find(b)
		if f == nil {
			t.Fatalf("reference: %s missing from %s", path, b.name)
		}
		var blocks map[uint32][]byte
		if f.kind == Incremental {
			_, blocks = parseInc(t, f)
		}
		for n := uint32(0); n < h.TruncationBlockLength; n++ {
			if got[n] {
				continue
			}
			switch {
			case f.kind == Incremental && blocks[n] != nil:
				copy(out[int(n)*BlockSize:], blocks[n])
				got[n] = true
			case f.kind == Full && int(n) < len(f.data)/BlockSize:
				copy(out[int(n)*BlockSize:], f.data[int(n)*BlockSize:int(n+1)*BlockSize])
				got[n] = true
			}
		}
		if f.kind == Full {
			break
		}
	}
	return out, true
}

func parseInc(t *testing.T, f *tfile) (Header, map[uint32][]byte) {
	data := f.bytes(t)
	r, err := NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	m := map[uint32][]byte{}
	for {
		n, b, err := r.Next()
		if err != nil {
			break
		}
		m[n] = slices.Clone(b)
	}
	return r.Header, m
}

// checkResult compares every file of the newest manifest with the reference
// and the combined manifest with the files.
func checkResult(t *testing.T, backups []tbackup, dest string, res *Result, want map[string][]int) {
	t.Helper()
	listed := map[string]bool{}
	for _, mf := range res.Manifest.Files {
		listed[mf.Path] = true
		data, err := os.ReadFile(filepath.Join(dest, mf.Path))
		if err != nil {
			t.Fatalf("%s: %v", mf.Path, err)
		}
		if int64(len(data)) != mf.Size || crcHex(crc32.Checksum(data, castagnoli)) != mf.Checksum || mf.Algorithm != "CRC32C" {
			t.Errorf("%s: %d bytes, manifest says %d (checksum %s %s)", mf.Path, len(data), mf.Size, mf.Algorithm, mf.Checksum)
		}
		if mf.Path == "backup_label" {
			if bytes.Contains(data, []byte("INCREMENTAL")) {
				t.Errorf("backup_label keeps its INCREMENTAL lines:\n%s", data)
			}
			continue
		}
		ref, ok := reference(t, backups, mf.Path)
		if _, vm := want[mf.Path]; vm && strings.HasSuffix(mf.Path, "_vm") {
			// A zeroed stale VM page differs from pg_combinebackup's.
		} else if !ok {
			t.Errorf("%s is not in the newest backup", mf.Path)
		} else if !bytes.Equal(ref, data) {
			t.Errorf("%s differs from pg_combinebackup's result (%d bytes, want %d)", mf.Path, len(data), len(ref))
		}
		if tags, ok := want[mf.Path]; ok {
			var exp []byte
			for _, tag := range tags {
				if tag < 0 {
					exp = append(exp, make([]byte, BlockSize)...)
				} else {
					exp = append(exp, block(tag)...)
				}
			}
			if !bytes.Equal(exp, data) {
				t.Errorf("%s: blocks %s, want tags %v", mf.Path, describe(data), tags)
			}
		}
	}
	for p := range want {
		if !listed[p] {
			t.Errorf("%s is not in the combined manifest", p)
		}
	}
	var b bytes.Buffer
	if err := res.Manifest.Write(&b); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseManifest(b.Bytes()); err != nil {
		t.Fatalf("the combined manifest does not parse: %v", err)
	}
}

// describe names each block of data by its tag (-1 for zeroes).
func describe(data []byte) string {
	var s []string
	for i := 0; i+BlockSize <= len(data); i += BlockSize {
		tag := "?"
		for k := -1; k < 200; k++ {
			if (k < 0 && bytes.Equal(data[i:i+BlockSize], make([]byte, BlockSize))) || (k >= 0 && bytes.Equal(data[i:i+BlockSize], block(k))) {
				tag = fmt.Sprint(k)
				break
			}
		}
		s = append(s, tag)
	}
	return "[" + strings.Join(s, " ") + "]"
}

const rel = "base/5/16384"

func TestCompose(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		backups []tbackup
		want    map[string][]int // path -> block tags (-1 zero)
		absent  []string
		zeros   []ZeroFill
	}{
		{
			name:    "block only in the full backup",
			backups: chain([]tfile{inc(rel, 3)}, []tfile{full(rel, 10, 11, 12)}),
			want:    map[string][]int{rel: {10, 11, 12}},
		},
		{
			name:    "block replaced in an incremental",
			backups: chain([]tfile{inc(rel, 3, 1, 21)}, []tfile{full(rel, 10, 11, 12)}),
			want:    map[string][]int{rel: {10, 21, 12}},
		},
		{
			name: "newest block wins over an older incremental's",
			backups: chain(
				[]tfile{inc(rel, 3, 1, 31)},
				[]tfile{inc(rel, 3, 1, 21, 2, 22)},
				[]tfile{full(rel, 10, 11, 12)}),
			want: map[string][]int{rel: {10, 31, 22}},
		},
		{
			name:    "blocks added beyond the old end",
			backups: chain([]tfile{inc(rel, 3, 3, 23, 4, 24)}, []tfile{full(rel, 10, 11, 12)}),
			want:    map[string][]int{rel: {10, 11, 12, 23, 24}},
		},
		{
			name:    "block beyond the truncation length after a gap is zero",
			backups: chain([]tfile{inc(rel, 2, 4, 24)}, []tfile{full(rel, 10, 11, 12)}),
			want:    map[string][]int{rel: {10, 11, -1, -1, 24}},
		},
		{
			name:    "file shrunk",
			backups: chain([]tfile{inc(rel, 1)}, []tfile{full(rel, 10, 11, 12)}),
			want:    map[string][]int{rel: {10}},
		},
		{
			name: "file shrunk then regrown",
			backups: chain(
				[]tfile{inc(rel, 4, 1, 41, 2, 42, 3, 43)},
				[]tfile{inc(rel, 1)},
				[]tfile{full(rel, 10, 11, 12)}),
			want: map[string][]int{rel: {10, 41, 42, 43}},
		},
		{
			name: "file shrunk to nothing then regrown",
			backups: chain(
				[]tfile{inc(rel, 0, 0, 40, 1, 41)},
				[]tfile{inc(rel, 0)},
				[]tfile{full(rel, 10, 11, 12)}),
			want: map[string][]int{rel: {40, 41}},
		},
		{
			name: "file dropped",
			backups: chain(
				[]tfile{full("base/5/1259", 1)},
				[]tfile{full("base/5/1259", 2), inc(rel, 3, 0, 20)},
				[]tfile{full("base/5/1259", 3), full(rel, 10, 11, 12)}),
			want:   map[string][]int{"base/5/1259": {1}},
			absent: []string{rel},
		},
		{
			name: "file new in an incremental backup",
			backups: chain(
				[]tfile{inc("base/5/16390", 2, 1, 51)},
				[]tfile{full("base/5/16390", 40, 41)},
				[]tfile{full(rel, 10)}),
			want:   map[string][]int{"base/5/16390": {40, 51}},
			absent: []string{rel},
		},
		{
			name:    "full copy in the newest backup wins outright",
			backups: chain([]tfile{full(rel, 30, 31)}, []tfile{inc(rel, 3, 0, 20)}, []tfile{full(rel, 10, 11, 12)}),
			want:    map[string][]int{rel: {30, 31}},
		},
		{
			name:    "block beyond the full copy's end left zero, as pg_combinebackup does",
			backups: chain([]tfile{inc(rel, 4, 3, 23)}, []tfile{full(rel, 10, 11)}),
			want:    map[string][]int{rel: {10, 11, -1, 23}},
			zeros:   []ZeroFill{{Path: rel, First: 2, Blocks: 1}},
		},
		{
			name:    "an empty file and a non-relation file",
			backups: chain([]tfile{{path: "global/pg_control", data: []byte("control")}, {path: "pg_notify/x", data: nil}}, []tfile{full(rel, 1)}),
			want:    map[string][]int{},
		},
		{
			name:    "unpadded development layout",
			backups: chain([]tfile{{path: rel, kind: Incremental, raw: incFile(t, 3, true, 1)}}, []tfile{full(rel, 10, 11, 12)}),
			want:    map[string][]int{rel: {10, 1, 12}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dest, res, err := compose(t, tc.backups, ComposeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			checkResult(t, tc.backups, dest, res, tc.want)
			for _, p := range tc.absent {
				if _, err := os.Stat(filepath.Join(dest, p)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s was written: %v", p, err)
				}
			}
			if !slices.Equal(res.ZeroFilled, tc.zeros) {
				t.Errorf("zero-filled %+v, want %+v", res.ZeroFilled, tc.zeros)
			}
			if len(tc.zeros) > 0 {
				_, _, err := compose(t, tc.backups, ComposeOptions{Strict: true})
				if !errors.Is(err, ErrChain) || !strings.Contains(err.Error(), "block 2 of base/5/16384 is in no backup of the chain") {
					t.Errorf("strict: %v", err)
				}
			}
		})
	}
}

func TestComposePieces(t *testing.T) {
	t.Parallel()
	for _, piece := range []int{5, 4096, BlockSize, BlockSize + 3, 3 * BlockSize} {
		t.Run(fmt.Sprint(piece), func(t *testing.T) {
			t.Parallel()
			backups := chain(
				[]tfile{inc(rel, 5, 1, 31, 5, 35), full("base/5/1259", 1, 2, 3)},
				[]tfile{inc(rel, 4, 2, 22), full("base/5/1259", 4)},
				[]tfile{full(rel, 10, 11, 12, 13, 14), full("base/5/1259", 5)})
			for i := range backups {
				backups[i].piece, backups[i].reversed = piece, true
			}
			dest, res, err := compose(t, backups, ComposeOptions{MaxOpenFiles: 1})
			if err != nil {
				t.Fatal(err)
			}
			checkResult(t, backups, dest, res, map[string][]int{rel: {10, 31, 22, 13, 14, 35}, "base/5/1259": {1, 2, 3}})
		})
	}
}

func TestComposeFails(t *testing.T) {
	t.Parallel()
	badMagic := incFile(t, 3, false, 1)
	badMagic[0] ^= 0xff
	for _, tc := range []struct {
		name    string
		backups []tbackup
		want    string
		format  bool // ErrFormat rather than ErrChain
	}{
		{
			name: "the chain ends with an incremental backup",
			backups: func() []tbackup {
				b := chain([]tfile{inc(rel, 3, 1, 21)}, []tfile{inc(rel, 3)})
				b[1].from = 0x500028
				return b
			}(),
			want: "the chain ends with backup b0, which is incremental (from 0/500028): its parent is missing",
		},
		{
			name:    "the parent holds no copy",
			backups: chain([]tfile{inc(rel, 3, 1, 21)}, []tfile{full("base/5/1259", 1)}),
			want:    "backup b1 holds base/5/16384 incrementally, but b0, its parent, holds no copy of it",
		},
		{
			name: "a file of the newest manifest not streamed",
			backups: func() []tbackup {
				b := chain([]tfile{full("base/5/1259", 1)}, []tfile{full(rel, 1)})
				b[0].omit = []string{"base/5/1259"}
				return b
			}(),
			want: "base/5/1259, listed in the manifest of backup b1, is not in the backup",
		},
		{
			name: "backups out of order",
			backups: func() []tbackup {
				b := chain([]tfile{inc(rel, 1)}, []tfile{full(rel, 1)})
				b[0].from = 0x7000028
				return b
			}(),
			want: "backup b1 is incremental from 0/7000028 on timeline 1, but b0, its parent in the chain, starts at 0/2000028 on timeline 1",
		},
		{
			name: "a full backup followed by another",
			backups: func() []tbackup {
				b := chain([]tfile{full(rel, 1)}, []tfile{full(rel, 1)})
				b[0].noFrom = true
				return b
			}(),
			want: "backup b1 is a full backup, yet b0 follows it in the chain",
		},
		{
			name:    "bad magic",
			backups: chain([]tfile{{path: rel, kind: Incremental, raw: badMagic}}, []tfile{full(rel, 1)}),
			want:    "base/5/INCREMENTAL.16384 in backup b1: not a valid incremental file: magic number",
			format:  true,
		},
		{
			name:    "truncated incremental file",
			backups: chain([]tfile{{path: rel, kind: Incremental, raw: incFile(t, 3, false, 1)[:BlockSize+5]}}, []tfile{full(rel, 1)}),
			want:    "not a valid incremental file: 8197 bytes, but a header of 1 blocks makes 16384",
			format:  true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := compose(t, tc.backups, ComposeOptions{})
			sentinel := ErrChain
			if tc.format {
				sentinel = ErrFormat
			}
			if !errors.Is(err, sentinel) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant %v with %q", err, sentinel, tc.want)
			}
		})
	}
}

func TestComposeIncrementalPiecesOutOfOrder(t *testing.T) {
	t.Parallel()
	data := incFile(t, 3, false, 1, 2)
	c, err := NewComposer(t.TempDir(), &Manifest{Version: 2, Files: []ManifestFile{{Path: Name(rel), Size: int64(len(data))}}}, ComposeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.StartBackup("b1", nil); err != nil {
		t.Fatal(err)
	}
	err = c.File(rel, Incremental, BlockSize, int64(len(data)), bytes.NewReader(data[BlockSize:]))
	if err == nil {
		err = c.File(rel, Incremental, 0, int64(len(data)), bytes.NewReader(data[:BlockSize]))
	}
	if !errors.Is(err, ErrChain) || !strings.Contains(err.Error(), "must come in order") {
		t.Fatalf("error %v", err)
	}
}

// TestComposeConcurrent feeds each backup's files, and the pieces of full
// copies, from many goroutines at once (run it with -race).
func TestComposeConcurrent(t *testing.T) {
	t.Parallel()
	var newest, middle, oldest []tfile
	want := map[string][]int{}
	for i := range 40 {
		p := fmt.Sprintf("base/5/%d", 20000+i)
		newest = append(newest, inc(p, 6, i%6, 100+i, 6, 60))
		middle = append(middle, inc(p, 6, (i+1)%6, 150+i))
		oldest = append(oldest, full(p, 10, 11, 12, 13, 14, 15))
		exp := []int{10, 11, 12, 13, 14, 15, 60}
		exp[(i+1)%6] = 150 + i
		exp[i%6] = 100 + i
		want[p] = exp
	}
	backups := chain(newest, middle, oldest)
	for i := range backups {
		backups[i].parallel, backups[i].piece = true, BlockSize/2+1
	}
	dest, res, err := compose(t, backups, ComposeOptions{MaxOpenFiles: 7, Concurrency: 3})
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, backups, dest, res, want)
	if res.Rebuilt != 40 {
		t.Errorf("%d files rebuilt, want 40", res.Rebuilt)
	}
}

// TestComposePath: ComposeOptions.Path puts a tablespace's files where the
// restore maps it.
func TestComposePath(t *testing.T) {
	t.Parallel()
	ts := t.TempDir()
	data := t.TempDir()
	const p = "pg_tblspc/16385/PG_17_202406281/5/16386"
	backups := chain([]tfile{inc(p, 2, 1, 21)}, []tfile{full(p, 10, 11)})
	dest, res, err := compose(t, backups, ComposeOptions{Path: func(path string) (string, error) {
		if rest, ok := strings.CutPrefix(path, "pg_tblspc/16385/"); ok {
			return filepath.Join(ts, rest), nil
		}
		return filepath.Join(data, path), nil // backup_label too
	}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(ts, "PG_17_202406281/5/16386"))
	if err != nil || !bytes.Equal(got, append(block(10), block(21)...)) {
		t.Fatalf("tablespace file: %s, %v", describe(got), err)
	}
	if _, err := os.Stat(filepath.Join(dest, p)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("written under the data directory too: %v", err)
	}
	if len(res.Manifest.Files) != 2 || res.Manifest.Files[1].Path != p {
		t.Fatalf("manifest %+v", res.Manifest.Files)
	}
}

// TestComposeVisibilityMap: a VM page older than a heap page it covers is
// zeroed (ComposeOptions.ExactVM keeps it, as pg_combinebackup does).
func TestComposeVisibilityMap(t *testing.T) {
	t.Parallel()
	const vm = rel + "_vm"
	for _, tc := range []struct {
		name    string
		backups []tbackup
		want    []int // the VM's blocks
		exact   []int // with ExactVM
		zeroed  int
	}{
		{
			name:    "heap page changed, VM page from the full backup",
			backups: chain([]tfile{inc(rel, 3, 1, 21), inc(vm, 1)}, []tfile{full(rel, 10, 11, 12), full(vm, 90)}),
			want:    []int{-1}, exact: []int{90}, zeroed: 1,
		},
		{
			name:    "heap page changed, VM page sent too",
			backups: chain([]tfile{inc(rel, 3, 1, 21), inc(vm, 1, 0, 91)}, []tfile{full(rel, 10, 11, 12), full(vm, 90)}),
			want:    []int{91}, exact: []int{91},
		},
		{
			name:    "heap unchanged",
			backups: chain([]tfile{inc(rel, 3), inc(vm, 1)}, []tfile{full(rel, 10, 11, 12), full(vm, 90)}),
			want:    []int{90}, exact: []int{90},
		},
		{
			name: "heap changed in the middle backup, after the VM page's",
			backups: chain(
				[]tfile{inc(rel, 3), inc(vm, 1)},
				[]tfile{inc(rel, 3, 2, 22), inc(vm, 1)},
				[]tfile{inc(rel, 3), inc(vm, 1, 0, 91)},
				[]tfile{full(rel, 10, 11, 12), full(vm, 90)}),
			want: []int{-1}, exact: []int{91}, zeroed: 1,
		},
		{
			name: "heap changed in the backup that sent the VM page",
			backups: chain(
				[]tfile{inc(rel, 3), inc(vm, 1)},
				[]tfile{inc(rel, 3, 2, 22), inc(vm, 1, 0, 91)},
				[]tfile{full(rel, 10, 11, 12), full(vm, 90)}),
			want: []int{91}, exact: []int{91},
		},
		{
			name:    "heap copied whole in the newest backup",
			backups: chain([]tfile{full(rel, 20, 21, 22), inc(vm, 1)}, []tfile{full(rel, 10, 11, 12), full(vm, 90)}),
			want:    []int{-1}, exact: []int{90}, zeroed: 1,
		},
		{
			name: "only the VM page covering the changed segment",
			backups: chain(
				[]tfile{inc(rel+".1", 8, 5, 25), inc(rel, 2), inc(vm, 6)},
				[]tfile{full(rel+".1", 1, 2, 3, 4, 5, 6, 7, 8), full(rel, 10, 11), full(vm, 90, 91, 92, 93, 94, 95)}),
			// Heap block 131072+5 is under VM page 4.
			want: []int{90, 91, 92, 93, -1, 95}, exact: []int{90, 91, 92, 93, 94, 95}, zeroed: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, exact := range []bool{false, true} {
				dest, res, err := compose(t, tc.backups, ComposeOptions{ExactVM: exact})
				if err != nil {
					t.Fatal(err)
				}
				want, zeroed := tc.want, tc.zeroed
				if exact {
					want, zeroed = tc.exact, 0
				}
				checkResult(t, tc.backups, dest, res, map[string][]int{vm: want})
				if res.VMPagesZeroed != zeroed {
					t.Errorf("ExactVM %v: %d VM pages zeroed, want %d", exact, res.VMPagesZeroed, zeroed)
				}
			}
		})
	}
}

func TestRelFile(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, rel, fork string
		seg           uint32
		ok            bool
	}{
		{"base/5/16384", "base/5/16384", "", 0, true},
		{"base/5/16384.2", "base/5/16384", "", 2, true},
		{"base/5/16384_vm", "base/5/16384", "vm", 0, true},
		{"base/5/16384_fsm.1", "base/5/16384", "fsm", 1, true},
		{"global/1262", "global/1262", "", 0, true},
		{"pg_tblspc/16385/PG_17_202406281/5/16390_vm", "pg_tblspc/16385/PG_17_202406281/5/16390", "vm", 0, true},
		{"base/5/pg_filenode.map", "", "", 0, false},
		{"base/5/PG_VERSION", "", "", 0, false},
		{"global/pg_control", "", "", 0, false},
		{"pg_xact/0000", "", "", 0, false},
		{"base/5/16384_xx", "", "", 0, false},
		{"base/5/16384.x", "", "", 0, false},
	} {
		rel, fork, seg, ok := relFile(tc.in)
		if rel != tc.rel || fork != tc.fork || seg != tc.seg || ok != tc.ok {
			t.Errorf("relFile(%q) = %q %q %d %v", tc.in, rel, fork, seg, ok)
		}
	}
}
