package storage_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/storage/local"
)

// TestGuard: a miss is "not found" only in a repository that is there. A
// folder that is missing or empty (an unmounted mount point) answers
// ErrNoRepository, which wal-fetch turns into "stop recovery", never into
// "the archive has ended".
func TestGuard(t *testing.T) {
	ctx := t.Context()
	open := func(t *testing.T, dir string) *storage.Guard {
		st, err := local.New(dir)
		if err != nil {
			t.Fatal(err)
		}
		return storage.NewGuard(st)
	}
	lookups := map[string]func(context.Context, storage.Storage) error{
		"get": func(ctx context.Context, st storage.Storage) error {
			rc, err := st.Get(ctx, "wal/missing")
			if err == nil {
				rc.Close()
			}
			return err
		},
		"stat": func(ctx context.Context, st storage.Storage) error {
			_, err := st.Stat(ctx, "wal/missing")
			return err
		},
		"empty list": func(ctx context.Context, st storage.Storage) error {
			return st.List(ctx, "backups/", func(storage.Object) error { return nil })
		},
	}
	cases := []struct {
		name    string
		prepare func(t *testing.T, dir string, g *storage.Guard)
		want    error // nil: a plain miss (ErrNotFound, or nil for List)
	}{
		{"missing folder", func(t *testing.T, dir string, g *storage.Guard) { os.RemoveAll(dir) }, storage.ErrNoRepository},
		{"empty folder", func(t *testing.T, dir string, g *storage.Guard) {}, storage.ErrNoRepository},
		{"initialized", func(t *testing.T, dir string, g *storage.Guard) {
			if err := g.Init(ctx); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"written before markers", func(t *testing.T, dir string, g *storage.Guard) {
			os.MkdirAll(filepath.Join(dir, "wal"), 0o700)
			os.WriteFile(filepath.Join(dir, "wal", "000000010000000000000001"), []byte("x"), 0o600)
		}, nil},
	}
	for _, c := range cases {
		for lname, lookup := range lookups {
			t.Run(c.name+"/"+lname, func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "repo")
				os.Mkdir(dir, 0o700)
				g := open(t, dir)
				c.prepare(t, dir, g)
				err := lookup(ctx, open(t, dir)) // a new process: nothing cached
				switch {
				case c.want != nil && !errors.Is(err, c.want):
					t.Fatalf("got %v, want %v", err, c.want)
				case c.want != nil && errors.Is(err, storage.ErrNotFound):
					t.Fatalf("%v also reads as not found", err)
				case c.want == nil && lname != "empty list" && !errors.Is(err, storage.ErrNotFound):
					t.Fatalf("got %v, want not found", err)
				case c.want == nil && lname == "empty list" && err != nil:
					t.Fatalf("got %v, want an empty listing", err)
				}
				if c.want != nil && !strings.Contains(err.Error(), "mounted") {
					t.Errorf("%q does not say what to check", err)
				}
			})
		}
	}
}

// TestGuardInit writes the marker once and keeps an existing one.
func TestGuardInit(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "repo")
	st, _ := local.New(dir)
	if err := storage.NewGuard(st).Init(ctx); err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(filepath.Join(dir, storage.MarkerKey))
	if err != nil || !strings.Contains(string(first), `"tusk_repository":1`) {
		t.Fatalf("marker %q, %v", first, err)
	}
	if err := storage.NewGuard(st).Init(ctx); err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(filepath.Join(dir, storage.MarkerKey))
	if string(first) != string(second) {
		t.Fatal("a second Init rewrote the marker")
	}
}

// TestAs finds a capability below a wrapper.
func TestAs(t *testing.T) {
	st, _ := local.New(t.TempDir())
	g := storage.NewGuard(st)
	if _, ok := storage.As[storage.Sweeper](g); !ok {
		t.Fatal("As does not see the folder store's Sweep through the guard")
	}
	if _, ok := storage.As[io.Closer](g); ok {
		t.Fatal("As found a capability nobody has")
	}
}

