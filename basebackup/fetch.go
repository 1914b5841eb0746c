package basebackup

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zeebo/xxh3"
	"golang.org/x/sync/errgroup"

	"github.com/tusk-backup/tusk/compress"
	"github.com/tusk-backup/tusk/incremental"
	"github.com/tusk-backup/tusk/storage"
)

// ErrCorrupt marks a part that fails verification or that tries to write
// outside the restore's directories.
var ErrCorrupt = errors.New("backup part is corrupt")

// DestError is a failure to write into a restore's folder (a full disk, a
// read-only or vanished mount, permissions): the backup is fine, the
// destination is not.
type DestError struct {
	Dir string // the restore folder or tablespace folder
	Err error  // the system's reason, without the file: "no space left on device"
}

func (e *DestError) Error() string { return fmt.Sprintf("cannot write into %s: %v", e.Dir, e.Err) }
func (e *DestError) Unwrap() error { return e.Err }

func destError(dir string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		err = le.Err
	}
	return &DestError{Dir: dir, Err: err}
}

// errWriter and errReader remember the first error of the writer or reader
// they wrap, so that a failed copy can tell whose fault it was: the
// destination's, the download's, or the part's.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}

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

// downloadFailed reports whether err, of reading a part from the
// repository, is the transfer's (the network, a stall, a cancellation)
// rather than the object's: a stored checksum that does not match stays
// the part's fault.
func downloadFailed(err error) bool {
	var ne net.Error
	return err != nil && (errors.As(err, &ne) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))
}

// copyInto copies a tar entry's data r into w, a file under root: a write
// error is a DestError, a read error the part's.
func copyInto(root, name string, w io.Writer, r io.Reader) error {
	ew := &errWriter{w: w}
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	if _, err := io.CopyBuffer(ew, r, *buf); err != nil {
		if ew.err != nil {
			return destError(root, ew.err)
		}
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
	}
	return nil
}

// copyBuffers hold the buffers files are restored through: one write call
// per 256 KiB instead of io.Copy's 32 KiB (a 1.6 GB restore made 50,737
// pwrite calls through io.Copy's buffer; the chain composer, writing
// 256 KiB at a time, made 7,207 for the same data). At most one per
// download at work, so TUSK_DOWNLOAD_CONCURRENCY × 256 KiB.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// FetchOptions configure a restore.
type FetchOptions struct {
	Store       storage.Storage
	Concurrency int
	// TablespaceMap maps a tablespace's original location to where it is
	// restored; unmapped tablespaces return to their original location.
	TablespaceMap map[string]string
	Log           *slog.Logger
	// Progress, if set, is called now and then with restored bytes.
	Progress func(done, total int64)
	// NoSync leaves the restored files to the kernel's writeback instead of
	// making them durable before the restore returns: for throwaway
	// restores. Without it every file and folder written, BeforeSeal's
	// included, is on disk when Restore returns nil.
	NoSync bool
	// BeforeSeal, if set, is called with the data directory once every
	// file of the backup is written, before the restore is made durable
	// and global/pg_control put in place (see the note on controlFile):
	// restore.Run writes the recovery settings there, so that they too are
	// on disk before PostgreSQL could start from the folder. Its error
	// fails the restore, which removes what it wrote.
	BeforeSeal func(dest string) error
}

// CheckDest verifies that dir is empty or missing (a restore never
// overwrites anything) and that its parent exists.
func CheckDest(dir, what string) error {
	des, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		parent := filepath.Dir(dir)
		if fi, err := os.Stat(parent); err != nil || !fi.IsDir() {
			return fmt.Errorf("%s %s cannot be created: its parent folder %s does not exist", what, dir, parent)
		}
		return nil
	case err != nil:
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("%s %s cannot be read: %w", what, dir, err)
	case unfinished(des):
		return fmt.Errorf("%s %s %w (tusk was stopped before it ended, and PostgreSQL cannot start from it): remove it and restore again", what, dir, ErrUnfinished)
	case len(des) > 0:
		return fmt.Errorf("%s %s is not empty: restore into a new or empty folder", what, dir)
	}
	return nil
}

