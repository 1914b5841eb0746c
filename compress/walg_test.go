package compress

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/andybalholm/brotli"
	"github.com/ulikunitz/xz/lzma"
)

// walgWriters write brotli and lzma as wal-g does
// (internal/compression/brotli/compressor.go: cbrotli at quality 3, whose
// Go port andybalholm/brotli is; internal/compression/lzma/compressor.go:
// ulikunitz/xz's lzma.NewWriter with its defaults).
var walgWriters = []struct {
	ext   string
	write func(t testing.TB, w io.Writer) io.WriteCloser
}{
	{".br", func(t testing.TB, w io.Writer) io.WriteCloser { return brotli.NewWriterLevel(w, 3) }},
	{".lzma", func(t testing.TB, w io.Writer) io.WriteCloser {
		zw, err := lzma.NewWriter(w)
		if err != nil {
			t.Fatal(err)
		}
		return zw
	}},
}

func walgCompress(t testing.TB, write func(testing.TB, io.Writer) io.WriteCloser, data []byte) []byte {
	var buf bytes.Buffer
	w := write(t, &buf)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestWALGCodecs reads wal-g's brotli and lzma streams, and fails every
// cut one with ErrCorrupt.
func TestWALGCodecs(t *testing.T) {
	t.Parallel()
	inputs := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"1B", []byte{7}},
		{"8KiB", compressible(8<<10, 3)},
		{"1MiB+", append(compressible(1<<20, 4), randomBytes(64<<10+1, 5)...)},
	}
	for _, w := range walgWriters {
		c, base := FromKey("x" + w.ext)
		if base != "x" || c.Ext() != w.ext {
			t.Fatalf("FromKey(x%s) = %v, %q", w.ext, c, base)
		}
		for _, in := range inputs {
			t.Run(c.Name()+"/"+in.name, func(t *testing.T) {
				t.Parallel()
				comp := walgCompress(t, w.write, in.data)
				got, err := decompressBytes(c, comp)
				if err != nil || !bytes.Equal(got, in.data) {
					t.Fatalf("read %d of %d bytes, error %v", len(got), len(in.data), err)
				}
				// One byte at a time too: decoders that buffer differently.
				r, _ := c.NewReader(iotest.OneByteReader(bytes.NewReader(comp)))
				got, err = io.ReadAll(r)
				r.Close()
				if err != nil || !bytes.Equal(got, in.data) {
					t.Fatalf("one byte at a time: read %d of %d bytes, error %v", len(got), len(in.data), err)
				}
				for _, n := range cutPoints(comp) {
					got, err := decompressBytes(c, comp[:n])
					if err == nil {
						t.Fatalf("stream of %d bytes cut to %d: read %d of %d bytes and no error", len(comp), n, len(got), len(in.data))
					}
					if !errors.Is(err, ErrCorrupt) {
						t.Fatalf("cut to %d: error %v does not wrap ErrCorrupt", n, err)
					}
				}
			})
		}
	}
}

// TestWALGCodecsSourceError: a failing source is its own error, not a
// corrupt stream.
func TestWALGCodecsSourceError(t *testing.T) {
	t.Parallel()
	boom := errors.New("connection reset")
	for _, w := range walgWriters {
		c, _ := FromKey("x" + w.ext)
		comp := walgCompress(t, w.write, compressible(256<<10, 9))
		r, err := c.NewReader(io.MultiReader(bytes.NewReader(comp[:len(comp)/2]), iotest.ErrReader(boom)))
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.ReadAll(r)
		r.Close()
		if !errors.Is(err, boom) || errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: error %v, want the source's error without ErrCorrupt", c.Name(), err)
		}
	}
}
