package basebackup

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sync/errgroup"

	"github.com/tusk-backup/tusk/incremental"
	"github.com/tusk-backup/tusk/wal"
)

// LocalOptions configure a local-mode backup (PushLocal).
type LocalOptions struct {
	// DataDir is the server's data directory on this host (absolute).
	DataDir string
	// Readers is how many files are read (and packed into parts of their
	// own) at once; 0 means PushOptions.Concurrency.
	Readers int
	// FailOnBadPage fails the backup, recording nothing, when a page's
	// checksum fails (as pg_basebackup fails); otherwise the bad pages are
	// logged and listed in the metadata (Meta.BadPages) and the backup is
	// recorded.
	FailOnBadPage bool
}

// ErrBadPages is PushLocal's failure with FailOnBadPage when pages' checksums
// failed.
var ErrBadPages = errors.New("data pages failed their checksum")

// LocalApplicationName is the application_name of the session that holds
// a local-mode backup on the server.
const LocalApplicationName = "tusk backup-push (local)"

// maxBadBlocks is how many bad blocks of one file the metadata names.
const maxBadBlocks = 100

// PushLocal takes a base backup by reading the data directory's files
// itself, as wal-g's and pgBackRest's backups do, instead of asking the
// server to send them: on conn (a normal connection, not a replication one)
// it starts a non-exclusive backup (pg_backup_start, or pg_start_backup on
// PostgreSQL 14) and holds it on that session, Readers readers read the
// tablespaces' and the data directory's files in parallel (leaving out what
// BASE_BACKUP leaves out), each packing its files into parts of its own
// through the same part writer as Push, global/pg_control last; then
// pg_backup_stop gives the backup_label, stored as a file of the backup.
// Tablespaces are stored as Push stores them (an archive each, a link in
// pg_tblspc), so tablespace_map is not stored. tusk writes the backup
// manifest itself (CRC32C of every file, as BASE_BACKUP's). The repository
// layout and metadata are Push's, with Mode ModeLocal.
//
// If the process dies, the server ends the backup with the session. On
// error the repository holds no new backup, and conn should be closed.
//
// With opts.Parent the backup is incremental on it, on any server version
// (see localdelta.go): relation files the parent holds are stored as
// INCREMENTAL.<file> with the pages whose LSN is at or after the parent's
// start. A parent whose manifest cannot be read, or that is not on the
// server's timeline history, is ErrNoIncremental, with nothing stored and
// conn ready for another PushLocal.
func PushLocal(ctx context.Context, conn *pgconn.PgConn, sys System, opts PushOptions, lo LocalOptions) (Meta, error) {
	var delta *deltaParent
	if p := opts.Parent; p != nil {
		var err error
		if delta, err = readParent(ctx, opts, p); err != nil {
			return Meta{}, err
		}
	}
	u, g, gctx := newUploader(ctx, sys, &opts)
	u.meta.Mode = ModeLocal
	if p := opts.Parent; p != nil {
		u.setParent(p)
	}
	readers := lo.Readers
	if readers <= 0 {
		readers = opts.Concurrency
	}
	b := &localBackup{u: u, sys: sys, lo: lo, readers: readers, conn: conn, delta: delta}
	t0 := time.Now()
	err := b.run(gctx)
	if err == nil {
		opts.Log.Debug("files read and the backup stopped", "seconds", time.Since(t0).Seconds())
		server := func(ctx context.Context) (Archiver, error) { return ArchiverState(ctx, conn) }
		err = waitArchived(gctx, server, opts.Store, u.meta, opts.archiveWait, opts.Log.Warn, func(seg string) {
			if opts.Progress != nil {
				opts.Progress(Progress{Name: u.meta.Name, Elapsed: time.Since(u.started), Stored: u.stored.Load(),
					Sent: b.read.Load(), Total: u.total, WaitingWAL: seg})
			}
		})
	}
	if err != nil {
		b.abort(err)
	}
	werr := g.Wait()
	if err == nil {
		err = werr
	}
	if err != nil {
		if ctx.Err() != nil {
			return Meta{}, ctx.Err()
		}
		if errors.Is(err, ErrNoIncremental) {
			return Meta{}, err
		}
		if u.meta.Name == "" {
			return Meta{}, fmt.Errorf("local backup: %w", firstCause(gctx, err, werr))
		}
		return Meta{}, fmt.Errorf("backup %s: %w", u.meta.Name, firstCause(gctx, err, werr))
	}
	u.meta.BadPages = b.badPages()
	if len(u.meta.BadPages) > 0 && lo.FailOnBadPage {
		n := 0
		for _, bp := range u.meta.BadPages {
			n += bp.Count
		}
		return Meta{}, fmt.Errorf("backup %s: %w: %d pages in %d files (logged above); the backup is not recorded", u.meta.Name, ErrBadPages, n, len(u.meta.BadPages))
	}
	return u.record(ctx)
}

