package basebackup

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/tusk-backup/tusk/internal/testenv"
	"github.com/tusk-backup/tusk/storage/faulty"
)

// TestRestoreIntoFullDisk: a restore folder that fills up is said to be
// full; the backup's parts, which are fine, are not called corrupt.
func TestRestoreIntoFullDisk(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	files := []file{
		{name: "PG_VERSION", data: []byte("15\n")},
		{name: "base/1/1259", data: randomBytes(7, 3<<20)},
		{name: "base/1/16384", data: randomBytes(8, 3<<20)},
	}
	m := push(t, st, 1<<20, map[string][]byte{"": tarOf(t, files)}, []Tablespace{{}})
	dest := filepath.Join(testenv.MountTmpfs(t, t.TempDir(), "2m"), "pgdata")
	err := Restore(t.Context(), m, dest, FetchOptions{Store: st, Concurrency: 2})
	var de *DestError
	if !errors.As(err, &de) || !errors.Is(err, syscall.ENOSPC) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("restore into a full disk: %v; want a DestError with ENOSPC and no ErrCorrupt", err)
	}
	if want := "cannot write into " + dest + ": no space left on device"; err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
	if _, err := os.Stat(dest); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the failed restore left %s (%v)", dest, err)
	}
	if strings.Contains(err.Error(), "corrupt") {
		t.Errorf("the part is blamed: %v", err)
	}
}

// TestFirstCause: when a part's upload fails (a full disk), the stream,
// cancelled by it, must not report its cancellation instead. Before, six
// backup-push runs in ten into a full folder exited 130 "interrupted".
func TestFirstCause(t *testing.T) {
	t.Parallel()
	full := &os.PathError{Op: "write", Path: "/repo/x", Err: syscall.ENOSPC}
	canceled := fmt.Errorf("receive: %w", context.Canceled)
	failed := func() context.Context {
		g, gctx := errgroup.WithContext(t.Context())
		g.Go(func() error { return full })
		g.Wait()
		return gctx
	}
	cases := []struct {
		name      string
		gctx      context.Context
		err, werr error
		want      error
	}{
		{"stream cancelled by a failed upload", failed(), canceled, full, full},
		{"cause unknown, uploads failed", t.Context(), canceled, full, full},
		{"the stream's own error", failed(), errors.New("server closed"), full, nil},
		{"nothing better", t.Context(), canceled, canceled, context.Canceled},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := firstCause(c.gctx, c.err, c.werr)
			switch {
			case c.want == nil && got != c.err:
				t.Errorf("firstCause = %v, want the stream's %v", got, c.err)
			case c.want != nil && !errors.Is(got, c.want):
				t.Errorf("firstCause = %v, want %v", got, c.want)
			}
			if c.want == full && errors.Is(got, context.Canceled) {
				t.Errorf("firstCause = %v still reads as a cancellation", got)
			}
		})
	}
}

// TestRestoreBrokenDownload: a download that breaks (a reset connection) is
// said to be the download's failure; a part whose bytes are wrong is still
// corrupt.
func TestRestoreBrokenDownload(t *testing.T) {
	t.Parallel()
	inner := newStore(t)
	files := []file{{name: "PG_VERSION", data: []byte("15\n")}, {name: "base/1/1", data: randomBytes(9, 3<<20)}}
	m := push(t, inner, 1<<20, map[string][]byte{"": tarOf(t, files)}, []Tablespace{{}})
	reset := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	largest := m.Parts[0]
	for _, p := range m.Parts {
		if p.Size > largest.Size {
			largest = p
		}
	}
	key := largest.Key
	cases := []struct {
		name    string
		fault   faulty.Fault
		corrupt bool
		want    string
	}{
		{"connection reset", faulty.Fault{Op: faulty.Get, Prefix: key, TruncateAt: 1000, ReadErr: reset}, false, "download " + key + ": read tcp: connection reset by peer"},
		{"flipped byte", faulty.Fault{Op: faulty.Get, Prefix: key, FlipAt: 1000}, true, "backup part is corrupt"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := faulty.New(inner)
			st.Inject(c.fault)
			err := Restore(t.Context(), m, filepath.Join(t.TempDir(), "pgdata"), FetchOptions{Store: st, Concurrency: 1})
			if err == nil || errors.Is(err, ErrCorrupt) != c.corrupt || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v; want corrupt %v and %q", err, c.corrupt, c.want)
			}
		})
	}
}