// tablespaceDirs returns where each of m's tablespaces goes.
func tablespaceDirs(m Meta, mapping map[string]string) map[string]string {
	out := map[string]string{}
	for _, s := range m.Tablespaces {
		if s.OID == "" {
			continue
		}
		dir := s.Location
		if to, ok := mapping[s.Location]; ok {
			dir = to
		}
		out[s.OID] = dir
	}
	return out
}

// RestoreChain restores the last backup of chain (as ReadChain returns it:
// the full backup first) into dest. A full backup is unpacked as Restore
// does; an incremental one is composed from the whole chain in one pass
// over each backup, newest first (see incremental.Composer), and gets the
// combined manifest pg_combinebackup would write.
func RestoreChain(ctx context.Context, chain []Meta, dest string, opts FetchOptions) (err error) {
	if len(chain) == 0 {
		return errors.New("no backup to restore")
	}
	for _, m := range chain {
		if err := m.NeedsKey(); err != nil {
			return err
		}
	}
	newest := chain[len(chain)-1]
	if !newest.Incremental() {
		return Restore(ctx, newest, dest, opts)
	}
	for i, m := range chain {
		if (i == 0) == m.Incremental() || (i > 0 && m.Parent != chain[i-1].Name) {
			return fmt.Errorf("backup %s: the chain given to restore is not a full backup followed by its incrementals", newest.Name)
		}
	}
	d, err := prepareDest(newest, dest, opts)
	if err != nil {
		return err
	}
	defer func() { d.cleanup(err) }()
	man, err := readManifest(ctx, opts.Store, newest)
	if err != nil {
		return err
	}
	comp, err := incremental.NewComposer(d.dest, man, incremental.ComposeOptions{
		Path:        d.composedPath,
		Concurrency: max(opts.Concurrency, 1),
	})
	if err != nil {
		return fmt.Errorf("backup %s: %w", newest.Name, err)
	}
	defer comp.Close()
	var total, done atomic.Int64
	for _, m := range chain {
		for _, p := range m.Parts {
			total.Add(p.RawSize)
		}
	}
	for k := len(chain) - 1; k >= 0; k-- {
		m := chain[k]
		var own *incremental.Manifest
		if k < len(chain)-1 {
			// An older backup's own manifest gives the checksum of a file
			// that no later backup changed, so it need not be read back.
			if own, err = readManifest(ctx, opts.Store, m); err != nil {
				return err
			}
		}
		if err := comp.StartBackup(m.Name, own); err != nil {
			return fmt.Errorf("backup %s: %w", newest.Name, err)
		}
		if err := d.compose(ctx, m, k == len(chain)-1, comp, opts, &done, total.Load()); err != nil {
			return err
		}
	}
	res, err := comp.Finish()
	if err != nil {
		return fmt.Errorf("backup %s: %w", newest.Name, err)
	}
	f, err := os.OpenFile(filepath.Join(d.dest, "backup_manifest"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return destError(d.dest, err)
	}
	werr := res.Manifest.Write(f)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return destError(d.dest, werr)
	}
	if opts.Log != nil {
		opts.Log.Info("chain composed", "backup", newest.Name, "backups", len(chain), "files_rebuilt", res.Rebuilt,
			"visibility_map_pages_cleared", res.VMPagesZeroed)
		for _, z := range res.ZeroFilled {
			// As pg_combinebackup: blocks the server added without
			// logging them (a relation extended in bulk), in no backup.
			opts.Log.Debug("blocks in no backup of the chain left zero", "file", z.Path, "first", z.First, "blocks", z.Blocks)
		}
	}
	return d.finish(newest, opts)
}

