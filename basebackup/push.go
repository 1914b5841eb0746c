package basebackup

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/zeebo/xxh3"
	"golang.org/x/sync/errgroup"

	"github.com/tusk-backup/tusk/compress"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/wal"
)

// PAX records that mark a piece of a file split across parts.
const (
	paxOffset = "TUSK.offset" // where this piece starts in the file
	paxSize   = "TUSK.size"   // the whole file's size
)

// PushOptions configure one backup-push.
type PushOptions struct {
	Store       storage.Storage
	Codec       compress.Codec
	PartSize    int64 // tar bytes per part, about
	Concurrency int   // parts compressed and uploaded at once
	Spread      bool  // spread checkpoint
	Permanent   bool
	// Parent, if set, makes this an incremental backup against it
	// (Push: PostgreSQL 17+, summarize_wal = on; PushLocal: any version;
	// see ChooseParent). When the
	// server or the parent's manifest cannot serve one, Push fails with
	// ErrNoIncremental before anything is stored, and the connection is
	// ready for a full backup.
	Parent *Meta
	Log    *slog.Logger
	// Progress, if set, is called from the stream's goroutine as the
	// server reports progress.
	Progress    func(Progress)
	now         func() time.Time
	archiveWait archiveWait
}

// Progress is a running backup's state.
type Progress struct {
	Sent    int64 // bytes the server has sent
	Total   int64 // the server's estimate of the whole, 0 if unknown
	Stored  int64 // compressed bytes durably stored
	Elapsed time.Duration
	Name    string
	// WaitingWAL, once the data is sent, is the WAL segment the backup
	// waits for to be archived.
	WaitingWAL string
}

// ErrNoIncremental is Push's failure to start an incremental backup: the
// server refused it (WAL summaries missing for the parent's range, a
// timeline the parent is not on, summarize_wal off) or the parent's manifest
// could not be read. Nothing was stored; a full backup can follow on the same
// connection. The error's text says why, in the server's words.
var ErrNoIncremental = errors.New("an incremental backup cannot be taken")

// Push takes a base backup over conn (a replication=database connection)
// into the repository and returns its metadata. sys is what Identify said.
// On error the repository holds no new backup, only garbage under the
// backup's data prefix, and conn must be closed.
func Push(ctx context.Context, conn *pgconn.PgConn, sys System, opts PushOptions) (Meta, error) {
	u, g, gctx := newUploader(ctx, sys, &opts)
	u.meta.Mode = ModeRemote
	if p := opts.Parent; p != nil {
		u.setParent(p)
		err := fetchPart(ctx, opts.Store, p.Manifest, func(r io.Reader) error { return UploadManifest(ctx, conn, r) })
		if err != nil {
			var refused *RefusedError
			if errors.As(err, &refused) {
				return Meta{}, fmt.Errorf("%w on %s: %s", ErrNoIncremental, p.Name, refused.Err.Message)
			}
			if ctx.Err() != nil {
				return Meta{}, ctx.Err()
			}
			return Meta{}, fmt.Errorf("%w on %s: its manifest cannot be read (%v)", ErrNoIncremental, p.Name, err)
		}
	}
	t0 := time.Now()
	res, err := Stream(gctx, conn, StreamOptions{Version: sys.Version, Label: "tusk", Spread: opts.Spread, NoWait: true, Incremental: opts.Parent != nil}, u)
	var refused *RefusedError
	if opts.Parent != nil && errors.As(err, &refused) && ctx.Err() == nil {
		g.Wait() // nothing was started: Begin runs only once data flows
		return Meta{}, fmt.Errorf("%w on %s: %s", ErrNoIncremental, opts.Parent.Name, refused.Err.Message)
	}
	if err == nil {
		err = u.endArchive()
		opts.Log.Debug("server ended the backup", "seconds", time.Since(t0).Seconds())
	}
	if err == nil {
		// The parts finish uploading meanwhile.
		u.meta.EndLSN, u.meta.EndTLI = res.End, res.EndTLI
		u.meta.EndWAL = (res.End - 1).SegmentName(res.EndTLI, sys.SegSize)
		server := func(ctx context.Context) (Archiver, error) { return ArchiverState(ctx, conn) }
		err = waitArchived(gctx, server, opts.Store, u.meta, opts.archiveWait, opts.Log.Warn, func(seg string) {
			if opts.Progress != nil {
				opts.Progress(Progress{Name: u.meta.Name, Elapsed: time.Since(u.started), Stored: u.stored.Load(),
					Sent: u.sent, Total: u.total, WaitingWAL: seg})
			}
		})
		if err == nil {
			opts.Log.Debug("the backup's WAL is archived", "seconds", time.Since(t0).Seconds())
		}
	}
	if err != nil {
		u.abort(err)
	}
	werr := g.Wait()
	if err == nil {
		err = werr
	}
	if err == nil {
		opts.Log.Debug("every part stored", "seconds", time.Since(t0).Seconds())
	}
	if err != nil {
		if ctx.Err() != nil {
			return Meta{}, ctx.Err()
		}
		return Meta{}, fmt.Errorf("backup %s: %w", u.meta.Name, firstCause(gctx, err, werr))
	}
	return u.record(ctx)
}

