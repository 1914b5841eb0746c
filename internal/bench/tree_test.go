package bench

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ids is a file owner.
type ids struct{ uid, gid int }

// ownerOf returns the owner of path.
func ownerOf(path string) (ids, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return ids{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ids{}, fmt.Errorf("stat %s: no owner", path)
	}
	return ids{uid: int(st.Uid), gid: int(st.Gid)}, nil
}

// mkdirOwned makes dir (mode 0700 or as given) owned by o.
func mkdirOwned(dir string, perm fs.FileMode, o ids) error {
	if err := os.Mkdir(dir, perm); err != nil {
		return err
	}
	if err := os.Chmod(dir, perm); err != nil {
		return err
	}
	return os.Lchown(dir, o.uid, o.gid)
}

// treeOptions tune copyTree.
type treeOptions struct {
	// Skip, if set, leaves out the non-directory entries it returns true
	// for (rel is relative to the source root, slash-separated).
	Skip func(rel string) bool
	// Link hard-links files instead of copying them (falling back to a
	// copy across file systems). Only for files nobody will write.
	Link bool
}

// copyTree copies the directory src into dst (which must not exist),
// keeping every entry's mode and owner. Only directories and regular files
// are allowed.
func copyTree(src, dst string, opts treeOptions) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("stat %s: no owner", path)
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(target, fi.Mode().Perm()); err != nil {
				return err
			}
			if err := os.Chmod(target, fi.Mode().Perm()); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			if opts.Skip != nil && opts.Skip(filepath.ToSlash(rel)) {
				return nil
			}
			if opts.Link {
				err := os.Link(path, target)
				if err == nil {
					return nil // same inode: mode and owner are already right
				}
				if !errors.Is(err, syscall.EXDEV) {
					return err
				}
			}
			if err := copyFile(path, target, fi.Mode().Perm()); err != nil {
				return err
			}
		default:
			return fmt.Errorf("copy %s: neither a directory nor a regular file", path)
		}
		return os.Lchown(target, int(st.Uid), int(st.Gid))
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return nil
}

// moveTree renames src to dst, or copies and removes it across file systems.
func moveTree(src, dst string) error {
	err := os.Rename(src, dst)
	if !errors.Is(err, syscall.EXDEV) {
		return err
	}
	if err := copyTree(src, dst, treeOptions{}); err != nil {
		return err
	}
	return os.RemoveAll(src)
}

// treeSize returns the total size of the regular files under dir.
func treeSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	return n, err
}

// treeNames returns the base names of the regular files under dir.
func treeNames(dir string) ([]string, error) {
	var names []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			names = append(names, d.Name())
		}
		return nil
	})
	return names, err
}

// missingSegments returns the segments that no name in names starts with
// (repositories add suffixes: "-<sha1>.lz4", ".s2", ...).
func missingSegments(segments, names []string) []string {
	have := map[string]bool{}
	for _, n := range names {
		if len(n) >= 24 {
			have[n[:24]] = true
		}
	}
	var missing []string
	for _, s := range segments {
		if !have[s] {
			missing = append(missing, s)
		}
	}
	return missing
}

// waitUnlocked waits until no process holds a flock on any file under dir
// named "*.lock" or ".lock" (pgBackRest's lock folder, tusk's spool), so
// that helpers that outlive the command (pgBackRest's async archive-push,
// tusk's wal-prefetch) are done before their folders are checked or removed.
func waitUnlocked(dir string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		busy, err := lockedFile(dir)
		if err != nil || busy == "" {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s is still locked after %v", busy, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lockedFile returns a lock file under dir that some process holds, or "".
func lockedFile(dir string) (string, error) {
	var busy string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walk
			}
			return err
		}
		if d.IsDir() || !strings.HasSuffix(d.Name(), ".lock") {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		defer f.Close()
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			busy = path
			return fs.SkipAll
		}
		return syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	})
	return busy, err
}
