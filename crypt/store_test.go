package crypt

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/storage/local"
	"github.com/tusk-backup/tusk/storage/storagetest"
)

func storeKey(t *testing.T, text string) Key {
	t.Helper()
	k, _, err := NewKey(text, TransformNone)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newStores(t *testing.T, keys ...Key) (*Store, storage.Storage) {
	t.Helper()
	inner, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(inner, Options{Keys: keys, Classify: func(key string) Class {
		switch {
		case strings.HasSuffix(key, ".json"):
			return Seal
		case strings.HasSuffix(key, ".plain"):
			return Plain
		}
		return Encrypt
	}, Hidden: []string{"secret"}, Hint: " (hint)"})
	if err != nil {
		t.Fatal(err)
	}
	return s, inner
}

func put(t *testing.T, st storage.Storage, key string, b []byte) {
	t.Helper()
	if err := st.Put(t.Context(), key, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
}

func get(st storage.Storage, key string) ([]byte, error) {
	rc, err := st.Get(contextBG(), key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// TestContract: the store keeps the storage contract (sizes included) over
// a folder.
func TestContract(t *testing.T) {
	t.Parallel()
	storagetest.Run(t, func(t *testing.T) storage.Storage {
		s, _ := newStores(t, storeKey(t, "0123456789abcdef0123456789abcdef"))
		return s
	}, storagetest.Options{Short: true})
}

func TestSizes(t *testing.T) {
	t.Parallel()
	for n := int64(0); n < 5*chunkSize+3; n++ {
		if got, ok := PlainSize(SealedSize(n)); !ok || got != n {
			t.Fatalf("PlainSize(SealedSize(%d)) = %d, %v", n, got, ok)
		}
	}
	for _, c := range []int64{0, 40, ssHeaderBytes + sealedChunk} {
		if _, ok := PlainSize(c); ok {
			t.Errorf("PlainSize(%d) is ok; no stream has that length", c)
		}
	}
}

// TestRoundTrip: every size around the message boundaries comes back, the
// stored object has the size SealedSize says, and no plaintext is in it.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	s, inner := newStores(t, storeKey(t, "0123456789abcdef0123456789abcdef"))
	for _, n := range []int{0, 1, 16, chunkSize - 1, chunkSize, chunkSize + 1, 3 * chunkSize, 100_000} {
		data := bytes.Repeat([]byte("marker!"), n/7+1)[:n]
		put(t, s, "obj", data)
		got, err := get(s, "obj")
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: got %d bytes, %v", n, len(got), err)
		}
		raw, _ := get(inner, "obj")
		if int64(len(raw)) != SealedSize(int64(n)) {
			t.Errorf("%d bytes stored as %d, want %d", n, len(raw), SealedSize(int64(n)))
		}
		if n > 0 && bytes.Contains(raw, []byte("marker!")) {
			t.Errorf("%d bytes: the plaintext is in the stored object", n)
		}
		o, err := s.Stat(t.Context(), "obj")
		if err != nil || o.Size != int64(n) {
			t.Errorf("%d bytes: Stat says %d, %v", n, o.Size, err)
		}
	}
}

// TestRefused: a wrong key, a renamed object, a plaintext object, every
// cut and every flipped byte each fail, with ErrDecrypt for what no key
// opens and ErrDamaged for the rest.
func TestRefused(t *testing.T) {
	t.Parallel()
	k := storeKey(t, "0123456789abcdef0123456789abcdef")
	s, inner := newStores(t, k)
	data := make([]byte, 2*chunkSize+100)
	for i := range data {
		data[i] = byte(rand.IntN(256))
	}
	put(t, s, "a", data)
	raw, _ := get(inner, "a")

	other, _ := New(inner, Options{Keys: []Key{storeKey(t, "another key, twenty-five bytes or more")}})
	if _, err := get(other, "a"); !errors.Is(err, ErrDecrypt) || !strings.Contains(err.Error(), "a cannot be decrypted with the key given") {
		t.Errorf("wrong key: %v", err)
	}
	put(t, inner, "b", raw)
	if _, err := get(s, "b"); !errors.Is(err, ErrDecrypt) || !strings.Contains(err.Error(), "stored under another name") || !strings.HasSuffix(err.Error(), "(hint)") {
		t.Errorf("renamed: %v", err)
	}
	put(t, inner, "c", data)
	if _, err := get(s, "c"); !errors.Is(err, ErrDecrypt) {
		t.Errorf("plaintext: %v", err)
	}
	for _, cut := range []int{0, 10, ssHeaderBytes, ssHeaderBytes + 1, ssHeaderBytes + sealedChunk, ssHeaderBytes + sealedChunk + 5, 2*sealedChunk + ssHeaderBytes, len(raw) - 1} {
		put(t, inner, "a", raw[:cut])
		if got, err := get(s, "a"); err == nil {
			t.Errorf("cut at %d: read %d bytes without error", cut, len(got))
		} else if !errors.Is(err, ErrDamaged) && !errors.Is(err, ErrDecrypt) {
			t.Errorf("cut at %d: %v", cut, err)
		}
	}
	put(t, inner, "a", append(append([]byte{}, raw...), 0))
	if _, err := get(s, "a"); !errors.Is(err, ErrDamaged) {
		t.Errorf("trailing byte: %v", err)
	}
	for i := 0; i < len(raw); i += 97 {
		bad := append([]byte{}, raw...)
		bad[i] ^= 0x10
		put(t, inner, "a", bad)
		if _, err := get(s, "a"); err == nil {
			t.Fatalf("byte %d flipped: read without error", i)
		}
	}
}

// TestRotation: the first key writes, every key reads.
func TestRotation(t *testing.T) {
	t.Parallel()
	oldKey, newKey := storeKey(t, "the old key, 25 bytes or more"), storeKey(t, "the new key, 25 bytes or more")
	s, inner := newStores(t, oldKey)
	put(t, s, "old", []byte("written with the old key"))
	both, _ := New(inner, Options{Keys: []Key{newKey, oldKey}})
	put(t, both, "new", []byte("written with the new key"))
	for _, k := range []string{"old", "new"} {
		if got, err := get(both, k); err != nil || !strings.HasPrefix(string(got), "written with the "+k) {
			t.Errorf("%s: %q, %v", k, got, err)
		}
	}
	if _, err := get(s, "new"); !errors.Is(err, ErrDecrypt) {
		t.Errorf("the old key alone read what the new one wrote: %v", err)
	}
}

// TestSealed: a Seal object reads back whole with the key, shows only its
// plain fields without one, and refuses a changed plain byte.
func TestSealed(t *testing.T) {
	t.Parallel()
	s, inner := newStores(t, storeKey(t, "0123456789abcdef0123456789abcdef"))
	orig := []byte("{\n  \"name\": \"b1\",\n  \"secret\": [\"base/1/1259\"],\n  \"size\": 42\n}\n")
	put(t, s, "m.json", orig)
	got, err := get(s, "m.json")
	if err != nil || !bytes.Equal(got, orig) {
		t.Fatalf("read back %q, %v", got, err)
	}
	raw, _ := get(inner, "m.json")
	var plain map[string]any
	if err := json.Unmarshal(raw, &plain); err != nil {
		t.Fatal(err)
	}
	if plain["name"] != "b1" || plain["size"] != float64(42) || plain["secret"] != nil || plain[SealedField] == nil {
		t.Errorf("stored %s", raw)
	}
	if bytes.Contains(raw, []byte("1259")) {
		t.Errorf("a hidden field's value is in the stored object: %s", raw)
	}
	put(t, inner, "m.json", bytes.Replace(raw, []byte("42"), []byte("43"), 1))
	if _, err := get(s, "m.json"); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "plain fields differ") {
		t.Errorf("changed plain field: %v", err)
	}
	put(t, inner, "m.json", orig)
	if _, err := get(s, "m.json"); !errors.Is(err, ErrDecrypt) {
		t.Errorf("plain object: %v", err)
	}
	put(t, s, "x.plain", orig)
	if raw, _ := get(inner, "x.plain"); !bytes.Equal(raw, orig) {
		t.Errorf("a Plain object was changed: %q", raw)
	}
}

func TestNewKey(t *testing.T) {
	t.Parallel()
	hexKey := strings.Repeat("ab", 32)
	cases := []struct {
		text, transform, err string
		cut                  int
	}{
		{hexKey, TransformHex, "", 0},
		{hexKey[:62], TransformHex, "decodes to 31 bytes", 0},
		{"zz" + hexKey[2:], TransformHex, "is not hex", 0},
		{"q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=", TransformBase64, "", 0},
		{"q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s", TransformBase64, "is not standard base64", 0},
		{strings.Repeat("k", 24), TransformNone, "is 24 bytes", 0},
		{strings.Repeat("k", 25), TransformNone, "", 0},
		{hexKey, TransformNone, "", 32},
		{hexKey, "rot13", "has transform \"rot13\"", 0},
	}
	for _, c := range cases {
		k, cut, err := NewKey(c.text, c.transform)
		if c.err == "" && (err != nil || cut != c.cut || len(k.ID) != 16) {
			t.Errorf("NewKey(%q, %s) = id %q, cut %d, %v", c.text, c.transform, k.ID, cut, err)
		}
		if c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("NewKey(%q, %s): err %v, want %q", c.text, c.transform, err, c.err)
		}
	}
	// wal-g pads a short key with zero bytes: "k"*25 is that key.
	a, _, _ := NewKey(strings.Repeat("k", 25), TransformNone)
	b, _, _ := NewKey(strings.Repeat("6b", 25)+strings.Repeat("00", 7), TransformHex)
	if a.ID != b.ID {
		t.Error("a 25-byte key taken as it is is not zero-padded")
	}
}