// restoreDest is a restore's destination: the data directory and each
// tablespace's folder, made (or found empty) before anything is written.
type restoreDest struct {
	dest   string
	roots  map[string]string // by archive: "base" and each tablespace OID
	spaces map[string]string // tablespace OID to folder
	made   []string          // folders made, removed on failure
	empty  []string          // folders found empty, emptied on failure
}

// prepareDest checks and makes dest and m's tablespace folders.
func prepareDest(m Meta, dest string, opts FetchOptions) (*restoreDest, error) {
	dest, err := filepath.Abs(dest)
	if err != nil {
		return nil, err
	}
	d := &restoreDest{dest: dest, spaces: tablespaceDirs(m, opts.TablespaceMap), roots: map[string]string{"base": dest}}
	if err := CheckDest(dest, "restore folder"); err != nil {
		return nil, err
	}
	for oid, dir := range d.spaces {
		if !filepath.IsAbs(dir) {
			return nil, fmt.Errorf("tablespace %s: location %s is not an absolute path", oid, dir)
		}
		if err := CheckDest(dir, "tablespace "+oid+" folder"); err != nil {
			return nil, fmt.Errorf("%w (map it elsewhere with --tablespace-mapping OLD=NEW)", err)
		}
		d.roots[oid] = dir
	}
	for _, dir := range d.roots {
		if _, err := os.Stat(dir); err == nil {
			d.empty = append(d.empty, dir)
		} else {
			d.made = append(d.made, dir)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			d.cleanup(err)
			return nil, fmt.Errorf("create %s: %w", dir, err)
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			d.cleanup(err)
			return nil, err
		}
	}
	if err := d.mark(); err != nil {
		d.cleanup(err)
		return nil, err
	}
	return d, nil
}

// cleanup removes what a failed restore wrote: a folder it made is
// removed, one that existed (empty) is emptied.
func (d *restoreDest) cleanup(err error) {
	if err == nil {
		return
	}
	for _, dir := range d.made {
		os.RemoveAll(dir)
	}
	for _, dir := range d.empty {
		removeContents(dir)
	}
}

// complete checks that the restored folder has what a start needs: every
// part matched its checksum, but the parts list itself could be short.
func (d *restoreDest) complete(m Meta) error {
	for _, f := range restoreNeeds {
		at := f
		if f == controlFile {
			at = heldControl // put in place by finish, last
		}
		if _, err := os.Stat(filepath.Join(d.dest, filepath.FromSlash(at))); err != nil {
			return fmt.Errorf("backup %s is incomplete: its parts hold no %s, so the restored folder could not start (tusk verify %s reports it)", m.Name, f, m.Name)
		}
	}
	return nil
}

// composedPath is where a file of the composed data directory goes, by its
// path in the manifest: a tablespace's files (pg_tblspc/OID/...) into the
// tablespace's folder, never through its link.
func (d *restoreDest) composedPath(p string) (string, error) {
	if rest, ok := strings.CutPrefix(p, "pg_tblspc/"); ok {
		oid, sub, ok := strings.Cut(rest, "/")
		dir, known := d.spaces[oid]
		if !ok || !known {
			return "", fmt.Errorf("%w: %s is in no tablespace the metadata lists", ErrCorrupt, p)
		}
		return filepath.Join(dir, filepath.FromSlash(sub)), nil
	}
	if p == controlFile {
		p = heldControl
	}
	return filepath.Join(d.dest, filepath.FromSlash(p)), nil
}