// record lists the stored parts in the metadata and writes it, once the
// parts' group is done: the backup then exists.
func (u *uploader) record(ctx context.Context) (Meta, error) {
	opts := u.opts
	m := u.meta
	m.FinishTime = opts.now().UTC()
	u.mu.Lock()
	m.Parts = u.parts
	u.mu.Unlock()
	slices.SortFunc(m.Parts, func(a, b Part) int {
		if a.Archive != b.Archive {
			return strings.Compare(a.Archive, b.Archive)
		}
		return a.Seq - b.Seq
	})
	for _, p := range m.Parts {
		m.DataSize += p.RawSize
		m.StoredSize += p.Size
	}
	m.StoredSize += m.Manifest.Size
	if err := checkStored(ctx, opts.Store, m, u.run); err != nil {
		return Meta{}, fmt.Errorf("backup %s: %w", m.Name, err)
	}
	if err := checkParent(ctx, opts.Store, m); err != nil {
		return Meta{}, fmt.Errorf("backup %s: %w", m.Name, err)
	}
	if err := WriteMeta(ctx, opts.Store, m); err != nil {
		return Meta{}, err
	}
	return m, nil
}

// newUploader sets opts' defaults and returns the uploader of one run, with
// the group its parts upload in and that group's context.
func newUploader(ctx context.Context, sys System, opts *PushOptions) (*uploader, *errgroup.Group, context.Context) {
	if opts.now == nil {
		opts.now = time.Now
	}
	if opts.PartSize <= 0 {
		opts.PartSize = 64 << 20
	}
	opts.Concurrency = max(opts.Concurrency, 1)
	if opts.archiveWait == (archiveWait{}) {
		opts.archiveWait = defaultArchiveWait
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Concurrency) // parts uploading at once
	u := &uploader{
		ctx:  gctx,
		g:    g,
		opts: *opts,
		sys:  sys,
		run:  newRunID(),
		// Parts compressing at once (Concurrency uploading, one being
		// filled per writer) each hold at most chunksInFlight queued
		// chunks, one being filled and one compressing.
		chunkFree: make(chan []byte, (opts.Concurrency+1)*(chunksInFlight+2)),
		meta: Meta{
			Format:      metaFormat,
			SystemID:    sys.SystemID,
			PGVersion:   sys.Version,
			SegSize:     sys.SegSize,
			FromStandby: sys.InRecovery,
			StartTime:   opts.now().UTC(),
			Codec:       opts.Codec.String(),
			Permanent:   opts.Permanent,
		},
	}
	return u, g, gctx
}

