package walgtest

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/tusk-backup/tusk/compress"
	"github.com/tusk-backup/tusk/crypt"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/storage/local"
)

// TestPutWAL: each codec's object is where wal-g puts it and decodes to
// the content; an encrypted one opens only with the key and no additional
// data (crypt's class WALG).
func TestPutWAL(t *testing.T) {
	t.Parallel()
	content := bytes.Repeat([]byte("WAL record 0123456789 "), 3000)
	const key = "a very long libsodium key of 32 bytes!"
	for _, m := range []string{"", "lz4", "zstd", "brotli", "lzma", "none"} {
		for _, enc := range []string{"", key} {
			t.Run(m+"/"+map[bool]string{true: "encrypted", false: "plain"}[enc != ""], func(t *testing.T) {
				t.Parallel()
				st, err := local.New(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				o := Options{Compression: m, LibsodiumKey: enc}
				k, err := PutWAL(t.Context(), st, "000000010000000000000003", bytes.NewReader(content), o)
				if err != nil {
					t.Fatal(err)
				}
				ext, _ := Ext(m)
				if want := "wal_005/000000010000000000000003" + ext; k != want {
					t.Fatalf("key %s, want %s", k, want)
				}
				var r storage.Storage = st
				if enc != "" {
					raw := read(t, st, k)
					if int64(len(raw)) == 0 || bytes.Contains(raw, content[:64]) {
						t.Fatal("the encrypted object shows its content")
					}
					if r, err = Encrypted(st, o); err != nil {
						t.Fatal(err)
					}
				}
				c, base := compress.FromKey(k)
				if m != "none" && base == k {
					t.Fatalf("%s: no codec extension", k)
				}
				zr, err := c.NewReader(bytes.NewReader(read(t, r, k)))
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(zr)
				if err != nil || !bytes.Equal(got, content) {
					t.Fatalf("read %d of %d bytes: %v", len(got), len(content), err)
				}
				if enc != "" {
					other, _ := Encrypted(st, Options{LibsodiumKey: strings.Repeat("x", 32)})
					rc, err := other.Get(t.Context(), k)
					if err == nil {
						_, err = io.ReadAll(rc)
						rc.Close()
					}
					if !errors.Is(err, crypt.ErrDecrypt) {
						t.Fatalf("another key: %v, want ErrDecrypt", err)
					}
				}
			})
		}
	}
}

func read(t *testing.T, st storage.Storage, key string) []byte {
	t.Helper()
	rc, err := st.Get(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUnknownMethod(t *testing.T) {
	t.Parallel()
	if _, err := WALKey("000000010000000000000003", "lzo"); err == nil {
		t.Fatal("lzo accepted; wal-g only reads it")
	}
}
