// Package crypt encrypts what tusk stores: a storage.Storage decorator that
// seals every object on its way into the repository and opens it on its
// way out, so that the packages above it (archive, basebackup, retention,
// verify) read and write plaintext and never hold a key.
//
// The format is libsodium's crypto_secretstream_xchacha20poly1305 in the
// framing wal-g writes with WALG_LIBSODIUM_KEY (see stream.go), implemented
// here in Go on golang.org/x/crypto, and byte for byte what libsodium reads
// and writes (the tests check it against the library). Compression happens
// before encryption, above this layer.
//
// Objects fall in three classes (Options.Classify):
//   - Encrypt: the object is a stream as above, bound to its key. WAL,
//     backup parts, PostgreSQL's manifests: everything that holds file
//     contents or file names.
//   - Seal: a JSON object that must stay readable without a key, to list
//     backups from a host that only writes them (name, times, LSNs, sizes),
//     but is authenticated: it is stored as its top-level fields minus
//     Options.Hidden, plus a field "tusk_sealed" holding the encryption of
//     the whole original. A reader with the key gets the original back,
//     after checking that the plain fields are exactly those of the sealed
//     copy (a changed byte is an error); a reader without one sees the
//     plain fields.
//   - Plain: stored as it is (the repository marker, which says that the
//     repository is encrypted; tombstones; the claim of a running backup).
package crypt

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/tusk-backup/tusk/storage"
)

// Class is how an object is stored.
type Class int

// The classes; see the package comment.
const (
	Encrypt Class = iota
	Seal
	Plain
)

// Options configure a Store.
type Options struct {
	// Keys decrypt; the first encrypts. At least one.
	Keys []Key
	// Classify says how the object under a key is stored.
	Classify func(key string) Class
	// Hidden are the top-level fields of a Seal object kept only in its
	// encrypted copy.
	Hidden []string
	// Hint ends every "cannot be decrypted" error: which settings give
	// the keys, e.g. " (keys from TUSK_ENCRYPTION_KEY_FILE)".
	Hint string
}

// Store is the decorator.
type Store struct {
	inner storage.Storage
	o     Options
}

// New wraps inner.
func New(inner storage.Storage, o Options) (*Store, error) {
	if len(o.Keys) == 0 {
		return nil, errors.New("crypt: no key")
	}
	if o.Classify == nil {
		o.Classify = func(string) Class { return Encrypt }
	}
	return &Store{inner: inner, o: o}, nil
}

// Unwrap implements storage.Unwrapper.
func (s *Store) Unwrap() storage.Storage { return s.inner }

// WriteKeyID is the id of the key that encrypts.
func (s *Store) WriteKeyID() string { return s.o.Keys[0].ID }

// KeyIDs are the ids of every key given, the writing one first.
func (s *Store) KeyIDs() []string {
	ids := make([]string, len(s.o.Keys))
	for i, k := range s.o.Keys {
		ids[i] = k.ID
	}
	return ids
}

// maxSealed bounds a Seal object held in memory (backup metadata is
// kilobytes; a backup of a million files in 64 MiB parts is far below it).
const maxSealed = 64 << 20

// Put implements storage.Storage.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) error {
	switch s.o.Classify(key) {
	case Plain:
		return s.inner.Put(ctx, key, r)
	case Seal:
		b, err := io.ReadAll(io.LimitReader(r, maxSealed+1))
		if err != nil {
			return err
		}
		if len(b) > maxSealed {
			return fmt.Errorf("%s is over %d bytes, too large to seal", key, maxSealed)
		}
		out, err := sealJSON(b, key, &s.o.Keys[0].key, s.o.Hidden)
		if err != nil {
			return err
		}
		return s.inner.Put(ctx, key, bytes.NewReader(out))
	default:
		return s.inner.Put(ctx, key, newSealer(r, &s.o.Keys[0].key, []byte(key)))
	}
}

// Get implements storage.Storage.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := s.inner.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	switch s.o.Classify(key) {
	case Plain:
		return rc, nil
	case Seal:
		defer rc.Close()
		b, err := io.ReadAll(io.LimitReader(rc, 2*maxSealed))
		if err != nil {
			return nil, err
		}
		orig, err := openJSON(b, key, s.o.Keys, s.o.Hidden, s.o.Hint)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(orig)), nil
	default:
		return &openedObject{opener: newOpener(rc, key, s.o.Keys, s.o.Hint), body: rc}, nil
	}
}

