package basebackup

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"

	"github.com/tusk-backup/tusk/directio"
)

// How a restore writes its files, chosen by measurement
// (BenchmarkRestoreWrite: a synthetic 1.3 GB backup shaped like a pgbench
// cluster's, a 1 GiB and a 256 MiB relation file split across 64 MiB parts
// plus 300 small files, four parts at a time; 2 shared cores, ext4, medians
// of 7 rotated rounds, 2 December 2026):
//
//	written as before, nothing synced       2.46 s  (cpu 1.80 s)
//	preallocated, nothing synced            2.10 s  (cpu 1.75 s)
//	as before, one syncfs at the end        3.16 s  (cpu 1.76 s)
//	preallocated, one syncfs at the end     2.35 s  (cpu 1.63 s)
//	preallocated, fsync of each file        2.61 s  (cpu 1.99 s)
//	preallocated, early writeback, syncfs   1.41 s  (cpu 1.89 s)   chosen
//	preallocated, early writeback, fsyncs   2.28 s  (cpu 2.05 s)
//
// and in earlier rounds (5 each) one writer at a time per split file (a
// mutex around each write) was no faster than several (1.90 s against 1.79
// s, 2.62 against 2.37 without sync; 3.31 against 4.45 with early
// writeback and syncfs, where preallocation gave 2.84). So:
//
//   - A file split across parts is preallocated to its whole size (the
//     pieces' TUSK.size) by whichever piece opens it first; the pieces then
//     land in allocated space, however many goroutines write them.
//   - Unless the restore is not to be synced, every 8 MiB written to a file
//     is handed to writeback at once (sync_file_range WRITE, which does not
//     wait), so the disk works while tusk downloads and decompresses, and
//     the final syncfs (syncTrees) finds little left to write. Durable
//     restores came out faster than unsynced ones: dirty pages are not left
//     to pile up until the kernel throttles the writers.
//   - Since then, files of 1 MiB and more are written with direct I/O
//     (directMin, whose note has the figures), which needs no early
//     writeback; the rest as above.
type fileWriter struct {
	early  bool     // start writeback as files are written
	direct bool     // write large files with direct I/O
	split  sync.Map // target of a split file → *splitFile
	// noDirect is set once the file system refused direct I/O.
	noDirect atomic.Bool
}

// restoreDirect is whether restores write large files with direct I/O; a
// switch for BenchmarkRestoreWrite.
var restoreDirect = true

type splitFile struct {
	once sync.Once
	err  error
}

// writebackChunk is how many bytes of a file are written before they are
// handed to writeback.
const writebackChunk = 8 << 20

// offsetWriter writes a file from an offset, handing each writebackChunk
// to writeback when asked.
type offsetWriter struct {
	f     *os.File
	off   int64
	early bool
	start int64 // first byte not yet handed to writeback
}

func (o *offsetWriter) Write(p []byte) (int, error) {
	n, err := o.f.WriteAt(p, o.off)
	o.off += int64(n)
	if err == nil && o.early && o.off-o.start >= writebackChunk {
		startWriteback(o.f, o.start, o.off-o.start)
		o.start = o.off
	}
	return n, err
}

// close hands the rest to writeback and closes the file.
func (o *offsetWriter) close() error {
	if o.early && o.off > o.start {
		startWriteback(o.f, o.start, o.off-o.start)
	}
	return o.f.Close()
}

// writeEntry writes a regular file under root or, for a piece of a split
// file, its range of the file.
func (w *fileWriter) writeEntry(root, target string, hdr *tar.Header, r io.Reader) error {
	off, size, err := pieceOf(hdr)
	if err != nil {
		return err
	}
	_, piece := hdr.PAXRecords[paxOffset]
	flags := os.O_WRONLY | os.O_CREATE
	if !piece {
		flags |= os.O_EXCL
	}
	f, err := os.OpenFile(target, flags, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w: %s: the part holds it twice", ErrCorrupt, hdr.Name)
	}
	if err != nil {
		return destError(root, err)
	}
	direct := directio.Supported && w.direct && hdr.Size >= directMin && !w.noDirect.Load()
	if piece {
		v, _ := w.split.LoadOrStore(target, &splitFile{})
		sf := v.(*splitFile)
		sf.once.Do(func() { sf.err = preallocate(f, size) })
		if sf.err != nil {
			f.Close()
			return destError(root, sf.err)
		}
	}
	var copyErr error
	var closeFile func() error
	if direct {
		if !piece {
			if err := preallocate(f, size); err != nil {
				f.Close()
				return destError(root, err)
			}
		}
		dw := directio.NewWriter(f, off, false)
		rerr, werr := dw.CopyFrom(r)
		if dw.Refused() {
			w.noDirect.Store(true)
		}
		switch {
		case werr != nil:
			copyErr = destError(root, werr)
		case rerr != nil:
			copyErr = fmt.Errorf("%w: %s: %v", ErrCorrupt, hdr.Name, rerr)
		}
		closeFile = dw.Close
	} else {
		ow := &offsetWriter{f: f, off: off, start: off, early: w.early}
		copyErr = copyInto(root, hdr.Name, ow, r)
		closeFile = ow.close
	}
	if copyErr != nil {
		closeFile()
		return copyErr
	}
	if err := closeFile(); err != nil {
		return destError(root, err)
	}
	if !piece && !hdr.ModTime.IsZero() {
		os.Chtimes(target, hdr.ModTime, hdr.ModTime)
	}
	return nil
}
