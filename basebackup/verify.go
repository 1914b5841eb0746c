package basebackup

import (
	"archive/tar"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/tusk-backup/tusk/incremental"
	"github.com/tusk-backup/tusk/storage"
)

// VerifyOptions say how to verify a backup.
type VerifyOptions struct {
	Store       storage.Storage
	Concurrency int // parts read at once
	// Deep also checks every file against PostgreSQL's backup manifest
	// (size and CRC32C), and the manifest's own checksum.
	Deep bool
	// Progress, if set, hears of bytes read (of the uncompressed total).
	Progress func(done, total int64)
}

// Problem is one thing wrong with a backup, named by its object.
type Problem struct {
	Object string `json:"object"`
	Error  string `json:"error"`
}

// Verify reads every part of backup m as a restore would, without writing
// anything: each part must be present with its recorded size and checksum,
// decompress, and hold only tar entries a restore accepts. With Deep, every
// file the manifest lists must be in the backup with its size and CRC32C.
// It returns every problem found (storage failures other than a missing
// object stop it with an error).
func Verify(ctx context.Context, m Meta, opts VerifyOptions) ([]Problem, error) {
	if err := m.NeedsKey(); err != nil {
		return nil, err
	}
	var mu sync.Mutex
	var problems []Problem
	report := func(object string, err error) {
		mu.Lock()
		problems = append(problems, Problem{Object: object, Error: strings.TrimPrefix(err.Error(), object+": ")})
		mu.Unlock()
	}
	spaces := map[string]string{}
	for _, s := range m.Tablespaces {
		spaces[s.OID] = "/verify/" + s.OID // any absolute folder: nothing is written
	}
	files := &fileSums{files: map[string]*fileSum{}, seen: map[string]bool{}}
	var total, done atomic.Int64
	for _, p := range m.Parts {
		total.Add(p.RawSize)
	}
	var manifest []byte
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(opts.Concurrency, 1))
	for _, p := range m.Parts {
		if _, ok := spaces[p.Archive]; !ok && p.Archive != "base" {
			report(p.Key, fmt.Errorf("%w: the part belongs to tablespace %s, which the metadata does not list", ErrCorrupt, p.Archive))
			continue
		}
		g.Go(func() error {
			err := fetchPart(gctx, opts.Store, p, func(r io.Reader) error {
				return scan(r, p, spaces, files, opts.Deep, &done, opts.Progress, total.Load())
			})
			return sortOut(gctx, p.Key, err, report)
		})
	}
	if m.Manifest.Key != "" {
		g.Go(func() error {
			err := fetchPart(gctx, opts.Store, m.Manifest, func(r io.Reader) error {
				b, err := io.ReadAll(io.LimitReader(r, 1<<30))
				manifest = b
				return err
			})
			return sortOut(gctx, m.Manifest.Key, err, report)
		})
	} else if opts.Deep {
		report(MetaKey(m.Name), errors.New("the metadata records no backup manifest, so files cannot be checked against it"))
	}
	if err := g.Wait(); err != nil {
		return problems, err
	}
	if opts.Deep && manifest != nil {
		for _, pr := range checkManifest(manifest, files, m.SystemID) {
			report(m.Manifest.Key, pr)
		}
	}
	// Every part read, and yet the files a restore must have are not
	// there: the parts list is short.
	if len(problems) == 0 {
		for _, f := range restoreNeeds {
			if !files.seen[f] {
				report(MetaKey(m.Name), fmt.Errorf("the backup's parts hold no %s, so a restore could not start", f))
			}
		}
	}
	slices.SortStableFunc(problems, func(a, b Problem) int { return strings.Compare(a.Object, b.Object) })
	return problems, nil
}

// sortOut turns a part's error into a problem (the part is missing or
// corrupt) or returns it (the storage failed, or ctx ended).
func sortOut(ctx context.Context, key string, err error, report func(string, error)) error {
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, ErrCorrupt):
		report(key, err)
		return nil
	}
	return err
}

// scan reads one part's tar entries as unpack does (eachEntry), writing
// nothing.
func scan(r io.Reader, p Part, spaces map[string]string, files *fileSums, deep bool, done *atomic.Int64, progress func(int64, int64), total int64) error {
	prefix := ""
	if p.Archive != "base" {
		prefix = "pg_tblspc/" + p.Archive + "/"
	}
	return eachEntry(r, "/verify", p, spaces, func(e tarEntry) error {
		if e.data == nil {
			return nil
		}
		h := crc32.New(castagnoli)
		var w io.Writer = io.Discard
		if deep {
			w = h
		}
		n, err := io.Copy(w, e.data)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrCorrupt, e.hdr.Name, err)
		}
		done.Add(n)
		if p.Archive == "base" && slices.Contains(restoreNeeds, path.Clean(e.hdr.Name)) {
			files.mu.Lock()
			files.seen[path.Clean(e.hdr.Name)] = true
			files.mu.Unlock()
		}
		if deep {
			if err := files.add(prefix+path.Clean(e.hdr.Name), e.hdr, n, h.Sum32()); err != nil {
				return err
			}
		}
		if progress != nil {
			progress(done.Load(), total)
		}
		return nil
	})
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// fileSums collects each file's CRC32C, from pieces when a file was split
// across parts.
type fileSums struct {
	mu    sync.Mutex
	files map[string]*fileSum
	seen  map[string]bool // which of restoreNeeds the base archive holds
}