// compose feeds backup m's parts to comp, TUSK_DOWNLOAD_CONCURRENCY at a
// time. The newest backup's folders and links are made as they come; older
// backups contribute file contents only.
func (d *restoreDest) compose(ctx context.Context, m Meta, newest bool, comp *incremental.Composer, opts FetchOptions, done *atomic.Int64, total int64) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(opts.Concurrency, 1))
	for _, p := range m.Parts {
		root, ok := d.roots[p.Archive]
		if !ok {
			if newest {
				return fmt.Errorf("backup %s: part %s belongs to tablespace %s, which the metadata does not list", m.Name, p.Key, p.Archive)
			}
			// A tablespace dropped since this older backup: none of its
			// files is in the newest manifest.
			continue
		}
		g.Go(func() error {
			return fetchPart(gctx, opts.Store, p, func(r io.Reader) error {
				last := time.Now()
				return eachEntry(r, root, p, d.spaces, func(e tarEntry) error {
					switch e.hdr.Typeflag {
					case tar.TypeDir:
						if newest {
							if err := os.MkdirAll(e.target, 0o700); err != nil {
								return destError(root, err)
							}
						}
					case tar.TypeSymlink:
						if newest {
							if err := os.MkdirAll(filepath.Dir(e.target), 0o700); err != nil {
								return destError(root, err)
							}
							if err := os.Symlink(e.link, e.target); err != nil {
								return destError(root, err)
							}
						}
					case tar.TypeReg:
						name := path.Clean(e.hdr.Name)
						if p.Archive != "base" {
							name = "pg_tblspc/" + p.Archive + "/" + name
						}
						file, inc := incremental.Split(name)
						kind := incremental.Full
						if inc {
							kind = incremental.Incremental
						}
						off, size, err := pieceOf(e.hdr)
						if err != nil {
							return err
						}
						if err := comp.File(file, kind, off, size, e.data); err != nil {
							return err
						}
						done.Add(e.hdr.Size)
					}
					if opts.Progress != nil && time.Since(last) > 200*time.Millisecond {
						last = time.Now()
						opts.Progress(done.Load(), total)
					}
					return nil
				})
			})
		})
	}
	if err := g.Wait(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	return nil
}

// pieceOf says which bytes of its file a tar entry holds: a piece of a
// split file carries its offset and the whole size (TUSK.offset,
// TUSK.size); a whole file is all of it.
func pieceOf(hdr *tar.Header) (off, size int64, err error) {
	offStr, piece := hdr.PAXRecords[paxOffset]
	if !piece {
		return 0, hdr.Size, nil
	}
	off, err1 := strconv.ParseInt(offStr, 10, 64)
	size, err2 := strconv.ParseInt(hdr.PAXRecords[paxSize], 10, 64)
	if err1 != nil || err2 != nil || off < 0 || off+hdr.Size > size {
		return 0, 0, fmt.Errorf("%w: %s: bad piece offset %q of %q", ErrCorrupt, hdr.Name, offStr, hdr.PAXRecords[paxSize])
	}
	return off, size, nil
}