func TestLoadKeys(t *testing.T) {
	t.Parallel()
	f := filepath.Join(t.TempDir(), "keys")
	os.WriteFile(f, []byte("# rotated 2026-12\n"+strings.Repeat("a", 32)+"\n\n  "+strings.Repeat("b", 40)+"  \n"), 0o600)
	var notes []int
	keys, err := LoadKeys(KeySource{Inline: strings.Repeat("c", 32), InlineName: "TUSK_ENCRYPTION_KEY", File: f, FileName: "TUSK_ENCRYPTION_KEY_FILE"},
		func(_ string, line, unused int) { notes = append(notes, line, unused) })
	if err != nil || len(keys) != 3 {
		t.Fatalf("%d keys, %v", len(keys), err)
	}
	want, _, _ := NewKey(strings.Repeat("c", 32), TransformNone)
	if keys[0].ID != want.ID || len(notes) != 2 || notes[0] != 4 || notes[1] != 8 {
		t.Errorf("first key %s (want the inline one, %s); notes %v", keys[0].ID, want.ID, notes)
	}
	os.WriteFile(f, []byte("short\n"), 0o600)
	if _, err := LoadKeys(KeySource{File: f, FileName: "TUSK_ENCRYPTION_KEY_FILE"}, nil); err == nil || !strings.Contains(err.Error(), "TUSK_ENCRYPTION_KEY_FILE ("+f+", line 1) is 5 bytes") {
		t.Errorf("short key in file: %v", err)
	}
	if _, err := LoadKeys(KeySource{File: f + ".missing", FileName: "WALG_LIBSODIUM_KEY_PATH"}, nil); err == nil || !strings.Contains(err.Error(), "(WALG_LIBSODIUM_KEY_PATH): no such file") {
		t.Errorf("missing file: %v", err)
	}
}

