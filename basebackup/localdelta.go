package basebackup

import (
	"archive/tar"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/tusk-backup/tusk/incremental"
	"github.com/tusk-backup/tusk/wal"
)

// Incremental backups in local mode.
//
// PostgreSQL 17's BASE_BACKUP INCREMENTAL finds the blocks to send in its
// WAL summaries; older servers keep none. Local mode reads every page
// anyway, so it finds them by page LSN, as wal-g's delta backups do: a
// relation file is stored as PostgreSQL 17's INCREMENTAL.<file> holding the
// pages whose LSN (pd_lsn, the page header's first 8 bytes) is at or after
// the parent backup's start, with the file's length in blocks as its
// truncation block length. The backup_label gets PostgreSQL 17's
// INCREMENTAL FROM LSN and TLI lines naming the parent's start. So the
// chain is the one remote mode's incrementals make, and restore, list,
// retention and verify read it as they read those.
//
// Why that is enough: every WAL-logged change of a page sets its LSN to the
// change's record, so a page changed since the parent began has an LSN at
// or after the parent's start; a page changed after this backup's own
// start, possibly torn as read, is rewritten by WAL replay from a full-page
// image (full_page_writes is forced during a backup). What is not WAL-logged
// escapes the rule as it escapes WAL summaries, and is handled as
// PostgreSQL handles it: the free space map is stored whole; a cleared
// visibility map bit (the VM page keeps its LSN) is caught by the composer,
// which zeroes a VM page older than a heap page it covers (incremental/vm.go);
// and a new page (pd_upper 0: extended, never written, LSN 0) is stored
// too, since the parent may hold something else at that block (a relation
// truncated and extended again since).

// deltaParent is what a local incremental needs of its parent.
type deltaParent struct {
	from  wal.LSN         // the parent's start
	tli   uint32          // and its timeline
	files map[string]bool // the paths the parent's manifest lists (INCREMENTAL. stripped)
}

// pageNeeded reports whether an incremental backup on a parent that started
// at from stores the page whose header is hdr (at least its first 16
// bytes): its LSN is at or after from, or it is a new page (pd_upper 0,
// PageIsNew), which has no LSN to tell.
func pageNeeded(hdr []byte, from wal.LSN) bool {
	lsn := wal.LSN(uint64(binary.LittleEndian.Uint32(hdr[0:]))<<32 | uint64(binary.LittleEndian.Uint32(hdr[4:])))
	return lsn >= from || binary.LittleEndian.Uint16(hdr[14:]) == 0
}

// storeWhole reports whether a relation file is stored whole rather than
// incrementally, by PostgreSQL 17's rules (GetFileBackupMethod): a free
// space map (not WAL-logged), a file the parent does not hold, an empty
// one, one whose size is not a whole number of blocks or more than a
// segment, or one of which more than 90% of the blocks (changed of blocks)
// would be stored anyway.
func storeWhole(fork string, inParent bool, size int64, changed int) bool {
	blocks := size / pageSize
	return fork == "fsm" || !inParent || size == 0 || size%pageSize != 0 ||
		blocks > incremental.SegmentBlocks || int64(changed)*10 > blocks*9
}

// incrementalLabel adds the INCREMENTAL FROM lines to label, as PostgreSQL
// 17's build_backup_content writes them, last.
func incrementalLabel(label string, from wal.LSN, tli uint32) string {
	if label != "" && label[len(label)-1] != '\n' {
		label += "\n"
	}
	return label + fmt.Sprintf("INCREMENTAL FROM LSN: %X/%X\nINCREMENTAL FROM TLI: %d\n", uint64(from)>>32, uint32(from), tli)
}

// onHistory says why a backup starting on timeline tli, whose ancestry is
// anc, cannot be incremental on a parent that started at from on timeline
// parentTLI: page LSNs compare only along one history, so the parent must
// have started on tli, or on an ancestor before tli's history left it.
func onHistory(parentTLI uint32, from wal.LSN, tli uint32, anc wal.Ancestry) error {
	if parentTLI == tli {
		return nil
	}
	for _, br := range anc {
		if br.Timeline == parentTLI {
			if from < br.End {
				return nil
			}
			return fmt.Errorf("it started at %s on timeline %d, after this server's history left that timeline at %s", from, parentTLI, br.End)
		}
	}
	return fmt.Errorf("it is on timeline %d, which is not in the history of this server's timeline %d", parentTLI, tli)
}

// checkHistory checks with the data directory's timeline history that the
// parent is on this backup's history (onHistory).
func (b *localBackup) checkHistory(tli uint32) error {
	d := b.delta
	if d.tli == tli {
		return nil
	}
	f, err := os.Open(filepath.Join(b.lo.DataDir, "pg_wal", wal.HistoryFile(tli)))
	if err != nil {
		return fmt.Errorf("the history of timeline %d cannot be read (%v)", tli, err)
	}
	defer f.Close()
	anc, err := wal.ParseHistory(f)
	if err != nil {
		return fmt.Errorf("the history of timeline %d cannot be read (%v)", tli, err)
	}
	return onHistory(d.tli, d.from, tli, anc)
}

