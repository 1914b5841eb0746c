package incremental

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/tusk-backup/tusk/wal"
)

// ErrChain marks a chain of backups that cannot be composed: a file that an
// incremental backup holds incrementally but its parent does not hold at
// all, backups out of order, a block no backup holds, a file listed in the
// newest manifest that its backup lacks.
var ErrChain = errors.New("the backup chain cannot be composed")

// Kind is how a backup holds a file.
type Kind int

const (
	// Full: the file's whole content.
	Full Kind = iota
	// Incremental: an INCREMENTAL.<name> file (see Reader).
	Incremental
)

func (k Kind) String() string {
	if k == Incremental {
		return "incremental"
	}
	return "full"
}

// ComposeOptions shape a Composer.
type ComposeOptions struct {
	// Path maps a file's path in the data directory (as the manifest names
	// it, without INCREMENTAL.: base/5/16384, pg_tblspc/16385/PG_17_.../5/16390)
	// to where it is written. Nil: filepath.Join(dest, path).
	Path func(path string) (string, error)
	// Strict makes Finish fail on a block that no backup of the chain holds
	// even when it lies beyond the end of the file's full copy. By default
	// such a block is left zero, as pg_combinebackup does: the server
	// extended the file without WAL-logging the new block (a relation
	// extended in bulk), so no summary and no backup mentions it; Result
	// lists these blocks.
	Strict bool
	// MaxOpenFiles bounds the files held open between backups (a file whose
	// older blocks are still to come); beyond it, a file is closed after each
	// write and opened again. 0 means 512.
	MaxOpenFiles int
	// Concurrency is how many rebuilt files Finish reads back at once to
	// checksum them (the newest backup's own files keep the checksums of its
	// manifest). 0 means 1.
	Concurrency int
	// ExactVM keeps every visibility map page as pg_combinebackup would,
	// even one that a newer backup's heap pages show to be stale (see vm.go);
	// by default such pages are zeroed.
	ExactVM bool
}

// Composer composes a chain of backups into one data directory as
// pg_combinebackup would, in one pass over each backup's files, newest backup
// first. Call StartBackup for each backup of the chain in turn, File for each
// of its files (in any order; concurrently for different files), then
// Finish. Every block of the result is written once: a file held fully by the
// newest backup is copied; one held incrementally gets its blocks from the
// newest backup that holds them, down to the full copy of an older backup; a
// file the newest manifest does not list is not written.
//
// Every File call of a backup must have returned before StartBackup starts
// the next one or Finish ends the chain.
//
// Memory: the newest manifest, one bit per block below the truncation length
// of each file being rebuilt (16 KiB for a 1 GiB segment), and a 256 KiB
// buffer per File call at work; no file is held in memory. Files are opened
// once and written with WriteAt, up to MaxOpenFiles at a time.
type Composer struct {
	dest   string
	opts   ComposeOptions
	newest *Manifest

	mu      sync.Mutex
	targets map[string]*target // by path, without INCREMENTAL.
	backups []*backupInfo      // newest first; the last is being streamed
	open    atomic.Int64       // files held open
	closed  bool

	vmMu sync.Mutex
	// heapSrc is, for each relation and each VM page's range of heap
	// blocks, the newest backup (lowest index) that supplied a heap block
	// in that range.
	heapSrc map[string]map[uint32]int
}

type backupInfo struct {
	name     string
	label    *label            // its backup_label, once seen
	checksum map[string]string // CRC32C of its full files, by path, from its manifest
}

// target is one file of the result.
type target struct {
	mu      sync.Mutex
	path    string
	entry   ManifestFile // the newest manifest's entry (named INCREMENTAL.x if incremental)
	kind    Kind         // how the newest backup holds it
	out     string       // where it is written
	f       *os.File
	created bool // out exists

	rel   string // relation files: the relation (base/5/16384), fork ("", "vm", ...) and segment
	fork  string
	seg   uint32
	isRel bool
	vmSrc []uint16 // rebuilt VM files: 1 + the index of the backup that supplied each block; 0 none

	// Per backup being streamed.
	seenIn   int   // index of the last backup that held a copy; -1 none
	seenKind Kind  // how that backup holds it
	size     int64 // that copy's size in bytes
	got      int64 // bytes of that copy received (over all pieces)
	inc      *incStream

	done     bool   // complete: no older backup is needed
	length   uint32 // result length in blocks (rebuilt files)
	tbl      uint32 // truncation block length of the newest incremental copy
	have     bitmap // blocks < tbl written from newer backups
	cur      bitmap // blocks < tbl written from the backup being streamed
	fullLen  uint32 // blocks of the full copy that ended the file (rebuilt files)
	mixed    bool   // some block came from an incremental copy
	sum      string // the result's CRC32C, when known without reading it back
	zeros    uint32 // blocks left zero
	firstGap uint32 // the first of them
	label    []byte // backup_label as written (newest copy)
}

