package walg

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/compress"
	"github.com/tusk-backup/tusk/storage"
)

// Verify reads wal-g backup m as RestoreChain would, writing nothing: its
// sentinel and files metadata must be readable, every partition that
// files_metadata.json lists must be there, decompress and hold every entry
// it lists, only folders and regular files with names inside the data
// directory, a delta's paged files as well-formed increments; pg_control.tar
// must hold global/pg_control, and a partition backup_label (backup_label.tar,
// or in a backup wal-g took over the replication protocol, the first). wal-g
// stores no checksums, so what a partition holds is checked only as far as
// its compression and tar framing do. It returns every problem found
// (storage failures other than a missing object stop it with an error).
func Verify(ctx context.Context, m basebackup.Meta, opts basebackup.VerifyOptions) ([]basebackup.Problem, error) {
	var mu sync.Mutex
	var problems []basebackup.Problem
	report := func(object string, err error) {
		mu.Lock()
		problems = append(problems, basebackup.Problem{Object: object, Error: strings.TrimPrefix(err.Error(), object+": ")})
		mu.Unlock()
	}
	s, files, err := readSentinel(ctx, opts.Store, m.Name)
	switch {
	case errors.Is(err, ErrBadSentinel):
		report(SentinelKey(m.Name), err)
		return problems, nil
	case err != nil:
		return nil, err
	}
	if files == nil && !s.FilesMetadataDisabled {
		files, err = readFilesMetadata(ctx, opts.Store, m.Name)
		switch {
		case errors.Is(err, basebackup.ErrCorrupt):
			report(DataPrefix(m.Name)+"files_metadata.json", err)
		case err != nil:
			return nil, err
		}
	}
	if files == nil && m.Incremental() {
		report(DataPrefix(m.Name)+"files_metadata.json", errors.New("a delta backup without files metadata cannot be restored: which of its files are pages is unknown"))
	}
	var described map[string]FileDescription
	if files != nil {
		described = files.Files
		for tarName := range files.TarFileSets {
			key := partsPrefix(m.Name) + tarName
			if !slices.ContainsFunc(m.Parts, func(p basebackup.Part) bool { return p.Key == key }) {
				report(key, fmt.Errorf("%w: the partition is missing (files_metadata.json lists it)", basebackup.ErrCorrupt))
			}
		}
	}
	if !slices.ContainsFunc(m.Parts, func(p basebackup.Part) bool { return p.Archive == archiveControl }) {
		report(partsPrefix(m.Name)+"pg_control.tar", fmt.Errorf("%w: the backup has no pg_control.tar, so it holds no global/pg_control and a restore could not start", basebackup.ErrCorrupt))
	}
	var label atomic.Bool // backup_label.tar holds it, or (remote mode) a partition
	var done atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(opts.Concurrency, 1))
	for _, p := range m.Parts {
		g.Go(func() error {
			seen, err := scanPart(gctx, opts.Store, m, p, described, func(n int64) {
				if opts.Progress != nil {
					opts.Progress(done.Add(n), m.DataSize)
				}
			})
			if err != nil {
				if errors.Is(err, basebackup.ErrCorrupt) {
					report(p.Key, err)
					return nil
				}
				return err
			}
			base := strings.TrimPrefix(p.Key, partsPrefix(m.Name))
			if files != nil {
				for _, name := range files.TarFileSets[base] {
					if !seen[name] {
						report(p.Key, fmt.Errorf("%w: it lacks %s, which files_metadata.json puts in it", basebackup.ErrCorrupt, name))
					}
				}
			}
			if p.Archive == archiveControl && !seen[controlEntry] && !seen[strings.TrimPrefix(controlEntry, "/")] {
				report(p.Key, fmt.Errorf("%w: it holds no global/pg_control", basebackup.ErrCorrupt))
			}
			if seen[labelEntry] {
				label.Store(true)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if !label.Load() && !slices.ContainsFunc(problems, func(p basebackup.Problem) bool { return strings.HasPrefix(p.Object, partsPrefix(m.Name)) }) {
		report(partsPrefix(m.Name)+"backup_label.tar", fmt.Errorf("%w: no partition of the backup holds backup_label, so a restore could not start", basebackup.ErrCorrupt))
	}
	slices.SortFunc(problems, func(a, b basebackup.Problem) int { return strings.Compare(a.Object+a.Error, b.Object+b.Error) })
	return problems, nil
}

// scanPart reads one partition through and returns the entry names it
// holds. A missing or damaged partition is basebackup.ErrCorrupt.
func scanPart(ctx context.Context, st storage.Storage, m basebackup.Meta, p basebackup.Part, files map[string]FileDescription, progress func(int64)) (map[string]bool, error) {
	rc, err := st.Get(ctx, p.Key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: the partition is missing from the repository", basebackup.ErrCorrupt)
	}
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", p.Key, err)
	}
	defer rc.Close()
	download := &errReader{r: rc}
	seen, err := scanTar(download, p.Key, m, files, progress)
	if err != nil && download.err != nil {
		return nil, fmt.Errorf("download %s: %w", p.Key, download.err)
	}
	return seen, err
}

// scanTar reads a partition's compressed tar stream through.
func scanTar(src io.Reader, key string, m basebackup.Meta, files map[string]FileDescription, progress func(int64)) (map[string]bool, error) {
	codec, _ := compress.FromKey(key)
	zr, err := codec.NewReader(src)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", basebackup.ErrCorrupt, err)
	}
	defer zr.Close()
	seen := map[string]bool{}
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", basebackup.ErrCorrupt, err)
		}
		seen[hdr.Name] = true
		rel := strings.TrimPrefix(hdr.Name, "/")
		bad := rel != "" && (path.IsAbs(rel) || slices.Contains(strings.Split(rel, "/"), ".."))
		if bad {
			return nil, fmt.Errorf("%w: entry %q would be written outside the restore folder", basebackup.ErrCorrupt, hdr.Name)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
		case tar.TypeReg:
			if d, ok := files[hdr.Name]; ok && m.Incremental() && d.IsIncremented {
				err = readIncrement(tr, hdr.Name, func(uint64) error { return nil }, func(uint32, []byte) error { return nil })
			} else {
				_, err = io.Copy(io.Discard, tr)
				if err != nil {
					err = fmt.Errorf("%w: %s: %v", basebackup.ErrCorrupt, hdr.Name, err)
				}
			}
			if err != nil {
				return nil, err
			}
			progress(hdr.Size)
		default:
			return nil, fmt.Errorf("%w: entry %s has type %q, which wal-g never writes into a base backup", basebackup.ErrCorrupt, hdr.Name, hdr.Typeflag)
		}
	}
	if _, err := io.Copy(io.Discard, zr); err != nil {
		return nil, fmt.Errorf("%w: %v", basebackup.ErrCorrupt, err)
	}
	return seen, nil
}
