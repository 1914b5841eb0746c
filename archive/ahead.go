package archive

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
)

// AheadOptions turn on push-ahead: while PostgreSQL's archiver waits for one
// segment, later segments it has already marked .ready are uploaded in
// parallel, and the calls for them then return at once.
//
// What makes a later call return early is a marker in StateDir, written only
// after the segment's upload completed, holding the file's device, inode,
// size and modification time and the content's SHA-256. A call trusts a
// marker only if the file in pg_wal still has the same identity, so a
// marker can never vouch for content it did not upload. A kill -9 at any
// moment leaves at worst no marker (the segment is pushed again, and the
// identical copy is recognised) or a temporary file that is ignored.
type AheadOptions struct {
	StateDir    string // outside pg_wal; created 0700
	Max         int    // segments pushed ahead per call; 0 turns push-ahead off
	Concurrency int    // uploads at once, the called-for segment included
}

type marker struct {
	Key     string `json:"key"`
	SHA256  string `json:"sha256"`
	Size    int64  `json:"size"`
	Dev     uint64 `json:"dev"`
	Ino     uint64 `json:"ino"`
	MtimeNS int64  `json:"mtime_ns"`
}

func fileIdentity(fi os.FileInfo) (dev, ino uint64, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return uint64(st.Dev), uint64(st.Ino), true
}

// PushAhead archives the WAL file at path like Push, and with opts.Max > 0
// first consults and then extends the push-ahead state. Its result and error
// concern path's file only; failures of segments pushed ahead are logged and
// left for the archiver's own calls.
func (a *Archive) PushAhead(ctx context.Context, path string, opts PushOptions, ahead AheadOptions) (PushResult, error) {
	if ahead.Max <= 0 || ahead.StateDir == "" {
		return a.Push(ctx, path, opts)
	}
	name, err := ParseName(filepath.Base(path))
	if err != nil {
		return PushResult{}, err
	}
	if res, ok := a.pushedAhead(path, name, ahead.StateDir); ok {
		return res, nil
	}
	if err := os.MkdirAll(ahead.StateDir, 0o700); err != nil {
		a.Log.Warn("push-ahead off: state folder cannot be created", "state_dir", ahead.StateDir, "error", err)
		return a.Push(ctx, path, opts)
	}
	candidates := a.readyAfter(filepath.Dir(path), name, ahead)

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(ahead.Concurrency, 1))
	var res PushResult
	g.Go(func() error {
		var err error
		res, err = a.Push(gctx, path, opts)
		return err
	})
	for _, c := range candidates {
		g.Go(func() error {
			p := filepath.Join(filepath.Dir(path), c)
			r, err := a.Push(gctx, p, opts)
			if err != nil {
				if gctx.Err() == nil {
					a.Log.Warn("push-ahead failed; the archiver's own call will retry", "wal", c, "error", err)
				}
				return nil
			}
			a.writeMarker(ahead.StateDir, p, r)
			return nil
		})
	}
	err = g.Wait()
	return res, err
}

// pushedAhead reports whether a valid marker says the file at path is
// stored, and consumes the marker.
func (a *Archive) pushedAhead(path string, name Name, stateDir string) (PushResult, bool) {
	mp := filepath.Join(stateDir, name.File)
	b, err := os.ReadFile(mp)
	if err != nil {
		return PushResult{}, false
	}
	var m marker
	fi, err := os.Stat(path)
	if jerr := json.Unmarshal(b, &m); jerr != nil || err != nil {
		os.Remove(mp)
		return PushResult{}, false
	}
	dev, ino, ok := fileIdentity(fi)
	if !ok || m.Key != name.Key() || m.Size != fi.Size() || m.Dev != dev || m.Ino != ino || m.MtimeNS != fi.ModTime().UnixNano() {
		os.Remove(mp)
		return PushResult{}, false
	}
	os.Remove(mp)
	a.Log.Info("wal archived ahead", "wal", name.File, "key", m.Key, "sha256", m.SHA256)
	return PushResult{Name: name, Key: m.Key, Size: m.Size, AlreadyArchived: true}, true
}

func (a *Archive) writeMarker(stateDir, path string, r PushResult) {
	fi, err := os.Stat(path)
	if err != nil {
		return
	}
	dev, ino, ok := fileIdentity(fi)
	if !ok {
		return
	}
	m := marker{Key: r.Key, SHA256: hex.EncodeToString(r.Sum[:]), Size: r.Size, Dev: dev, Ino: ino, MtimeNS: fi.ModTime().UnixNano()}
	b, _ := json.Marshal(m)
	tmp, err := os.CreateTemp(stateDir, ".tmp-"+r.Name.File+"-")
	if err != nil {
		a.Log.Warn("push-ahead marker not written", "wal", r.Name.File, "error", err)
		return
	}
	_, werr := tmp.Write(b)
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), filepath.Join(stateDir, r.Name.File))
	}
	if werr != nil {
		os.Remove(tmp.Name())
		a.Log.Warn("push-ahead marker not written", "wal", r.Name.File, "error", werr)
	}
}

// readyAfter lists the WAL files PostgreSQL has marked ready to archive,
// other than the called-for one and those already pushed ahead, in the
// archiver's order (history files first, then by name), at most ahead.Max.
// It also drops markers whose .ready file is gone.
func (a *Archive) readyAfter(walDir string, current Name, ahead AheadOptions) []string {
	des, err := os.ReadDir(filepath.Join(walDir, "archive_status"))
	if err != nil {
		return nil
	}
	ready := map[string]bool{}
	var out []string
	for _, de := range des {
		n, ok := strings.CutSuffix(de.Name(), ".ready")
		if !ok {
			continue
		}
		if _, err := ParseName(n); err != nil {
			continue
		}
		ready[n] = true
		if n != current.File {
			out = append(out, n)
		}
	}
	if markers, err := os.ReadDir(ahead.StateDir); err == nil {
		for _, m := range markers {
			n := m.Name()
			switch {
			case strings.HasPrefix(n, ".tmp-"):
				if info, err := m.Info(); err == nil && time.Since(info.ModTime()) > time.Hour {
					os.Remove(filepath.Join(ahead.StateDir, n))
				}
			case !ready[n] && n != current.File:
				os.Remove(filepath.Join(ahead.StateDir, n))
			default:
				out = slices.DeleteFunc(out, func(s string) bool { return s == n })
			}
		}
	}
	slices.SortFunc(out, func(x, y string) int {
		hx, hy := strings.HasSuffix(x, ".history"), strings.HasSuffix(y, ".history")
		if hx != hy {
			if hx {
				return -1
			}
			return 1
		}
		return strings.Compare(x, y)
	})
	if len(out) > ahead.Max {
		out = out[:ahead.Max]
	}
	return out
}

// StateDirFor returns the default push-ahead state folder for a pg_wal
// folder and a repository: one per pair, under base.
func StateDirFor(base, walDir, repo string) (string, error) {
	abs, err := filepath.Abs(walDir)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", walDir, err)
	}
	return filepath.Join(base, "push-"+shortHash(abs+"\x00"+repo)), nil
}

func shortHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:8])
}
