package walg

import (
	"archive/tar"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/compress"
	"github.com/tusk-backup/tusk/storage"
)

// Files outside files_metadata.json that a restore unpacks
// (UtilityFilePaths in backup.go), by tar entry name.
const (
	controlEntry       = "/global/pg_control"
	labelEntry         = "backup_label"
	tablespaceMapEntry = "tablespace_map"
)

// pageSize is PostgreSQL's block size, the unit of wal-g's increments
// (DatabasePageSize).
const pageSize = 8192

// ReadChain reads the metadata of m's parents, up to its full backup, and
// returns the chain the full backup first, m last (as basebackup.ReadChain
// does for tusk's backups).
func ReadChain(ctx context.Context, st storage.Storage, m basebackup.Meta) ([]basebackup.Meta, error) {
	known := []basebackup.Meta{m}
	for cur := m; cur.Incremental(); {
		if len(known) > 1000 {
			return nil, fmt.Errorf("wal-g backup %s's chain of parents is longer than 1000 backups", m.Name)
		}
		p, err := ReadMeta(ctx, st, cur.Parent)
		if errors.Is(err, basebackup.ErrNoBackup) {
			break // ChainOf says which one is missing
		}
		if err != nil {
			return nil, fmt.Errorf("wal-g backup %s needs its parent %s: %w", m.Name, cur.Parent, err)
		}
		known = append(known, p)
		cur = p
	}
	return basebackup.ChainOf(known, m)
}

// backupFiles is what restoring one backup of a chain needs to know.
type backupFiles struct {
	m     basebackup.Meta
	files map[string]FileDescription // nil: the backup has no files metadata
	want  map[string]bool            // tar entry names to unpack; nil: all
	mu    sync.Mutex
	found map[string]bool // of want, the files unpacked
}

