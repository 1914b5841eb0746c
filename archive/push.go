package archive

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tusk-backup/tusk/compress"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/wal"
)

// Archive reads and writes WAL files in one repository.
type Archive struct {
	Store storage.Storage
	Codec compress.Codec // for new objects; reading follows each object's header
	Log   *slog.Logger   // nil discards; methods log through a.log()
	// SumKind is the content checksum of new objects: SumXXH3 (also
	// what zero means), or SumSHA256 where the header is shown without
	// encryption (an age-mode repository's envelope, package crypt), so
	// that it reveals no more than a cryptographic hash does.
	SumKind SumKind
	// WALGHint ends the sentence for a wal-g object that does not decode
	// (ErrUnreadable): what to set if wal-g encrypted it, when no key is
	// given; "" otherwise.
	WALGHint string
}

// sumKind is a.SumKind, SumXXH3 when unset.
func (a *Archive) sumKind() SumKind {
	if a.SumKind == 0 {
		return SumXXH3
	}
	return a.SumKind
}

var discard = slog.New(slog.DiscardHandler)

// log is a.Log, or a logger that discards when Log is nil, so that an
// Archive built only to read (verify, wal-verify) never panics on a path
// that logs.
func (a *Archive) log() *slog.Logger {
	if a.Log == nil {
		return discard
	}
	return a.Log
}

// PushOptions tune one push.
type PushOptions struct {
	// PreventOverwrite refuses to replace an archived segment whose content
	// differs. History files are always protected.
	PreventOverwrite bool
	// SystemID, if not zero, is the system identifier of the cluster whose
	// WAL this is: a segment of another cluster is refused.
	SystemID uint64
}

// PushResult says what a push did.
type PushResult struct {
	Name            wal.Name
	Key             string
	Size            int64  // uncompressed
	Sum             string // the content checksum with its kind, e.g. "xxh3-128:…"
	Stored          int64  // bytes written to the repository
	AlreadyArchived bool   // an identical copy was there already
}

// OverwriteError is returned when the repository already holds the file with
// different content: usually two clusters archiving to one prefix.
type OverwriteError struct {
	Key              string
	Stored, Incoming string // checksums of the uncompressed contents, with their kind
}

func (e *OverwriteError) Error() string {
	return fmt.Sprintf("%s is already archived with different content (archived %s, this file %s); "+
		"another cluster may be archiving to the same repository: give each cluster its own repository", e.Key, e.Stored, e.Incoming)
}

// Push uploads the WAL file at path. It returns only once the object is
// durably stored (or an identical copy was found).
func (a *Archive) Push(ctx context.Context, path string, opts PushOptions) (PushResult, error) {
	start := time.Now()
	name, err := wal.ParseName(filepath.Base(path))
	if err != nil {
		return PushResult{}, err
	}
	res := PushResult{Name: name, Key: name.Key()}
	f, err := os.Open(path)
	if err != nil {
		return res, fmt.Errorf("open WAL file %s: %w", path, unwrapPath(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return res, fmt.Errorf("stat WAL file %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return res, fmt.Errorf("WAL file %s is not a regular file", path)
	}
	if name.Kind == wal.Segment || name.Kind == wal.Partial {
		// An empty, cut-short or foreign file under a segment's name would
		// be archived as if PostgreSQL had written it, and replayed.
		if _, err := CheckSegment(f, fi.Size(), name, opts.SystemID); err != nil {
			if errors.Is(err, ErrNotSegment) {
				return res, fmt.Errorf("%w, so it is not archived", err)
			}
			return res, err
		}
	}
	size, sum, err := sumFile(f, a.sumKind())
	if err != nil {
		return res, fmt.Errorf("read WAL file %s: %w", path, err)
	}
	hdr := Header{Codec: a.Codec, Size: size, SumKind: a.sumKind(), Sum: sum}
	res.Size, res.Sum = size, hdr.SumString()

	existing, err := a.head(ctx, res.Key)
	switch {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil && errors.Is(err, ErrCorrupt):
		// A damaged or foreign object is replaced only where overwriting is allowed.
		if name.Kind == wal.History || opts.PreventOverwrite {
			return res, fmt.Errorf("%s exists in the repository but cannot be read as a tusk WAL object (%v); move it aside or delete it, then archiving resumes", res.Key, err)
		}
	case err != nil:
		return res, fmt.Errorf("check %s: %w", res.Key, err)
	default:
		mine := hdr
		if existing.SumKind != mine.SumKind {
			// Archived by an older tusk: compare like with like.
			mine.SumKind = existing.SumKind
			if mine.Sum, err = rehash(f, size, existing.SumKind); err != nil {
				return res, fmt.Errorf("read WAL file %s: %w", path, err)
			}
		}
		switch {
		case existing.Sum == mine.Sum && existing.Size == size:
			res.AlreadyArchived = true
			a.log().Info("wal already archived", "wal", name.File, "key", res.Key, "checksum", mine.SumString())
			return res, nil
		case name.Kind == wal.History || opts.PreventOverwrite:
			return res, &OverwriteError{Key: res.Key, Stored: existing.SumString(), Incoming: mine.SumString()}
		}
		a.log().Warn("overwriting archived wal with different content", "wal", name.File, "key", res.Key,
			"archived_checksum", existing.SumString(), "checksum", mine.SumString())
	}

	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return res, fmt.Errorf("read WAL file %s: %w", path, err)
	}
	stored, err := a.upload(ctx, res.Key, hdr, io.LimitReader(f, size))
	if err != nil {
		return res, err
	}
	res.Stored = stored
	a.log().Info("wal archived", "wal", name.File, "key", res.Key, "bytes", size, "stored_bytes", stored,
		"codec", a.Codec.String(), "duration", time.Since(start).Round(time.Millisecond))
	return res, nil
}

// upload compresses src behind hdr and stores it under key.
func (a *Archive) upload(ctx context.Context, key string, hdr Header, src io.Reader) (int64, error) {
	pr, pw := io.Pipe()
	g, gctx := errgroup.WithContext(ctx)
	var stored countWriter
	g.Go(func() error {
		err := func() error {
			out := io.MultiWriter(pw, &stored)
			if _, err := out.Write(hdr.marshal()); err != nil {
				return err
			}
			zw, err := hdr.Codec.NewWriter(out)
			if err != nil {
				return err
			}
			n, err := io.Copy(zw, src)
			if cerr := zw.Close(); err == nil {
				err = cerr
			}
			if err == nil && n != hdr.Size {
				err = fmt.Errorf("WAL file changed while it was archived (%d bytes read, %d expected)", n, hdr.Size)
			}
			return err
		}()
		pw.CloseWithError(err)
		return err
	})
	g.Go(func() error {
		err := a.Store.Put(gctx, key, pr)
		pr.CloseWithError(err)
		return err
	})
	if err := g.Wait(); err != nil {
		return 0, fmt.Errorf("upload %s: %w", key, err)
	}
	return int64(stored), nil
}

// rehash returns the checksum of kind of f's first size bytes.
func rehash(f *os.File, size int64, kind SumKind) ([32]byte, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return [32]byte{}, err
	}
	_, sum, err := sumFile(io.LimitReader(f, size), kind)
	return sum, err
}

// head reads only the header of the object under key.
func (a *Archive) head(ctx context.Context, key string) (Header, error) {
	rc, err := a.Store.Get(ctx, key)
	if err != nil {
		return Header{}, err
	}
	defer rc.Close()
	return readHeader(bufio.NewReaderSize(rc, 256))
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
