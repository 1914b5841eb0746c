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
	"sync/atomic"
	"time"

	"github.com/zeebo/xxh3"
	"golang.org/x/sync/errgroup"

	"github.com/tusk-backup/tusk/compress"
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
	if _, err := io.Copy(ew, r); err != nil {
		if ew.err != nil {
			return destError(root, ew.err)
		}
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
	}
	return nil
}

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
// the full backup first) into dest, composing an incremental backup's
// files from the whole chain.
func RestoreChain(ctx context.Context, chain []Meta, dest string, opts FetchOptions) error {
	if len(chain) == 0 {
		return errors.New("no backup to restore")
	}
	return Restore(ctx, chain[len(chain)-1], dest, opts)
}

// Restore unpacks backup m into dest (empty or missing) and its tablespaces,
// verifying every part, and writes PostgreSQL's backup manifest into dest.
// On failure it removes what it created.
func Restore(ctx context.Context, m Meta, dest string, opts FetchOptions) (err error) {
	if m.Incremental() {
		return fmt.Errorf("backup %s is incremental (on %s), and this tusk cannot compose a chain yet: restore its full backup %s, or a tusk that restores incremental backups", m.Name, m.Parent, m.ChainFull)
	}
	dest, err = filepath.Abs(dest)
	if err != nil {
		return err
	}
	spaces := tablespaceDirs(m, opts.TablespaceMap)
	roots := map[string]string{"base": dest}
	if err := CheckDest(dest, "restore folder"); err != nil {
		return err
	}
	for oid, dir := range spaces {
		if !filepath.IsAbs(dir) {
			return fmt.Errorf("tablespace %s: location %s is not an absolute path", oid, dir)
		}
		if err := CheckDest(dir, "tablespace "+oid+" folder"); err != nil {
			return fmt.Errorf("%w (map it elsewhere with --tablespace-mapping OLD=NEW)", err)
		}
		roots[oid] = dir
	}
	// On failure, what was written goes: a folder the restore made is
	// removed, one that existed (empty) is emptied.
	var made, emptied []string
	defer func() {
		if err != nil {
			for _, dir := range made {
				os.RemoveAll(dir)
			}
			for _, dir := range emptied {
				removeContents(dir)
			}
		}
	}()
	for _, dir := range roots {
		if _, err := os.Stat(dir); err == nil {
			emptied = append(emptied, dir)
		} else {
			made = append(made, dir)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			return err
		}
	}

	var total, done atomic.Int64
	for _, p := range m.Parts {
		total.Add(p.RawSize)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(opts.Concurrency, 1))
	for _, p := range m.Parts {
		root, ok := roots[p.Archive]
		if !ok {
			return fmt.Errorf("backup %s: part %s belongs to tablespace %s, which the metadata does not list", m.Name, p.Key, p.Archive)
		}
		g.Go(func() error {
			return fetchPart(gctx, opts.Store, p, func(r io.Reader) error {
				return unpack(r, root, p, spaces, &done, opts.Progress, total.Load())
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
	// Every part matched its checksum, but the parts list itself could be
	// short: a data directory without these is no restore at all.
	for _, f := range restoreNeeds {
		if _, err := os.Stat(filepath.Join(dest, filepath.FromSlash(f))); err != nil {
			return fmt.Errorf("backup %s is incomplete: its parts hold no %s, so the restored folder could not start (tusk verify %s reports it)", m.Name, f, m.Name)
		}
	}
	return nil
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
func unpack(r io.Reader, root string, p Part, spaces map[string]string, done *atomic.Int64, progress func(int64, int64), total int64) error {
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
			if err := writeEntry(root, e.target, e.hdr, e.data); err != nil {
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

// writeEntry writes a regular file under root or, for a piece of a split
// file, its range of the file.
func writeEntry(root, target string, hdr *tar.Header, r io.Reader) error {
	offStr, piece := hdr.PAXRecords[paxOffset]
	if !piece {
		f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s: the part holds it twice", ErrCorrupt, hdr.Name)
		}
		if err != nil {
			return destError(root, err)
		}
		if err := copyInto(root, hdr.Name, f, r); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return destError(root, err)
		}
		if !hdr.ModTime.IsZero() {
			os.Chtimes(target, hdr.ModTime, hdr.ModTime)
		}
		return nil
	}
	off, err1 := strconv.ParseInt(offStr, 10, 64)
	size, err2 := strconv.ParseInt(hdr.PAXRecords[paxSize], 10, 64)
	if err1 != nil || err2 != nil || off < 0 || off+hdr.Size > size {
		return fmt.Errorf("%w: %s: bad piece offset %q of %q", ErrCorrupt, hdr.Name, offStr, hdr.PAXRecords[paxSize])
	}
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return destError(root, err)
	}
	if err := copyInto(root, hdr.Name, io.NewOffsetWriter(f, off), r); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return destError(root, err)
	}
	return nil
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