func contextBG() context.Context { return context.Background() }

// TestIntegrationObjectsLibsodium: an object as the store writes it is a
// libsodium secretstream: libsodium itself opens it, message by message,
// with the object's key as the first message's additional data, and gives
// back the plaintext byte for byte, FINAL last.
func TestIntegrationObjectsLibsodium(t *testing.T) {
	t.Parallel()
	k := storeKey(t, "0123456789abcdef0123456789abcdef")
	s, inner := newStores(t, k)
	sizes := []int{0, 1, chunkSize - 1, chunkSize, chunkSize + 1, 100_000}
	var jobs []refJob
	var want [][]byte
	for i, n := range sizes {
		data := pattern(n, byte(i))
		name := "wal/0000000100000000/00000001000000000000000" + string(rune('A'+i))
		put(t, s, name, data)
		raw, err := get(inner, name)
		if err != nil {
			t.Fatal(err)
		}
		job := refJob{Op: "pull", Key: hex.EncodeToString(k.key[:]), Header: hex.EncodeToString(raw[:ssHeaderBytes])}
		for rest, first := raw[ssHeaderBytes:], true; len(rest) > 0; first = false {
			m := rest[:min(len(rest), sealedChunk)]
			rest = rest[len(m):]
			msg := refMsg{C: hex.EncodeToString(m)}
			if first {
				msg.AD = hex.EncodeToString([]byte(name))
			}
			job.Messages = append(job.Messages, msg)
		}
		jobs = append(jobs, job)
		want = append(want, data)
	}
	for i, r := range libsodium(t, jobs) {
		if r.Failed != -1 {
			t.Fatalf("%d bytes: libsodium refused message %d", sizes[i], r.Failed)
		}
		var msgs []refMsg
		if err := json.Unmarshal(r.Out, &msgs); err != nil {
			t.Fatal(err)
		}
		var got []byte
		for j, m := range msgs {
			wantTag := byte(ssTagMessage)
			if j == len(msgs)-1 {
				wantTag = ssTagFinal
			}
			if m.Tag != wantTag {
				t.Errorf("%d bytes: message %d has tag %d, want %d", sizes[i], j, m.Tag, wantTag)
			}
			got = append(got, mustHex(t, m.M)...)
		}
		if !bytes.Equal(got, want[i]) {
			t.Errorf("%d bytes: libsodium opened %d different bytes", sizes[i], len(got))
		}
	}
}

