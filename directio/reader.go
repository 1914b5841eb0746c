package directio

import (
	"io"
	"os"
)

// Reader reads a file from its start with direct I/O where the file system
// takes it: whole aligned chunks into an aligned buffer, which Read hands
// out. A file system that refuses makes it read through the page cache.
// Reads are synchronous, one chunk at a time: callers that want the disk
// busy read several files at once, as restores do.
type Reader struct {
	f      *os.File
	buf    *[]byte
	off    int64 // file offset of the next chunk
	r, w   int   // unread bytes are buf[r:w]
	err    error // after buf[r:w]
	direct bool
}

// NewReader returns a Reader of f, which must be at its start. With
// refused set, or where the platform has no direct I/O, it reads through
// the page cache.
func NewReader(f *os.File, refused bool) *Reader {
	d := &Reader{f: f, buf: buffers.Get().(*[]byte)}
	if !refused && Supported && setDirect(f, true) == nil {
		d.direct = true
	}
	return d
}

// Refused reports whether the file system refused direct I/O.
func (d *Reader) Refused() bool { return Supported && !d.direct }

// Read implements io.Reader.
func (d *Reader) Read(p []byte) (int, error) {
	if d.r == d.w {
		if d.err != nil {
			return 0, d.err
		}
		d.fill()
		if d.r == d.w {
			return 0, d.err
		}
	}
	n := copy(p, (*d.buf)[d.r:d.w])
	d.r += n
	return n, nil
}

// fill reads the next chunk.
func (d *Reader) fill() {
	if d.buf == nil {
		d.err = os.ErrClosed
		return
	}
	n, err := d.f.ReadAt(*d.buf, d.off)
	if err != nil && err != io.EOF && d.direct && isEINVAL(err) {
		// The file system took O_DIRECT but refuses this read.
		d.direct = false
		if err = setDirect(d.f, false); err == nil {
			n, err = d.f.ReadAt(*d.buf, d.off)
		}
	}
	d.off += int64(n)
	d.r, d.w, d.err = 0, n, err
}

// Close gives the buffer back and closes the file.
func (d *Reader) Close() error {
	if d.buf != nil {
		buffers.Put(d.buf)
		d.buf = nil
	}
	d.r, d.w = 0, 0
	return d.f.Close()
}
