// Package local is the folder backend: a repository in a plain local directory.
//
// Every Put writes a temporary file next to its final name, fsyncs it, renames
// it into place and fsyncs the directory, so after a crash an object is either
// whole under its name or absent. Temporary files carry tmpPrefix and are
// never listed; leftovers of killed writers are garbage that retention removes.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tusk-backup/tusk/directio"
	"github.com/tusk-backup/tusk/storage"
)

// tmpPrefix starts the name of every file a Put has not finished.
const tmpPrefix = ".tusk-tmp-"

// Store keeps objects as files under Root.
type Store struct {
	root string
	// noDirect is set once the file system refused direct I/O: later
	// objects go through the page cache only.
	noDirect atomic.Bool
}

// New returns a Store rooted at dir, which must be an absolute path. The
// folder is created (0700) on first write if it does not exist.
func New(dir string) (*Store, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("repository folder %q is not an absolute path", dir)
	}
	return &Store{root: filepath.Clean(dir)}, nil
}

// Root returns the repository folder.
func (s *Store) Root() string { return s.root }

// Check makes sure the repository folder is a writable directory, or, if
// it does not exist yet, that it can be created (its nearest existing
// parent is a writable directory). It creates nothing: the first Put makes
// the folder, so that a command that only reads never leaves an empty
// repository folder behind (owned by whoever ran it).
func (s *Store) Check(ctx context.Context) error {
	fi, err := os.Stat(s.root)
	switch {
	case errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("repository folder %s cannot be created: %w", s.root, syscall.ENOTDIR)
	case errors.Is(err, fs.ErrNotExist):
		parent := filepath.Dir(s.root)
		for {
			pfi, perr := os.Stat(parent)
			if perr == nil {
				if !pfi.IsDir() {
					return fmt.Errorf("repository folder %s cannot be created: %w", s.root, syscall.ENOTDIR)
				}
				if err := syscall.Access(parent, 0x2|0x1); err != nil { // W_OK|X_OK
					return fmt.Errorf("repository folder %s cannot be created in %s: %w", s.root, parent, err)
				}
				return nil
			}
			if errors.Is(perr, syscall.ENOTDIR) {
				return fmt.Errorf("repository folder %s cannot be created: %w", s.root, syscall.ENOTDIR)
			}
			if !errors.Is(perr, fs.ErrNotExist) || parent == filepath.Dir(parent) {
				return fmt.Errorf("repository folder %s: %w", s.root, unwrapPath(perr))
			}
			parent = filepath.Dir(parent)
		}
	case err != nil:
		return fmt.Errorf("repository folder %s: %w", s.root, unwrapPath(err))
	case !fi.IsDir():
		return fmt.Errorf("repository folder %s is not a directory", s.root)
	}
	f, err := os.CreateTemp(s.root, tmpPrefix+"check-")
	if err != nil {
		return fmt.Errorf("repository folder %s is not writable: %w", s.root, unwrapPath(err))
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

func (s *Store) path(key string) (string, error) {
	if err := storage.CheckKey(key); err != nil {
		return "", err
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

// Put implements storage.Storage.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) (err error) {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	dir := filepath.Dir(p)
	var f *os.File
	// Delete removes folders it empties; a folder removed between MkdirAll
	// and CreateTemp is made again.
	for try := 0; ; try++ {
		if err = s.mkdirs(dir); err == nil {
			f, err = os.CreateTemp(dir, tmpPrefix+filepath.Base(p)+"-")
		}
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) || try == 2 {
			return fmt.Errorf("put %s: %w", key, unwrapPath(err))
		}
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// Objects of a chunk and more are written with direct I/O where the
	// file system takes it (directio): a backup-push into a folder
	// otherwise fills the page cache with what it stores, which on the
	// VMs tusk is measured on cost the writer more system time than the
	// rest of the push (measured by hand on 2 December 2026, a pgbench
	// scale-400 local-mode push: 4.5-5.2 s of system time against
	// 1.0-1.3 s for the same push to MinIO, 29% of its samples in
	// copy_folio_from_iter_atomic), and on a database host pushes out
	// of the cache what the server reads.
	dw := directio.NewWriter(f, 0, s.noDirect.Load())
	rerr, werr := dw.CopyFrom(ctxReader{ctx, r})
	if dw.Refused() {
		s.noDirect.Store(true)
	}
	if werr == nil {
		werr = dw.Flush()
	}
	if werr != nil {
		return fmt.Errorf("put %s: %w", key, werr)
	}
	if rerr != nil {
		return fmt.Errorf("put %s: %w", key, rerr)
	}
	if key == storage.MarkerKey {
		// The marker holds nothing secret, and every user of the
		// repository reads it (the archiver, and backup-push run as root
		// before the first segment was archived).
		f.Chmod(0o644) // best effort: some mounts refuse modes
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("put %s: sync: %w", key, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("put %s: %w", key, unwrapPath(err))
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("put %s: sync folder: %w", key, err)
	}
	return nil
}

// mkdirs makes dir and its missing parents (0700) and fsyncs the folder that
// holds each one it made, so that a new folder survives a crash along with
// the object written into it.
func (s *Store) mkdirs(dir string) error {
	var made []string
	for d := dir; strings.HasPrefix(d, s.root); d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		made = append(made, d)
		if d == s.root {
			break
		}
	}
	if len(made) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, d := range made {
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

// Get implements storage.Storage.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, notFound(err))
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	if fi.IsDir() {
		f.Close()
		return nil, fmt.Errorf("get %s: %w", key, storage.ErrNotFound)
	}
	if fi.Size() < directio.Chunk || s.noDirect.Load() {
		return f, nil
	}
	// Read with direct I/O, as Put writes: a restore from a folder does
	// not fill the page cache with the backup it reads, which it leaves
	// to the data directory that PostgreSQL starts from.
	r := directio.NewReader(f, false)
	if r.Refused() {
		s.noDirect.Store(true)
	}
	return r, nil
}

// Stat implements storage.Storage.
func (s *Store) Stat(ctx context.Context, key string) (storage.Object, error) {
	p, err := s.path(key)
	if err != nil {
		return storage.Object{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return storage.Object{}, fmt.Errorf("stat %s: %w", key, notFound(err))
	}
	if fi.IsDir() {
		return storage.Object{}, fmt.Errorf("stat %s: %w", key, storage.ErrNotFound)
	}
	return storage.Object{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// List implements storage.Storage. It walks only the folders the prefix can
// reach and reads one folder at a time, sorting its entries so that keys come
// out in byte order (a folder "a" sorts as "a/", after a file "a-b").
func (s *Store) List(ctx context.Context, prefix string, fn func(storage.Object) error) error {
	dirPart, namePart := "", prefix
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dirPart, namePart = prefix[:i], prefix[i+1:]
	}
	if dirPart != "" {
		if err := storage.CheckKey(dirPart); err != nil {
			return fmt.Errorf("list %q: %w", prefix, err)
		}
	}
	return s.walk(ctx, dirPart, namePart, fn)
}

type entry struct {
	name  string
	sort  string
	isDir bool
}

func (s *Store) walk(ctx context.Context, dir, namePrefix string, fn func(storage.Object) error) error {
	abs := filepath.Join(s.root, filepath.FromSlash(dir))
	des, err := os.ReadDir(abs)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil // nothing under this prefix
		}
		return fmt.Errorf("list %s: %w", abs, unwrapPath(err))
	}
	entries := make([]entry, 0, len(des))
	for _, de := range des {
		name := de.Name()
		if !strings.HasPrefix(name, namePrefix) || strings.HasPrefix(name, tmpPrefix) {
			continue
		}
		e := entry{name: name, sort: name, isDir: de.IsDir()}
		if e.isDir {
			e.sort = name + "/"
		}
		entries = append(entries, e)
	}
	des = nil
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.sort, b.sort) })
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		key := e.name
		if dir != "" {
			key = dir + "/" + e.name
		}
		if e.isDir {
			if err := s.walk(ctx, key, "", fn); err != nil {
				return err
			}
			continue
		}
		fi, err := os.Lstat(filepath.Join(abs, e.name))
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted while listing
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", key, err)
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		if err := fn(storage.Object{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
			return err
		}
	}
	return nil
}

// Delete implements storage.Storage.
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	dirs := map[string]bool{}
	for _, key := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		p, err := s.path(key)
		if err != nil {
			return err
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete %s: %w", key, unwrapPath(err))
		}
		dirs[filepath.Dir(p)] = true
	}
	for dir := range dirs {
		// Remove the folders this delete emptied, up to the root, so that
		// deleted backups and old WAL leave no empty folders behind.
		for strings.HasPrefix(dir, s.root+string(filepath.Separator)) && os.Remove(dir) == nil {
			dir = filepath.Dir(dir)
		}
		if err := syncDir(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete: sync folder %s: %w", dir, err)
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func notFound(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return storage.ErrNotFound
	}
	return unwrapPath(err)
}

// unwrapPath drops the *PathError's operation and path (callers name the
// object or folder themselves) but keeps the cause for errors.Is.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}

// ctxReader stops a copy when ctx is done. It holds a context because
// io.Reader has no place for one; it lives only for the duration of one Put.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Sweep removes the temporary files of Puts that never finished (a process
// killed mid-write) and were last written before before. Listings never show
// them; they only take space. It returns how many it removed.
func (s *Store) Sweep(ctx context.Context, before time.Time) (int, error) {
	n := 0
	err := filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !strings.HasPrefix(d.Name(), tmpPrefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil || !fi.ModTime().Before(before) {
			return nil
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove unfinished write %s: %w", p, unwrapPath(err))
		}
		n++
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("sweep %s: %w", s.root, err)
	}
	return n, nil
}