// readManifest reads and parses backup m's PostgreSQL manifest.
func readManifest(ctx context.Context, st storage.Storage, m Meta) (*incremental.Manifest, error) {
	if m.Manifest.Key == "" {
		return nil, fmt.Errorf("backup %s records no backup manifest, which composing its chain needs", m.Name)
	}
	var man *incremental.Manifest
	err := fetchPart(ctx, st, m.Manifest, func(r io.Reader) error {
		b, err := io.ReadAll(io.LimitReader(r, 1<<30))
		if err != nil {
			return err
		}
		man, err = incremental.ParseManifest(b)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", m.Name, err)
	}
	return man, nil
}

// Restore unpacks backup m into dest (empty or missing) and its tablespaces,
// verifying every part, and writes PostgreSQL's backup manifest into dest.
// On failure it removes what it created.
func Restore(ctx context.Context, m Meta, dest string, opts FetchOptions) (err error) {
	if err := m.NeedsKey(); err != nil {
		return err
	}
	if m.Incremental() {
		return fmt.Errorf("backup %s is incremental (on %s): restore it with its chain (RestoreChain)", m.Name, m.Parent)
	}
	d, err := prepareDest(m, dest, opts)
	if err != nil {
		return err
	}
	defer func() { d.cleanup(err) }()
	dest, spaces, roots := d.dest, d.spaces, d.roots

	var total, done atomic.Int64
	for _, p := range m.Parts {
		total.Add(p.RawSize)
	}
	w := &fileWriter{early: !opts.NoSync, direct: restoreDirect}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(opts.Concurrency, 1))
	for _, p := range m.Parts {
		root, ok := roots[p.Archive]
		if !ok {
			return fmt.Errorf("backup %s: part %s belongs to tablespace %s, which the metadata does not list", m.Name, p.Key, p.Archive)
		}
		g.Go(func() error {
			return fetchPart(gctx, opts.Store, p, func(r io.Reader) error {
				return unpack(r, w, root, p, spaces, &done, opts.Progress, total.Load())
			})
		})
	}
	if m.Manifest.Key != "" {
		g.Go(func() error {
			return fetchPart(gctx, opts.Store, m.Manifest, func(r io.Reader) error {
				return writeFile(dest, "backup_manifest", r)
			})
		})
	}
	if err := g.Wait(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	return d.finish(m, opts)
}

// removeContents empties dir, leaving dir itself.
func removeContents(dir string) {
	des, _ := os.ReadDir(dir)
	for _, de := range des {
		os.RemoveAll(filepath.Join(dir, de.Name()))
	}
}

// fetchPart downloads one part, hands its decompressed stream to use, and
// checks the stored bytes' size and checksum at the end.
func fetchPart(ctx context.Context, st storage.Storage, p Part, use func(io.Reader) error) error {
	rc, err := st.Get(ctx, p.Key)
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("part %s is missing from the repository: %w", p.Key, ErrCorrupt)
	}
	if err != nil {
		return fmt.Errorf("download %s: %w", p.Key, err)
	}
	defer rc.Close()
	codec, _ := compress.FromKey(p.Key)
	h := xxh3.New()
	var n countingWriter
	download := &errReader{r: rc}
	src := io.TeeReader(download, io.MultiWriter(h, &n))
	zr, err := codec.NewReader(src)
	if err != nil {
		if downloadFailed(download.err) {
			return fmt.Errorf("download %s: %w", p.Key, download.err)
		}
		return fmt.Errorf("%s: %w: %v", p.Key, ErrCorrupt, err)
	}
	defer zr.Close()
	if err := use(zr); err != nil {
		var de *DestError
		switch {
		case errors.As(err, &de):
			return err // the part is not at fault: not named
		case downloadFailed(download.err):
			return fmt.Errorf("download %s: %w", p.Key, download.err)
		}
		return fmt.Errorf("%s: %w", p.Key, err)
	}
	// Read what is left (the compressed stream's end, the tar padding), so
	// the checksum covers the whole object.
	if _, err := io.Copy(io.Discard, zr); err != nil {
		if downloadFailed(download.err) {
			return fmt.Errorf("download %s: %w", p.Key, download.err)
		}
		return fmt.Errorf("%s: %w: %v", p.Key, ErrCorrupt, err)
	}
	if _, err := io.Copy(io.Discard, src); err != nil {
		return fmt.Errorf("download %s: %w", p.Key, err)
	}
	got := checksumString(h)
	if int64(n) != p.Size || got != p.Checksum {
		return fmt.Errorf("%s: %w: %d bytes with checksum %s, the metadata records %d bytes with %s",
			p.Key, ErrCorrupt, int64(n), got, p.Size, p.Checksum)
	}
	return nil
}

type countingWriter int64

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}

// tarEntry is one entry of a part that a restore accepts.
type tarEntry struct {
	hdr    *tar.Header
	target string    // where it lands under root
	link   string    // for a symlink, what it points to
	data   io.Reader // for a regular file, its bytes
}