// firstCause is what to report when a Push whose caller's ctx is not done
// failed with err (the stream's, or else the uploads') and werr (the
// uploads'). The first failure cancels gctx, and everything still running
// then fails with context.Canceled: often the stream, whose error would hide
// the real one (a full disk) behind a cancellation. gctx's cause is that
// first failure.
func firstCause(gctx context.Context, err, werr error) error {
	if !errors.Is(err, context.Canceled) {
		return err
	}
	if cause := context.Cause(gctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	if werr != nil && !errors.Is(werr, context.Canceled) {
		return werr
	}
	return err
}

// checkStored makes sure, just before the metadata makes the backup exist,
// that the name is still this run's, every part is still in the repository
// and no delete has claimed the name: a backup that waited hours for its WAL
// to be archived may have had its parts collected as an abandoned backup's
// leftovers meanwhile.
//
// Sizes are compared, not checksums, and that is enough: every run writes
// its parts under a folder of its own (run), which no other run writes, so
// a part can only be missing or cut short, never replaced by another's.
func checkStored(ctx context.Context, st storage.Storage, m Meta, run string) error {
	if s, err := readStarted(ctx, st, m.Name); err != nil {
		return err
	} else if owner := s.Run; owner != run {
		return fmt.Errorf("another backup-push took the name %s while this one ran (run %s, not %s), so this backup is not recorded; run backup-push again", m.Name, owner, run)
	}
	for _, p := range append(slices.Clip(m.Parts), m.Manifest) {
		o, err := st.Stat(ctx, p.Key)
		if errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("part %s was deleted while the backup ran (by tusk delete garbage with a --leftover-age shorter than this backup took?), so the backup is not recorded; run backup-push again", p.Key)
		}
		if err != nil {
			return fmt.Errorf("check part %s: %w", p.Key, err)
		}
		if o.Size != p.Size {
			return fmt.Errorf("part %s holds %d bytes, not the %d uploaded; run backup-push again", p.Key, o.Size, p.Size)
		}
	}
	if _, err := st.Stat(ctx, TombstoneKey(m.Name)); err == nil {
		return fmt.Errorf("a delete claimed the name %s while the backup ran; run backup-push again", m.Name)
	}
	return nil
}

// checkParent makes sure an incremental backup's parent is still there
// when the backup is recorded: a delete that ran meanwhile keeps the parent
// of a running incremental (backup_started.json names it), but one that
// started before this run wrote that record may have taken it.
func checkParent(ctx context.Context, st storage.Storage, m Meta) error {
	if !m.Incremental() {
		return nil
	}
	if _, err := st.Stat(ctx, TombstoneKey(m.Parent)); err == nil {
		return fmt.Errorf("its parent %s is being deleted, so the backup is not recorded; run backup-push again (it takes a full backup if no other parent is left)", m.Parent)
	}
	if _, err := ReadMeta(ctx, st, m.Parent); err != nil {
		return fmt.Errorf("its parent is gone or unreadable (%v), so the backup is not recorded; run backup-push again", err)
	}
	return nil
}

// StartedKey is the first object a backup-push writes, as soon as the server
// has started the backup: it makes the unfinished backup's folder, and so its
// start segment (in its name), visible to delete garbage at once.
func StartedKey(name string) string { return DataPrefix(name) + "backup_started.json" }

// nameTaken reports whether a backup, finished or not, holds name.
func nameTaken(ctx context.Context, st storage.Storage, name string) (bool, error) {
	// A tombstone is a delete of that name not yet finished: the next
	// delete would finish it, taking a new backup of the name with it.
	for _, key := range []string{MetaKey(name), StartedKey(name), TombstoneKey(name)} {
		if _, err := st.Stat(ctx, key); err == nil {
			return true, nil
		} else if !errors.Is(err, storage.ErrNotFound) {
			return false, fmt.Errorf("check the repository: %w", err)
		}
	}
	return false, nil
}

// started is StartedKey's content.
type started struct {
	Name     string    `json:"name"`
	Run      string    `json:"run"` // the folder under DataPrefix(name) holding this run's parts
	StartWAL string    `json:"start_wal_segment"`
	Start    time.Time `json:"start_time"`
	// Parent is the backup an incremental run is taken against: while the
	// run goes on, delete keeps that backup's chain.
	Parent string `json:"parent,omitempty"`
}

// newRunID names one backup-push run: 8 random bytes in hex.
func newRunID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// partPrefix is where this run writes its parts.
func (u *uploader) partPrefix() string { return DataPrefix(u.meta.Name) + u.run + "/" }

// uploader is the Handler that turns the stream into parts.
type uploader struct {
	ctx  context.Context
	g    *errgroup.Group
	opts PushOptions
	sys  System
	meta Meta
	run  string // see newRunID

	cur      *archiveWriter // the archive being received
	total    int64
	mu       sync.Mutex
	parts    []Part
	stored   atomic.Int64
	started  time.Time
	sent     int64 // what the server last said it had sent
	manifest *partWriter
	// chunkFree is the free list of empty chunks that every part's
	// writer takes from and its compressing goroutine returns to, so a
	// backup allocates its chunks once instead of once per part (the
	// garbage of one part's chunks after another let the heap, and
	// local mode's peak RSS, grow by tens of MiB before a collection).
	chunkFree chan []byte
}

