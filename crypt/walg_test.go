package crypt

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/storage/local"
)

// walgStores is a store whose keys under wal_005/ are wal-g's (class WALG),
// the others tusk's, and the folder under it.
func walgStores(t *testing.T, keys ...Key) (*Store, storage.Storage) {
	t.Helper()
	inner, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(inner, Options{Keys: keys, Classify: func(key string) Class {
		if strings.HasPrefix(key, "wal_005/") {
			return WALG
		}
		return Encrypt
	}, Hint: " (hint)"})
	if err != nil {
		t.Fatal(err)
	}
	return s, inner
}

// TestWALG: wal-g's objects are wal-g's framing with no additional data
// (internal/crypto/libsodium/writer.go), sized as wal-g sizes them, and
// read as wal-g's reader reads them (reader.go): a stream that ends after
// a full message without its FINAL one is whole; anything else cut is not.
func TestWALG(t *testing.T) {
	t.Parallel()
	k := storeKey(t, "0123456789abcdef0123456789abcdef")
	s, inner := walgStores(t, k)
	for _, n := range []int{0, 1, chunkSize - 1, chunkSize, 2*chunkSize + 5, 2 * chunkSize} {
		data := pattern(n, byte(n))
		key := "wal_005/obj"
		put(t, s, key, data)
		stored, err := get(inner, key)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(stored)) != SealedSize(int64(n)) {
			t.Fatalf("%d bytes stored as %d, want %d", n, len(stored), SealedSize(int64(n)))
		}
		// No additional data: the first message opens with none.
		pull, err := newSSPull(&k.key, stored[:ssHeaderBytes])
		if err != nil {
			t.Fatal(err)
		}
		first := stored[ssHeaderBytes:min(len(stored), ssHeaderBytes+sealedChunk)]
		if _, _, err := pull.open(nil, first, nil); err != nil {
			t.Fatalf("%d bytes: first message does not open without additional data: %v", n, err)
		}
		if got, err := get(s, key); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: read %d, %v", n, len(got), err)
		}
		// The same bytes under a key of tusk's own do not open: those
		// carry their key as additional data.
		put(t, inner, "wal/obj", stored)
		if _, err := get(s, "wal/obj"); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("%d bytes: wal-g's object under a tusk key: %v, want ErrDecrypt", n, err)
		}
		if n%chunkSize == 0 && n > 0 {
			// Without its empty FINAL message, as wal-g's reader accepts.
			put(t, inner, key, stored[:len(stored)-ssABytes])
			if got, err := get(s, key); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%d bytes without FINAL: read %d, %v", n, len(got), err)
			}
		}
		// Cut anywhere else: an error, never fewer bytes as a whole.
		for cut := ssHeaderBytes; cut < len(stored); cut++ {
			if (cut-ssHeaderBytes)%sealedChunk == 0 && cut > ssHeaderBytes {
				continue // at a message boundary: taken as the end, as above
			}
			if cut > ssHeaderBytes+1 && cut < len(stored)-ssABytes-1 && cut%97 != 0 {
				continue
			}
			put(t, inner, key, stored[:cut])
			if got, err := get(s, key); err == nil {
				t.Fatalf("%d bytes cut to %d: read %d bytes and no error", n, cut, len(got))
			}
		}
	}
	// tusk's objects, bound to their key, do not open as wal-g's.
	put(t, s, "wal/x", []byte("tusk"))
	b, _ := get(inner, "wal/x")
	put(t, inner, "wal_005/x", b)
	if _, err := get(s, "wal_005/x"); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("tusk's object under wal-g's prefix: %v, want ErrDecrypt", err)
	}
	// Plain sizes in listings, as for tusk's objects.
	put(t, s, "wal_005/sized", make([]byte, 3*chunkSize+1))
	o, err := s.Stat(t.Context(), "wal_005/sized")
	if err != nil || o.Size != 3*chunkSize+1 {
		t.Fatalf("Stat = %d, %v", o.Size, err)
	}
}