// incStream parses an incremental copy fed in order, piece after piece.
type incStream struct {
	hdrBuf []byte
	hdr    *Header
}

// NewComposer returns a Composer writing into dest (an existing, empty
// folder) the chain whose newest backup has manifest newest.
func NewComposer(dest string, newest *Manifest, opts ComposeOptions) (*Composer, error) {
	if opts.MaxOpenFiles <= 0 {
		opts.MaxOpenFiles = 512
	}
	c := &Composer{dest: dest, opts: opts, newest: newest, targets: map[string]*target{}, heapSrc: map[string]map[uint32]int{}}
	for _, f := range newest.Files {
		p, inc := Split(f.Path)
		if _, dup := c.targets[p]; dup {
			return nil, fmt.Errorf("%w: the newest manifest lists %s twice", ErrManifest, p)
		}
		if err := checkRel(p); err != nil {
			return nil, err
		}
		t := newTarget(p, f, Full)
		if inc {
			t.kind = Incremental
		}
		c.targets[p] = t
	}
	return c, nil
}

func newTarget(path string, entry ManifestFile, kind Kind) *target {
	t := &target{path: path, entry: entry, kind: kind, seenIn: -1}
	t.rel, t.fork, t.seg, t.isRel = relFile(path)
	return t
}

// checkRel refuses a path that would leave the destination.
func checkRel(p string) error {
	if p == "" || filepath.IsAbs(p) || p != filepath.Clean(p) || p == ".." || strings.HasPrefix(p, "../") {
		return fmt.Errorf("%w: unsafe path %q", ErrManifest, p)
	}
	return nil
}

// StartBackup ends the backup being streamed (checking that it held every
// file it had to) and starts the next older one, name (for messages). The
// first call starts the newest backup. manifest, the backup's own manifest,
// may be nil; with it, a rebuilt file that turns out to be exactly the full
// copy of this backup (no block changed since) takes its checksum from it
// instead of being read back, as pg_combinebackup does.
func (c *Composer) StartBackup(name string, manifest *Manifest) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("compose: StartBackup after Finish or Close")
	}
	if len(c.backups) > 0 {
		if err := c.endBackup(); err != nil {
			return err
		}
	}
	b := &backupInfo{name: name}
	if manifest != nil && len(c.backups) > 0 {
		b.checksum = map[string]string{}
		for _, f := range manifest.Files {
			if _, inc := Split(f.Path); !inc && f.Algorithm == "CRC32C" {
				b.checksum[f.Path] = f.Checksum
			}
		}
	}
	c.backups = append(c.backups, b)
	return nil
}

// File writes what the backup being streamed holds of the file at path
// (without INCREMENTAL.; kind says how it is held): the bytes of r, which
// start at byte off of that copy, whose whole size is size. A copy may come
// in pieces (off > 0), in any order for a full copy, in order for an
// incremental one. When the backup's copy is not needed (the newest manifest
// does not list the file, or a newer backup completed it) File returns
// without reading r.
func (c *Composer) File(path string, kind Kind, off, size int64, r io.Reader) error {
	c.mu.Lock()
	if len(c.backups) == 0 || c.closed {
		c.mu.Unlock()
		return errors.New("compose: File outside a backup (call StartBackup first)")
	}
	k := len(c.backups) - 1
	b := c.backups[k]
	if path == "backup_label" {
		c.mu.Unlock()
		return c.backupLabel(k, b, kind, off, size, r)
	}
	t := c.targets[path]
	if t == nil && k == 0 && kind == Full {
		// The newest backup holds a file its manifest does not list:
		// keep it as it is.
		if err := checkRel(path); err != nil {
			c.mu.Unlock()
			return err
		}
		t = newTarget(path, ManifestFile{Path: path, Size: -1}, Full)
		c.targets[path] = t
	}
	c.mu.Unlock()
	if t == nil {
		if k == 0 {
			return fmt.Errorf("%w: backup %s holds %s incrementally, but its manifest does not list it", ErrChain, b.name, path)
		}
		return nil // dropped before the newest backup
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done && t.seenIn != k {
		return nil // a newer backup completed it
	}
	if err := t.begin(k, kind, off, size, b.name); err != nil {
		return err
	}
	if k == 0 && kind != t.kind {
		return fmt.Errorf("%w: backup %s holds %s as a %s file, its manifest lists it as %s", ErrChain, b.name, path, kind, t.entry.Path)
	}
	err := c.copyIn(t, k, kind, off, r)
	if err == nil && kind == Full && t.got == t.size && k == 0 {
		t.done = true // the newest backup's whole copy
	}
	if cerr := c.release(t, kind); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s in backup %s: %w", t.entryName(kind), b.name, err)
	}
	return nil
}

