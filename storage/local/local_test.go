package local

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Storage {
		st, err := New(filepath.Join(t.TempDir(), "repo"))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}, storagetest.Options{Short: testing.Short()})
}

func TestPermissions(t *testing.T) {
	root := filepath.Join(t.TempDir(), "repo")
	st, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(t.Context(), "a/b/c", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{root, filepath.Join(root, "a"), filepath.Join(root, "a", "b")} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("%s has mode %v, want 0700", p, fi.Mode().Perm())
		}
	}
	fi, err := os.Stat(filepath.Join(root, "a", "b", "c"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("object has mode %v, want 0600", fi.Mode().Perm())
	}
	// The marker is every user's to read: backup-push run as root may
	// write it before the archiver, running as postgres, needs it.
	if err := st.Put(t.Context(), storage.MarkerKey, strings.NewReader("{}")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(root, storage.MarkerKey)); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("the marker: %v, %v; want mode 0644", fi.Mode().Perm(), err)
	}
}

func TestLeftoverTempFilesAreNotListed(t *testing.T) {
	root := t.TempDir()
	st, _ := New(root)
	if err := os.WriteFile(filepath.Join(root, tmpPrefix+"x-123"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := st.List(t.Context(), "", func(storage.Object) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("listed %d objects, want the temp file hidden", n)
	}
}

func TestRelativeRootRefused(t *testing.T) {
	if _, err := New("relative/repo"); err == nil {
		t.Fatal("New accepted a relative path")
	}
}

func TestCheckUncreatable(t *testing.T) {
	// A regular file where the repository's parent folder should be stops
	// root as well as anyone else.
	parent := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(parent, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	st, _ := New(filepath.Join(parent, "repo"))
	if err := st.Check(t.Context()); err == nil || !strings.Contains(err.Error(), "cannot be created") {
		t.Fatalf("Check = %v, want a 'cannot be created' error", err)
	}
}

func TestSweepRemovesOldTempFiles(t *testing.T) {
	root := t.TempDir()
	st, _ := New(root)
	if err := st.Put(t.Context(), "wal/a/b", strings.NewReader("kept")); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(root, "wal", "a", tmpPrefix+"b-1")
	young := filepath.Join(root, "wal", "a", tmpPrefix+"b-2")
	for _, p := range []string{old, young} {
		if err := os.WriteFile(p, []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	hourAgo := time.Now().Add(-time.Hour)
	if err := os.Chtimes(old, hourAgo, hourAgo); err != nil {
		t.Fatal(err)
	}
	n, err := st.Sweep(t.Context(), time.Now().Add(-time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("Sweep: %d, %v", n, err)
	}
	for p, want := range map[string]bool{old: false, young: true, filepath.Join(root, "wal", "a", "b"): true} {
		if _, err := os.Stat(p); (err == nil) != want {
			t.Errorf("%s exists %v, want %v", p, err == nil, want)
		}
	}
}
