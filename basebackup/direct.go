package basebackup

import (
	"io"
	"os"
	"sync"
	"unsafe"
)

// Files of directMin and more are restored with direct I/O where the file
// system takes it: their bytes go from tusk's buffer to the disk, not
// through the page cache. Measured on 2 December 2026 (2 shared cores, a
// fresh ext4 on a loop device with direct I/O, durable restores):
//
//   - By hand, a pgbench scale-400 backup (6 GB) restored alternately by
//     two builds, 2-4 rounds: from MinIO 3.4-5.6 s with direct I/O against
//     11.8-20.4 s through the page cache (system time 1.0-1.8 s against
//     15.6-31.4 s); from a folder 3.4-4.5 s against 7.6-16.2 s. On this VM
//     the page cache's memory, freed and returned to the host since it was
//     last used, costs about 1.5-2 s of system time per GB to fill again;
//     direct I/O writes from the same few buffers every time.
//   - BenchmarkRestoreWrite (1.3 GB, memory just freed by the previous
//     round, so none of that cost): 0.87-1.00 s against 0.89 s, with 10%
//     less CPU (1.21-1.26 s against 1.37 s).
//
// Nor does a restore fill the page cache with gigabytes that push out what
// the host had cached, or pile up dirty pages until the kernel throttles
// it.
//
// O_DIRECT wants the file offset, the length and the buffer's address of
// every write aligned to the device's logical block size. directAlign
// (4 KiB) is a multiple of every common one; a write the file system still
// refuses (EINVAL) makes the file, and the rest of the restore, go through
// the page cache instead. A piece that starts or ends off that alignment
// (pieces are cut at 512-byte tar boundaries) writes its first and last
// few bytes through the page cache, which the closing syncfs makes
// durable; direct writes never touch a page another piece writes, because
// they cover only whole aligned blocks of their own piece.
const (
	directAlign = 4 << 10
	directMin   = 1 << 20 // smaller files go through the page cache
	directChunk = 1 << 20 // bytes per direct write
)

// directBuffers hold directChunk bytes, aligned: one per file being
// written with direct I/O, so at most one per download at work.
var directBuffers = sync.Pool{New: func() any { b := alignedBuffer(directChunk); return &b }}

// alignedBuffer returns n bytes whose address is a multiple of
// directAlign. Go's heap does not move objects, so the alignment holds.
func alignedBuffer(n int) []byte {
	b := make([]byte, n+directAlign)
	skip := (directAlign - int(uintptr(unsafe.Pointer(&b[0]))%directAlign)) % directAlign
	return b[skip : skip+n : skip+n]
}

// directWriter writes a file (or a piece of one) from off, gathering
// whole aligned chunks to write with direct I/O.
type directWriter struct {
	f      *os.File
	off    int64   // file offset of buf[0]
	buf    *[]byte // nil until the first aligned byte
	n      int     // bytes in buf
	direct bool    // f has O_DIRECT set
	// refused is set when a direct write failed with EINVAL: the caller
	// stops opening files with O_DIRECT.
	refused bool
}

// copyFrom writes r's bytes, read straight into the aligned buffer, to
// the file from off, and tells a read error (the part's) from a write
// error (the destination's).
func (d *directWriter) copyFrom(r io.Reader) (readErr, writeErr error) {
	// Up to the first aligned offset, through the page cache.
	if head := (directAlign - d.off%directAlign) % directAlign; head > 0 {
		var hb [directAlign]byte
		n, err := readFull(r, hb[:head])
		if n > 0 {
			if werr := d.buffered(hb[:n]); werr != nil {
				return nil, werr
			}
		}
		if err != nil {
			return endOf(err), nil
		}
	}
	d.buf = directBuffers.Get().(*[]byte)
	for {
		n, err := readFull(r, (*d.buf)[d.n:])
		d.n += n
		if d.n == len(*d.buf) {
			if werr := d.flush(); werr != nil {
				return nil, werr
			}
		}
		if err != nil {
			return endOf(err), nil
		}
	}
}

// readFull reads into b until it is full or r fails; unlike io.ReadFull
// it passes io.EOF on as it is, so that a short entry (the tar reader's
// io.ErrUnexpectedEOF) is not mistaken for its end.
func readFull(r io.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := r.Read(b[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// endOf is err, or nil for the end of the data.
func endOf(err error) error {
	if err == io.EOF {
		return nil
	}
	return err
}

// flush writes what buf holds: its whole aligned blocks directly, the rest
// (only ever at the end of the piece) through the page cache.
func (d *directWriter) flush() error {
	b := (*d.buf)[:d.n]
	whole := len(b) - len(b)%directAlign
	if whole > 0 {
		if err := d.writeDirect(b[:whole]); err != nil {
			return err
		}
	}
	if whole < len(b) {
		if err := d.buffered(b[whole:]); err != nil {
			return err
		}
	}
	d.n = 0
	return nil
}

// writeDirect writes b (aligned) at off with O_DIRECT; if the file system
// refuses, through the page cache.
func (d *directWriter) writeDirect(b []byte) error {
	if !d.refused && !d.direct {
		if setDirect(d.f, true) != nil {
			d.refused = true // the file system does not do direct I/O
		} else {
			d.direct = true
		}
	}
	if d.direct {
		_, err := d.f.WriteAt(b, d.off)
		if err == nil {
			d.off += int64(len(b))
			return nil
		}
		if !isEINVAL(err) {
			return err
		}
		d.refused = true
	}
	return d.buffered(b)
}

// buffered writes b at off through the page cache.
func (d *directWriter) buffered(b []byte) error {
	if d.direct {
		if err := setDirect(d.f, false); err != nil {
			return err
		}
		d.direct = false
	}
	_, err := d.f.WriteAt(b, d.off)
	d.off += int64(len(b))
	return err
}

// close writes what is left and closes the file.
func (d *directWriter) close() error {
	var err error
	if d.buf != nil {
		err = d.flush()
		directBuffers.Put(d.buf)
		d.buf = nil
	}
	if cerr := d.f.Close(); err == nil {
		err = cerr
	}
	return err
}
