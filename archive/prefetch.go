package archive

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/wal"
)

// Prefetching: while PostgreSQL replays segment N, the segments after it are
// downloaded, verified and left in a spool folder, so that the calls for
// them only move a local file into place. Files appear in the spool under
// their WAL name only once verified (temporary name, then rename), so a
// spool file is always whole. The prefetcher holds an exclusive lock on the
// spool folder's lock file while it works.
//
// Spool files are flushed to disk before they appear when the spool is on
// pg_wal's file system (PrefetchOptions.Flush). PostgreSQL fsyncs every
// file restore_command hands it (durable_rename) while recovery waits; a
// file the prefetcher already flushed, in the background, and that
// wal-fetch then only renames, costs that fsync almost nothing. Measured on the replay benchmark's corpus: the
// startup process spent 0.6 s of a 4.5 s replay in those fsyncs, and the
// replay got 10-15% faster.

const (
	spoolTmp      = ".tmp-"
	spoolLock     = ".lock"
	spoolPosition = ".position"
	// SpoolLog is the prefetcher's log file in the spool folder.
	SpoolLog    = "prefetch.log"
	spoolMaxAge = time.Hour
)

// SpoolDirFor returns the default prefetch spool folder for a data
// directory and a repository: one per pair, under base.
func SpoolDirFor(base, dataDir, repo string) (string, error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", dataDir, err)
	}
	return filepath.Join(base, "fetch-"+shortHash(abs+"\x00"+repo)), nil
}

// FromSpool moves a prefetched copy of file to dest, if the spool has one.
func (a *Archive) FromSpool(spoolDir, file, dest string) (bool, error) {
	src := filepath.Join(spoolDir, file)
	fi, err := os.Stat(src)
	if err != nil {
		return false, nil
	}
	if err := moveFile(src, dest); err != nil {
		return false, fmt.Errorf("move prefetched %s into place: %w", file, err)
	}
	a.log().Info("wal restored from prefetch", "wal", file, "bytes", fi.Size())
	return true, nil
}

