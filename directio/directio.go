// Package directio writes files with direct I/O (O_DIRECT) where the file
// system takes it: the bytes go from tusk's buffer to the disk, not through
// the page cache, and a file system that refuses makes the writer go through
// the page cache instead.
//
// Restores write large files this way (basebackup), and so does the folder
// backend (storage/local) for its objects. On the VMs tusk is measured on,
// memory the guest freed goes back to the host, and filling page cache with
// it again costs about 1.5-2 s of system time per GB (up to 5 s per GB on a
// busy day); direct writes reuse the same few buffers every time. Nor do
// gigabytes of backup push out of the page cache what the database host
// had cached, or pile up as dirty pages until the kernel throttles the
// writer.
//
// O_DIRECT wants the file offset, the length and the buffer's address of
// every write aligned to the device's logical block size. Align (4 KiB) is
// a multiple of every common one; a write the file system still refuses
// (EINVAL) makes the Writer, and should make its caller, go through the
// page cache instead (Refused). A Writer that starts or ends off that
// alignment writes its first and last few bytes through the page cache,
// which the caller's fsync or syncfs makes durable; its direct writes cover
// only whole aligned blocks of its own range, so writers of adjacent ranges
// of one file never write the same block both ways.
package directio

import (
	"io"
	"os"
	"sync"
	"unsafe"
)

const (
	// Align is the alignment of every direct write's offset, length and
	// buffer.
	Align = 4 << 10
	// Chunk is the size of a direct write.
	Chunk = 1 << 20
)

// Supported reports whether this platform has direct I/O at all (Linux).
const Supported = oDirect != 0

// buffers hold Chunk bytes, aligned: one per file being written.
var buffers = sync.Pool{New: func() any { b := AlignedBuffer(Chunk); return &b }}

// AlignedBuffer returns n bytes whose address is a multiple of Align. Go's
// heap does not move objects, so the alignment holds.
func AlignedBuffer(n int) []byte {
	b := make([]byte, n+Align)
	skip := (Align - int(uintptr(unsafe.Pointer(&b[0]))%Align)) % Align
	return b[skip : skip+n : skip+n]
}

// Writer writes a file, or a range of one, from an offset, gathering whole
// aligned chunks to write with direct I/O.
type Writer struct {
	f      *os.File
	off    int64   // file offset of buf[0]
	buf    *[]byte // nil until the first aligned byte
	n      int     // bytes in buf
	direct bool    // f has O_DIRECT set
	wrote  bool    // a direct write was made
	// refused is set when the file system refused direct I/O.
	refused bool
}

// NewWriter returns a Writer of f from off. With refused set (the file
// system refused before), it writes through the page cache only.
func NewWriter(f *os.File, off int64, refused bool) *Writer {
	return &Writer{f: f, off: off, refused: refused || !Supported}
}

// Refused reports whether the file system refused direct I/O, so that the
// caller can stop asking for it.
func (d *Writer) Refused() bool { return d.refused && Supported }

// CopyFrom writes r's bytes, read straight into the aligned buffer, to the
// file from the Writer's offset, and tells a read error (r's) from a write
// error (the file's). r's io.EOF ends the data; any other error, such as
// io.ErrUnexpectedEOF, is a read error. The last bytes may still be in the
// buffer: Flush or Close writes them.
func (d *Writer) CopyFrom(r io.Reader) (readErr, writeErr error) {
	// Up to the first aligned offset, through the page cache.
	if head := (Align - d.off%Align) % Align; head > 0 && d.buf == nil {
		var hb [Align]byte
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
	if d.buf == nil {
		d.buf = buffers.Get().(*[]byte)
	}
	for {
		n, err := readFull(r, (*d.buf)[d.n:])
		d.n += n
		if d.n == len(*d.buf) {
			if werr := d.flush(false); werr != nil {
				return nil, werr
			}
		}
		if err != nil {
			return endOf(err), nil
		}
	}
}

// Flush writes what the buffer still holds and gives the buffer back. The
// file stays open, with O_DIRECT cleared.
func (d *Writer) Flush() error {
	var err error
	if d.buf != nil {
		err = d.flush(true)
		buffers.Put(d.buf)
		d.buf = nil
	}
	if d.direct {
		if cerr := setDirect(d.f, false); err == nil {
			err = cerr
		}
		d.direct = false
	}
	return err
}

// Close flushes and closes the file.
func (d *Writer) Close() error {
	err := d.Flush()
	if cerr := d.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// readFull reads into b until it is full or r fails; unlike io.ReadFull it
// passes io.EOF on as it is, so that a short read (io.ErrUnexpectedEOF) is
// not mistaken for the end.
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
// (only ever at the end) through the page cache. A last flush of a writer
// that never filled a whole chunk writes it all through the page cache: a
// small file gains nothing from direct I/O.
func (d *Writer) flush(last bool) error {
	b := (*d.buf)[:d.n]
	whole := len(b) - len(b)%Align
	if last && !d.wrote {
		whole = 0
	}
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
func (d *Writer) writeDirect(b []byte) error {
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
			d.wrote = true
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
func (d *Writer) buffered(b []byte) error {
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