// localBackup is one PushLocal run.
type localBackup struct {
	u       *uploader
	sys     System
	lo      LocalOptions
	readers int
	conn    *pgconn.PgConn
	delta   *deltaParent // the parent of an incremental backup; nil for a full one

	checksums bool // the cluster has data checksums, of pages local mode can check
	// opened, if set, hears of each file opened and its size taken, before
	// it is read (tests shrink files then).
	opened func(path string)
	read   atomic.Int64

	mu       sync.Mutex
	files    []incremental.ManifestFile
	bad      map[string]*BadPages
	lanes    []*lane // open, for abort
	lastBase *lane   // the data directory's lane kept open for pg_control and backup_label
}

func (b *localBackup) run(ctx context.Context) error {
	u := b.u
	log := u.opts.Log
	// The session that holds the backup shows in pg_stat_activity.
	if _, err := simpleQuery(ctx, b.conn, "SET application_name = '"+LocalApplicationName+"'"); err != nil {
		return fmt.Errorf("name the backup's session: %w", err)
	}
	rows, err := simpleQuery(ctx, b.conn, "SELECT current_setting('data_checksums'), current_setting('block_size'), current_setting('segment_size')")
	if err != nil {
		return fmt.Errorf("read server settings: %w", err)
	}
	if len(rows) != 1 || len(rows[0]) != 3 {
		return errors.New("read server settings: unexpected answer")
	}
	b.checksums = rows[0][0] == "on"
	if b.checksums && (rows[0][1] != strconv.Itoa(pageSize) || rows[0][2] != "1GB") {
		log.Info("page checksums are not verified: the server's block size or segment size is not the default", "block_size", rows[0][1], "segment_size", rows[0][2])
		b.checksums = false
	}
	start, tli, err := b.startBackup(ctx)
	if err != nil {
		return err
	}
	log.Debug("backup started on the server", "start_lsn", start.String(), "timeline", tli)
	if b.delta != nil {
		if err := b.checkHistory(tli); err != nil {
			if _, _, _, serr := b.stopBackup(ctx); serr != nil {
				return fmt.Errorf("%v; and then: %w", err, serr)
			}
			return fmt.Errorf("%w on %s: %v", ErrNoIncremental, b.u.meta.Parent, err)
		}
	}

	// List everything first: the sizes are the progress total, and the
	// tablespaces go into the metadata before the name is taken.
	base, err := listTree(b.lo.DataDir, true, "", b.sys.Version)
	if err != nil {
		return err
	}
	type space struct {
		oid string
		l   listing
	}
	var spaces []space
	var meta []Tablespace
	oids := make([]string, 0, len(base.spaces))
	for oid := range base.spaces {
		oids = append(oids, oid)
	}
	slices.Sort(oids)
	for _, oid := range oids {
		loc := base.spaces[oid]
		vdir, err := versionDirOf(loc, b.sys.Version/10000)
		if err != nil {
			return err
		}
		l, err := listTree(loc, false, vdir, b.sys.Version)
		if err != nil {
			return err
		}
		spaces = append(spaces, space{oid, l})
		meta = append(meta, Tablespace{OID: oid, Location: loc, SizeKB: sizeKB(l)})
	}
	meta = append(meta, Tablespace{SizeKB: sizeKB(base)})
	if err := u.Begin(start, tli, meta); err != nil {
		return err
	}
	stop := b.progress(ctx)
	defer stop()
	for _, s := range spaces {
		if err := b.archive(ctx, s.oid, "pg_tblspc/"+s.oid+"/", s.l.entries, false); err != nil {
			return err
		}
	}
	if err := b.archive(ctx, "base", "", base.entries, true); err != nil {
		return err
	}
	// pg_control last, as BASE_BACKUP sends it: it must not be older than
	// any other file.
	last := b.lastBase
	ctl := filepath.Join(b.lo.DataDir, "global", "pg_control")
	fi, err := os.Stat(ctl)
	if err != nil {
		return fmt.Errorf("read %s: %w", ctl, err)
	}
	if err := b.copyFile(ctx, last, "", localEntry{name: "global/pg_control", abs: ctl, kind: tar.TypeReg, mode: fi.Mode().Perm(), mtime: fi.ModTime()}); err != nil {
		return err
	}
	label, end, endTLI, err := b.stopBackup(ctx)
	if err != nil {
		return err
	}
	if err := checkLabel(label, start, tli); err != nil {
		return err
	}
	if b.delta != nil {
		label = incrementalLabel(label, b.delta.from, b.delta.tli)
	}
	if err := b.writeBytes(last, "backup_label", []byte(label)); err != nil {
		return err
	}
	if err := last.close(); err != nil {
		return err
	}
	b.mu.Lock()
	b.lanes = slices.DeleteFunc(b.lanes, func(l *lane) bool { return l == last })
	b.mu.Unlock()
	u.meta.EndLSN, u.meta.EndTLI = end, endTLI
	u.meta.EndWAL = (end - 1).SegmentName(endTLI, b.sys.SegSize)
	if endTLI != tli {
		// The manifest's WAL-Ranges would need the timeline switch point.
		return fmt.Errorf("the server changed timeline (%d to %d) while the backup ran; run backup-push again (or with --mode remote)", tli, endTLI)
	}
	return b.writeManifest(start, end, tli)
}