// setParent makes the backup incremental on p.
func (u *uploader) setParent(p *Meta) {
	u.meta.Parent, u.meta.ChainFull, u.meta.ChainDepth = p.Name, p.ChainFull, p.ChainDepth+1
	if !p.Incremental() {
		u.meta.ChainFull = p.Name
	}
}

func (u *uploader) Begin(start wal.LSN, tli uint32, spaces []Tablespace) error {
	u.started = time.Now()
	u.opts.Log.Debug("checkpoint done, data follows", "start_lsn", start.String())
	u.meta.StartLSN, u.meta.StartTLI = start, tli
	u.meta.StartWAL = start.SegmentName(tli, u.sys.SegSize)
	u.meta.Tablespaces = spaces
	for _, s := range spaces {
		u.total += s.SizeKB * 1024
	}
	// A name is never reused: the backup takes the first of base_WAL_TIME,
	// base_WAL_TIME_2, ... that no backup holds, finished or still running
	// (two backups of one server in one second, or backups of two servers
	// of the cluster). Two runs that pick the same name at the same moment
	// write their parts apart, and the one whose run is not in StartedKey
	// at the end fails (checkStored).
	base := "base_" + u.meta.StartWAL + "_" + u.meta.StartTime.Format("20060102T150405Z")
	for i := 1; u.meta.Name == ""; i++ {
		name := base
		if i > 1 {
			name = fmt.Sprintf("%s_%d", base, i)
		}
		taken, err := nameTaken(u.ctx, u.opts.Store, name)
		if err != nil {
			return err
		}
		switch {
		case !taken:
			u.meta.Name = name
		case i == 9:
			return fmt.Errorf("backup names %s to %s are all taken in the repository; run backup-push again", base, name)
		}
	}
	started, _ := json.Marshal(started{Name: u.meta.Name, Run: u.run, StartWAL: u.meta.StartWAL, Start: u.meta.StartTime, Parent: u.meta.Parent})
	if err := u.opts.Store.Put(u.ctx, StartedKey(u.meta.Name), bytes.NewReader(started)); err != nil {
		return fmt.Errorf("write %s: %w", StartedKey(u.meta.Name), err)
	}
	// The other half of delete's protocol: a delete writes its tombstone
	// before it looks for running incrementals, this run wrote its record
	// before it looks for tombstones, so one of them sees the other.
	if p := u.meta.Parent; p != "" {
		if _, err := u.opts.Store.Stat(u.ctx, TombstoneKey(p)); err == nil {
			return fmt.Errorf("its parent %s is being deleted; run backup-push again (it takes a full backup if no other parent is left)", p)
		} else if !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("check the repository: %w", err)
		}
	}
	return nil
}

func (u *uploader) Archive(name, location string) error {
	if err := u.endArchive(); err != nil {
		return err
	}
	arch := "base"
	if location != "" {
		for _, s := range u.meta.Tablespaces {
			if s.Location == location {
				arch = s.OID
			}
		}
		if arch == "base" {
			return fmt.Errorf("BASE_BACKUP sent archive %s for unknown tablespace %s", name, location)
		}
	}
	u.cur = &archiveWriter{u: u, name: arch}
	return nil
}

func (u *uploader) Data(p []byte) error {
	if u.manifest != nil {
		_, err := u.manifest.Write(p)
		return err
	}
	if u.cur == nil {
		return errors.New("BASE_BACKUP sent data before an archive")
	}
	return u.cur.feed(p)
}

func (u *uploader) Manifest() error {
	u.opts.Log.Debug("data received, manifest follows", "seconds", time.Since(u.started).Seconds())
	if err := u.endArchive(); err != nil {
		return err
	}
	pw, err := u.newPart("manifest", 0, u.partPrefix()+"backup_manifest"+u.opts.Codec.Ext(), false)
	if err != nil {
		return err
	}
	u.manifest = pw
	return nil
}

