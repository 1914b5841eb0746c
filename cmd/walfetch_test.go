package cmd

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSameFileSystem decides whether the prefetcher flushes spool files: only
// when wal-fetch can rename them into pg_wal.
func TestSameFileSystem(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "pg_wal")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if !sameFileSystem(dir, sub) {
		t.Errorf("%s and %s read as different file systems", dir, sub)
	}
	if sameFileSystem(dir, "/proc") {
		t.Errorf("%s and /proc read as one file system", dir)
	}
	if sameFileSystem(dir, filepath.Join(dir, "missing")) {
		t.Error("a missing folder reads as the same file system")
	}
}