// RestoreChain restores the last backup of chain (as ReadChain returns it)
// into dest, as wal-g's backup-fetch does (backup_fetch_handler.go,
// deltaFetchRecursionOld; backup.go, unwrapOld): each backup from the full
// one on unpacks the files the next needs from it (those the next skipped,
// or holds as changed pages), the newest all of its own, a delta's paged
// files applied as increments to its parent's copy; pg_control comes from
// the newest backup's pg_control.tar, after the rest. With tablespaces
// mapped elsewhere tablespace_map is left out, as wal-g does with a restore
// spec; the links in pg_tblspc point to the mapped folders. The folder is
// handled as a restore of tusk's own backups (basebackup.ForeignDest):
// durable, sealed by pg_control last, removed on failure.
func RestoreChain(ctx context.Context, chain []basebackup.Meta, dest string, opts basebackup.FetchOptions) (err error) {
	if len(chain) == 0 {
		return errors.New("no backup to restore")
	}
	newest := chain[len(chain)-1]
	for i, m := range chain {
		if !IsWALG(m) || (i == 0) == m.Incremental() || (i > 0 && m.Parent != chain[i-1].Name) {
			return fmt.Errorf("wal-g backup %s: the chain given to restore is not a full wal-g backup followed by its deltas", newest.Name)
		}
	}
	bs := make([]*backupFiles, len(chain))
	for i, m := range chain {
		s, files, err := readSentinel(ctx, opts.Store, m.Name)
		if err != nil {
			return err
		}
		if files == nil && !s.FilesMetadataDisabled {
			if files, err = readFilesMetadata(ctx, opts.Store, m.Name); err != nil {
				return err
			}
		}
		bf := &backupFiles{m: m}
		if files != nil && len(files.Files) > 0 {
			bf.files = files.Files
		}
		if files != nil {
			// wal-g restores what the listing shows; the files metadata
			// says what there should be.
			for tarName := range files.TarFileSets {
				key := partsPrefix(m.Name) + tarName
				if !slices.ContainsFunc(m.Parts, func(p basebackup.Part) bool { return p.Key == key }) {
					return fmt.Errorf("wal-g backup %s: %s, which its files_metadata.json lists, is missing from the repository: %w", m.Name, key, basebackup.ErrCorrupt)
				}
			}
		}
		if bf.files == nil && m.Incremental() {
			return fmt.Errorf("wal-g backup %s is a delta without files metadata (taken with WALG_WITHOUT_FILES_METADATA), so which of its files are pages cannot be told: restore its full backup %s instead", m.Name, m.ChainFull)
		}
		bs[i] = bf
	}
	// What each backup unpacks (GetFilesToUnwrap, GetBaseFilesToUnwrap).
	last := bs[len(bs)-1]
	if last.files != nil {
		// A backup wal-g took over the replication protocol names its
		// entries without the leading slash: global/pg_control.
		last.want = map[string]bool{controlEntry: true, controlEntry[1:]: true, labelEntry: true, tablespaceMapEntry: true}
		for f := range last.files {
			last.want[f] = true
		}
	}
	for k := len(bs) - 2; k >= 0; k-- {
		next := bs[k+1]
		bs[k].want = map[string]bool{}
		for f := range next.want {
			d, ok := next.files[f]
			switch {
			case !ok && (f == controlEntry || f == controlEntry[1:] || f == labelEntry || f == tablespaceMapEntry):
				continue // a utility file: the newest backup's own
			case !ok:
				// wal-g panics here (GetBaseFilesToUnwrap).
				return fmt.Errorf("wal-g backup %s: %w: its delta %s needs %s from it, and its files_metadata.json does not list the file", next.m.Name, basebackup.ErrCorrupt, bs[len(bs)-1].m.Name, f)
			case d.IsSkipped || d.IsIncremented:
				bs[k].want[f] = true
			}
		}
	}

	if !slices.ContainsFunc(newest.Parts, func(p basebackup.Part) bool { return p.Archive == archiveControl }) {
		return fmt.Errorf("wal-g backup %s is incomplete: it has no %spg_control.tar, which a restore puts in place last: %w", newest.Name, partsPrefix(newest.Name), basebackup.ErrCorrupt)
	}

	fd, err := basebackup.OpenForeignDest(newest, dest, opts)
	if err != nil {
		return err
	}
	defer func() { fd.Cleanup(err) }()
	if err := fd.LinkTablespaces(); err != nil {
		return err
	}
	mapped := false
	for _, t := range newest.Tablespaces {
		if filepath.Clean(fd.Tablespaces()[t.OID]) != filepath.Clean(t.Location) {
			mapped = true
		}
	}
	r := &restorer{fd: fd, opts: opts, mapped: mapped}
	for _, m := range chain {
		r.total += m.DataSize
	}
	for k, bf := range bs {
		isNewest := k == len(bs)-1
		var control []basebackup.Part
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(max(opts.Concurrency, 1))
		for _, p := range bf.m.Parts {
			switch {
			case p.Archive == archiveControl:
				control = append(control, p)
				continue
			case p.Archive == archiveLabel && !isNewest:
				continue
			}
			g.Go(func() error { return r.part(gctx, bf, p) })
		}
		if err := g.Wait(); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		if !isNewest {
			// Each file a later delta skipped or holds as pages must come
			// from here (wal-g would restore without it).
			for f := range bf.want {
				if !bf.found[f] {
					return fmt.Errorf("wal-g backup %s: %w: its partitions lack %s, which its delta %s needs", bf.m.Name, basebackup.ErrCorrupt, f, bs[k+1].m.Name)
				}
			}
		}
		if isNewest {
			for _, p := range control {
				if err := r.part(ctx, bf, p); err != nil {
					return err
				}
			}
		}
	}
	if opts.Log != nil {
		opts.Log.Info("wal-g backup unpacked", "backup", newest.Name, "backups", len(chain), "files", r.files.Load(), "increments", r.increments.Load())
	}
	return fd.Finish(newest, opts)
}

// restorer unpacks a chain's parts into one destination.
type restorer struct {
	fd                *basebackup.ForeignDest
	opts              basebackup.FetchOptions
	mapped            bool // tablespaces go elsewhere than their locations
	total             int64
	done              atomic.Int64
	files, increments atomic.Int64
}

