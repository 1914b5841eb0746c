// Package storage defines the contract every tusk repository backend keeps.
//
// Keys are slash-separated relative paths ("wal/000000010000000000000042.zst").
// A backend maps them onto its own namespace (a folder, a bucket prefix); keys
// never start with a slash, never contain empty, "." or ".." segments. A key
// is never also a folder of other keys ("a/b" and "a/b/c" cannot both exist),
// because the folder backend maps keys onto files.
//
// # Retries, layer by layer
//
// Each failure is retried by exactly one layer, so that budgets add up
// instead of multiplying:
//
//   - The S3 backend (storage/s3): the SDK's standard retryer retries every
//     request (throttling, 5xx, RequestTimeout, refused, reset or stalled
//     connections) up to s3.Config.MaxRetries times, which cmd chooses per
//     command (the archiver rides out a minute, a person at a terminal a few
//     seconds); a Put re-sends the part it still holds; a Get body that
//     breaks mid-object resumes at its offset, pinned to the same version.
//     Every error it returns after that is marked Final.
//   - Retry, the one decorator (cmd puts it around every backend, below the
//     Guard): Get (opening, and a first Read that fails before any byte),
//     Stat, List and Delete, for what no backend retried: the folder
//     backend's transient failures (EIO, ESTALE of a network file system),
//     and S3's per-key DeleteObjects failures. Its budget is DefaultRetry.
//     It never retries a miss (ErrNotFound, ErrNoRepository), a done ctx,
//     a refused permission or a Final error, and never a Put.
//   - Callers: a body that fails after it handed out bytes is the caller's.
//     wal-fetch and restores do not restart one: on S3 the backend has
//     already resumed it, and a folder that fails mid-read is a failing
//     disk. A content check that fails (archive.ErrCorrupt,
//     basebackup.ErrCorrupt) is not a storage failure and is never retried.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// ErrNotFound is returned (wrapped) by Get and Stat for a key that does not exist.
var ErrNotFound = errors.New("object not found")

// Object describes one stored object.
type Object struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// Storage is a repository backend.
//
// Put stores everything r yields under key atomically: readers see the whole
// object or nothing, and a Put whose reader fails, or whose ctx is cancelled,
// leaves no object under key (an older object under key stays as it was).
// Put replaces an existing object.
//
// Get returns the object's content; it wraps ErrNotFound for a missing key.
// The caller closes the reader.
//
// Stat returns the object's size and modification time; it wraps ErrNotFound
// for a missing key.
//
// List calls fn for every object whose key starts with prefix, in ascending
// byte order of keys, in the caller's goroutine. It stops at fn's first error
// (returning it unwrapped, so callers may use a sentinel to stop early) or
// when ctx is done. Objects are streamed: a backend never holds the whole
// listing in memory. Deleting keys that List has already passed to fn (from
// fn, or while the listing runs) does not change which later keys it lists,
// so a caller can delete what it lists as it goes, in bounded memory.
//
// Delete removes the keys, batching where the backend allows. Deleting a
// missing key is not an error.
//
// Read after write: once a Put (or Delete) has returned, every following
// Stat, Get and List, from this process or any other, sees its effect.
// backup-mark and retention rely on it (a mark written, then a backup's
// metadata read back; a deletion plan checked against a fresh listing).
// A folder gives it by rename and fsync; AWS S3 has given strong
// read-after-write consistency for every request since December 2020, and
// MinIO always has. A store that is only eventually consistent (older S3
// clones, some caching gateways) is not a tusk repository.
type Storage interface {
	Put(ctx context.Context, key string, r io.Reader) error
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	Stat(ctx context.Context, key string) (Object, error)
	List(ctx context.Context, prefix string, fn func(Object) error) error
	Delete(ctx context.Context, keys ...string) error
}

// Optional capabilities. A backend may implement any of these besides
// Storage; callers reach them only through As, never by a type assertion,
// so that a wrapper (Guard, Retry, faulty) in between never hides them.
// Every wrapper implements Unwrapper.

// Unwrapper is a Storage that wraps another (Guard, Retry, faulty).
type Unwrapper interface{ Unwrap() Storage }

// As finds the first Storage in the chain of wrappers that implements T, so
// that a decorator never hides an optional capability of the store below.
func As[T any](st Storage) (T, bool) {
	for {
		if t, ok := st.(T); ok {
			return t, true
		}
		u, ok := st.(Unwrapper)
		if !ok {
			var zero T
			return zero, false
		}
		st = u.Unwrap()
	}
}

// Checker is a Storage that can test, in one round trip, that the
// repository is usable (folder writable, bucket reachable with these
// credentials): commands call it before any work, so a misconfiguration is
// one sentence. Both backends are Checkers.
type Checker interface {
	Check(ctx context.Context) error
}

// Sweeper is a Storage that can find and remove the remains of Puts that
// never finished (storage/local's temporary files, of killed processes)
// last written before before, and says how many it removed. S3 is not one:
// MinIO lists multipart uploads only by exact key, so tusk aborts its own
// failed uploads and leaves those of killed processes to the bucket's
// AbortIncompleteMultipartUpload lifecycle rule.
type Sweeper interface {
	Sweep(ctx context.Context, before time.Time) (int, error)
}

// CheckKey reports whether key is a valid object key. Its errors are Final.
func CheckKey(key string) error {
	return Final(checkKey(key))
}

func checkKey(key string) error {
	if key == "" {
		return errors.New("empty object key")
	}
	if strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") {
		return fmt.Errorf("object key %q must not start or end with a slash", key)
	}
	for _, seg := range strings.Split(key, "/") {
		switch seg {
		case "", ".", "..":
			return fmt.Errorf("object key %q has an empty, \".\" or \"..\" segment", key)
		}
	}
	if strings.ContainsAny(key, "\x00\\") {
		return fmt.Errorf("object key %q contains a NUL byte or a backslash", key)
	}
	return nil
}