func sizeKB(l listing) int64 {
	var n int64
	for _, e := range l.entries {
		n += e.size
	}
	return n / 1024
}

// progress reports the bytes read every 200 ms until stop is called.
func (b *localBackup) progress(ctx context.Context) (stop func()) {
	p := b.u.opts.Progress
	if p == nil {
		return func() {}
	}
	done := make(chan struct{})
	var g errgroup.Group
	g.Go(func() error {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return nil
			case <-ctx.Done():
				return nil
			case <-t.C:
				p(Progress{Sent: b.read.Load(), Total: b.u.total, Stored: b.u.stored.Load(), Elapsed: time.Since(b.u.started), Name: b.u.meta.Name})
			}
		}
	})
	return func() {
		close(done)
		g.Wait()
	}
}

// startBackup starts the non-exclusive backup on b.conn and returns its
// start LSN and timeline.
func (b *localBackup) startBackup(ctx context.Context) (wal.LSN, uint32, error) {
	fast := "true"
	if b.u.opts.Spread {
		fast = "false"
	}
	q := "SELECT pg_backup_start('tusk', " + fast + ")"
	if b.sys.Version < 150000 {
		q = "SELECT pg_start_backup('tusk', " + fast + ", false)"
	}
	rows, err := simpleQuery(ctx, b.conn, q)
	if err != nil {
		return 0, 0, fmt.Errorf("start the backup: %w", err)
	}
	if len(rows) != 1 || len(rows[0]) != 1 {
		return 0, 0, errors.New("start the backup: unexpected answer")
	}
	start, err := wal.ParseLSN(rows[0][0])
	if err != nil {
		return 0, 0, fmt.Errorf("start the backup: %w", err)
	}
	// The backup starts at the redo point of the checkpoint it just made
	// (or the restartpoint on a standby), on that checkpoint's timeline.
	rows, err = simpleQuery(ctx, b.conn, "SELECT timeline_id FROM pg_control_checkpoint()")
	if err != nil || len(rows) != 1 || len(rows[0]) != 1 {
		return 0, 0, fmt.Errorf("read the backup's timeline: %v", err)
	}
	tli, err := strconv.ParseUint(rows[0][0], 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("read the backup's timeline: %w", err)
	}
	return start, uint32(tli), nil
}