func (u *uploader) Progress(sent int64) {
	u.sent = sent
	if u.opts.Progress != nil {
		u.opts.Progress(Progress{Sent: sent, Total: u.total, Stored: u.stored.Load(),
			Elapsed: time.Since(u.started), Name: u.meta.Name})
	}
}

// endArchive finishes the archive being received, if any, and the manifest.
func (u *uploader) endArchive() error {
	if u.manifest != nil {
		p, err := u.manifest.finish()
		u.manifest = nil
		if err != nil {
			return err
		}
		u.meta.Manifest = p
	}
	if u.cur == nil {
		return nil
	}
	aw := u.cur
	u.cur = nil
	return aw.finish()
}

// abort stops the archive being received after a failure.
func (u *uploader) abort(err error) {
	if u.manifest != nil {
		u.manifest.abort(err)
		u.manifest = nil
	}
	if u.cur != nil {
		u.cur.abort(err)
		u.cur = nil
	}
}

func (u *uploader) addPart(p Part) {
	u.mu.Lock()
	u.parts = append(u.parts, p)
	u.mu.Unlock()
	u.stored.Add(p.Size)
}

// partWriter compresses bytes into one part object, uploaded by its own
// goroutine in the uploader's group. Compression runs in a goroutine of its
// own, fed chunks by Write, so that the goroutine receiving the server's
// stream only copies: the server keeps sending while the previous chunks
// compress on the other core.
type partWriter struct {
	u      *uploader
	part   Part
	raw    int64
	zw     io.WriteCloser
	pw     *io.PipeWriter
	hash   *xxh3.Hasher // of the stored bytes; the compressing goroutine's
	stored int64        // the compressing goroutine's
	final  chan Part    // finish's result, for the uploading goroutine
	done   chan error
	// aborted is closed by abort: an uploading goroutine whose Put ended
	// without error (a store that took the broken stream's end for the
	// object's) must not wait for a finish that never comes.
	aborted chan struct{}

	cur    []byte      // the chunk Write is filling
	chunks chan chunk  // full chunks, for the compressing goroutine
	free   chan []byte // empty chunks: the uploader's chunkFree
	failed atomic.Bool // the compressing goroutine stopped on an error
	cg     errgroup.Group
	closed bool

	// With sums (local mode), Write computes the CRC-32C of what it copies
	// as it copies it, once for two uses: curCRC, of the chunk being
	// filled, goes with the chunk to the codec, which stores one per s2
	// block; content, of what writeContent copied since takeContent, is a
	// file's checksum in the backup manifest.
	sums       bool
	curCRC     uint32
	content    uint32
	contentLen int64
}

// chunk is a full chunk and, with sums, its CRC-32C.
type chunk struct {
	b   []byte
	crc uint32
}

// Chunks are as long as an s2 block, so the default codec encodes them
// where they are, without copying them again.
const (
	chunkSize      = 1 << 20
	chunksInFlight = 2 // per part: memory chunksInFlight × chunkSize
)

// newPart opens a part; with sums it computes CRC-32Cs as it copies (see
// partWriter).
func (u *uploader) newPart(archive string, seq int, key string, sums bool) (*partWriter, error) {
	pr, pw := io.Pipe()
	p := &partWriter{u: u, part: Part{Key: key, Archive: archive, Seq: seq}, pw: pw, hash: xxh3.New(),
		final: make(chan Part, 1), done: make(chan error, 1), aborted: make(chan struct{}),
		chunks: make(chan chunk, chunksInFlight), free: u.chunkFree, sums: sums}
	if p.free == nil {
		p.free = make(chan []byte, chunksInFlight+1)
	}
	zw, err := u.opts.Codec.NewWriter(writerFunc(p.writeStored))
	if err != nil {
		return nil, err
	}
	p.zw = zw
	// Go blocks while Concurrency parts are uploading: that is the back
	// pressure that bounds memory.
	u.g.Go(func() error {
		err := u.opts.Store.Put(u.ctx, key, pr)
		pr.CloseWithError(err)
		if err == nil {
			// Put saw the end of the stream, so finish has sent the part
			// (or the part was aborted, and the backup fails).
			select {
			case part := <-p.final:
				if part.Archive != "manifest" {
					u.addPart(part)
				}
			case <-p.aborted:
				err = fmt.Errorf("part %s: aborted, though the store took it as whole", key)
			}
		}
		p.done <- err
		return err
	})
	p.cg.Go(p.compress)
	return p, nil
}

