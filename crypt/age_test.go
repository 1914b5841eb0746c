package crypt

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/storage/local"
	"github.com/tusk-backup/tusk/storage/storagetest"
)

// ageFiles writes a recipients file and an identity file for a new
// identity, and returns their paths.
func ageFiles(t *testing.T) (recipients, identity string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	recipients, identity = filepath.Join(dir, "recipients"), filepath.Join(dir, "identity")
	os.WriteFile(recipients, []byte("# restore hosts\n"+id.Recipient().String()+"\n"), 0o644)
	os.WriteFile(identity, []byte("# created by age-keygen\n"+id.String()+"\n"), 0o600)
	return recipients, identity
}

// plainHeader shows an object's first 5 bytes when it starts with "HEAD:".
func plainHeader(_ string, first []byte) int {
	if bytes.HasPrefix(first, []byte("HEAD:")) {
		return 5
	}
	return 0
}

func ageStore(t *testing.T, inner storage.Storage, recipients, identity string) *Store {
	t.Helper()
	k, err := LoadAge(recipients, "TUSK_AGE_RECIPIENTS", identity, "TUSK_AGE_IDENTITY_FILE")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(inner, Options{Age: k, PlainHeader: plainHeader, Hidden: []string{"secret"}, Classify: func(key string) Class {
		if strings.HasSuffix(key, ".json") {
			return Seal
		}
		return Encrypt
	}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAgeContract(t *testing.T) {
	t.Parallel()
	recipients, identity := ageFiles(t)
	storagetest.Run(t, func(t *testing.T) storage.Storage {
		inner, _ := local.New(t.TempDir())
		return ageStore(t, inner, recipients, identity)
	}, storagetest.Options{Short: true})
}

// TestAgeModes: what a host with both keys writes, a host with only the
// identity reads; a host with only the recipients writes, reads the plain
// header and the plain fields, and nothing else; another identity reads
// nothing.
func TestAgeModes(t *testing.T) {
	t.Parallel()
	recipients, identity := ageFiles(t)
	inner, _ := local.New(t.TempDir())
	both := ageStore(t, inner, recipients, identity)
	writer := ageStore(t, inner, recipients, "")
	reader := ageStore(t, inner, "", identity)

	data := append([]byte("HEAD:"), bytes.Repeat([]byte("marker!"), 5000)...)
	put(t, writer, "wal/seg", data)
	raw, _ := get(inner, "wal/seg")
	if bytes.Contains(raw, []byte("marker!")) {
		t.Fatal("the plaintext is in the stored object")
	}
	for name, st := range map[string]*Store{"both": both, "reader": reader} {
		if got, err := get(st, "wal/seg"); err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: read %d bytes, %v", name, len(got), err)
		}
	}
	if o, err := writer.Stat(t.Context(), "wal/seg"); err != nil || o.Size != int64(len(data)) {
		t.Errorf("the writer's Stat: %d bytes, %v; want %d", o.Size, err, len(data))
	}
	got, err := get(writer, "wal/seg")
	if string(got) != "HEAD:" || !errors.Is(err, ErrNoIdentity) {
		t.Errorf("the writer read %q, %v; want the plain header, then ErrNoIdentity", got, err)
	}
	if err := reader.Put(t.Context(), "wal/other", bytes.NewReader(data)); err == nil || !strings.Contains(err.Error(), "has only age identities") {
		t.Errorf("a host with only identities wrote: %v", err)
	}

	orig := []byte(`{"name":"b1","secret":"base/1/1259"}`)
	put(t, writer, "m.json", orig)
	if got, err := get(both, "m.json"); err != nil || !bytes.Equal(got, orig) {
		t.Errorf("sealed metadata read with the identity: %q, %v", got, err)
	}
	if got, _ := get(writer, "m.json"); !bytes.Contains(got, []byte(`"name":"b1"`)) || bytes.Contains(got, []byte("1259")) {
		t.Errorf("the writer reads the metadata as %s; want its plain fields only", got)
	}

	_, otherIdentity := ageFiles(t)
	stranger := ageStore(t, inner, "", otherIdentity)
	if _, err := get(stranger, "wal/seg"); !errors.Is(err, ErrDecrypt) || !strings.Contains(err.Error(), "written to other recipients") {
		t.Errorf("another identity: %v", err)
	}

	// Renamed, a changed plain header, a cut envelope.
	put(t, inner, "wal/renamed", raw)
	if _, err := get(reader, "wal/renamed"); !errors.Is(err, ErrDecrypt) || !strings.Contains(err.Error(), "stored under another name") {
		t.Errorf("renamed: %v", err)
	}
	i := bytes.Index(raw, []byte("HEAD:"))
	if i < 0 {
		t.Fatal("no plain header in the envelope")
	}
	bad := append([]byte{}, raw...)
	bad[i] = 'X'
	put(t, inner, "wal/seg", bad)
	if _, err := get(reader, "wal/seg"); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "plain header") {
		t.Errorf("changed plain header: %v", err)
	}
	put(t, inner, "wal/seg", raw[:20])
	if _, err := get(reader, "wal/seg"); !errors.Is(err, ErrDamaged) {
		t.Errorf("cut envelope: %v", err)
	}
	put(t, inner, "wal/seg", data)
	if _, err := get(reader, "wal/seg"); !errors.Is(err, ErrDecrypt) || !strings.Contains(err.Error(), "not an age-mode object") {
		t.Errorf("plaintext: %v", err)
	}
}

func TestLoadAge(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("age1notarecipient\n"), 0o644)
	if _, err := LoadAge(bad, "TUSK_AGE_RECIPIENTS", "", ""); err == nil || !strings.Contains(err.Error(), "the age recipients file "+bad+" (TUSK_AGE_RECIPIENTS) cannot be read") {
		t.Errorf("bad recipient: %v", err)
	}
	if _, err := LoadAge("", "", filepath.Join(dir, "missing"), "TUSK_AGE_IDENTITY_FILE"); err == nil || !strings.Contains(err.Error(), "(TUSK_AGE_IDENTITY_FILE): no such file") {
		t.Errorf("missing identity file: %v", err)
	}
	r, id := ageFiles(t)
	k, err := LoadAge(r, "", id, "")
	if err != nil || len(k.RecipientIDs) != 1 || len(k.IdentityIDs) != 1 || k.RecipientIDs[0] != k.IdentityIDs[0] {
		t.Errorf("ids %v and %v, %v; want the one recipient twice", k.RecipientIDs, k.IdentityIDs, err)
	}
}