// part downloads, decompresses (by the key's extension) and unpacks one
// tar partition of bf.
func (r *restorer) part(ctx context.Context, bf *backupFiles, p basebackup.Part) error {
	rc, err := r.opts.Store.Get(ctx, p.Key)
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("wal-g backup %s: %s is missing from the repository: %w", bf.m.Name, p.Key, basebackup.ErrCorrupt)
	}
	if err != nil {
		return fmt.Errorf("download %s: %w", p.Key, err)
	}
	defer rc.Close()
	// A failed download is the transfer's fault, not the partition's.
	download := &errReader{r: rc}
	failed := func(err error) error {
		var de *basebackup.DestError
		switch {
		case errors.As(err, &de):
			return err
		case download.err != nil:
			return fmt.Errorf("download %s: %w", p.Key, download.err)
		}
		return fmt.Errorf("%s: %w", p.Key, err)
	}
	codec, _ := compress.FromKey(p.Key)
	zr, err := codec.NewReader(download)
	if err != nil {
		return failed(fmt.Errorf("%w: %v", basebackup.ErrCorrupt, err))
	}
	defer zr.Close()
	if err := r.unpack(zr, bf); err != nil {
		return failed(err)
	}
	// The rest: tar padding and the compressed stream's end.
	if _, err := io.Copy(io.Discard, zr); err != nil {
		return failed(fmt.Errorf("%w: %v", basebackup.ErrCorrupt, err))
	}
	return nil
}

// errReader remembers the first error, other than io.EOF, of the reader it
// wraps.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

// unpack writes the entries of one tar partition of bf (FileTarInterpreter
// in tar_interpreter.go).
func (r *restorer) unpack(src io.Reader, bf *backupFiles) error {
	tr := tar.NewReader(src)
	lastReport := time.Now()
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %v", basebackup.ErrCorrupt, err)
		}
		rel := path.Clean(strings.TrimPrefix(hdr.Name, "/"))
		if hdr.Name == "/" {
			rel = "."
		}
		if oid, ok := strings.CutPrefix(rel, "pg_tblspc/"); ok && !strings.Contains(oid, "/") {
			// A tablespace's link, made from the spec (LinkTablespaces).
			continue
		}
		target, err := r.fd.Path(rel)
		if err != nil {
			return err
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o700); err != nil {
				return r.fd.WriteError(err)
			}
		case tar.TypeReg:
			if bf.want != nil && !bf.want[hdr.Name] {
				continue
			}
			if hdr.Name == tablespaceMapEntry && r.mapped {
				continue
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
				return r.fd.WriteError(err)
			}
			if d, ok := bf.files[hdr.Name]; ok && bf.m.Incremental() && d.IsIncremented {
				if err := r.applyIncrement(target, hdr.Name, tr); err != nil {
					return err
				}
				r.increments.Add(1)
			} else if err := r.fd.WriteFile(target, hdr, tr); err != nil {
				return err
			}
			r.files.Add(1)
			if bf.want != nil {
				bf.mu.Lock()
				if bf.found == nil {
					bf.found = map[string]bool{}
				}
				bf.found[hdr.Name] = true
				bf.mu.Unlock()
			}
			r.done.Add(hdr.Size)
		default:
			return fmt.Errorf("%w: entry %s has type %q, which wal-g never writes into a base backup", basebackup.ErrCorrupt, hdr.Name, hdr.Typeflag)
		}
		if r.opts.Progress != nil && time.Since(lastReport) > 200*time.Millisecond {
			lastReport = time.Now()
			r.opts.Progress(r.done.Load(), r.total)
		}
	}
}

// maxIncrementBlocks bounds an increment's block count before its block
// numbers are read: a 1 GiB relation segment has 131072 blocks, and a file
// that grew while wal-g read it a few more.
const maxIncrementBlocks = 1 << 20

// applyIncrement applies a delta's pages to the parent's copy of a file, as
// wal-g's ApplyFileIncrement (pagefile.go) does (see readIncrement): the
// file is cut or extended to its size and each page written at its block.
// The parent's copy must exist.
func (r *restorer) applyIncrement(target, name string, data io.Reader) error {
	var f *os.File
	err := readIncrement(data, name, func(size uint64) error {
		var err error
		f, err = os.OpenFile(target, os.O_RDWR, 0)
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: %s is an increment, and no backup before it in the chain holds the file", basebackup.ErrCorrupt, name)
		}
		if err != nil {
			return r.fd.WriteError(err)
		}
		if err := f.Truncate(int64(size)); err != nil {
			return r.fd.WriteError(err)
		}
		return nil
	}, func(blk uint32, page []byte) error {
		if _, err := f.WriteAt(page, int64(blk)*pageSize); err != nil {
			return r.fd.WriteError(err)
		}
		return nil
	})
	if f == nil {
		return err
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = r.fd.WriteError(cerr)
	}
	return err
}