func (t *target) entryName(kind Kind) string {
	if kind == Incremental {
		return Name(t.path)
	}
	return t.path
}

// begin records that backup k holds (a piece of) a copy of t.
func (t *target) begin(k int, kind Kind, off, size int64, backup string) error {
	if t.seenIn != k {
		if kind == Incremental && off != 0 {
			return fmt.Errorf("%w: a piece of %s at byte %d in backup %s comes before its header: the pieces of an incremental file must come in order",
				ErrChain, Name(t.path), off, backup)
		}
		t.seenIn, t.seenKind, t.size, t.got, t.inc = k, kind, size, 0, nil
		if kind == Incremental {
			t.inc = &incStream{}
		}
		return nil
	}
	if kind != t.seenKind || size != t.size {
		return fmt.Errorf("%w: backup %s holds %s twice, or its pieces disagree", ErrChain, backup, t.path)
	}
	if kind == Incremental && off != t.got {
		return fmt.Errorf("%w: a piece of %s at byte %d in backup %s arrives after %d bytes: the pieces of an incremental file must come in order",
			ErrChain, Name(t.path), off, backup, t.got)
	}
	return nil
}

// copyIn reads r and writes the bytes that backup k must supply.
func (c *Composer) copyIn(t *target, k int, kind Kind, off int64, r io.Reader) error {
	if off < 0 || off > t.size {
		return fmt.Errorf("%w: piece at %d of a %d-byte file", ErrChain, off, t.size)
	}
	if k == 0 && kind == Full && t.f == nil {
		// Open (on the first piece, create) the file even if it is empty.
		if err := c.openOut(t, !t.created); err != nil {
			return err
		}
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	pos := off
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if pos+int64(n) > t.size {
				return fmt.Errorf("%w: more than the %d bytes recorded", ErrFormat, t.size)
			}
			if err := c.feed(t, k, kind, pos, buf[:n]); err != nil {
				return err
			}
			pos += int64(n)
			t.got += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// copyBufs hold the chunks copyIn reads: 256 KiB per File call at work.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// feed writes chunk p, found at byte pos of backup k's copy of t.
func (c *Composer) feed(t *target, k int, kind Kind, pos int64, p []byte) error {
	if kind == Full {
		if k == 0 {
			return c.writeAt(t, p, pos)
		}
		return c.writeBlocks(t, p, pos, func(i int64) (int64, bool) {
			if i >= int64(t.size/BlockSize) { // a trailing partial block is not a block
				return 0, false
			}
			return i, true
		})
	}
	s := t.inc
	if s.hdr == nil {
		need, err := headerNeed(s.hdrBuf, p, t.size)
		if err != nil {
			return err
		}
		take := min(need-len(s.hdrBuf), len(p))
		s.hdrBuf = append(s.hdrBuf, p[:take]...)
		p, pos = p[take:], pos+int64(take)
		if len(s.hdrBuf) < need {
			return nil
		}
		h, err := ReadHeaderSized(bytes.NewReader(s.hdrBuf), t.size)
		if err != nil {
			return err
		}
		s.hdr, s.hdrBuf = &h, nil
		if err := c.startIncremental(t, k, h); err != nil {
			return err
		}
		if len(p) == 0 {
			return nil
		}
	}
	hs := s.hdr.Size()
	return c.writeBlocks(t, p, pos-hs, func(i int64) (int64, bool) {
		return int64(s.hdr.Blocks[i]), true
	})
}

// headerNeed says how many bytes of an incremental file its header takes,
// padding included (from the block count once known, and the file's size),
// or 12 before the count is known.
func headerNeed(have, p []byte, size int64) (int, error) {
	if len(have)+len(p) < 12 {
		return 12, nil
	}
	var fixed [12]byte
	n := copy(fixed[:], have)
	copy(fixed[n:], p)
	count := int(binary.LittleEndian.Uint32(fixed[4:]))
	if binary.LittleEndian.Uint32(fixed[0:]) != Magic || count > SegmentBlocks {
		// ReadHeaderSized will say what is wrong.
		return 12, nil
	}
	padded := headerSize(count, true)
	if size == headerSize(count, false)+int64(count)*BlockSize {
		return int(headerSize(count, false)), nil
	}
	return int(padded), nil
}

// startIncremental sets t up from backup k's incremental header.
func (c *Composer) startIncremental(t *target, k int, h Header) error {
	if k > 0 {
		return nil
	}
	t.tbl, t.length = h.TruncationBlockLength, h.Length()
	t.have, t.cur = newBitmap(t.tbl), newBitmap(t.tbl)
	if t.isRel && t.fork == "vm" && !c.opts.ExactVM {
		t.vmSrc = make([]uint16, t.length)
	}
	if err := c.openOut(t, true); err != nil {
		return err
	}
	if err := t.f.Truncate(int64(t.length) * BlockSize); err != nil {
		return err
	}
	return nil
}

// writeBlocks writes the parts of chunk p (at byte pos of the copy's block
// data) whose blocks backup k must supply; dest maps the i-th block of the
// copy to its block number in the result.
func (c *Composer) writeBlocks(t *target, p []byte, pos int64, dest func(i int64) (int64, bool)) error {
	k := t.seenIn
	var runStart, runLen int // p[runStart:runStart+runLen] goes to runDest
	var runDest int64
	flush := func() error {
		if runLen == 0 {
			return nil
		}
		err := c.writeAt(t, p[runStart:runStart+runLen], runDest)
		runLen = 0
		return err
	}
	for at := 0; at < len(p); {
		i := (pos + int64(at)) / BlockSize
		within := (pos + int64(at)) % BlockSize
		n := int(min(int64(len(p)-at), BlockSize-within))
		b, ok := dest(i)
		if ok {
			ok = c.wanted(t, k, b)
		}
		if !ok {
			if err := flush(); err != nil {
				return err
			}
			at += n
			continue
		}
		d := b*BlockSize + within
		if runLen > 0 && runDest+int64(runLen) == d && runStart+runLen == at {
			runLen += n
		} else {
			if err := flush(); err != nil {
				return err
			}
			runStart, runLen, runDest = at, n, d
		}
		at += n
	}
	return flush()
}

// wanted reports whether backup k supplies block b of t, and marks it.
func (c *Composer) wanted(t *target, k int, b int64) bool {
	if k > 0 && (b >= int64(t.tbl) || t.have.get(uint32(b))) {
		return false
	}
	// The newest copy's blocks all count; an older copy's fill gaps.
	if b < int64(t.tbl) {
		t.cur.set(uint32(b))
	}
	if t.seenKind == Incremental {
		t.mixed = true
	}
	return true
}

func (c *Composer) writeAt(t *target, p []byte, off int64) error {
	if t.f == nil {
		if err := c.openOut(t, false); err != nil {
			return err
		}
	}
	if _, err := t.f.WriteAt(p, off); err != nil {
		return err
	}
	if len(p) > 0 && t.isRel && !c.opts.ExactVM {
		c.noteSource(t, off/BlockSize, (off+int64(len(p))-1)/BlockSize)
	}
	return nil
}

// noteSource records that the backup being streamed supplied blocks first
// to last of t: for a heap file, under which VM pages; for a rebuilt VM
// file, which of its pages.
func (c *Composer) noteSource(t *target, first, last int64) {
	k := t.seenIn
	switch {
	case t.fork == "vm" && t.vmSrc != nil:
		for b := first; b <= last && b < int64(len(t.vmSrc)); b++ {
			t.vmSrc[b] = uint16(min(k+1, 1<<16-1))
		}
	case t.fork == "":
		base := int64(t.seg) * SegmentBlocks
		c.vmMu.Lock()
		pages := c.heapSrc[t.rel]
		if pages == nil {
			pages = map[uint32]int{}
			c.heapSrc[t.rel] = pages
		}
		for pg := (base + first) / heapBlocksPerVMPage; pg <= (base+last)/heapBlocksPerVMPage; pg++ {
			if old, ok := pages[uint32(pg)]; !ok || k < old {
				pages[uint32(pg)] = k
			}
		}
		c.vmMu.Unlock()
	}
}

// clearStaleVM zeroes the pages of rebuilt VM files that came from an older
// backup than a heap page they cover (see vm.go), and returns how many.
func (c *Composer) clearStaleVM() (int, error) {
	zero := make([]byte, BlockSize)
	n := 0
	for _, t := range c.sortedTargets() {
		if t.vmSrc == nil {
			continue
		}
		pages := c.heapSrc[t.rel]
		var stale []int64
		for b, src := range t.vmSrc {
			abs := uint32(int64(t.seg)*SegmentBlocks + int64(b))
			if heap, ok := pages[abs]; ok && src > 0 && heap < int(src)-1 {
				stale = append(stale, int64(b))
			}
		}
		if len(stale) == 0 {
			continue
		}
		if err := c.openOut(t, false); err != nil {
			return n, err
		}
		for _, b := range stale {
			if _, err := t.f.WriteAt(zero, b*BlockSize); err != nil {
				return n, err
			}
		}
		if err := c.closeFile(t); err != nil {
			return n, err
		}
		t.sum = "" // read it back
		n += len(stale)
	}
	return n, nil
}

// openOut opens t's output file, creating it (it must not exist) when
// create is set.
func (c *Composer) openOut(t *target, create bool) error {
	if t.out == "" {
		out := filepath.Join(c.dest, filepath.FromSlash(t.path))
		if c.opts.Path != nil {
			var err error
			if out, err = c.opts.Path(t.path); err != nil {
				return err
			}
		}
		t.out = out
	}
	if t.f != nil {
		return nil
	}
	flags := os.O_WRONLY
	if create {
		if err := os.MkdirAll(filepath.Dir(t.out), 0o700); err != nil {
			return err
		}
		flags |= os.O_CREATE | os.O_EXCL
	}
	f, err := os.OpenFile(t.out, flags, 0o600)
	if err != nil {
		return err
	}
	t.f, t.created = f, true
	c.open.Add(1)
	return nil
}

// release closes t's file when t is complete, when a full copy of an older
// backup has been read (nothing older is needed), or when too many are open.
func (c *Composer) release(t *target, kind Kind) error {
	if t.f == nil {
		return nil
	}
	if t.done || (kind == Full && t.got == t.size) || c.open.Load() > int64(c.opts.MaxOpenFiles) {
		return c.closeFile(t)
	}
	return nil
}

func (c *Composer) closeFile(t *target) error {
	if t.f == nil {
		return nil
	}
	err := t.f.Close()
	t.f = nil
	c.open.Add(-1)
	return err
}

// endBackup checks the backup being streamed and folds what it supplied
// into the files' state. Called with c.mu held.
func (c *Composer) endBackup() error {
	k := len(c.backups) - 1
	b := c.backups[k]
	if b.label == nil {
		return fmt.Errorf("%w: backup %s holds no backup_label", ErrChain, b.name)
	}
	if k > 0 {
		newer := c.backups[k-1]
		if !newer.label.incremental {
			return fmt.Errorf("%w: backup %s is a full backup, yet %s follows it in the chain", ErrChain, newer.name, b.name)
		}
		if newer.label.fromLSN != b.label.start || newer.label.fromTLI != b.label.tli {
			return fmt.Errorf("%w: backup %s is incremental from %s on timeline %d, but %s, its parent in the chain, starts at %s on timeline %d",
				ErrChain, newer.name, newer.label.fromLSN, newer.label.fromTLI, b.name, b.label.start, b.label.tli)
		}
	}
	var errs []error
	for _, t := range c.sortedTargets() {
		t.mu.Lock()
		err := c.endTarget(t, k, b.name)
		t.mu.Unlock()
		if err != nil {
			errs = append(errs, err)
			if len(errs) == 10 {
				break
			}
		}
	}
	return errors.Join(errs...)
}

func (c *Composer) endTarget(t *target, k int, backup string) error {
	if t.done && t.seenIn != k {
		return nil
	}
	if t.seenIn != k {
		if k == 0 {
			return fmt.Errorf("%w: %s, listed in the manifest of backup %s, is not in the backup", ErrChain, t.entry.Path, backup)
		}
		return fmt.Errorf("%w: backup %s holds %s incrementally, but %s, its parent, holds no copy of it",
			ErrChain, c.backups[k-1].name, t.path, backup)
	}
	if t.got != t.size {
		return fmt.Errorf("%w: backup %s holds %d of the %d bytes of %s", ErrChain, backup, t.got, t.size, t.entryName(t.seenKind))
	}
	if t.seenKind == Incremental && t.inc.hdr == nil {
		return fmt.Errorf("%s in backup %s: %w: the file ends within its header", Name(t.path), backup, ErrFormat)
	}
	if k == 0 && t.seenKind == Full {
		t.done = true
		return c.closeFile(t)
	}
	t.have.or(t.cur)
	clear(t.cur)
	if t.seenKind == Incremental {
		return nil
	}
	// A full copy ends the file: whatever is still missing lies beyond
	// that copy's end.
	t.done = true
	t.fullLen = uint32(min(t.size/BlockSize, SegmentBlocks))
	if !t.mixed && t.size == int64(t.length)*BlockSize {
		t.sum = c.backups[k].checksum[t.path] // "" when unknown
	}
	if gap, n := t.have.missing(t.tbl); n > 0 {
		t.zeros, t.firstGap = n, gap
		if c.opts.Strict {
			return fmt.Errorf("%w: block %d of %s is in no backup of the chain (backup %s holds %d blocks of it, and no newer backup holds the rest; %d blocks are missing)",
				ErrChain, gap, t.path, backup, t.fullLen, n)
		}
	}
	t.have, t.cur = nil, nil
	return c.closeFile(t)
}

func (c *Composer) sortedTargets() []*target {
	ts := make([]*target, 0, len(c.targets))
	for _, t := range c.targets {
		ts = append(ts, t)
	}
	slices.SortFunc(ts, func(a, b *target) int { return strings.Compare(a.path, b.path) })
	return ts
}

// ZeroFill is a file of which some blocks below its truncation length are
// in no backup of the chain and were left zero, as pg_combinebackup leaves
// them (see ComposeOptions.Strict).
type ZeroFill struct {
	Path   string
	First  uint32 // the first such block
	Blocks uint32 // how many
}

// Result is what Finish made.
type Result struct {
	// Manifest is the combined manifest, as pg_combinebackup writes it:
	// every file of the newest manifest under its own name, rebuilt files
	// with their new size and CRC32C, the newest backup's WAL ranges.
	Manifest *Manifest
	// Rebuilt counts the files composed from more than one backup.
	Rebuilt int
	// ZeroFilled lists the files with blocks left zero.
	ZeroFilled []ZeroFill
	// VMPagesZeroed counts the visibility map pages zeroed because a newer
	// backup's heap pages show them stale (see ComposeOptions.ExactVM).
	VMPagesZeroed int
}

// Finish ends the last backup of the chain, checks that every file is
// complete, computes the checksums of the rebuilt files (reading them back)
// and returns the combined manifest. It fails with ErrChain when any block
// a file needs is in no backup of the chain.
func (c *Composer) Finish() (*Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errors.New("compose: Finish after Finish or Close")
	}
	if len(c.backups) == 0 {
		return nil, errors.New("compose: Finish before any backup")
	}
	defer c.closeAll()
	if err := c.endBackup(); err != nil {
		return nil, err
	}
	if oldest := c.backups[len(c.backups)-1]; oldest.label.incremental {
		return nil, fmt.Errorf("%w: the chain ends with backup %s, which is incremental (from %s): its parent is missing",
			ErrChain, oldest.name, oldest.label.fromLSN)
	}
	res := &Result{Manifest: &Manifest{Version: 2, SystemID: c.newest.SystemID, WALRanges: c.newest.WALRanges}}
	var err error
	if res.VMPagesZeroed, err = c.clearStaleVM(); err != nil {
		return nil, fmt.Errorf("clear stale visibility map pages: %w", err)
	}
	if c.newest.Version < 2 {
		res.Manifest.Version = c.newest.Version
	}
	files := slices.Clone(c.newest.Files)
	for _, t := range c.sortedTargets() {
		if t.entry.Size < 0 {
			// Held by the newest backup but not listed in its manifest.
			files = append(files, ManifestFile{Path: t.path, Size: t.size, LastModified: c.newestTime()})
		}
	}
	sumsOf := make([]string, 0, len(files)) // files to read back for their checksum
	for _, f := range files {
		p, _ := Split(f.Path)
		t := c.targets[p]
		if err := c.closeFile(t); err != nil {
			return nil, err
		}
		if !t.done {
			if gap, n := t.have.missing(t.tbl); n > 0 {
				return nil, fmt.Errorf("%w: block %d of %s is in no backup of the chain (the oldest, %s, holds the file only incrementally; %d blocks are missing)",
					ErrChain, gap, p, c.backups[len(c.backups)-1].name, n)
			}
			t.done = true
		}
		mf := ManifestFile{Path: p, Size: f.Size, LastModified: f.LastModified, Algorithm: f.Algorithm, Checksum: f.Checksum}
		sumOf := ""
		switch {
		case t.label != nil:
			mf.Size, mf.Algorithm, mf.Checksum = int64(len(t.label)), "CRC32C", crcHex(crc32.Checksum(t.label, castagnoli))
		case t.kind == Incremental:
			res.Rebuilt++
			mf.Size = int64(t.length) * BlockSize
			if t.sum != "" {
				mf.Algorithm, mf.Checksum = "CRC32C", t.sum
			} else {
				sumOf = t.out
			}
		case f.Algorithm != "CRC32C":
			sumOf = t.out
		}
		if t.zeros > 0 {
			res.ZeroFilled = append(res.ZeroFilled, ZeroFill{Path: p, First: t.firstGap, Blocks: t.zeros})
		}
		res.Manifest.Files = append(res.Manifest.Files, mf)
		sumsOf = append(sumsOf, sumOf)
	}
	// The rebuilt files are read back for their checksums, a few at once.
	var g errgroup.Group
	g.SetLimit(max(c.opts.Concurrency, 1))
	for i, path := range sumsOf {
		if path == "" {
			continue
		}
		mf := &res.Manifest.Files[i]
		g.Go(func() error {
			sum, err := fileCRC(path, mf.Size)
			mf.Algorithm, mf.Checksum = "CRC32C", sum
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("checksum the composed files: %w", err)
	}
	return res, nil
}

// newestTime is a Last-Modified for a file the manifest does not list:
// that of the newest manifest's backup_label, or of its first file.
func (c *Composer) newestTime() string {
	for _, f := range c.newest.Files {
		if f.Path == "backup_label" {
			return f.LastModified
		}
	}
	if len(c.newest.Files) > 0 {
		return c.newest.Files[0].LastModified
	}
	return ""
}

// Close releases the files still open, after a failure; Finish does it
// itself.
func (c *Composer) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeAll()
}

func (c *Composer) closeAll() error {
	c.closed = true
	var errs []error
	for _, t := range c.targets {
		errs = append(errs, c.closeFile(t))
	}
	return errors.Join(errs...)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crcHex writes a CRC32C as a manifest does: its bytes little-endian, in hex.
func crcHex(crc uint32) string {
	var le [4]byte
	binary.LittleEndian.PutUint32(le[:], crc)
	return hex.EncodeToString(le[:])
}

func fileCRC(path string, size int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := crc32.New(castagnoli)
	n, err := io.Copy(h, bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return "", err
	}
	if n != size {
		return "", fmt.Errorf("%s holds %d bytes, %d were written", path, n, size)
	}
	return crcHex(h.Sum32()), nil
}

// backupLabel records backup k's backup_label and, for the newest backup,
// writes it without its INCREMENTAL FROM lines, as pg_combinebackup does.
func (c *Composer) backupLabel(k int, b *backupInfo, kind Kind, off, size int64, r io.Reader) error {
	if kind != Full || off != 0 || size > 1<<20 {
		return fmt.Errorf("%w: backup %s holds a backup_label in pieces or incrementally", ErrChain, b.name)
	}
	raw, err := io.ReadAll(io.LimitReader(r, size+1))
	if err != nil {
		return fmt.Errorf("backup_label in backup %s: %w", b.name, err)
	}
	if int64(len(raw)) != size {
		return fmt.Errorf("%w: backup_label in backup %s holds %d bytes, not %d", ErrChain, b.name, len(raw), size)
	}
	l, err := parseLabel(raw)
	if err != nil {
		return fmt.Errorf("backup_label in backup %s: %w", b.name, err)
	}
	c.mu.Lock()
	b.label = l
	t := c.targets["backup_label"]
	if k == 0 && t == nil {
		t = newTarget("backup_label", ManifestFile{Path: "backup_label", Size: -1}, Full)
		c.targets[t.path] = t
	}
	c.mu.Unlock()
	if k > 0 {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.seenIn == 0 {
		return fmt.Errorf("%w: backup %s holds backup_label twice", ErrChain, b.name)
	}
	t.done = true
	t.seenIn, t.seenKind, t.size, t.got = 0, Full, size, size
	t.label = l.combined
	if err := c.openOut(t, true); err != nil {
		return err
	}
	_, err = t.f.Write(t.label)
	if cerr := c.closeFile(t); err == nil {
		err = cerr
	}
	return err
}

// label is what a backup_label says about the chain.
type label struct {
	start       wal.LSN
	tli         uint32
	incremental bool
	fromLSN     wal.LSN
	fromTLI     uint32
	combined    []byte // the label without INCREMENTAL FROM lines
}

func parseLabel(raw []byte) (*label, error) {
	l := &label{}
	var found int
	for _, line := range bytes.SplitAfter(raw, []byte("\n")) {
		s := string(line)
		switch {
		case strings.HasPrefix(s, "START WAL LOCATION: "):
			lsn, _, _ := strings.Cut(strings.TrimPrefix(s, "START WAL LOCATION: "), " ")
			v, err := wal.ParseLSN(lsn)
			if err != nil {
				return nil, fmt.Errorf("%w: START WAL LOCATION: %v", ErrFormat, err)
			}
			l.start, found = v, found|1
		case strings.HasPrefix(s, "START TIMELINE: "):
			if _, err := fmt.Sscanf(s, "START TIMELINE: %d\n", &l.tli); err != nil {
				return nil, fmt.Errorf("%w: START TIMELINE: %v", ErrFormat, err)
			}
			found |= 2
		case strings.HasPrefix(s, "INCREMENTAL FROM LSN: "):
			v, err := wal.ParseLSN(strings.TrimSpace(strings.TrimPrefix(s, "INCREMENTAL FROM LSN: ")))
			if err != nil {
				return nil, fmt.Errorf("%w: INCREMENTAL FROM LSN: %v", ErrFormat, err)
			}
			l.fromLSN, found = v, found|4
			continue
		case strings.HasPrefix(s, "INCREMENTAL FROM TLI: "):
			if _, err := fmt.Sscanf(s, "INCREMENTAL FROM TLI: %d\n", &l.fromTLI); err != nil {
				return nil, fmt.Errorf("%w: INCREMENTAL FROM TLI: %v", ErrFormat, err)
			}
			found |= 8
			continue
		}
		l.combined = append(l.combined, line...)
	}
	switch {
	case found&3 != 3:
		return nil, fmt.Errorf("%w: no START WAL LOCATION or START TIMELINE", ErrFormat)
	case found&12 == 4 || found&12 == 8:
		return nil, fmt.Errorf("%w: INCREMENTAL FROM LSN and INCREMENTAL FROM TLI come together", ErrFormat)
	}
	l.incremental = found&12 == 12
	return l, nil
}

// bitmap is one bit per block.
type bitmap []uint64

func newBitmap(n uint32) bitmap { return make(bitmap, (n+63)/64) }

func (m bitmap) set(b uint32)      { m[b/64] |= 1 << (b % 64) }
func (m bitmap) get(b uint32) bool { return m[b/64]&(1<<(b%64)) != 0 }

func (m bitmap) or(o bitmap) {
	for i := range o {
		m[i] |= o[i]
	}
}

// missing returns the first block below n whose bit is clear and how many
// are clear.
func (m bitmap) missing(n uint32) (first, count uint32) {
	first = n
	for i, w := range m {
		lo := uint32(i) * 64
		if lo >= n {
			break
		}
		valid := ^uint64(0)
		if n-lo < 64 {
			valid = 1<<(n-lo) - 1
		}
		holes := ^w & valid
		if holes == 0 {
			continue
		}
		if first == n {
			first = lo + uint32(bits.TrailingZeros64(holes))
		}
		count += uint32(bits.OnesCount64(holes))
	}
	return first, count
}