// WaitSpool waits, while a prefetcher is working on file, for it to finish
// it; it returns true if file is then in the spool. It gives up after
// timeout, so a stuck prefetcher never stalls recovery for long.
func WaitSpool(ctx context.Context, spoolDir, file string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if _, err := os.Stat(filepath.Join(spoolDir, file)); err == nil {
			return true
		}
		if !inProgress(spoolDir, file) {
			_, err := os.Stat(filepath.Join(spoolDir, file))
			return err == nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	return false
}

func inProgress(spoolDir, file string) bool {
	m, _ := filepath.Glob(filepath.Join(spoolDir, spoolTmp+file+"-*"))
	return len(m) > 0 && Locked(spoolDir)
}

// Locked reports whether a prefetcher is working on the spool folder.
func Locked(spoolDir string) bool {
	f, err := os.OpenFile(filepath.Join(spoolDir, spoolLock), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return true
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

// nextSegment names the segment i after n on n's timeline. The prefetcher
// does not know the cluster's segment size and assumes the default.
func nextSegment(n wal.Name, i int) string {
	return wal.SegmentAt(n.Timeline, n.Pos(wal.DefaultSegSize)+uint64(i), wal.DefaultSegSize).File
}

// Spooled counts how many of the count segments after n are in the spool.
func Spooled(spoolDir string, n wal.Name, count int) int {
	got := 0
	for i := 1; i <= count; i++ {
		if _, err := os.Stat(filepath.Join(spoolDir, nextSegment(n, i))); err == nil {
			got++
		}
	}
	return got
}

// PrefetchOptions tune one prefetch run.
type PrefetchOptions struct {
	SpoolDir    string
	Count       int // segments after the given one
	Concurrency int

	// Follow keeps the prefetcher running as recovery moves on, so that
	// one process serves a whole recovery instead of one per batch: every
	// Poll it reads the segment wal-fetch last asked for (SetPosition) and
	// keeps the Count segments after it spooled. Once Done reports true
	// (recovery has ended) it finishes the window it has and returns; it
	// also returns when the position has not moved for Idle. Without
	// Follow, Prefetch fetches one window and returns.
	Follow bool
	Poll   time.Duration // default 20 ms
	Idle   time.Duration
	Done   func() bool
	// MaxLife ends a following prefetcher after this long even while
	// recovery moves (0: no limit), so that a long-running standby picks up
	// a new tusk binary or new credentials with the next prefetcher.
	MaxLife time.Duration

	// Flush writes each spool file to disk before it appears; worth it
	// only when the spool is on pg_wal's file system, where wal-fetch
	// renames the file into place (see the package comment above).
	Flush bool
}

// ErrPrefetchBusy is returned when another prefetcher holds the spool.
var ErrPrefetchBusy = errors.New("another prefetch is running")

// Prefetch downloads up to Count segments following after into the spool,
// skipping those already there, and removes spool files that recovery has
// moved past. Missing segments (the end of the archive) are not errors.
// A segment that is missing or fails is not asked for again until the
// position moves, and none is downloaded twice for one position.
func (a *Archive) Prefetch(ctx context.Context, after string, opts PrefetchOptions) error {
	name, err := wal.ParseName(after)
	if err != nil {
		return err
	}
	if name.Kind != wal.Segment {
		return nil
	}
	if err := os.MkdirAll(opts.SpoolDir, 0o700); err != nil {
		return fmt.Errorf("spool folder %s: %w", opts.SpoolDir, unwrapPath(err))
	}
	lock, err := os.OpenFile(filepath.Join(opts.SpoolDir, spoolLock), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("spool folder %s: %w", opts.SpoolDir, unwrapPath(err))
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return ErrPrefetchBusy
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	type result struct {
		file string
		ok   bool
	}
	limit := max(opts.Concurrency, 1)
	done := make(chan result, limit)
	inFlight := map[string]bool{}
	// have holds the segments spooled since the position last moved back or
	// to another timeline, so none is fetched again after wal-fetch has
	// moved it out of the spool; failed holds those missing from the
	// archive or failing, asked for again once the position moves (a
	// standby's archive grows).
	have, failed := map[string]bool{}, map[string]bool{}
	defer func() {
		for range inFlight {
			<-done
		}
	}()
	following, started := opts.Follow, time.Now()
	var tick <-chan time.Time
	if following {
		poll := opts.Poll
		if poll <= 0 {
			poll = 20 * time.Millisecond
		}
		t := time.NewTicker(poll)
		defer t.Stop()
		tick = t.C
	}
	pos, moved := name, time.Now()
	end := func(reason string) error {
		if opts.Follow {
			a.log().Info("prefetch ended", "reason", reason, "at", pos.File, "ran", time.Since(started).Round(time.Millisecond))
		}
		if opts.Done != nil && opts.Done() {
			// Recovery is over: what is still spooled is past its end,
			// and would stay (up to Count segments per restore).
			dropSegments(opts.SpoolDir)
		}
		return nil
	}
	cleanSpool(opts.SpoolDir, pos, true)
	for {
		for i := 1; i <= opts.Count && len(inFlight) < limit; i++ {
			next := nextSegment(pos, i)
			if inFlight[next] || have[next] || failed[next] {
				continue
			}
			if _, err := os.Stat(filepath.Join(opts.SpoolDir, next)); err == nil {
				have[next] = true
				continue
			}
			inFlight[next] = true
			go func() { done <- result{next, a.prefetchOne(ctx, opts.SpoolDir, next, opts.Flush)} }()
		}
		if len(inFlight) == 0 && !following {
			return end("recovery ended")
		}
		select {
		case <-ctx.Done():
			return end("stopped")
		case r := <-done:
			delete(inFlight, r.file)
			if r.ok {
				have[r.file] = true
			} else {
				failed[r.file] = true
			}
		case <-tick:
			if opts.Done != nil && opts.Done() {
				// Finish the window, then end.
				following, tick = false, nil
				continue
			}
			if opts.MaxLife > 0 && time.Since(started) > opts.MaxLife {
				return end("lifetime")
			}
			p, ok := readPosition(opts.SpoolDir)
			if !ok || p.File == pos.File {
				if time.Since(moved) > opts.Idle {
					return end("idle")
				}
				continue
			}
			if p.Timeline != pos.Timeline || p.File < pos.File {
				clear(have)
			} else {
				for f := range have {
					if f <= p.File {
						delete(have, f)
					}
				}
			}
			clear(failed)
			pos, moved = p, time.Now()
			cleanSpool(opts.SpoolDir, pos, false)
		}
	}
}

// prefetchOne downloads one segment into the spool and reports whether it
// is there; failures only cost wal-fetch the download it would have made
// anyway.
func (a *Archive) prefetchOne(ctx context.Context, spoolDir, file string, flush bool) bool {
	n, _ := wal.ParseName(file)
	_, size, err := a.fetchOnce(ctx, n, filepath.Join(spoolDir, file), spoolTmp+file+"-", flush)
	switch {
	case err == nil:
		a.log().Debug("wal prefetched", "wal", file, "bytes", size)
		return true
	case errors.Is(err, storage.ErrNotFound), ctx.Err() != nil:
	default:
		a.log().Warn("wal prefetch failed; wal-fetch will download it itself", "wal", file, "error", err)
	}
	return false
}

// SetPosition records, for a following prefetcher, the segment wal-fetch is
// asked for. The file is replaced whole (rename), so a reader never sees
// half of it.
func SetPosition(spoolDir, file string) error {
	tmp := filepath.Join(spoolDir, fmt.Sprintf("%s%s-%d", spoolTmp, spoolPosition, os.Getpid()))
	if err := os.WriteFile(tmp, []byte(file), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(spoolDir, spoolPosition)); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

func readPosition(spoolDir string) (wal.Name, bool) {
	b, err := os.ReadFile(filepath.Join(spoolDir, spoolPosition))
	if err != nil {
		return wal.Name{}, false
	}
	n, err := wal.ParseName(string(b))
	return n, err == nil && n.Kind == wal.Segment
}

// cleanSpool removes spool files before current on its timeline, leftovers
// older than spoolMaxAge, and, with tmps, temporary files (of dead
// prefetchers: it is called with tmps only before this one starts any; a
// position being written is left alone).
func cleanSpool(dir string, current wal.Name, tmps bool) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, de := range des {
		n := de.Name()
		if n == spoolLock || n == spoolPosition || n == SpoolLog {
			continue
		}
		info, err := de.Info()
		if err != nil {
			continue
		}
		old := time.Since(info.ModTime()) > spoolMaxAge
		// A wal-fetch may be writing its position right now.
		tmp := tmps && strings.HasPrefix(n, spoolTmp) && !strings.HasPrefix(n, spoolTmp+spoolPosition)
		passed := len(n) == 24 && n[:8] == current.File[:8] && n < current.File
		if old || tmp || passed {
			os.Remove(filepath.Join(dir, n))
		}
	}
}

// dropSegments removes the spooled segments and unfinished downloads of
// dir, once recovery no longer needs them.
func dropSegments(dir string) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, de := range des {
		n := de.Name()
		if _, err := wal.ParseSegment(n); err == nil || (strings.HasPrefix(n, spoolTmp) && !strings.HasPrefix(n, spoolTmp+spoolPosition)) {
			os.Remove(filepath.Join(dir, n))
		}
	}
}

// moveFile renames src to dest, copying when they are on different file
// systems (pg_wal is often on its own disk).
func moveFile(src, dest string) error {
	err := os.Rename(src, dest)
	if err == nil || !errors.Is(err, syscall.EXDEV) {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dest), ".tusk-fetch-"+filepath.Base(dest)+"-")
	if err != nil {
		return err
	}
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Remove(src)
}

func shortHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:8])
}