// restoreNeeds are the files without which a restored data directory
// cannot start.
var restoreNeeds = []string{"global/pg_control", "backup_label"}

type fileSum struct {
	size   int64 // the whole file's size
	pieces []piece
}

type piece struct {
	off, n int64
	crc    uint32
}

func (f *fileSums) add(name string, hdr *tar.Header, n int64, crc uint32) error {
	size, off := n, int64(0)
	if s, ok := hdr.PAXRecords[paxOffset]; ok {
		var err1, err2 error
		off, err1 = strconv.ParseInt(s, 10, 64)
		size, err2 = strconv.ParseInt(hdr.PAXRecords[paxSize], 10, 64)
		if err1 != nil || err2 != nil || off < 0 || size < off+n {
			return fmt.Errorf("%w: piece of %s has a bad offset or size", ErrCorrupt, hdr.Name)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	fs := f.files[name]
	if fs == nil {
		fs = &fileSum{size: size}
		f.files[name] = fs
	}
	fs.pieces = append(fs.pieces, piece{off, n, crc})
	return nil
}

// sum combines the pieces in order; ok is false when they do not cover the
// file exactly once.
func (fs *fileSum) sum() (crc uint32, ok bool) {
	slices.SortFunc(fs.pieces, func(a, b piece) int { return int(a.off - b.off) })
	var at int64
	for i, p := range fs.pieces {
		if p.off != at {
			return 0, false
		}
		if i == 0 {
			crc = p.crc
		} else {
			crc = crc32cCombine(crc, p.crc, p.n)
		}
		at += p.n
	}
	return crc, at == fs.size
}

// checkManifest compares the files with the manifest (which must carry its
// own valid SHA-256) and returns one error per difference. A version 2
// manifest (PostgreSQL 17) also names its cluster, which must be systemID
// (the metadata's), as pg_verifybackup checks it against pg_control.
func checkManifest(b []byte, files *fileSums, systemID string) []error {
	man, err := incremental.ParseManifest(b)
	if err != nil {
		return []error{err}
	}
	var errs []error
	if man.Version >= 2 && systemID != "" && strconv.FormatUint(man.SystemID, 10) != systemID {
		errs = append(errs, fmt.Errorf("the backup manifest is of cluster %d (its System-Identifier), the metadata of cluster %s", man.SystemID, systemID))
	}
	for _, mf := range man.Files {
		fs := files.files[mf.Path]
		if fs == nil {
			errs = append(errs, fmt.Errorf("file %s, listed in the backup manifest, is not in the backup", mf.Path))
			continue
		}
		crc, ok := fs.sum()
		if !ok || fs.size != mf.Size {
			errs = append(errs, fmt.Errorf("file %s holds %d bytes in the backup, the manifest lists %d", mf.Path, fs.size, mf.Size))
			continue
		}
		if mf.Algorithm != "CRC32C" {
			continue // only CRC32C is requested by backup-push
		}
		var le [4]byte
		binary.LittleEndian.PutUint32(le[:], crc)
		if got := hex.EncodeToString(le[:]); got != mf.Checksum {
			errs = append(errs, fmt.Errorf("file %s has CRC32C %s in the backup, the manifest lists %s", mf.Path, got, mf.Checksum))
		}
	}
	return errs
}

// crc32cCombine returns the CRC32C of A followed by B from crcA, crcB and
// B's length: crcA times x^(8·lenB), plus crcB, modulo the polynomial
// (zlib's crc32_combine as of 1.2.12, for Castagnoli's). It costs one
// multiplication per set bit of lenB, and backup-push calls it for every
// piece it copies.
func crc32cCombine(crcA, crcB uint32, lenB int64) uint32 {
	if lenB <= 0 || crcA == 0 {
		return crcA ^ crcB
	}
	return gf2MulModP(x8nModP(lenB), crcA) ^ crcB
}

// crc32cPoly is Castagnoli's polynomial, bit-reversed as crc32 uses it.
const crc32cPoly = 0x82f63b78

// gf2MulModP returns a(x)·b(x) modulo the polynomial, both bit-reversed
// (x^0 is the top bit).
func gf2MulModP(a, b uint32) uint32 {
	var p uint32
	for m := uint32(1) << 31; m != 0 && a != 0; m >>= 1 {
		if a&m != 0 {
			p ^= b
			a &^= m
		}
		if b&1 != 0 {
			b = b>>1 ^ crc32cPoly
		} else {
			b >>= 1
		}
	}
	return p
}

// x2kModP[k] is x^(2^k) modulo the polynomial.
var x2kModP = func() (t [64]uint32) {
	p := uint32(1) << 30 // x^1
	for k := range t {
		t[k] = p
		p = gf2MulModP(p, p)
	}
	return t
}()

// x8nModP returns x^(8·n) modulo the polynomial: n zero bytes' worth.
func x8nModP(n int64) uint32 {
	p := uint32(1) << 31 // x^0
	for k := 3; n != 0; n, k = n>>1, k+1 {
		if n&1 != 0 {
			p = gf2MulModP(x2kModP[k], p)
		}
	}
	return p
}