// readIncrement reads the body of a delta's paged file as wal-g's
// ApplyFileIncrement does: 'w' 'i' '1' 0x55, the file's size (uint64,
// little-endian), the number N of pages (uint32), N block numbers (uint32
// each), then the N pages of 8192 bytes, and nothing after them. It calls
// start with the size, then page for each page.
func readIncrement(data io.Reader, name string, start func(size uint64) error, page func(blk uint32, b []byte) error) error {
	var head [16]byte
	if _, err := io.ReadFull(data, head[:]); err != nil {
		return fmt.Errorf("%w: %s: the increment's header is cut short", basebackup.ErrCorrupt, name)
	}
	if head[0] != 'w' || head[1] != 'i' || head[3] != 0x55 {
		return fmt.Errorf("%w: %s is marked incremented in files_metadata.json but does not start with wal-g's increment header", basebackup.ErrCorrupt, name)
	}
	if head[2] != '1' {
		return fmt.Errorf("%w: %s is an increment of version %q, and tusk reads wal-g's version 1", basebackup.ErrCorrupt, name, head[2])
	}
	size := binary.LittleEndian.Uint64(head[4:12])
	n := binary.LittleEndian.Uint32(head[12:16])
	if n > maxIncrementBlocks || size > 1<<40 {
		return fmt.Errorf("%w: %s: the increment claims %d pages of a %d-byte file", basebackup.ErrCorrupt, name, n, size)
	}
	blocks := make([]byte, 4*int(n))
	if _, err := io.ReadFull(data, blocks); err != nil {
		return fmt.Errorf("%w: %s: the increment's block numbers are cut short", basebackup.ErrCorrupt, name)
	}
	if err := start(size); err != nil {
		return err
	}
	buf := make([]byte, pageSize)
	for i := range int(n) {
		if _, err := io.ReadFull(data, buf); err != nil {
			return fmt.Errorf("%w: %s: the increment's pages are cut short", basebackup.ErrCorrupt, name)
		}
		if err := page(binary.LittleEndian.Uint32(blocks[4*i:]), buf); err != nil {
			return err
		}
	}
	if k, _ := data.Read(make([]byte, 1)); k > 0 {
		return fmt.Errorf("%w: %s: the increment has data after its last page", basebackup.ErrCorrupt, name)
	}
	return nil
}

// readSentinel reads and parses backup name's sentinel.
func readSentinel(ctx context.Context, st storage.Storage, name string) (Sentinel, *FilesMetadata, error) {
	b, err := readSmall(ctx, st, SentinelKey(name))
	if errors.Is(err, storage.ErrNotFound) {
		return Sentinel{}, nil, fmt.Errorf("backup %s: %w in the repository (see tusk backup-list)", name, basebackup.ErrNoBackup)
	}
	if err != nil {
		return Sentinel{}, nil, fmt.Errorf("read wal-g backup %s: %w", name, err)
	}
	s, files, err := parseSentinel(name, b)
	if err != nil {
		return s, nil, fmt.Errorf("wal-g backup %s: %w", name, err)
	}
	return s, files, nil
}

// readFilesMetadata reads backup name's files_metadata.json; a backup
// without one (older wal-g) has nil.
func readFilesMetadata(ctx context.Context, st storage.Storage, name string) (*FilesMetadata, error) {
	key := DataPrefix(name) + "files_metadata.json"
	b, err := readLimited(ctx, st, key, 1<<30)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read wal-g backup %s: %w", name, err)
	}
	var fm FilesMetadata
	if err := json.Unmarshal(b, &fm); err != nil {
		return nil, fmt.Errorf("wal-g backup %s: %w: %s is not valid JSON (%v)", name, basebackup.ErrCorrupt, key, err)
	}
	return &fm, nil
}

// codecOf names the codec of a part by its key's extension.
func codecOf(key string) string {
	c, _ := compress.FromKey(key)
	return c.Name()
}