type openedObject struct {
	*opener
	body io.Closer
}

func (o *openedObject) Close() error { return o.body.Close() }

// Stat implements storage.Storage. An encrypted object's size is its
// plaintext's, so that sizes compare with what was written.
func (s *Store) Stat(ctx context.Context, key string) (storage.Object, error) {
	o, err := s.inner.Stat(ctx, key)
	if err == nil {
		o = s.plain(o)
	}
	return o, err
}

// List implements storage.Storage, with sizes as Stat has them.
func (s *Store) List(ctx context.Context, prefix string, fn func(storage.Object) error) error {
	return s.inner.List(ctx, prefix, func(o storage.Object) error { return fn(s.plain(o)) })
}

func (s *Store) plain(o storage.Object) storage.Object {
	if s.o.Classify(o.Key) == Encrypt {
		if n, ok := PlainSize(o.Size); ok {
			o.Size = n
		}
	}
	return o
}

// Delete implements storage.Storage.
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	return s.inner.Delete(ctx, keys...)
}

// SealedField is the field of a Seal object that holds its encrypted
// original.
const SealedField = "tusk_sealed"

// sealJSON stores the JSON object b as its plain projection plus its
// sealed original.
func sealJSON(b []byte, name string, key *[32]byte, hidden []string) ([]byte, error) {
	proj, err := project(b, hidden)
	if err != nil {
		return nil, fmt.Errorf("seal %s: %w", name, err)
	}
	var ct bytes.Buffer
	if _, err := io.Copy(&ct, newSealer(bytes.NewReader(b), key, []byte(name))); err != nil {
		return nil, err
	}
	return withSealed(proj, base64.StdEncoding.EncodeToString(ct.Bytes())), nil
}

// openJSON checks a stored Seal object and returns its original.
func openJSON(stored []byte, name string, keys []Key, hidden []string, hint string) ([]byte, error) {
	fields, err := topFields(stored)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: it is not a JSON object (%v)", name, ErrDamaged, err)
	}
	if len(fields) == 0 || fields[len(fields)-1].name != SealedField {
		return nil, fmt.Errorf("%s %w: it is stored in plain text, without its encrypted copy (was it written without the encryption key?)%s", name, ErrDecrypt, hint)
	}
	var sealed string
	if err := json.Unmarshal(fields[len(fields)-1].raw, &sealed); err != nil {
		return nil, fmt.Errorf("%s: %w: its %s field is not a string", name, ErrDamaged, SealedField)
	}
	ct, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: its %s field is not base64", name, ErrDamaged, SealedField)
	}
	orig, err := io.ReadAll(newOpener(bytes.NewReader(ct), name, keys, hint))
	if err != nil {
		return nil, err
	}
	proj, err := project(orig, hidden)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: its encrypted copy is not a JSON object", name, ErrDamaged)
	}
	if !bytes.Equal(withSealed(proj, sealed), stored) {
		return nil, fmt.Errorf("%s: %w: its plain fields differ from its encrypted copy, so they were changed after tusk wrote them", name, ErrDamaged)
	}
	return orig, nil
}

type field struct {
	name string
	raw  json.RawMessage
}

// topFields returns a JSON object's top-level fields in order.
func topFields(b []byte) ([]field, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("no object")
	}
	var fields []field
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var f field
		f.name, _ = t.(string)
		if err := dec.Decode(&f.raw); err != nil {
			return nil, err
		}
		fields = append(fields, f)
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("bytes after the object")
	}
	return fields, nil
}

// project is the JSON object b without the hidden fields, compacted: the
// same bytes for the same b, which is what openJSON compares.
func project(b []byte, hidden []string) ([]byte, error) {
	fields, err := topFields(b)
	if err != nil {
		return nil, err
	}
	out := []byte{'{'}
	for _, f := range fields {
		if f.name == SealedField || slices.Contains(hidden, f.name) {
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		name, _ := json.Marshal(f.name)
		out = append(append(out, name...), ':')
		var c bytes.Buffer
		if err := json.Compact(&c, f.raw); err != nil {
			return nil, err
		}
		out = append(out, c.Bytes()...)
	}
	return append(out, '}'), nil
}

func withSealed(proj []byte, sealed string) []byte {
	out := append([]byte{}, proj[:len(proj)-1]...)
	if len(proj) > 2 {
		out = append(out, ',')
	}
	return append(out, fmt.Sprintf("%q:%q}\n", SealedField, sealed)...)
}