// TestGuardEncryption: the marker records the encryption and the keys
// that wrote; a process whose keys do not fit is refused in one sentence,
// and a rotated key is added.
func TestGuardEncryption(t *testing.T) {
	ctx := t.Context()
	enc := func(ids ...string) storage.GuardOptions {
		return storage.GuardOptions{Encryption: &storage.Encryption{Kind: storage.EncryptionSecretstream, KeyIDs: ids, WriteIDs: ids[:1]}, KeyHint: "TUSK_ENCRYPTION_KEY"}
	}
	plain := storage.GuardOptions{KeyHint: "TUSK_ENCRYPTION_KEY"}
	newRepo := func() (storage.Storage, string) {
		dir := filepath.Join(t.TempDir(), "repo")
		st, _ := local.New(dir)
		return st, dir
	}
	refused := func(err error, want string) {
		t.Helper()
		if !errors.Is(err, storage.ErrEncryption) || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v; want ErrEncryption saying %q", err, want)
		}
	}

	st, dir := newRepo()
	if err := storage.NewGuardWith(st, enc("aaaa")).Init(ctx); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, storage.MarkerKey)); !strings.Contains(string(b), `"key_ids":["aaaa"]`) {
		t.Fatalf("marker %s", b)
	}
	refused(storage.NewGuardWith(st, plain).Init(ctx), "this repository is encrypted (secretstream-xchacha20poly1305, key ids aaaa): set its key in TUSK_ENCRYPTION_KEY")
	refused(storage.NewGuardWith(st, plain).CheckEncryption(ctx), "is encrypted")
	refused(storage.NewGuardWith(st, enc("bbbb")).CheckEncryption(ctx), "none of the keys given (TUSK_ENCRYPTION_KEY: key ids bbbb)")
	refused(storage.NewGuardWith(st, enc("bbbb")).Init(ctx), "give the new key first and the old ones after it")
	if err := storage.NewGuardWith(st, enc("bbbb", "aaaa")).Init(ctx); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, storage.MarkerKey)); !strings.Contains(string(b), `"key_ids":["aaaa","bbbb"]`) {
		t.Fatalf("after a rotation the marker is %s", b)
	}
	if err := storage.NewGuardWith(st, enc("bbbb")).CheckEncryption(ctx); err != nil {
		t.Errorf("the rotated key alone: %v", err)
	}

	st, _ = newRepo()
	if err := storage.NewGuardWith(st, plain).Init(ctx); err != nil {
		t.Fatal(err)
	}
	refused(storage.NewGuardWith(st, enc("aaaa")).Init(ctx), "this repository is not encrypted, but an encryption key is set (TUSK_ENCRYPTION_KEY)")

	st, _ = newRepo()
	st.Put(ctx, "wal/old", strings.NewReader("x"))
	refused(storage.NewGuardWith(st, enc("aaaa")).Init(ctx), "an older tusk wrote them without encryption, or the marker was removed")

	// Another tool's objects (wal-g's) are not an older tusk's.
	st, dir = newRepo()
	st.Put(ctx, "basebackups_005/base_000000010000000000000002_backup_stop_sentinel.json", strings.NewReader("{}"))
	st.Put(ctx, "wal_005/000000010000000000000002.lz4", strings.NewReader("x"))
	foreign := enc("aaaa")
	foreign.Foreign = []string{"wal_005/", "basebackups_005/"}
	if err := storage.NewGuardWith(st, foreign).Init(ctx); err != nil {
		t.Fatalf("encrypted Init beside wal-g's objects: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, storage.MarkerKey)); !strings.Contains(string(b), `"key_ids":["aaaa"]`) {
		t.Fatalf("marker %s", b)
	}
	st, _ = newRepo()
	st.Put(ctx, "wal_005/000000010000000000000002.lz4", strings.NewReader("x"))
	st.Put(ctx, "wal/old", strings.NewReader("x"))
	refused(storage.NewGuardWith(st, foreign).Init(ctx), "an older tusk wrote them without encryption")
}

// unreadableMarker is a store whose marker cannot be read, as a 0600
// marker another user wrote.
type unreadableMarker struct{ storage.Storage }

func (u unreadableMarker) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if key == storage.MarkerKey {
		return nil, fmt.Errorf("get %s: %w", key, fs.ErrPermission)
	}
	return u.Storage.Get(ctx, key)
}

// TestGuardUnreadableMarker: a process without keys takes a marker it
// cannot read as the plain repository it was before markers said more (the
// archiver, after backup-push run as root wrote the marker 0600); one with
// keys is refused, since it cannot tell.
func TestGuardUnreadableMarker(t *testing.T) {
	ctx := t.Context()
	st, _ := local.New(filepath.Join(t.TempDir(), "repo"))
	if err := storage.NewGuard(st).Init(ctx); err != nil {
		t.Fatal(err)
	}
	u := unreadableMarker{st}
	if err := storage.NewGuard(u).Init(ctx); err != nil {
		t.Errorf("Init without keys: %v", err)
	}
	if err := storage.NewGuard(u).CheckEncryption(ctx); err != nil {
		t.Errorf("CheckEncryption without keys: %v", err)
	}
	enc := storage.GuardOptions{Encryption: &storage.Encryption{Kind: storage.EncryptionSecretstream, KeyIDs: []string{"a"}, WriteIDs: []string{"a"}}}
	if err := storage.NewGuardWith(u, enc).Init(ctx); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("Init with keys: %v; want the permission error", err)
	}
}
