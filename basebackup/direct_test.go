package basebackup

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"testing/iotest"
)

// TestDirectWriterPieces writes one file as adjacent pieces that start and
// end off the direct-I/O alignment, concurrently, from uneven reads, and
// checks that the file holds exactly the data: the pieces' buffered heads
// and tails share blocks with their neighbours, which the direct writes of
// whole blocks must never touch.
func TestDirectWriterPieces(t *testing.T) {
	data := randomBytes(7, 5<<20+12345)
	cuts := []int64{0, 1<<20 + 512, 2<<20 + 4096, 2<<20 + 4096 + 1536, 4<<20 + 3, int64(len(data))}
	for _, refused := range []bool{false, true} {
		target := filepath.Join(t.TempDir(), "f")
		f, err := os.Create(target)
		if err != nil {
			t.Fatal(err)
		}
		if err := preallocate(f, int64(len(data))); err != nil {
			t.Fatal(err)
		}
		f.Close()
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
				d := &directWriter{f: f, off: cuts[i], refused: refused}
				rerr, werr := d.copyFrom(&unevenReader{data: data[cuts[i]:cuts[i+1]]})
				if rerr != nil || werr != nil {
					errs[i] = errors.Join(rerr, werr)
					d.close()
					return
				}
				directs[i] = !d.refused
				errs[i] = d.close()
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("refused=%v piece %d: %v", refused, i, err)
			}
		}
		got, err := os.ReadFile(target)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("refused=%v: the file differs from what was written (%d bytes, want %d)", refused, len(got), len(data))
		}
		if !refused && runtime.GOOS == "linux" {
			for i, ok := range directs {
				if !ok {
					t.Errorf("piece %d was not written with direct I/O on %s's file system", i, target)
				}
			}
		}
	}
}

// TestRestoreDirect restores a backup with files above and below
// directMin, whole and split, and compares every byte.
func TestRestoreDirect(t *testing.T) {
	st := newStore(t)
	files := []file{{name: "PG_VERSION", data: []byte("15\n")}, {name: "global", dir: true}, {name: "global/pg_control", data: randomBytes(1, 8192)},
		{name: "base", dir: true}, {name: "base/5", dir: true},
		{name: "base/5/16397", data: randomBytes(2, 9<<20)}, {name: "base/5/16398", data: randomBytes(3, 3<<20+777)},
		{name: "base/5/16399", data: randomBytes(4, 100<<10)},
		{name: "backup_label", data: []byte("START WAL LOCATION: 0/2000028\n")}}
	m := push(t, st, 4<<20, map[string][]byte{"": tarOf(t, files)}, []Tablespace{{}})
	dest := filepath.Join(t.TempDir(), "pgdata")
	if err := Restore(t.Context(), m, dest, FetchOptions{Store: st, Concurrency: 3}); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f.dir {
			continue
		}
		got, err := os.ReadFile(filepath.Join(dest, f.name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, f.data) {
			t.Errorf("%s: restored %d bytes that differ from the %d backed up", f.name, len(got), len(f.data))
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

// TestDirectWriterShortEntry: a tar entry cut short (the tar reader's
// io.ErrUnexpectedEOF) is a read error, not the end of the file.
func TestDirectWriterShortEntry(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	d := &directWriter{f: f, off: 512}
	r := io.MultiReader(bytes.NewReader(randomBytes(1, 3<<20)), iotest.ErrReader(io.ErrUnexpectedEOF))
	rerr, werr := d.copyFrom(r)
	d.close()
	if werr != nil || !errors.Is(rerr, io.ErrUnexpectedEOF) {
		t.Fatalf("copyFrom of a cut entry: read error %v, write error %v; want io.ErrUnexpectedEOF, nil", rerr, werr)
	}
}