// brokenReader yields n bytes of data, then err.
type brokenReader struct {
	data []byte
	err  error
}

func (b *brokenReader) Read(p []byte) (int, error) {
	if len(b.data) == 0 {
		return 0, b.err
	}
	n := copy(p, b.data)
	b.data = b.data[n:]
	return n, nil
}

// TestBrokenTransfers: a source that fails with an error that wraps
// io.ErrUnexpectedEOF (a connection that broke) fails the Put, never
// seals what came as a whole object; and a stored object whose download
// breaks so is reported as the download's failure, not as a damaged or
// wrongly keyed object.
func TestBrokenTransfers(t *testing.T) {
	t.Parallel()
	s, inner := newStores(t, storeKey(t, "0123456789abcdef0123456789abcdef"))
	broke := fmt.Errorf("receive base backup: %w", io.ErrUnexpectedEOF)
	for _, n := range []int{0, 10, chunkSize, 10000} {
		err := s.Put(t.Context(), "part", &brokenReader{data: make([]byte, n), err: broke})
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%d bytes, then a broken source: Put says %v", n, err)
		}
		if _, err := inner.Stat(t.Context(), "part"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("%d bytes, then a broken source: an object was stored (%v)", n, err)
		}
	}
	put(t, s, "whole", make([]byte, 3*chunkSize))
	raw, _ := get(inner, "whole")
	for _, n := range []int{10, 10000, len(raw) - 5} {
		sealed := &openedObject{body: io.NopCloser(nil)}
		pr, err := s.openStream(&brokenReader{data: raw[:n], err: broke}, "whole")
		if err == nil {
			sealed.Reader = pr
			_, err = io.ReadAll(sealed)
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, ErrDamaged) || errors.Is(err, ErrDecrypt) {
			t.Errorf("a download that broke after %d bytes: %v", n, err)
		}
	}
}