// stopBackup ends the backup and returns the backup_label contents, the end
// LSN and its timeline.
func (b *localBackup) stopBackup(ctx context.Context) (string, wal.LSN, uint32, error) {
	q := "SELECT lsn, labelfile FROM pg_backup_stop(false)"
	if b.sys.Version < 150000 {
		q = "SELECT lsn, labelfile FROM pg_stop_backup(false, false)"
	}
	rows, err := simpleQuery(ctx, b.conn, q)
	if err != nil {
		return "", 0, 0, fmt.Errorf("stop the backup: %w", err)
	}
	if len(rows) != 1 || len(rows[0]) != 2 {
		return "", 0, 0, errors.New("stop the backup: unexpected answer")
	}
	label := rows[0][1]
	end, err := wal.ParseLSN(rows[0][0])
	if err != nil {
		return "", 0, 0, fmt.Errorf("stop the backup: %w", err)
	}
	// The end timeline: a primary's current one; on a standby, that of the
	// minimum recovery point, where pg_backup_stop ends the backup.
	q = "SELECT CASE WHEN pg_is_in_recovery() THEN (SELECT min_recovery_end_timeline FROM pg_control_recovery()) " +
		"ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint END"
	rows, err = simpleQuery(ctx, b.conn, q)
	if err != nil || len(rows) != 1 || len(rows[0]) != 1 {
		return "", 0, 0, fmt.Errorf("read the backup's end timeline: %v", err)
	}
	tli, err := strconv.ParseUint(rows[0][0], 10, 32)
	if err != nil {
		return "", 0, 0, fmt.Errorf("read the backup's end timeline: %w", err)
	}
	return label, end, uint32(tli), nil
}

// checkLabel makes sure the backup_label is of the backup that started at
// start on timeline tli.
func checkLabel(label string, start wal.LSN, tli uint32) error {
	var gotStart, gotTLI string
	for _, line := range strings.Split(label, "\n") {
		if v, ok := strings.CutPrefix(line, "START WAL LOCATION: "); ok {
			gotStart, _, _ = strings.Cut(v, " ")
		}
		if v, ok := strings.CutPrefix(line, "START TIMELINE: "); ok {
			gotTLI = strings.TrimSpace(v)
		}
	}
	if gotStart != start.String() || gotTLI != strconv.FormatUint(uint64(tli), 10) {
		return fmt.Errorf("the server's backup_label starts at %s on timeline %s, not at %s on timeline %d as the backup began: run backup-push again", gotStart, gotTLI, start, tli)
	}
	return nil
}