// compress runs in its own goroutine: it feeds the chunks to the codec and
// closes it. After an error it keeps draining, so Write never blocks on it.
func (p *partWriter) compress() error {
	var err error
	cw, _ := p.zw.(compress.ChecksummedWriter)
	for c := range p.chunks {
		if err == nil {
			if p.sums && cw != nil {
				_, err = cw.WriteChecksummed(c.b, c.crc)
			} else {
				_, err = p.zw.Write(c.b)
			}
			if err != nil {
				p.failed.Store(true)
			}
		}
		select {
		case p.free <- c.b[:0]:
		default: // free is full: let the collector have it
		}
	}
	if err != nil {
		p.zw.Close()
		return err
	}
	if err := p.zw.Close(); err != nil {
		p.failed.Store(true)
		return err
	}
	return nil
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func (p *partWriter) writeStored(b []byte) (int, error) {
	n, err := p.pw.Write(b)
	p.hash.Write(b[:n])
	p.stored += int64(n)
	return n, err
}

// Write copies b into chunks for the compressing goroutine.
func (p *partWriter) Write(b []byte) (int, error) { return p.write(b, false) }

// writeContent is Write for a file's content, whose CRC-32C, with sums, is
// added to what takeContent returns.
func (p *partWriter) writeContent(b []byte) (int, error) { return p.write(b, true) }

// takeContent returns the CRC-32C and the length of what writeContent
// copied since the last call.
func (p *partWriter) takeContent() (uint32, int64) {
	crc, n := p.content, p.contentLen
	p.content, p.contentLen = 0, 0
	return crc, n
}

func (p *partWriter) write(b []byte, content bool) (int, error) {
	n := len(b)
	for len(b) > 0 {
		if p.failed.Load() {
			return 0, p.stop()
		}
		if p.cur == nil {
			select {
			case p.cur = <-p.free:
			default:
				p.cur = make([]byte, 0, chunkSize)
			}
		}
		k := copy(p.cur[len(p.cur):cap(p.cur)], b)
		if p.sums {
			crc := crc32.Checksum(b[:k], castagnoli)
			p.curCRC = crc32cCombine(p.curCRC, crc, int64(k))
			if content {
				p.content = crc32cCombine(p.content, crc, int64(k))
				p.contentLen += int64(k)
			}
		}
		p.cur = p.cur[:len(p.cur)+k]
		b = b[k:]
		if len(p.cur) == cap(p.cur) {
			p.chunks <- chunk{p.cur, p.curCRC}
			p.cur, p.curCRC = nil, 0
		}
	}
	p.raw += int64(n)
	return n, nil
}

// stop hands over the last chunk, lets the compressing goroutine finish, and
// returns its error.
func (p *partWriter) stop() error {
	if !p.closed {
		p.closed = true
		if len(p.cur) > 0 {
			p.chunks <- chunk{p.cur, p.curCRC}
		}
		p.cur, p.curCRC = nil, 0
		close(p.chunks)
	}
	return p.cg.Wait()
}

// finish completes the part and returns it once it is durably stored. The
// upload goes on in the background; the part is recorded when it is done.
func (p *partWriter) finish() (Part, error) {
	if err := p.stop(); err != nil {
		p.pw.CloseWithError(err)
		return Part{}, fmt.Errorf("compress %s: %w", p.part.Key, err)
	}
	p.part.RawSize = p.raw
	p.part.Size = p.stored
	p.part.Checksum = checksumString(p.hash)
	part := p.part
	p.final <- part
	p.pw.Close()
	if part.Archive == "manifest" {
		if err := <-p.done; err != nil {
			return Part{}, err
		}
	}
	return part, nil
}

func (p *partWriter) abort(err error) {
	p.pw.CloseWithError(err) // unblocks a compressing goroutine writing into the pipe
	p.stop()
	select {
	case <-p.aborted: // aborted before
	default:
		close(p.aborted)
	}
}

// checksumString is how parts record their checksum: "xxh3-128:<hex>".
func checksumString(h *xxh3.Hasher) string {
	sum := h.Sum128().Bytes()
	return "xxh3-128:" + hex.EncodeToString(sum[:])
}