// eachEntry reads a part's tar entries and hands fn those a restore accepts:
// folders, regular files and symlinks that land, and point, inside root
// (tablespace links to their mapped folders). Anything else is ErrCorrupt.
// unpack and Verify both read parts through it, so verify accepts exactly
// what a restore does.
func eachEntry(r io.Reader, root string, p Part, spaces map[string]string, fn func(tarEntry) error) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		target, err := safePath(root, hdr.Name)
		if err != nil {
			return err
		}
		e := tarEntry{hdr: hdr, target: target}
		switch hdr.Typeflag {
		case tar.TypeDir:
		case tar.TypeReg:
			e.data = tr
		case tar.TypeSymlink:
			if e.link, err = symlinkTarget(root, hdr, p.Archive, spaces); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: entry %s has type %q, which a base backup never holds", ErrCorrupt, hdr.Name, hdr.Typeflag)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}

// unpack writes one part's tar entries under root.
func unpack(r io.Reader, w *fileWriter, root string, p Part, spaces map[string]string, done *atomic.Int64, progress func(int64, int64), total int64) error {
	last := time.Now()
	return eachEntry(r, root, p, spaces, func(e tarEntry) error {
		switch e.hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(e.target, 0o700); err != nil {
				return destError(root, err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(e.target), 0o700); err != nil {
				return destError(root, err)
			}
			if err := w.writeEntry(root, held(p.Archive, e.hdr.Name, e.target), e.hdr, e.data); err != nil {
				return err
			}
			done.Add(e.hdr.Size)
		case tar.TypeSymlink:
			if err := os.MkdirAll(filepath.Dir(e.target), 0o700); err != nil {
				return destError(root, err)
			}
			if err := os.Symlink(e.link, e.target); err != nil {
				return destError(root, err)
			}
		}
		if progress != nil && time.Since(last) > 200*time.Millisecond {
			last = time.Now()
			progress(done.Load(), total)
		}
		return nil
	})
}

// safePath joins name to root and refuses anything that would land
// outside root.
func safePath(root, name string) (string, error) {
	bad := name == "" || path.IsAbs(name)
	for _, elem := range strings.Split(name, "/") {
		bad = bad || elem == ".."
	}
	clean := path.Clean(name)
	// Tablespace links lead out of the data directory: nothing may be
	// written through them.
	if rest, ok := strings.CutPrefix(clean, "pg_tblspc/"); ok && strings.Contains(rest, "/") {
		bad = true
	}
	if bad {
		return "", fmt.Errorf("%w: entry %q would be written outside the restore folder", ErrCorrupt, name)
	}
	if clean == "." {
		return root, nil
	}
	return filepath.Join(root, filepath.FromSlash(clean)), nil
}

// symlinkTarget returns what a symlink entry may point to: a tablespace
// link in pg_tblspc points to the tablespace's restored location; any other
// link must stay inside root.
func symlinkTarget(root string, hdr *tar.Header, archive string, spaces map[string]string) (string, error) {
	if archive == "base" {
		if oid, ok := strings.CutPrefix(path.Clean(hdr.Name), "pg_tblspc/"); ok && !strings.Contains(oid, "/") {
			if dir, ok := spaces[oid]; ok {
				return dir, nil
			}
			return "", fmt.Errorf("%w: tablespace link %s names a tablespace the metadata does not list", ErrCorrupt, hdr.Name)
		}
	}
	link := hdr.Linkname
	if path.IsAbs(link) {
		return "", fmt.Errorf("%w: symlink %s points outside the restore folder (%s)", ErrCorrupt, hdr.Name, link)
	}
	// Walk the link from the entry's folder: leaving root at any step is
	// refused (path.Join would silently clamp "/.." to "/").
	depth := strings.Count(path.Clean(hdr.Name), "/")
	for _, elem := range strings.Split(link, "/") {
		switch elem {
		case "", ".":
		case "..":
			depth--
		default:
			depth++
		}
		if depth < 0 {
			return "", fmt.Errorf("%w: symlink %s points outside the restore folder (%s)", ErrCorrupt, hdr.Name, link)
		}
	}
	return link, nil
}

// writeFile writes r to a new file name in dir.
func writeFile(dir, name string, r io.Reader) error {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return destError(dir, err)
	}
	if err := copyInto(dir, name, f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return destError(dir, err)
	}
	return nil
}
