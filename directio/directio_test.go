package directio

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"testing/iotest"
	"unsafe"
)

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestWriterRanges writes one file as adjacent ranges that start and end
// off the alignment, concurrently, from uneven reads, and checks that the
// file holds exactly the data: the ranges' buffered heads and tails share
// blocks with their neighbours, which the direct writes of whole blocks
// must never touch.
func TestWriterRanges(t *testing.T) {
	data := randomBytes(7, 5<<20+12345)
	cuts := []int64{0, 1<<20 + 512, 2<<20 + 4096, 2<<20 + 4096 + 1536, 4<<20 + 3, int64(len(data))}
	for _, refused := range []bool{false, true} {
		target := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(target, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(target, int64(len(data))); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, len(cuts)-1)
		directs := make([]bool, len(cuts)-1)
		for i := range len(cuts) - 1 {
			wg.Go(func() {
				f, err := os.OpenFile(target, os.O_WRONLY, 0)
				if err != nil {
					errs[i] = err
					return
				}
				d := NewWriter(f, cuts[i], refused)
				rerr, werr := d.CopyFrom(&unevenReader{data: data[cuts[i]:cuts[i+1]]})
				if rerr != nil || werr != nil {
					errs[i] = errors.Join(rerr, werr)
					d.Close()
					return
				}
				directs[i] = d.wrote
				errs[i] = d.Close()
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("refused=%v range %d: %v", refused, i, err)
			}
		}
		got, err := os.ReadFile(target)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("refused=%v: the file differs from what was written (%d bytes, want %d)", refused, len(got), len(data))
		}
		for i, ok := range directs {
			// Ranges of a whole chunk or more are written directly; the
			// 1.5 KiB one is too small to be.
			want := !refused && runtime.GOOS == "linux" && cuts[i+1]-cuts[i] >= Chunk
			if ok != want {
				t.Errorf("refused=%v range %d (%d bytes): written directly %v, want %v", refused, i, cuts[i+1]-cuts[i], ok, want)
			}
		}
	}
}

// TestWriterSmall: a file smaller than a chunk goes through the page cache
// whole, and the file stays usable after Flush.
func TestWriterSmall(t *testing.T) {
	for _, n := range []int{0, 1, Align, Align + 1, Chunk - 1} {
		f, err := os.Create(filepath.Join(t.TempDir(), "f"))
		if err != nil {
			t.Fatal(err)
		}
		data := randomBytes(uint64(n), n)
		d := NewWriter(f, 0, false)
		if rerr, werr := d.CopyFrom(bytes.NewReader(data)); rerr != nil || werr != nil {
			t.Fatal(rerr, werr)
		}
		if err := d.Flush(); err != nil {
			t.Fatal(err)
		}
		if d.wrote {
			t.Errorf("%d bytes: written with direct I/O, want through the page cache", n)
		}
		if _, err := f.WriteAt([]byte("x"), int64(n)); err != nil {
			t.Fatalf("%d bytes: a write after Flush: %v", n, err)
		}
		f.Close()
		got, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, append(data, 'x')) {
			t.Errorf("%d bytes: the file differs from what was written", n)
		}
	}
}

// unevenReader returns data in reads of 1 byte, then growing odd sizes.
type unevenReader struct {
	data []byte
	n    int
}

func (u *unevenReader) Read(p []byte) (int, error) {
	if len(u.data) == 0 {
		return 0, io.EOF
	}
	u.n = u.n*3 + 1
	k := copy(p[:min(len(p), u.n)], u.data)
	u.data = u.data[k:]
	return k, nil
}

// TestWriterShortRead: a reader cut short (io.ErrUnexpectedEOF, as the tar
// reader's of a short entry) is a read error, not the end of the data.
func TestWriterShortRead(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	d := NewWriter(f, 512, false)
	r := io.MultiReader(bytes.NewReader(randomBytes(1, 3<<20)), iotest.ErrReader(io.ErrUnexpectedEOF))
	rerr, werr := d.CopyFrom(r)
	d.Close()
	if werr != nil || !errors.Is(rerr, io.ErrUnexpectedEOF) {
		t.Fatalf("CopyFrom of a cut reader: read error %v, write error %v; want io.ErrUnexpectedEOF, nil", rerr, werr)
	}
}

func TestAlignedBuffer(t *testing.T) {
	for range 10 {
		b := AlignedBuffer(Chunk)
		if len(b) != Chunk || cap(b) != Chunk {
			t.Fatalf("len %d cap %d, want %d", len(b), cap(b), Chunk)
		}
		if p := uintptr(unsafe.Pointer(&b[0])); p%Align != 0 {
			t.Fatalf("address %#x is not a multiple of %d", p, Align)
		}
	}
}

// TestReader reads files of several sizes around the alignment and the
// chunk, with direct I/O and without, in uneven reads, and compares every
// byte.
func TestReader(t *testing.T) {
	for _, n := range []int{0, 1, Align - 1, Align, Chunk, Chunk + 1, 3*Chunk + 12345} {
		data := randomBytes(uint64(n)+1, n)
		path := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, refused := range []bool{false, true} {
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			d := NewReader(f, refused)
			if want := refused || runtime.GOOS != "linux"; d.Refused() != (want && Supported) {
				t.Errorf("%d bytes, refused=%v: Refused() = %v", n, refused, d.Refused())
			}
			got, err := io.ReadAll(iotest.OneByteReader(io.LimitReader(d, 100)))
			if err != nil {
				t.Fatal(err)
			}
			rest, err := io.ReadAll(d)
			if err != nil {
				t.Fatalf("%d bytes, refused=%v: %v", n, refused, err)
			}
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			if got = append(got, rest...); !bytes.Equal(got, data) {
				t.Errorf("%d bytes, refused=%v: read %d bytes that differ", n, refused, len(got))
			}
			if _, err := d.Read(make([]byte, 1)); err == nil {
				t.Errorf("%d bytes, refused=%v: a Read after Close succeeded", n, refused)
			}
		}
	}
}
