// Package storage defines the contract every tusk repository backend keeps.
//
// Keys are slash-separated relative paths ("wal/000000010000000000000042.zst").
// A backend maps them onto its own namespace (a folder, a bucket prefix); keys
// never start with a slash, never contain empty, "." or ".." segments. A key
// is never also a folder of other keys ("a/b" and "a/b/c" cannot both exist),
// because the folder backend maps keys onto files.
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
type Storage interface {
	Put(ctx context.Context, key string, r io.Reader) error
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	Stat(ctx context.Context, key string) (Object, error)
	List(ctx context.Context, prefix string, fn func(Object) error) error
	Delete(ctx context.Context, keys ...string) error
}

// CheckKey reports whether key is a valid object key.
func CheckKey(key string) error {
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
