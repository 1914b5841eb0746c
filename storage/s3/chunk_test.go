package s3

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// TestFillAndChunkReader cuts readers of sizes around the chunk and part
// boundaries into parts, and reads each part back through chunkReader,
// also after a Seek back to its start (as the SDK does to retry).
func TestFillAndChunkReader(t *testing.T) {
	t.Parallel()
	s := &Store{chunks: newBufferList(chunkSize, 4)}
	const limit = 3*chunkSize + 12345 // not a whole number of chunks
	for _, size := range []int{0, 1, chunkSize - 1, chunkSize, chunkSize + 1, limit - 1, limit, limit + 1, 2*limit + 7} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i*31 + i>>11)
		}
		// HalfReader makes fill read in short pieces.
		for _, r := range []io.Reader{bytes.NewReader(data), iotest.HalfReader(bytes.NewReader(data))} {
			var got []byte
			for {
				p := &part{}
				err := s.fill(context.Background(), r, p, limit)
				if err != nil && err != io.EOF {
					t.Fatalf("size %d: fill: %v", size, err)
				}
				if p.n > limit {
					t.Fatalf("size %d: a part of %d bytes, over the limit %d", size, p.n, limit)
				}
				cr := p.reader()
				first, err2 := io.ReadAll(cr)
				if err2 != nil {
					t.Fatal(err2)
				}
				if _, err2 := cr.Seek(0, io.SeekStart); err2 != nil {
					t.Fatal(err2)
				}
				again, _ := io.ReadAll(cr)
				if !bytes.Equal(first, again) || int64(len(first)) != p.n {
					t.Fatalf("size %d: a part of %d bytes read back as %d, then %d", size, p.n, len(first), len(again))
				}
				got = append(got, first...)
				s.release(p)
				if err == io.EOF {
					break
				}
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("size %d: parts joined to %d bytes that differ from the reader's", size, len(got))
			}
		}
	}
}

// TestFillStops: a reader's error and a done context stop fill.
func TestFillStops(t *testing.T) {
	t.Parallel()
	s := &Store{chunks: newBufferList(chunkSize, 4)}
	boom := errors.New("boom")
	if err := s.fill(context.Background(), iotest.ErrReader(boom), &part{}, chunkSize); !errors.Is(err, boom) {
		t.Errorf("fill of a failing reader: %v, want %v", err, boom)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.fill(ctx, bytes.NewReader(make([]byte, 10)), &part{}, chunkSize); !errors.Is(err, context.Canceled) {
		t.Errorf("fill with a done context: %v, want context.Canceled", err)
	}
}