// readParent reads what a local incremental needs of parent p.
func readParent(ctx context.Context, opts PushOptions, p *Meta) (*deltaParent, error) {
	man, err := readManifest(ctx, opts.Store, *p)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w on %s: its manifest cannot be read (%v)", ErrNoIncremental, p.Name, err)
	}
	d := &deltaParent{from: p.StartLSN, tli: p.StartTLI, files: make(map[string]bool, len(man.Files))}
	for _, f := range man.Files {
		name, _ := incremental.Split(f.Path)
		d.files[name] = true
	}
	return d, nil
}

// copyRel copies relation file e: incrementally when the backup has a
// parent and the file qualifies (storeWhole), else whole (copyFile).
func (b *localBackup) copyRel(ctx context.Context, l *lane, manifestPrefix string, e localEntry) error {
	if b.delta == nil || !e.checked {
		return b.copyFile(ctx, l, manifestPrefix, e)
	}
	r, _ := parseRelFile(path.Base(e.name))
	inParent := b.delta.files[manifestPrefix+e.name]
	// What the fork and the parent decide alone (a free space map, a file
	// the parent lacks) is decided before the file is opened: one block as
	// the size leaves only those rules.
	if storeWhole(r.fork, inParent, pageSize, 0) {
		return b.copyFile(ctx, l, manifestPrefix, e)
	}
	f, fi, err := b.open(e)
	if f == nil || err != nil {
		return err
	}
	defer f.Close()
	size := fi.Size()
	if storeWhole(r.fork, inParent, size, 0) {
		return b.copyFile(ctx, l, manifestPrefix, e)
	}
	// First the page headers, then the pages chosen: the tar header needs
	// the incremental file's size before its contents.
	blocks, err := b.changedBlocks(ctx, f, e.abs, size)
	if err != nil {
		return err
	}
	if storeWhole(r.fork, inParent, size, len(blocks)) {
		b.read.Add(-size) // copyFile counts it again
		return b.copyFile(ctx, l, manifestPrefix, e)
	}
	h := incremental.Header{Blocks: blocks, TruncationBlockLength: uint32(size / pageSize)}
	name := incremental.Name(e.name)
	th := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: h.FileSize(), Mode: int64(e.mode), ModTime: fi.ModTime().Truncate(time.Second), Uid: e.uid, Gid: e.gid}
	if err := l.tw.WriteHeader(th); err != nil {
		return err
	}
	w, err := incremental.NewWriter(l.tw, h)
	if err != nil {
		return err
	}
	check := b.checksums && e.checked
	buf := make([]byte, readChunk)
	for i := 0; i < len(blocks); {
		if err := ctx.Err(); err != nil {
			return err
		}
		// A run of consecutive blocks, read at once.
		j := i + 1
		for j < len(blocks) && j-i < readChunk/pageSize && blocks[j] == blocks[j-1]+1 {
			j++
		}
		n := (j - i) * pageSize
		off := int64(blocks[i]) * pageSize
		k, err := f.ReadAt(buf[:n], off)
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read %s: %w", e.abs, err)
		}
		// A file shrunk since its headers were read: zeros, as copyFile
		// stores them (WAL replay truncates it again).
		clear(buf[k:n])
		for p := 0; p < n; p += pageSize {
			if check && p+pageSize <= k {
				b.checkPage(f, manifestPrefix+e.name, buf[p:p+pageSize], off+int64(p), e.block+uint32((off+int64(p))/pageSize))
			}
			if _, err := w.Write(buf[p : p+pageSize]); err != nil {
				return err
			}
		}
		i = j
	}
	if err := w.Close(); err != nil {
		return err
	}
	crc, ok := l.aw.contentCRC() // computed by the parts as they copied it
	if !ok {
		return fmt.Errorf("back up %s: the tar stream did not take all of its incremental file", e.abs)
	}
	b.addFile(manifestPrefix+name, h.FileSize(), fi.ModTime(), crc)
	b.u.opts.Log.Debug("file stored incrementally", "file", manifestPrefix+e.name, "blocks", len(blocks), "of", h.TruncationBlockLength)
	return nil
}

// changedBlocks reads the pages of f (size bytes at open) and returns the
// numbers of those pageNeeded keeps; pages it cannot read (the file shrank)
// count as kept, and are stored as zeros.
func (b *localBackup) changedBlocks(ctx context.Context, f *os.File, abs string, size int64) ([]uint32, error) {
	var blocks []uint32
	buf := make([]byte, readChunk)
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := int(min(int64(len(buf)), size-off))
		k, err := f.ReadAt(buf[:n], off)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read %s: %w", abs, err)
		}
		for p := 0; p < n; p += pageSize {
			if p+pageSize > k || pageNeeded(buf[p:p+pageSize], b.delta.from) {
				blocks = append(blocks, uint32((off+int64(p))/pageSize))
			}
		}
		b.read.Add(int64(n))
		off += int64(n)
	}
	return blocks, nil
}