// archive reads one archive's entries with b.readers lanes: folders and
// links first (in one lane), then the files, largest first, to whichever
// lane is free. With keepOne, the first lane stays open in b.lastBase.
func (b *localBackup) archive(ctx context.Context, name, manifestPrefix string, entries []localEntry, keepOne bool) error {
	var seq atomic.Int64
	next := func() int { return int(seq.Add(1)) }
	var files, other []localEntry
	for _, e := range entries {
		if e.kind == tar.TypeReg {
			files = append(files, e)
		} else {
			other = append(other, e)
		}
	}
	slices.SortStableFunc(files, func(a, b localEntry) int {
		switch {
		case a.size > b.size:
			return -1
		case a.size < b.size:
			return 1
		}
		return 0
	})
	n := max(1, min(b.readers, len(files)))
	lanes := make([]*lane, n)
	for i := range lanes {
		lanes[i] = b.newLane(name, next)
	}
	for _, e := range other {
		if err := lanes[0].header(e); err != nil {
			return err
		}
	}
	work := make(chan localEntry)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(work)
		for _, f := range files {
			select {
			case work <- f:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	for _, l := range lanes {
		g.Go(func() error {
			for e := range work {
				if err := b.copyRel(gctx, l, manifestPrefix, e); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for i, l := range lanes {
		if keepOne && i == 0 {
			b.lastBase = l
			continue
		}
		if err := l.close(); err != nil {
			return err
		}
		b.mu.Lock()
		b.lanes = slices.DeleteFunc(b.lanes, func(x *lane) bool { return x == l })
		b.mu.Unlock()
	}
	return nil
}

// lane is one reader's tar stream, cut into parts by an archiveWriter.
type lane struct {
	aw  *archiveWriter
	tw  *tar.Writer
	buf []byte // copyFile's read buffer, readChunk bytes, made once per lane
}

func (b *localBackup) newLane(archive string, next func() int) *lane {
	aw := &archiveWriter{u: b.u, name: archive, nextSeq: next, sums: true}
	l := &lane{aw: aw, tw: tar.NewWriter(writerFunc(func(p []byte) (int, error) {
		if err := aw.feed(p); err != nil {
			return 0, err
		}
		return len(p), nil
	}))}
	b.mu.Lock()
	b.lanes = append(b.lanes, l)
	b.mu.Unlock()
	return l
}

// close ends the lane's stream and its last part.
func (l *lane) close() error {
	if err := l.tw.Close(); err != nil {
		return err
	}
	if l.aw.part == nil {
		return nil // it wrote nothing
	}
	return l.aw.finish()
}

// header writes a folder's or a link's entry.
func (l *lane) header(e localEntry) error {
	h := &tar.Header{Typeflag: e.kind, Name: e.name, Linkname: e.link, Mode: int64(e.mode), ModTime: e.mtime.Truncate(time.Second), Uid: e.uid, Gid: e.gid}
	if e.kind == tar.TypeDir {
		h.Name += "/"
	}
	return l.tw.WriteHeader(h)
}

// open opens e's file for reading and takes its size at open. A file gone
// before it is opened is left out, as BASE_BACKUP leaves it: nil, no error.
func (b *localBackup) open(e localEntry) (*os.File, fs.FileInfo, error) {
	f, err := os.Open(e.abs)
	if errors.Is(err, fs.ErrNotExist) {
		b.u.opts.Log.Debug("file vanished before it was read", "file", e.abs)
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", e.abs, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("read %s: %w", e.abs, err)
	}
	if b.opened != nil {
		b.opened(e.abs)
	}
	return f, fi, nil
}

// readChunk is how much of a file a reader reads at once: a whole number
// of pages.
const readChunk = 32 * pageSize

// copyFile copies one file into lane l as BASE_BACKUP sends it: a file gone
// before it is opened is left out; its size is taken at open, and if it
// shrinks meanwhile the rest is zeros (WAL replay from the backup's start
// makes it right, as it does for a file BASE_BACKUP reads mid-write).
func (b *localBackup) copyFile(ctx context.Context, l *lane, manifestPrefix string, e localEntry) error {
	f, fi, err := b.open(e)
	if f == nil || err != nil {
		return err
	}
	defer f.Close()
	size := fi.Size()
	h := &tar.Header{Typeflag: tar.TypeReg, Name: e.name, Size: size, Mode: int64(e.mode), ModTime: fi.ModTime().Truncate(time.Second), Uid: e.uid, Gid: e.gid}
	if err := l.tw.WriteHeader(h); err != nil {
		return err
	}
	if l.buf == nil {
		l.buf = make([]byte, readChunk)
	}
	buf := l.buf
	check := b.checksums && e.checked
	var off int64
	for off < size {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := int(min(int64(len(buf)), size-off))
		k, err := io.ReadFull(f, buf[:n])
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("read %s: %w", e.abs, err)
		}
		if k < n {
			// The file shrank (a truncation in progress): zeros to the size
			// recorded at open.
			clear(buf[k:n])
			if k < n && off+int64(k) < size {
				b.u.opts.Log.Debug("file shrank while it was read", "file", e.abs, "size", size, "read", off+int64(k))
			}
		}
		if check {
			for p := 0; p+pageSize <= k; p += pageSize {
				b.checkPage(f, manifestPrefix+e.name, buf[p:p+pageSize], off+int64(p), e.block+uint32((off+int64(p))/pageSize))
			}
		}
		if _, err := l.tw.Write(buf[:n]); err != nil {
			return err
		}
		b.read.Add(int64(n))
		off += int64(n)
		if k < n {
			// Pad the rest without reading on.
			clear(buf)
			for off < size {
				m := int(min(int64(len(buf)), size-off))
				if _, err := l.tw.Write(buf[:m]); err != nil {
					return err
				}
				b.read.Add(int64(m))
				off += int64(m)
			}
		}
	}
	// The parts computed the content's CRC-32C as they copied it.
	crc, ok := l.aw.contentCRC()
	if !ok {
		return fmt.Errorf("back up %s: the tar stream did not take all of its content", e.abs)
	}
	b.addFile(manifestPrefix+e.name, size, fi.ModTime(), crc)
	return nil
}

// checkPage checks one page as read; a page that fails is read again once
// (it may have been read while the server wrote it) and, if it still
// fails, recorded.
func (b *localBackup) checkPage(f *os.File, file string, page []byte, off int64, blkno uint32) {
	start := uint64(b.u.meta.StartLSN)
	if checkPage(page, blkno, start) != pageBad {
		return
	}
	again := make([]byte, pageSize)
	if n, err := f.ReadAt(again, off); n == pageSize && (err == nil || errors.Is(err, io.EOF)) {
		if checkPage(again, blkno, start) != pageBad {
			copy(page, again)
			return
		}
	}
	b.u.opts.Log.Warn("page checksum failed", "file", file, "block", blkno)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bad == nil {
		b.bad = map[string]*BadPages{}
	}
	bp := b.bad[file]
	if bp == nil {
		bp = &BadPages{File: file}
		b.bad[file] = bp
	}
	bp.Count++
	if len(bp.Blocks) < maxBadBlocks {
		bp.Blocks = append(bp.Blocks, blkno)
	}
}

func (b *localBackup) badPages() []BadPages {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []BadPages
	for _, bp := range b.bad {
		out = append(out, *bp)
	}
	slices.SortFunc(out, func(a, b BadPages) int { return strings.Compare(a.File, b.File) })
	return out
}

// writeBytes stores data as the file name of the data directory.
func (b *localBackup) writeBytes(l *lane, name string, data []byte) error {
	now := time.Now()
	h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(data)), Mode: 0o600, ModTime: now.Truncate(time.Second)}
	if err := l.tw.WriteHeader(h); err != nil {
		return err
	}
	if _, err := l.tw.Write(data); err != nil {
		return err
	}
	b.addFile(name, int64(len(data)), now, crc32.Checksum(data, castagnoli))
	return nil
}

func (b *localBackup) addFile(name string, size int64, mtime time.Time, crc uint32) {
	mf := incremental.ManifestFile{Path: name, Size: size, LastModified: mtime.UTC().Format("2006-01-02 15:04:05 GMT"),
		Algorithm: "CRC32C", Checksum: crcHex(crc)}
	b.mu.Lock()
	b.files = append(b.files, mf)
	b.mu.Unlock()
}

// abort stops every open lane after a failure.
func (b *localBackup) abort(err error) {
	b.mu.Lock()
	lanes := b.lanes
	b.lanes = nil
	b.mu.Unlock()
	for _, l := range lanes {
		l.aw.abort(err)
	}
}
